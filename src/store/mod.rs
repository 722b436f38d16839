//! Durable state behind one interface with two engines: [`postgres`] for
//! production and [`memory`] for the embedded mode. The domain runs every
//! use-case inside one [`Tx`], so both engines share all the rules and only
//! differ in how rows are kept; the integration suite runs against both.

pub mod memory;
pub mod postgres;

use async_trait::async_trait;

use crate::domain::ids::{ChatId, MessageId, UserId};
use crate::proto::{types, updates};

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
}

pub type StoreResult<T> = Result<T, StoreError>;

/// How a chat's members find each other: a direct chat is keyed by its two
/// users (equal for saved messages), a group by its id alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChatKind {
    /// `low <= high`; `low == high` is the user's saved messages.
    Direct {
        low: UserId,
        high: UserId,
    },
    Group,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ChatRow {
    pub id: ChatId,
    pub kind: ChatKind,
    /// Groups only; empty for direct chats.
    pub name: String,
    pub owner: Option<UserId>,
    pub photo: Option<types::ChatPhoto>,
    pub highlighted: Option<MessageId>,
    /// The newest message still present, if any.
    pub last_message: Option<MessageId>,
}

/// One user's place in one chat: their conversation.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberRow {
    pub chat_id: ChatId,
    pub user_id: UserId,
    /// When the user joined (a snowflake), for "longest-standing member".
    pub joined: u64,
    /// The newest message id seen in the chat, or the chat id before any:
    /// the conversation's place in GetChats; never moves back.
    pub sort_key: u64,
    /// The read pointer; 0 before anything was read.
    pub last_read: u64,
    /// Messages after `last_read` not written by this user.
    pub unread: u32,
    /// Of those, the ones that mention this user.
    pub mentions: u32,
    pub draft: Option<String>,
    pub notif: i32,
}

/// A message as kept: the protocol message without its (per-reader) chat_ref.
#[derive(Clone, Debug, PartialEq)]
pub struct MessageRow {
    pub chat_id: ChatId,
    pub id: MessageId,
    pub author: UserId,
    pub client_id: Option<u64>,
    /// Users the text mentions, for unread-mention counters.
    pub mentions: Vec<UserId>,
    pub body: types::Message,
}

/// A group invite.
#[derive(Clone, Debug, PartialEq)]
pub struct InviteRow {
    pub code: String,
    pub chat_id: ChatId,
    pub creator: UserId,
    /// Unix milliseconds.
    pub created_at: u64,
    /// Unix milliseconds; `None` never expires.
    pub expires_at: Option<u64>,
    /// `None`: unlimited.
    pub max_uses: Option<u32>,
    pub uses: u32,
}

/// A page of one user's conversations, newest activity first.
#[derive(Clone, Copy, Debug)]
pub struct ConversationRange {
    /// Only `sort_key < before`.
    pub before: Option<u64>,
    /// Only `sort_key > after`.
    pub after: Option<u64>,
    pub limit: usize,
}

/// An entry of a user's update log.
#[derive(Clone, Debug, PartialEq)]
pub struct LoggedUpdate {
    pub user: UserId,
    /// Gap-free per user, from 1.
    pub seq: u64,
    pub update: updates::Update,
}

/// Starts transactions. Cheap to clone behind an `Arc`.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// A transaction for a use-case that writes: all or nothing.
    async fn begin(&self) -> StoreResult<Box<dyn Tx>>;
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
    async fn insert_member(&mut self, member: &MemberRow) -> StoreResult<()>;
    async fn remove_member(&mut self, chat: ChatId, user: UserId) -> StoreResult<()>;
    /// Writes the member's read state, draft and notification preference.
    async fn update_member(&mut self, member: &MemberRow) -> StoreResult<()>;
    async fn conversations(
        &mut self,
        user: UserId,
        range: ConversationRange,
    ) -> StoreResult<Vec<MemberRow>>;
    /// Records a new message for every member: the sort key moves up to it;
    /// the author's read pointer moves to it, their counters reset and their
    /// draft clears; every other member's unread count grows by one, and
    /// their mention count too when listed in `mentioned`. Returns the
    /// members as they were before, so the caller can see what changed.
    async fn record_message(
        &mut self,
        chat: ChatId,
        message: MessageId,
        author: UserId,
        mentioned: &[UserId],
    ) -> StoreResult<Vec<MemberRow>>;
    /// Takes deleted messages back out of the counters of members who had
    /// not read them yet.
    async fn forget_messages(&mut self, chat: ChatId, deleted: &[MessageRow]) -> StoreResult<()>;
    /// Moves mention counters of members who have not read `message` yet
    /// after an edit changed whom it mentions.
    async fn remention(
        &mut self,
        chat: ChatId,
        message: MessageId,
        removed: &[UserId],
        added: &[UserId],
    ) -> StoreResult<()>;
    /// (unread, unread mentions) for `user` if its pointer were at `after`:
    /// counts only the messages after it, so it costs the unread window.
    async fn count_after(
        &mut self,
        chat: ChatId,
        after: MessageId,
        user: UserId,
    ) -> StoreResult<(u32, u32)>;

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
    /// Appends each update to its user's log; returns them with their seqs.
    async fn append_updates(
        &mut self,
        entries: Vec<(UserId, updates::Update)>,
    ) -> StoreResult<Vec<LoggedUpdate>>;
    /// The newest seq of the user's log (0 when empty).
    async fn update_head(&mut self, user: UserId) -> StoreResult<u64>;
    /// The oldest seq still kept, if any entry is.
    async fn oldest_update(&mut self, user: UserId) -> StoreResult<Option<u64>>;
    /// Up to `limit` entries with seq > `after`, in order.
    async fn updates_after(
        &mut self,
        user: UserId,
        after: u64,
        limit: usize,
    ) -> StoreResult<Vec<LoggedUpdate>>;
}
