//! Durable state behind one interface with two engines: [`postgres`] for
//! production and [`memory`] for the embedded mode. The domain runs every
//! use-case inside one [`Tx`], so both engines share all the rules and only
//! differ in how rows are kept; the integration suite runs against both.
//!
//! The rows themselves are nouns of [`crate::model`]. What stays here are
//! the shapes of single store operations (a page of conversations, a
//! batch's writes, what a send or a mark-read reads in one round trip):
//! each belongs to one method of [`Tx`] and means nothing without it.

pub mod memory;
pub mod postgres;

use async_trait::async_trait;

use crate::model::{
    ChatId, ChatKey, ChatRow, InviteRow, LoggedUpdate, MemberRow, MessageId, MessageRow, NewChange,
    ReadMove, ReadState, UserId,
};
use crate::proto::types;

/// Failures of the storage itself (not of the request).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("connection pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("migrations: {0}")]
    Migration(String),
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// A unique key was taken by a concurrent writer; the use-case decides.
    #[error("unique key already taken")]
    Duplicate,
    /// One failure shared by every request of a batch written together.
    #[error("{0}")]
    Shared(std::sync::Arc<StoreError>),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A page of one user's conversations, newest activity first.
#[derive(Clone, Copy, Debug)]
pub struct ConversationRange {
    /// Only `sort_key < before`.
    pub before: Option<u64>,
    /// Only `sort_key > after`.
    pub after: Option<u64>,
    pub limit: usize,
}

/// Everything a batch of new messages writes besides the log, applied in
/// one go under the chat's lock.
#[derive(Clone, Debug, Default)]
pub struct PostWrites {
    pub chat: ChatId,
    /// With ids and ordinals above every earlier message of the chat.
    pub messages: Vec<MessageRow>,
    /// The chat's `msg_seq` and `last_message` after the batch.
    pub msg_seq: u64,
    pub last_message: Option<MessageId>,
    /// Memberships that start with the batch (a direct chat's peer).
    pub new_members: Vec<MemberRow>,
    /// Authors: their read pointer moves to their newest message of the
    /// batch, their draft clears, and their mention count is set.
    pub readers: Vec<ReadMove>,
    /// Other members mentioned: (user, mentions to add).
    pub mentioned: Vec<(UserId, u32)>,
}

/// What a send checks before it is queued, read together.
#[derive(Clone, Debug, Default)]
pub struct SendContext {
    /// The chat, if it exists (a group only when it is one).
    pub chat: Option<ChatRow>,
    /// Whether the author is a member of it.
    pub member: bool,
    pub author: Option<types::User>,
    /// The message the author already sent with this client id.
    pub sent: Option<MessageId>,
}

/// What MarkChatRead checks, read together.
#[derive(Clone, Debug, Default)]
pub struct ReadContext {
    pub chat: Option<ChatRow>,
    /// The reader's membership, when the chat exists.
    pub member: Option<MemberRow>,
    /// The ordinal of the message to mark read, when it is in the chat.
    pub ordinal: Option<u64>,
}

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
    /// A worker number for snowflake ids that no other live replica holds.
    async fn lease_worker_id(&self) -> StoreResult<u64>;
    /// Deletes log entries older than `retention`, at most `batch` per
    /// statement; only one replica at a time does this work. Returns how
    /// many entries went.
    async fn prune_updates(&self, retention: std::time::Duration, batch: usize)
        -> StoreResult<u64>;
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
    pub waiting: usize,
}

/// The operations a use-case composes. Reads marked `lock` take the row lock
/// until commit, so that check-then-write sequences are safe under
/// concurrency. Dropping a `Tx` without [`Tx::commit`] rolls it back.
/// Resolves once a commit is durable.
pub type Flush = std::pin::Pin<Box<dyn std::future::Future<Output = StoreResult<()>> + Send>>;

