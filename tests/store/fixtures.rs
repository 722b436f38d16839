//! What the checks build their rows from: fresh ids, users, groups, batches
//! of posts laid out as the domain's `compose` lays them out, a gate for
//! racing transactions, and a snapshot of everything a chat's users see.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use osmium_chat::model::{
    Change, ChatId, ChatKind, ChatRow, InviteRow, LoggedUpdate, MemberRow, MessageId, MessageRow,
    NewChange, Personal, ReadMove, ReadPoint, UserId,
};
use osmium_chat::proto::{types, updates};
use osmium_chat::store::{ConversationRange, PostWrites, Store, StoreError, StoreResult, Tx};
use tokio::sync::Barrier;
use updates::update::Update as U;

/// An id no other row of this process has, above every id handed out
/// before it: messages made later sort later, as snowflakes do.
pub fn fresh() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1 << 40);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

pub async fn begin(store: &dyn Store) -> Box<dyn Tx> {
    store.begin().await.expect("a transaction begins")
}

/// What a write came to: the checks expect one of these two.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Done,
    Duplicate,
}

pub fn outcome<T>(result: StoreResult<T>) -> Outcome {
    match result {
        Ok(_) => Outcome::Done,
        Err(StoreError::Duplicate) => Outcome::Duplicate,
        Err(other) => panic!("expected success or Duplicate, got: {other}"),
    }
}

pub fn user_row(id: UserId) -> types::User {
    types::User {
        id: id.get(),
        name: format!("user {id}"),
        username: Some(format!("user{id}")),
        ..Default::default()
    }
}

/// `n` new users, committed.
pub async fn users(store: &dyn Store, n: usize) -> Vec<UserId> {
    let ids: Vec<UserId> = (0..n).map(|_| UserId(fresh())).collect();
    let rows: Vec<types::User> = ids.iter().map(|u| user_row(*u)).collect();
    let mut tx = begin(store).await;
    tx.upsert_users(&rows).await.expect("users are written");
    tx.commit().await.expect("commit");
    ids
}

pub fn group_row(owner: UserId) -> ChatRow {
    ChatRow {
        id: ChatId(fresh()),
        kind: ChatKind::Group,
        name: "a group".into(),
        owner: Some(owner),
        photo: None,
        highlighted: None,
        last_message: None,
        msg_seq: 0,
    }
}

/// The direct chat of `a` and `b` (saved messages when they are one user).
pub fn direct_row(a: UserId, b: UserId) -> ChatRow {
    ChatRow {
        id: ChatId(fresh()),
        kind: ChatKind::Direct {
            low: a.min(b),
            high: a.max(b),
        },
        name: String::new(),
        owner: None,
        photo: None,
        highlighted: None,
        last_message: None,
        msg_seq: 0,
    }
}

/// The direct chat of `a` and `b` with `members` (those of the pair that
/// have opened it) as members, committed.
pub async fn direct(store: &dyn Store, a: UserId, b: UserId, members: &[UserId]) -> ChatRow {
    committed(store, direct_row(a, b), members).await
}

/// A membership that starts now, as the domain makes one: everything
/// before it counts as read.
pub fn new_member(chat: &ChatRow, user: UserId) -> MemberRow {
    MemberRow {
        chat_id: chat.id,
        user_id: user,
        joined: fresh(),
        sort_key: chat.last_message.map_or(chat.id.get(), MessageId::get),
        last_read: chat.last_message.map_or(0, MessageId::get),
        read_seq: chat.msg_seq,
        skipped: 0,
        unread: 0,
        mentions: 0,
        draft: None,
        notif: 0,
    }
}

/// A group whose members joined in the order given (the first owns it), committed.
pub async fn group(store: &dyn Store, members: &[UserId]) -> ChatRow {
    committed(store, group_row(members[0]), members).await
}

/// `chat` with `members` joined in the order given, committed.
async fn committed(store: &dyn Store, chat: ChatRow, members: &[UserId]) -> ChatRow {
    let mut tx = begin(store).await;
    tx.insert_chat(&chat).await.expect("the chat is written");
    for user in members {
        tx.insert_member(&new_member(&chat, *user))
            .await
            .expect("the member is written");
    }
    tx.commit().await.expect("commit");
    chat
}

/// One message to send.
#[derive(Clone, Debug)]
pub struct Post {
    pub author: UserId,
    pub client_id: Option<u64>,
    pub mentions: Vec<UserId>,
    /// The message's id; a fresh one unless given (an id minted twice).
    pub id: Option<MessageId>,
}

impl Post {
    pub fn by(author: UserId) -> Self {
        Self {
            author,
            client_id: Some(fresh()),
            mentions: Vec::new(),
            id: None,
        }
    }

    pub fn mentioning(mut self, users: &[UserId]) -> Self {
        self.mentions = users.to_vec();
        self
    }

