//! A transaction: a pooled connection between `BEGIN` and `COMMIT`, with
//! every statement prepared once per connection and traced. What is shared
//! by the contract's traits lives here; each trait is written in its own
//! file beside this one.

use std::future::Future;
use std::pin::Pin;

use async_trait::async_trait;
use deadpool_postgres::Object;
use futures_util::TryStreamExt as _;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use tracing::Instrument as _;

use crate::model::{LoggedUpdate, NewChange};
use crate::store::{Flush, LogStore, PostWrites, StoreError, StoreResult, Tx};

pub struct PgTx {
    /// `None` once committed.
    client: Option<Object>,
    /// False for a reader: no transaction is open, nothing to roll back.
    in_transaction: bool,
    /// The statement that opens the transaction, until it is sent: it goes
    /// out with the first statement, in the same round trip.
    begin: std::sync::Mutex<Option<&'static str>>,
    /// A reader's turn among the store's bounded reads, given back with it.
    _turn: Option<super::turns::Turn>,
}

/// Commits without waiting for the WAL flush: the locks go at once.
const ASYNC_COMMIT: &str = "SET LOCAL synchronous_commit = off; COMMIT";
/// After an asynchronous COMMIT (its locks already released), a transaction
/// that must write WAL and wait for its flush: the WAL is flushed in order,
/// so when it returns the earlier commit is durable too. It must write a
/// record of its own before its commit record: Postgres commits a
/// transaction that wrote no WAL asynchronously even when it has an xid
/// (`SELECT txid_current()` alone flushes nothing, which the fault test
/// caught as an acknowledged message lost in a crash). A transactional
/// logical message is the smallest such record; it needs no table and no
/// privilege, and at `wal_level` below `logical` nothing decodes it.
const FLUSH: &str = "BEGIN; SELECT pg_logical_emit_message(true, 'osmium-chat', ''); COMMIT";

/// A statement on its way, so that several can be in flight at once: the
/// connection pipelines them, one round trip for the lot.
pub(super) type Pending<'a> = Pin<Box<dyn Future<Output = StoreResult<u64>> + Send + 'a>>;

impl Drop for PgTx {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        if !self.in_transaction || !self.started() {
            return;
        }
        // Dropped mid-transaction (an error, or the call cancelled, maybe
        // with statements still in flight): the pool does not look at a
        // connection's transaction state when it hands it out again, so it
        // goes back only after a ROLLBACK has succeeded; otherwise, or with
        // no runtime to roll back on, it is closed and the server rolls back.
        let mut guard = Detached(Some(client));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let rolled_back = match &guard.0 {
                    Some(client) => client.batch_execute("ROLLBACK").await.is_ok(),
                    None => false,
                };
                if rolled_back {
                    // Back to the pool, outside any transaction.
                    drop(guard.0.take());
                }
            });
        }
    }
}

/// A connection that is closed, never pooled again, unless taken back out
/// first. It also covers a rollback task dropped unfinished, as happens when
/// the runtime shuts down.
struct Detached(Option<Object>);

impl Drop for Detached {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            let _ = Object::take(client);
        }
    }
}

impl PgTx {
    /// A transaction that `begin` opens with its first statement.
    pub(super) fn new(client: Object, begin: &'static str) -> Self {
        Self {
            client: Some(client),
            in_transaction: true,
            begin: std::sync::Mutex::new(Some(begin)),
            _turn: None,
        }
    }

    /// Reads outside any transaction, in `turn`.
    pub(super) fn reader(client: Object, turn: super::turns::Turn) -> Self {
        Self {
            client: Some(client),
            in_transaction: false,
            begin: std::sync::Mutex::new(None),
            _turn: Some(turn),
        }
    }

