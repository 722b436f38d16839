//! Durable state behind one interface with two engines: [`postgres`] for
//! production and [`memory`] for the embedded mode. The domain runs every
//! use-case inside one [`Tx`], so both engines share all the rules and only
//! differ in how rows are kept; the integration suite runs against both.
//!
//! The contract is split into narrow traits, one per table or concern, in
//! [`contract`]; [`Tx`] is the one transaction object implementing them all,
//! and each engine writes each trait in its own file. The rows themselves
//! are nouns of [`crate::model`]. The shapes of single store operations (a
//! page of conversations, a batch's writes, what a send or a mark-read reads
//! in one round trip) live beside the one method each belongs to.

pub mod contract;
mod fault;
pub mod memory;
pub mod postgres;
pub mod user_cache;

use async_trait::async_trait;

pub use contract::chats::ChatStore;
pub use contract::invites::InviteStore;
pub use contract::log::LogStore;
pub use contract::members::{ConversationRange, MemberStore};
pub use contract::messages::MessageStore;
pub use contract::pages::{ChatEntry, HistoryPage, HistoryRange, LastMessage, PageStore};
pub use contract::posts::{PostStore, PostWrites, SendContext};
pub use contract::reads::{ReadContext, ReadStore};
pub use contract::users::UserStore;
pub use fault::Transient;
pub use user_cache::UserCache;

use crate::model::{LoggedUpdate, NewChange};

/// The contract's traits, for calling their methods on a concrete
/// transaction type (on `dyn Tx` they resolve through [`Tx`] itself).
pub mod prelude {
    pub use super::{
        ChatStore, InviteStore, LogStore, MemberStore, MessageStore, PageStore, PostStore,
        ReadStore, Tx, UserStore,
    };
}

/// Failures of the storage itself (not of the request).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("connection pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("migrations: {0}")]
    Migration(String),
    /// `DATABASE_URL`, or the CA file its TLS settings name, cannot be used.
    #[error("{0}")]
    Url(String),
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// A unique key was taken by a concurrent writer; the use-case decides.
    #[error("unique key already taken")]
    Duplicate,
    /// A freshly minted message or chat id is already in use: two replicas
    /// minted with one worker number, or a clock went back. Never taken for
    /// a retry or a race, whose answer would be someone else's row.
    #[error("a freshly minted id is already taken")]
    IdTaken,
    /// One failure shared by every request of a batch written together.
    #[error("{0}")]
    Shared(std::sync::Arc<StoreError>),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Starts transactions. Cheap to clone behind an `Arc`.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// A transaction for a use-case that writes: all or nothing.
    async fn begin(&self) -> StoreResult<Box<dyn Tx>>;
    /// Like [`Store::begin`], for writes that may be lost in a database crash
    /// (read markers, drafts, preferences): the commit does not wait for its
    /// WAL flush. What a crash can lose is the last fraction of a second of
    /// such changes, each together with its log entries, so seqs never gap.
    async fn begin_relaxed(&self) -> StoreResult<Box<dyn Tx>> {
        self.begin().await
    }
    /// Reads outside any transaction: each read sees what is committed when
    /// it runs, and nothing is locked. `commit` only hands it back.
    async fn reader(&self) -> StoreResult<Box<dyn Tx>> {
        self.begin().await
    }
    /// [`PageStore::chat_page`] outside any transaction, as a reader reads
    /// it. An engine may give back what the read held (its connection, its
    /// turn) as soon as the rows are in, before they are decoded.
    async fn chat_page(
        &self,
        user: crate::model::UserId,
        range: ConversationRange,
    ) -> StoreResult<Vec<ChatEntry>> {
        let mut tx = self.reader().await?;
        let page = tx.chat_page(user, range).await?;
        tx.commit().await?;
        Ok(page)
    }
    /// [`PageStore::chat_entry`] outside any transaction, as a reader reads
    /// it. An engine may answer calls made at the same time together, in
    /// one statement (Postgres does, see `postgres::batched`).
    async fn chat_entry(
        &self,
        chat: crate::model::ChatKey,
        user: crate::model::UserId,
    ) -> StoreResult<Option<ChatEntry>> {
        let mut tx = self.reader().await?;
        let entry = tx.chat_entry(chat, user).await?;
        tx.commit().await?;
        Ok(entry)
    }
    /// [`PageStore::history_page`] outside any transaction, as a reader
    /// reads it; answered together with calls made at the same time, as
    /// [`Store::chat_entry`] may be.
    async fn history_page(
        &self,
        chat: crate::model::ChatKey,
        user: crate::model::UserId,
        range: HistoryRange,
    ) -> StoreResult<HistoryPage> {
        let mut tx = self.reader().await?;
        let page = tx.history_page(chat, user, range).await?;
        tx.commit().await?;
        Ok(page)
    }
    /// Returns once everything committed before it is durable: a commit
    /// read by another session may still be in its WAL flush (a busy
    /// chat's batch, a relaxed write), and must not be acknowledged or
    /// delivered before it is. Callers waiting at once share one flush.
    async fn flush(&self) -> StoreResult<()> {
        Ok(())
    }
    /// Leases, for `ttl`, a worker number for snowflake ids that no other
    /// live replica holds: one never leased, released, or expired. `None`
    /// when every number is held.
    async fn lease_worker(
        &self,
        holder: &str,
        ttl: std::time::Duration,
    ) -> StoreResult<Option<u64>>;
    /// Extends `holder`'s lease of `worker` to `ttl` from now; false when
    /// the lease is no longer theirs (it expired and another replica took it).
    async fn renew_worker(
        &self,
        worker: u64,
        holder: &str,
        ttl: std::time::Duration,
    ) -> StoreResult<bool>;
    /// Gives `worker` back at once, if `holder` still holds it.
    async fn release_worker(&self, worker: u64, holder: &str) -> StoreResult<()>;
    /// Deletes log entries older than `retention`, at most `batch` per
    /// statement; only one replica at a time does this work. Returns how
    /// many entries went.
    async fn prune_updates(&self, retention: std::time::Duration, batch: usize)
        -> StoreResult<u64>;
    /// Deletes every group's dead invites (expired at `now`, unix ms, or
    /// used up), at most `batch` per statement; only one replica at a time
    /// does this work. Returns how many went.
    async fn prune_dead_invites(&self, now: u64, batch: usize) -> StoreResult<u64>;
    /// Which engine this is, for logs.
    fn engine(&self) -> &'static str;
    /// The connection pool's state, for engines that have one.
    fn pool_status(&self) -> Option<PoolStatus> {
        None
    }
}