    pub fn with_client_id(mut self, client_id: u64) -> Self {
        self.client_id = Some(client_id);
        self
    }

    pub fn with_id(mut self, id: MessageId) -> Self {
        self.id = Some(id);
        self
    }
}

/// A batch laid out: the writes and the log's changes, one per message.
#[derive(Clone, Debug)]
pub struct Batch {
    pub writes: PostWrites,
    pub changes: Vec<NewChange>,
}

impl Batch {
    pub fn ids(&self) -> Vec<MessageId> {
        self.writes.messages.iter().map(|m| m.id).collect()
    }
}

pub fn message_change(chat: &ChatRow, row: &MessageRow) -> Arc<Change> {
    Arc::new(Change::new(
        fresh(),
        updates::Update {
            update: Some(U::MessageCreated(updates::UpdateMessageCreated {
                message: Some(row.body.clone()),
                ..Default::default()
            })),
        },
        Some(chat.scope()),
        row.client_id.map(|c| (row.author, c)),
    ))
}

/// A transaction that holds `chat`'s lock, with the chat and its members
/// as they are under it.
async fn locked(store: &dyn Store, chat: ChatId) -> (Box<dyn Tx>, ChatRow, Vec<MemberRow>) {
    let mut tx = begin(store).await;
    let (chat, members) = tx
        .lock_chat(chat)
        .await
        .expect("lock_chat")
        .expect("the chat exists");
    (tx, chat, members)
}

/// A transaction that holds `chat`'s lock, and `posts` laid out in it by
/// [`compose`], not yet written.
pub async fn composed(store: &dyn Store, chat: ChatId, posts: &[Post]) -> (Box<dyn Tx>, Batch) {
    let (tx, chat, members) = locked(store, chat).await;
    let batch = compose(&chat, &members, posts);
    (tx, batch)
}

/// Lays out `posts` in `chat` (as locked, with its members as they are
/// under the lock) the way the domain's `compose` does: ids and ordinals
/// after every earlier message, each author's read pointer moved to their
/// newest message with the mentions after it, other members' mentions
/// added, and each recipient's unread count carried in their log entry.
pub fn compose(chat: &ChatRow, members: &[MemberRow], posts: &[Post]) -> Batch {
    let mut writes = PostWrites {
        chat: chat.id,
        msg_seq: chat.msg_seq,
        last_message: chat.last_message,
        ..PostWrites::default()
    };
    let is_member = |user: UserId| members.iter().any(|m| m.user_id == user);
    let mut reads: HashMap<UserId, ReadPoint> = members
        .iter()
        .map(|m| (m.user_id, m.read_point()))
        .collect();
    let mut changes = Vec::new();
    for post in posts {
        let id = post.id.unwrap_or_else(|| MessageId(fresh()));
        writes.msg_seq += 1;
        writes.last_message = Some(id);
        let row = MessageRow {
            chat_id: chat.id,
            id,
            author: post.author,
            ordinal: writes.msg_seq,
            client_id: post.client_id,
            mentions: post
                .mentions
                .iter()
                .copied()
                .filter(|u| *u != post.author && is_member(*u))
                .collect(),
            body: types::Message {
                message_id: id.get(),
                author_id: post.author.get(),
                message: format!("message {} of chat {}", writes.msg_seq, chat.id),
                ..Default::default()
            },
        };
        if let Some(read) = reads.get_mut(&row.author) {
            *read = ReadPoint {
                read_seq: row.ordinal,
                skipped: 0,
            };
            writes.mentioned.retain(|(u, _)| *u != row.author);
            let moved = ReadMove {
                user: row.author,
                last_read: row.id,
                read_seq: row.ordinal,
                mentions: 0,
            };
            match writes.readers.iter_mut().find(|r| r.user == row.author) {
                Some(reader) => *reader = moved,
                None => writes.readers.push(moved),
            }
        }
        for user in &row.mentions {
            if let Some(reader) = writes.readers.iter_mut().find(|r| r.user == *user) {
                reader.mentions += 1;
            } else if let Some((_, n)) = writes.mentioned.iter_mut().find(|(u, _)| u == user) {
                *n += 1;
            } else {
                writes.mentioned.push((*user, 1));
            }
        }
        let recipients = members
            .iter()
            .map(|m| {
                let unread = if m.user_id == row.author {
                    0
                } else {
                    reads[&m.user_id].unread_at(row.ordinal)
                };
                (
                    m.user_id,
                    Personal {
                        unread: Some(unread),
                    },
                )
            })
            .collect();
        changes.push(NewChange {
            change: message_change(chat, &row),
            recipients,
        });
        writes.messages.push(row);
    }
    Batch { writes, changes }
}

/// How a batch is written and committed.
#[derive(Clone, Copy, Debug)]
pub enum Commit {
    /// `write_posts`, then `commit`.
    AfterWrites,
    /// `commit_posts`, releasing the lock before the flush or not.
    WithWrites { unlock_early: bool },
}

