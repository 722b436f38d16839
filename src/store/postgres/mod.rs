//! The durable engine. Every SQL string of the service lives in this module:
//! `tx.rs` holds the statements of a transaction, `rows.rs` the column
//! lists and row conversions, `workers.rs` the snowflake worker leases,
//! this file the pool, migrations and pruning.

mod batched;
mod chats;
mod flush;
mod invites;
mod log;
mod members;
mod messages;
mod pages;
mod posts;
mod reads;
mod rows;
mod tls;
mod turns;
mod tx;
mod users;
mod workers;

pub use pages::sql as page_sql;
pub use tls::{PgUrl, RootCert, SslMode, TlsDefaults};
pub use tx::PgTx;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::Row;

use super::{
    ChatEntry, ConversationRange, HistoryPage, HistoryRange, Store, StoreError, StoreResult, Tx,
};
use crate::model::{ChatKey, UserId};

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Held while migrating, so replicas starting together migrate one at a time.
const MIGRATION_LOCK: i64 = 0x6f73_6d69_756d; // "osmium"
/// Opens a transaction whose commit does not wait for its WAL flush.
const ASYNC_BEGIN: &str = "BEGIN; SET LOCAL synchronous_commit = off";
/// Held while pruning the update log, so one replica at a time does it.
const PRUNE_LOCK: i64 = MIGRATION_LOCK + 1;

pub struct PostgresStore {
    pool: Pool,
    flusher: Arc<flush::Flusher>,
    reads: turns::ReadTurns,
    /// GetChats' pages, answered together; each call makes its entries
    /// from its own rows, after the turn is given back.
    pages: Arc<batched::Batched<(UserId, ConversationRange), Vec<Row>>>,
    /// GetChat's reads, answered together.
    entries: Arc<batched::Batched<(ChatKey, UserId), Option<ChatEntry>>>,
    /// GetHistory's pages, answered together.
    histories: Arc<batched::Batched<(ChatKey, UserId, HistoryRange), HistoryPage>>,
}

/// GetChats' pages in one statement at most: each is up to 100 rows, and
/// every call of a batch waits for the whole batch.
const PAGES_AT_ONCE: usize = 4;

/// How long a call waits for a connection, or for its turn to read, before
/// it fails with UNAVAILABLE.
const POOL_WAIT: Duration = Duration::from_secs(10);

/// Server-side limits of every pooled session, so that no call waits on a
/// lock or a slow statement without bound, and a session abandoned inside a
/// transaction cannot hold its locks for long. Zero turns one off.
#[derive(Clone, Copy, Debug)]
pub struct SessionTimeouts {
    pub statement: Duration,
    pub lock: Duration,
    pub idle_in_transaction: Duration,
}

impl Default for SessionTimeouts {
    fn default() -> Self {
        Self {
            statement: Duration::from_secs(5),
            lock: Duration::from_secs(2),
            idle_in_transaction: Duration::from_secs(30),
        }
    }
}

impl SessionTimeouts {
    /// The settings as startup `options`, sent with the connection's
    /// start-up packet: no round trip of their own.
    fn options(&self) -> String {
        format!(
            "-c statement_timeout={} -c lock_timeout={} -c idle_in_transaction_session_timeout={}",
            self.statement.as_millis(),
            self.lock.as_millis(),
            self.idle_in_transaction.as_millis()
        )
    }
}

impl PostgresStore {
    /// A pool on `url`; every connection, the migrations' included, speaks
    /// the TLS its `sslmode` asks for.
    pub fn connect(
        url: &str,
        max_connections: usize,
        timeouts: SessionTimeouts,
    ) -> StoreResult<Self> {
        Self::open(
            PgUrl::parse(url).map_err(StoreError::Url)?,
            max_connections,
            timeouts,
        )
    }