/// A connection pool's state, for metrics.
#[derive(Clone, Copy, Debug, Default)]
pub struct PoolStatus {
    pub size: usize,
    pub available: usize,
    /// Callers waiting for a connection.
    pub waiting: usize,
    /// Reads waiting for their turn (`OSMIUM_DB_READ_CONCURRENCY`).
    pub reads_waiting: usize,
    /// [`Store::chat_page`] calls, and the statements that answered them.
    pub chat_pages: Batches,
    /// [`Store::chat_entry`] calls, and the statements that answered them.
    pub chat_entries: Batches,
    /// [`Store::history_page`] calls, and the statements that answered them.
    pub history_pages: Batches,
}

/// Reads answered together: calls made at the same time share a statement.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Batches {
    /// Calls answered, in all.
    pub calls: u64,
    /// The statements that answered them, in all.
    pub statements: u64,
}

/// Resolves once a commit is durable.
pub type Flush = std::pin::Pin<Box<dyn std::future::Future<Output = StoreResult<()>> + Send>>;

/// The one transaction object a use-case composes: every trait of the
/// contract, plus how it ends. Dropping a `Tx` without [`Tx::commit`] rolls
/// it back.
#[async_trait]
pub trait Tx:
    UserStore
    + ChatStore
    + MemberStore
    + MessageStore
    + PageStore
    + InviteStore
    + PostStore
    + ReadStore
    + LogStore
    + Send
{
    async fn commit(self: Box<Self>) -> StoreResult<()>;
    /// [`PostStore::write_posts`] and the commit together: engines send the
    /// commit with the writes. The returned future resolves once the commit
    /// is durable. With `unlock_early` the commit releases the locks before
    /// its WAL flush, so that the next writer of a busy row need not wait
    /// that out: others may read the writes during the flush, and a crash in
    /// it loses them, but nobody has been told they succeeded.
    async fn commit_posts(
        mut self: Box<Self>,
        writes: &PostWrites,
        changes: Vec<NewChange>,
        unlock_early: bool,
    ) -> StoreResult<(Vec<LoggedUpdate>, Flush)> {
        let _ = unlock_early;
        let logged = self.write_posts(writes, changes).await?;
        self.commit().await?;
        Ok((logged, Box::pin(async { Ok(()) })))
    }
    /// [`LogStore::append_changes`], then commit: engines send both together.
    async fn commit_changes(
        mut self: Box<Self>,
        changes: Vec<NewChange>,
    ) -> StoreResult<Vec<LoggedUpdate>> {
        let logged = self.append_changes(changes).await?;
        self.commit().await?;
        Ok(logged)
    }
}