#[async_trait]
pub trait Tx: Send {
    async fn commit(self: Box<Self>) -> StoreResult<()>;

    // users
    async fn users(&mut self, ids: &[UserId]) -> StoreResult<Vec<types::User>>;
    async fn user_ids_by_username(&mut self, names: &[String]) -> StoreResult<Vec<UserId>>;
    async fn upsert_users(&mut self, users: &[types::User]) -> StoreResult<()>;
    /// Registers a user with only a name, leaving a known user untouched.
    async fn insert_user_if_absent(&mut self, id: UserId, name: &str) -> StoreResult<()>;

    // chats
    async fn chat(&mut self, id: ChatId, lock: bool) -> StoreResult<Option<ChatRow>>;
    async fn chats(&mut self, ids: &[ChatId]) -> StoreResult<Vec<ChatRow>>;
    /// The chat locked against other writers of its messages and members,
    /// with its members oldest first; `None` when it does not exist.
    async fn lock_chat(&mut self, id: ChatId) -> StoreResult<Option<(ChatRow, Vec<MemberRow>)>>;
    async fn direct_chat(
        &mut self,
        low: UserId,
        high: UserId,
        lock: bool,
    ) -> StoreResult<Option<ChatRow>>;
    /// Fails with [`StoreError::Duplicate`] when a direct chat of the same
    /// pair was created concurrently.
    async fn insert_chat(&mut self, chat: &ChatRow) -> StoreResult<()>;
    async fn set_last_message(&mut self, chat: ChatId, last: Option<MessageId>) -> StoreResult<()>;
    /// Writes a group's name, owner, photo and highlighted message.
    async fn update_chat(&mut self, chat: &ChatRow) -> StoreResult<()>;
    /// Deletes a chat with its members, messages and invites.
    async fn delete_chat(&mut self, chat: ChatId) -> StoreResult<()>;

    // members
    async fn member(
        &mut self,
        chat: ChatId,
        user: UserId,
        lock: bool,
    ) -> StoreResult<Option<MemberRow>>;
    async fn members(&mut self, chat: ChatId) -> StoreResult<Vec<MemberRow>>;
    /// (chat, user) of every member of the given chats, oldest members first.
    async fn members_of(&mut self, chats: &[ChatId]) -> StoreResult<Vec<(ChatId, UserId)>>;
    /// Leaves an existing membership as it is (two first uses of a direct
    /// chat may race).
    async fn insert_member(&mut self, member: &MemberRow) -> StoreResult<()>;
    async fn remove_member(&mut self, chat: ChatId, user: UserId) -> StoreResult<()>;
    /// Writes the member's draft and notification preference, and nothing
    /// else of the row (read state moves only through [`Tx::mark_read`] and
    /// [`Tx::write_posts`]).
    async fn update_member(&mut self, member: &MemberRow) -> StoreResult<()>;
    async fn conversations(
        &mut self,
        user: UserId,
        range: ConversationRange,
    ) -> StoreResult<Vec<MemberRow>>;
    /// Writes a batch of new messages and appends their changes to the log.
    /// Fails with [`StoreError::Duplicate`] when an (author, client_id) is taken.
    async fn write_posts(
        &mut self,
        writes: &PostWrites,
        changes: Vec<NewChange>,
    ) -> StoreResult<Vec<LoggedUpdate>>;
    /// [`Tx::write_posts`] and the commit together: engines send the
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
    /// Moves `user`'s read pointer forward to `message` (a no-op returning
    /// `None` when it is there or past it already), locking only the
    /// member's row. Costs the same however many messages it marks read.
    async fn mark_read(
        &mut self,
        user: UserId,
        chat: ChatId,
        message: MessageId,
        ordinal: u64,
    ) -> StoreResult<Option<ReadState>>;
    /// A reader's chat, membership and target message, in one round trip.
    async fn read_context(
        &mut self,
        chat: ChatKey,
        user: UserId,
        message: MessageId,
    ) -> StoreResult<ReadContext>;
    /// Takes deleted messages back out of the counts of members who had not
    /// read them yet.
    async fn forget_messages(&mut self, chat: ChatId, deleted: &[MessageRow]) -> StoreResult<()>;
    /// Moves mention counters of members who have not read `message` yet
    /// after an edit changed whom it mentions.
    async fn remention(
        &mut self,
        message: &MessageRow,
        removed: &[UserId],
        added: &[UserId],
    ) -> StoreResult<()>;