    /// [`PostgresStore::connect`] on a URL parsed already.
    pub fn open(
        mut url: PgUrl,
        max_connections: usize,
        timeouts: SessionTimeouts,
    ) -> StoreResult<Self> {
        let tls = url.connector().map_err(StoreError::Url)?;
        // Kept beside any options the URL sets (a search_path, say).
        let options = match url.config.get_options() {
            Some(given) if !given.trim().is_empty() => format!("{given} {}", timeouts.options()),
            _ => timeouts.options(),
        };
        url.config.options(&options);
        let manager = Manager::from_config(
            url.config,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(max_connections)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(Duration::from_secs(10)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Migration(format!("pool: {e}")))?;
        Ok(Self {
            flusher: flush::Flusher::new(pool.clone()),
            pool,
            reads: turns::ReadTurns::new(max_connections),
            pages: batched::Batched::new("chat pages", PAGES_AT_ONCE, |tx, asked| {
                Box::pin(async move {
                    let pages = pages::chat_page_row_sets(tx, asked).await?;
                    Ok(pages.into_iter().map(Ok).collect())
                })
            }),
            entries: batched::Batched::new("chat entries", batched::MOST, |tx, asked| {
                Box::pin(pages::chat_entries_each(tx, asked))
            }),
            histories: batched::Batched::new("history pages", batched::MOST, |tx, asked| {
                Box::pin(pages::history_pages_each(tx, asked))
            }),
        })
    }

    /// At most `reads` single-statement reads at once (never more than the
    /// pool has connections): `OSMIUM_DB_READ_CONCURRENCY`.
    pub fn with_read_concurrency(mut self, reads: usize) -> Self {
        self.reads = turns::ReadTurns::new(reads.clamp(1, self.pool.status().max_size));
        self
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Applies the embedded migrations that are not applied yet.
    pub async fn migrate(&self) -> StoreResult<()> {
        self.migrate_until(refinery::Target::Latest).await
    }

    /// Applies the embedded migrations up to `version` only: a schema as an
    /// older release left it, from which an upgrade is tested.
    pub async fn migrate_to(&self, version: i32) -> StoreResult<()> {
        self.migrate_until(refinery::Target::Version(version)).await
    }

    async fn migrate_until(&self, target: refinery::Target) -> StoreResult<()> {
        let mut client = self.pool.get().await?;
        // Without it, every start logs refinery's "relation already exists,
        // skipping" notice. A migration may rewrite a large table, and a
        // replica may wait long for another's: the session limits are for
        // calls, not for this.
        client
            .batch_execute(
                "SET client_min_messages = warning; SET statement_timeout = 0; SET lock_timeout = 0",
            )
            .await?;
        client
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        let client: &mut tokio_postgres::Client = &mut client;
        let outcome = embedded::migrations::runner()
            .set_target(target)
            .set_abort_divergent(true)
            .run_async(client)
            .await;
        client
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .await?;
        client
            .batch_execute("RESET client_min_messages; RESET statement_timeout; RESET lock_timeout")
            .await?;
        outcome.map(|_| ()).map_err(|e| {
            // The whole cause, and the server's SQLSTATE, which start-up
            // reads to tell a missing privilege from a bug.
            let mut text = crate::telemetry::error_chain(&e);
            let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(current) = cause {
                if let Some(db) = current.downcast_ref::<tokio_postgres::error::DbError>() {
                    text.push_str(&format!(" (SQLSTATE {})", db.code().code()));
                    break;
                }
                cause = current.source();
            }
            StoreError::Migration(text)
        })
    }
}

impl PostgresStore {
    /// Runs each `DELETE` (`$1` its cutoff, `$2` the batch size) until it
    /// deletes less than a batch, under the prune lock: only one replica at
    /// a time does the work, and another finds it taken and does nothing.
    /// Returns how many rows the counted statements deleted.
    async fn prune_in_batches(
        &self,
        statements: &[(&str, bool)],
        cutoff: i64,
        batch: usize,
    ) -> StoreResult<u64> {
        let client = self.pool.get().await?;
        let locked: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&PRUNE_LOCK])
            .await?
            .get(0);
        if !locked {
            return Ok(0);
        }
        let outcome = async {
            let mut pruned = 0;
            let batch_size = batch as i64;
            for (sql, counted) in statements {
                let statement = client.prepare_cached(sql).await?;
                loop {
                    let deleted = client.execute(&statement, &[&cutoff, &batch_size]).await?;
                    if *counted {
                        pruned += deleted;
                    }
                    if deleted < batch as u64 {
                        break;
                    }
                }
            }
            Ok::<_, StoreError>(pruned)
        }
        .await;
        client
            .execute("SELECT pg_advisory_unlock($1)", &[&PRUNE_LOCK])
            .await?;
        outcome
    }

    /// A reader in a turn of its own: the turn and then a connection share
    /// one wait, [`POOL_WAIT`].
    async fn pg_reader(&self) -> StoreResult<PgTx> {
        let started = tokio::time::Instant::now();
        let turn = self.reads.take(POOL_WAIT).await?;
        reader_in(&self.pool, turn, started).await
    }
}