/// Sends a batch the way the domain does: lock the chat, lay the posts out
/// against its members, write, commit. Checks on the way that the log
/// entries the batch took continue each member's log without a gap.
pub async fn post(store: &dyn Store, chat: ChatId, posts: &[Post], commit: Commit) -> Batch {
    let (mut tx, chat, members) = locked(store, chat).await;
    let mut heads = HashMap::new();
    for m in &members {
        heads.insert(m.user_id, tx.update_head(m.user_id).await.expect("head"));
    }
    let batch = compose(&chat, &members, posts);
    let logged = match commit {
        Commit::AfterWrites => {
            let logged = tx
                .write_posts(&batch.writes, batch.changes.clone())
                .await
                .expect("the batch is written");
            tx.commit().await.expect("commit");
            logged
        }
        Commit::WithWrites { unlock_early } => {
            let (logged, flush) = tx
                .commit_posts(&batch.writes, batch.changes.clone(), unlock_early)
                .await
                .expect("the batch is written and committed");
            flush.await.expect("the commit is flushed");
            logged
        }
    };
    assert_continues(&heads, &batch.changes, &logged);
    batch
}

/// `logged` holds one entry per recipient of each change, in the order
/// given, with seqs that continue each user's `heads` by one at a time.
pub fn assert_continues(
    heads: &HashMap<UserId, u64>,
    changes: &[NewChange],
    logged: &[LoggedUpdate],
) {
    let mut next: HashMap<UserId, u64> = heads.iter().map(|(u, h)| (*u, h + 1)).collect();
    let expected: Vec<(UserId, u64, u64, Personal)> = changes
        .iter()
        .flat_map(|c| c.recipients.iter().map(move |(u, p)| (c.change.id, *u, *p)))
        .map(|(change, user, personal)| {
            let seq = next.entry(user).or_insert(1);
            *seq += 1;
            (user, *seq - 1, change, personal)
        })
        .collect();
    let got: Vec<(UserId, u64, u64, Personal)> = logged
        .iter()
        .map(|e| (e.user, e.seq, e.change.id, e.personal))
        .collect();
    assert_eq!(
        got, expected,
        "log entries of a write (user, seq, change, personal)"
    );
}

/// Where racing transactions wait until each has begun and read, so that
/// all their writes overlap. The memory engine runs transactions one at a
/// time (the second `begin` waits for the first to end), so there the gate
/// is open: waiting would deadlock, and the race is run in sequence.
pub struct Gate(Option<Barrier>);

impl Gate {
    pub fn new(store: &dyn Store, racers: usize) -> Self {
        let serial = store.engine() == "memory";
        Self((!serial).then(|| Barrier::new(racers)))
    }

    pub async fn pass(&self) {
        if let Some(barrier) = &self.0 {
            barrier.wait().await;
        }
    }
}

/// Everything a chat's users can read, to compare before and after.
#[derive(Debug, PartialEq)]
pub struct Snapshot {
    pub chat: Option<ChatRow>,
    pub members: Vec<MemberRow>,
    pub messages: Vec<MessageRow>,
    pub invites: Vec<InviteRow>,
    pub users: Vec<types::User>,
    pub per_user: Vec<UserView>,
}

/// What one user reads: every conversation, and their whole log.
#[derive(Debug, PartialEq)]
pub struct UserView {
    pub conversations: Vec<MemberRow>,
    pub head: u64,
    pub oldest: Option<u64>,
    pub log: Vec<LoggedUpdate>,
}

/// A byte budget no page here reaches (what the domain passes is far
/// smaller; a `usize` past `i64::MAX` is not a budget anyone passes).
pub const NO_BUDGET: usize = 1 << 30;

pub const ALL: ConversationRange = ConversationRange {
    before: None,
    after: None,
    limit: 1000,
};

pub async fn snapshot(store: &dyn Store, chat: ChatId, users: &[UserId]) -> Snapshot {
    let mut tx = begin(store).await;
    let mut per_user = Vec::new();
    for user in users {
        per_user.push(UserView {
            conversations: tx.conversations(*user, ALL).await.expect("conversations"),
            head: tx.update_head(*user).await.expect("head"),
            oldest: tx.oldest_update(*user).await.expect("oldest"),
            log: tx
                .updates_after(*user, 0, 1000, NO_BUDGET)
                .await
                .expect("log"),
        });
    }
    let mut found = tx.users(users).await.expect("users");
    found.sort_by_key(|u| u.id);
    let snapshot = Snapshot {
        chat: tx.chat(chat, false).await.expect("chat"),
        members: tx.members(chat).await.expect("members"),
        messages: tx
            .messages_before(chat, None, 1000)
            .await
            .expect("messages"),
        invites: tx
            .invites(chat, None, 0, usize::MAX)
            .await
            .expect("invites"),
        users: found,
        per_user,
    };
    tx.commit().await.expect("commit");
    snapshot
}