    // messages
    /// Fails with [`StoreError::Duplicate`] when (author, client_id) is taken.
    async fn insert_message(&mut self, message: &MessageRow) -> StoreResult<()>;
    async fn message(
        &mut self,
        chat: ChatId,
        id: MessageId,
        lock: bool,
    ) -> StoreResult<Option<MessageRow>>;
    async fn messages_by_id(&mut self, ids: &[MessageId]) -> StoreResult<Vec<MessageRow>>;
    /// A send's chat, the author's membership and user, and an earlier
    /// message with the same client id, in one round trip.
    async fn send_context(
        &mut self,
        chat: ChatKey,
        author: UserId,
        client_id: Option<u64>,
    ) -> StoreResult<SendContext>;
    async fn message_by_client_id(
        &mut self,
        author: UserId,
        client_id: u64,
    ) -> StoreResult<Option<MessageRow>>;
    async fn update_message(&mut self, message: &MessageRow) -> StoreResult<()>;
    async fn delete_messages(&mut self, chat: ChatId, ids: &[MessageId]) -> StoreResult<()>;
    /// Newest first, ids below `before` (all when `None`).
    async fn messages_before(
        &mut self,
        chat: ChatId,
        before: Option<MessageId>,
        limit: usize,
    ) -> StoreResult<Vec<MessageRow>>;
    /// Oldest first, ids above `after`.
    async fn messages_after(
        &mut self,
        chat: ChatId,
        after: MessageId,
        limit: usize,
    ) -> StoreResult<Vec<MessageRow>>;

    // invites
    async fn insert_invite(&mut self, invite: &InviteRow) -> StoreResult<()>;
    async fn invite(&mut self, code: &str, lock: bool) -> StoreResult<Option<InviteRow>>;
    /// A group's invites, only `creator`'s when given, oldest first.
    async fn invites(
        &mut self,
        chat: ChatId,
        creator: Option<UserId>,
    ) -> StoreResult<Vec<InviteRow>>;
    async fn delete_invite(&mut self, code: &str) -> StoreResult<()>;
    /// Counts one use of an invite.
    async fn count_invite_use(&mut self, code: &str) -> StoreResult<()>;

    // update log
    /// Appends each change to its recipients' logs (the payload once);
    /// returns every recipient's entry with its seq.
    async fn append_changes(&mut self, changes: Vec<NewChange>) -> StoreResult<Vec<LoggedUpdate>>;
    /// [`Tx::append_changes`], then commit: engines send both together.
    async fn commit_changes(
        mut self: Box<Self>,
        changes: Vec<NewChange>,
    ) -> StoreResult<Vec<LoggedUpdate>> {
        let logged = self.append_changes(changes).await?;
        self.commit().await?;
        Ok(logged)
    }
    /// The newest seq of the user's log (0 when empty).
    async fn update_head(&mut self, user: UserId) -> StoreResult<u64>;
    /// The oldest seq still kept, if any entry is.
    async fn oldest_update(&mut self, user: UserId) -> StoreResult<Option<u64>>;
    /// Entries with seq > `after`, in order: up to `limit` of them, fewer when
    /// their payloads pass `max_bytes` (but always at least one).
    async fn updates_after(
        &mut self,
        user: UserId,
        after: u64,
        limit: usize,
        max_bytes: usize,
    ) -> StoreResult<Vec<LoggedUpdate>>;
}