/// A reader in `turn`, on a connection waited for no longer than what is
/// left of [`POOL_WAIT`] since the call `started`.
async fn reader_in(
    pool: &Pool,
    turn: turns::Turn,
    started: tokio::time::Instant,
) -> StoreResult<PgTx> {
    let mut timeouts = pool.timeouts();
    timeouts.wait = Some(POOL_WAIT.saturating_sub(started.elapsed()));
    let client = pool.timeout_get(&timeouts).await?;
    Ok(PgTx::reader(client, turn))
}

#[async_trait]
impl Store for PostgresStore {
    async fn begin(&self) -> StoreResult<Box<dyn Tx>> {
        Ok(Box::new(PgTx::new(self.pool.get().await?, "BEGIN")))
    }

    async fn begin_relaxed(&self) -> StoreResult<Box<dyn Tx>> {
        Ok(Box::new(PgTx::new(self.pool.get().await?, ASYNC_BEGIN)))
    }

    async fn reader(&self) -> StoreResult<Box<dyn Tx>> {
        Ok(Box::new(self.pg_reader().await?))
    }

    async fn chat_page(
        &self,
        user: UserId,
        range: ConversationRange,
    ) -> StoreResult<Vec<ChatEntry>> {
        let rows = self
            .pages
            .ask(&self.pool, &self.reads, (user, range))
            .await?;
        // The turn and the connection are back: the next read is already on
        // its way while these rows become entries.
        pages::chat_page_entries(&rows, user)
    }

    async fn chat_entry(&self, chat: ChatKey, user: UserId) -> StoreResult<Option<ChatEntry>> {
        self.entries
            .ask(&self.pool, &self.reads, (chat, user))
            .await
    }

    async fn history_page(
        &self,
        chat: ChatKey,
        user: UserId,
        range: HistoryRange,
    ) -> StoreResult<HistoryPage> {
        self.histories
            .ask(&self.pool, &self.reads, (chat, user, range))
            .await
    }

    async fn flush(&self) -> StoreResult<()> {
        self.flusher.flush().await
    }

    async fn prune_updates(&self, retention: Duration, batch: usize) -> StoreResult<u64> {
        // Changes go after the entries naming them: both carry the same
        // transaction time, so one cutoff takes both.
        let statements = [
            (
                "DELETE FROM updates WHERE (user_id, seq) IN (
                     SELECT user_id, seq FROM updates
                     WHERE created_at < now() - $1::bigint * interval '1 millisecond'
                     ORDER BY created_at LIMIT $2)",
                true,
            ),
            (
                "DELETE FROM changes WHERE id IN (
                     SELECT id FROM changes
                     WHERE created_at < now() - $1::bigint * interval '1 millisecond'
                     ORDER BY created_at LIMIT $2)",
                false,
            ),
        ];
        self.prune_in_batches(&statements, retention.as_millis() as i64, batch)
            .await
    }

    async fn prune_dead_invites(&self, now: u64, batch: usize) -> StoreResult<u64> {
        // A dead invite cannot come back to life (uses only grow, expiry
        // never moves), so a use racing this delete finds it dead either way.
        let statements = [(
            // One arm per partial index (V5), each bounded by the batch.
            "DELETE FROM invites WHERE code = ANY(ARRAY(
                 (SELECT code FROM invites WHERE expires_at <= $1::bigint LIMIT $2)
                 UNION ALL
                 (SELECT code FROM invites WHERE uses >= max_uses LIMIT $2)))",
            true,
        )];
        self.prune_in_batches(&statements, now.min(i64::MAX as u64) as i64, batch)
            .await
    }

    async fn lease_worker(&self, holder: &str, ttl: Duration) -> StoreResult<Option<u64>> {
        self.take_worker(holder, ttl).await
    }

    async fn renew_worker(&self, worker: u64, holder: &str, ttl: Duration) -> StoreResult<bool> {
        self.renew(worker, holder, ttl).await
    }

    async fn release_worker(&self, worker: u64, holder: &str) -> StoreResult<()> {
        self.release(worker, holder).await
    }

    fn engine(&self) -> &'static str {
        "postgres"
    }

    fn pool_status(&self) -> Option<super::PoolStatus> {
        let status = self.pool.status();
        Some(super::PoolStatus {
            size: status.size,
            available: status.available,
            waiting: status.waiting,
            reads_waiting: self.reads.waiting(),
            chat_pages: self.pages.counts(),
            chat_entries: self.entries.counts(),
            history_pages: self.histories.counts(),
        })
    }
}