    /// Sends the transaction's opening statement if it has not gone yet.
    /// Polled first in a join with the first statements, so it precedes them.
    pub(super) fn begin_now(&self) -> impl Future<Output = StoreResult<()>> + Send + '_ {
        let begin = self.begin.lock().unwrap_or_else(|e| e.into_inner()).take();
        async move {
            if let Some(sql) = begin {
                self.client().batch_execute(sql).await?;
            }
            Ok(())
        }
    }

    /// Whether a statement has run in the transaction.
    pub(super) fn started(&self) -> bool {
        self.begin
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
    }

    /// The connection. `client` is `Some` from construction until a commit,
    /// and every commit takes `self` by value: no call can come after it,
    /// so this cannot fail.
    #[allow(clippy::expect_used)]
    pub(super) fn client(&self) -> &Object {
        self.client
            .as_ref()
            .expect("a transaction is used only until it commits")
    }

    /// The connection, for the commit that ends the transaction (see
    /// [`PgTx::client`] for why it is there); `Drop` then finds none.
    #[allow(clippy::expect_used)]
    fn take_client(&mut self) -> Object {
        self.client.take().expect("commit happens once")
    }

    pub(super) async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<Vec<Row>> {
        self.query_sized(sql, params, 0).await
    }

    /// [`PgTx::query`] of a statement that returns about `expected` rows (a
    /// page): they are gathered without growing the list on the way.
    pub(super) async fn query_sized(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        expected: usize,
    ) -> StoreResult<Vec<Row>> {
        let client = self.client();
        let run = async {
            let statement = client.prepare_cached(sql).await?;
            let stream = client.query_raw(&statement, params.iter().copied()).await?;
            futures_util::pin_mut!(stream);
            let mut rows = Vec::with_capacity(expected);
            while let Some(row) = stream.try_next().await? {
                rows.push(row);
            }
            Ok(rows)
        };
        let (_, rows) = tokio::try_join!(self.begin_now(), run.instrument(statement_span(sql)))?;
        Ok(rows)
    }

    pub(super) async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<u64> {
        let client = self.client();
        let run = async {
            let statement = client.prepare_cached(sql).await?;
            Ok(client.execute(&statement, params).await?)
        };
        let (_, count) = tokio::try_join!(self.begin_now(), run.instrument(statement_span(sql)))?;
        Ok(count)
    }

    /// A write to run together with others (see [`Pending`]). Prepared
    /// here, before anything runs: a statement already prepared on this
    /// connection would otherwise overtake one still being prepared, and
    /// statements must run in the order given (locks are taken in it).
    pub(super) async fn pending<'a>(
        &'a self,
        sql: &'a str,
        params: Vec<Box<dyn ToSql + Sync + Send + 'a>>,
    ) -> StoreResult<Pending<'a>> {
        let statement = self.client().prepare_cached(sql).await?;
        Ok(Box::pin(
            async move {
                let refs: Vec<&(dyn ToSql + Sync)> = params
                    .iter()
                    .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                    .collect();
                Ok(self.client().execute(&statement, &refs).await?)
            }
            .instrument(statement_span(sql)),
        ))
    }

    /// A read to run together with others, prepared first (see [`PgTx::pending`]).
    pub(super) async fn pending_rows<'a>(
        &'a self,
        sql: &'a str,
        params: &'a [&'a (dyn ToSql + Sync)],
    ) -> StoreResult<impl Future<Output = StoreResult<Vec<Row>>> + 'a> {
        let statement = self.client().prepare_cached(sql).await?;
        Ok(
            async move { Ok(self.client().query(&statement, params).await?) }
                .instrument(statement_span(sql)),
        )
    }
}

/// A span per statement, under the RPC's. The SQL is the engine's constant
/// text; values travel as parameters and are never recorded.
pub(super) fn statement_span(sql: &str) -> tracing::Span {
    let operation = sql.split_whitespace().next().unwrap_or("SQL");
    tracing::info_span!(
        "db",
        otel.name = %format!("{operation} postgres"),
        otel.kind = "client",
        db.system = "postgresql",
        db.operation.name = %operation,
        db.query.text = %sql,
    )
}

#[async_trait]
impl Tx for PgTx {
    async fn commit(mut self: Box<Self>) -> StoreResult<()> {
        let client = self.take_client();
        if !self.in_transaction || !self.started() {
            // Nothing ran: there is no transaction to end.
            return Ok(());
        }
        finish(client, "COMMIT").await
    }

    async fn commit_posts(
        mut self: Box<Self>,
        w: &PostWrites,
        changes: Vec<NewChange>,
        unlock_early: bool,
    ) -> StoreResult<(Vec<LoggedUpdate>, Flush)> {
        let end = if unlock_early { ASYNC_COMMIT } else { "COMMIT" };
        let outcome = self.run_posts(w, &changes, Some(end)).await;
        let client = self.take_client();
        let logged = match outcome {
            Ok(logged) => logged,
            Err(error) => {
                // Rolled back by its COMMIT, or its state unknown: never reused.
                let _ = Object::take(client);
                return Err(error);
            }
        };
        if !unlock_early {
            return Ok((logged, Box::pin(async { Ok(()) })));
        }
        Ok((logged, Box::pin(async move { finish(client, FLUSH).await })))
    }

    async fn commit_changes(
        mut self: Box<Self>,
        changes: Vec<NewChange>,
    ) -> StoreResult<Vec<LoggedUpdate>> {
        if !self.in_transaction {
            let logged = self.append_changes(changes).await?;
            self.commit().await?;
            return Ok(logged);
        }
        let statement = self.client().prepare_cached(APPEND).await?;
        let end = async {
            self.client().batch_execute("COMMIT").await?;
            Ok::<_, StoreError>(())
        };
        let (begun, logged, ended) = tokio::join!(
            self.begin_now(),
            self.append_prepared(&statement, &changes),
            end
        );
        let client = self.take_client();
        match (begun, logged, ended) {
            (Ok(()), Ok(logged), Ok(())) => Ok(logged),
            (Err(error), _, _) | (_, Err(error), _) | (_, _, Err(error)) => {
                // Rolled back by its COMMIT, or its state unknown: never reused.
                let _ = Object::take(client);
                Err(error)
            }
        }
    }
}

/// Runs the last statements on a connection before it goes back to the
/// pool; one whose state is unknown after an error is never reused.
/// [`FLUSH`] on a pooled connection of its own (see `flush.rs`).
pub(super) async fn flush(client: Object) -> StoreResult<()> {
    finish(client, FLUSH).await
}

async fn finish(client: Object, sql: &str) -> StoreResult<()> {
    if let Err(error) = client.batch_execute(sql).await {
        let _ = Object::take(client);
        return Err(error.into());
    }
    Ok(())
}

/// Whether a statement failed only because an earlier one aborted the transaction.
pub(super) fn is_aborted(error: &StoreError) -> bool {
    matches!(error, StoreError::Postgres(e)
        if e.code() == Some(&tokio_postgres::error::SqlState::IN_FAILED_SQL_TRANSACTION))
}

/// The one failure to report of statements run together: after the first
/// fails, the later ones only echo that the transaction is aborted, and
/// whichever completes first is not always the cause (a lock timeout must
/// not be reported as "transaction aborted").
pub(super) fn first_cause(errors: impl IntoIterator<Item = StoreError>) -> StoreError {
    let mut echo = None;
    for error in errors {
        if !is_aborted(&error) {
            return error;
        }
        echo.get_or_insert(error);
    }
    echo.unwrap_or_else(|| StoreError::Corrupt("a statement failed without an error".into()))
}

/// Results of statements run together, each `Ok`, or their [`first_cause`].
pub(super) fn all_ok<T>(results: Vec<StoreResult<T>>) -> StoreResult<Vec<T>> {
    if results.iter().all(Result::is_ok) {
        return Ok(results.into_iter().filter_map(Result::ok).collect());
    }
    Err(first_cause(results.into_iter().filter_map(Result::err)))
}

/// The unique index that makes sends idempotent per (author, client id).
const CLIENT_ID_INDEX: &str = "messages_client_id";
/// Primary keys that are snowflake ids, minted by this replica.
const MINTED_KEYS: [&str; 2] = ["messages_pkey", "chats_pkey"];

/// A unique violation on the client id index in a batch of posts is a
/// client id taken meanwhile: a retry, which the domain answers with the
/// first send's message. One on a message's or chat's id is an id minted
/// twice, an error: taking it for a retry (or for the direct chat a
/// concurrent call created) would answer with someone else's row.
pub(super) fn duplicate_on_unique(error: StoreError) -> StoreError {
    let StoreError::Postgres(e) = &error else {
        return error;
    };
    if e.code() != Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
        return error;
    }
    match e.as_db_error().and_then(|db| db.constraint()) {
        Some(CLIENT_ID_INDEX) => StoreError::Duplicate,
        Some(key) if MINTED_KEYS.contains(&key) => StoreError::IdTaken,
        _ => error,
    }
}

/// Appends changes to the log: the payloads once, the heads bumped in
/// ascending user order, one small row per recipient.
pub(super) const APPEND: &str = "WITH c AS (
         INSERT INTO changes (id, payload)
         SELECT * FROM unnest($1::bigint[], $2::bytea[])
     ), h AS (
         INSERT INTO update_heads (user_id, seq)
         SELECT * FROM unnest($3::bigint[], $4::bigint[]) ORDER BY 1
         ON CONFLICT (user_id) DO UPDATE SET seq = update_heads.seq + EXCLUDED.seq
         RETURNING user_id, seq
     ), e AS (
         INSERT INTO updates (user_id, seq, change_id, unread)
         SELECT e.user_id, h.seq - n.cnt + e.pos, e.change_id, e.unread
         FROM unnest($5::bigint[], $6::bigint[], $7::bigint[], $8::int[])
                  AS e(user_id, pos, change_id, unread)
         JOIN h USING (user_id)
         JOIN unnest($3::bigint[], $4::bigint[]) AS n(user_id, cnt) USING (user_id)
     )
     SELECT user_id, seq FROM h";
