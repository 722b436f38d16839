//! Writing new messages. Users' sends are checked without any lock, then
//! written in batches per chat (group commit): one transaction takes the
//! chat's lock, re-checks only what must be exact (membership), gives each
//! message an id above every earlier one and the next ordinal, and writes
//! the batch and its log entries in one round trip. System messages (JOIN,
//! LEAVE) are composed the same way inside the membership change that
//! makes them.

use std::collections::HashMap;
use std::sync::Arc;

use super::batch::Written;
use super::render;
use super::Core;
use crate::error::{Error, Result};
use crate::model::{
    Change, ChatId, ChatRow, MemberRow, MessageId, MessageRow, NewChange, Personal, ReadMove,
    ReadPoint, UserId,
};
use crate::proto::{types, updates};
use crate::store::{PostWrites, StoreError, Tx};

use updates::update::Update as U;

/// A message checked and ready to write; its id and ordinal come with the batch.
#[derive(Clone, Debug)]
pub struct Post {
    pub author: types::User,
    pub author_id: UserId,
    /// The message without its id.
    pub body: types::Message,
    pub client_id: Option<u64>,
    /// Members other than the author that the text mentions.
    pub mentions: Vec<UserId>,
    /// A JOIN or LEAVE: written whether or not its author is still a member.
    pub system: bool,
}

/// How long a batch waits for its WAL flush to be confirmed before its
/// senders are told to retry (with their client ids).
const FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// One send's answer.
type Answer = Result<MessageId>;

/// What a batch of posts writes, and each post's answer.
pub(super) struct Composed {
    pub writes: PostWrites,
    pub changes: Vec<NewChange>,
    pub answers: Vec<Result<MessageId>>,
}

impl Core {
    /// Writes `post` with the next batch of its chat.
    pub(super) async fn submit_post(&self, chat: ChatId, post: Post) -> Result<MessageId> {
        let Some(core) = self.me.upgrade() else {
            return Err(Error::Unavailable("the service is stopping".into()));
        };
        let write = move |chat, posts, busy| {
            let core = core.clone();
            async move { core.write_batch(chat, posts, busy).await }
        };
        self.posts
            .submit(chat, post, write)
            .await
            .unwrap_or_else(|| {
                Err(Error::Unavailable(
                    "the message could not be written; retry with the same client_id".into(),
                ))
            })
    }

    async fn write_batch(
        self: Arc<Self>,
        chat: ChatId,
        posts: Vec<Post>,
        busy: bool,
    ) -> Written<Answer> {
        let count = posts.len();
        match self.clone().try_batch(chat, &posts, busy).await {
            Ok(written) => written,
            // A client id taken meanwhile (a retry on another replica): one
            // at a time, so that only that send sees it.
            Err(Error::Store(StoreError::Duplicate)) if count > 1 => {
                let mut answers = Vec::with_capacity(count);
                for post in posts {
                    answers.push(match self.clone().try_batch(chat, &[post], false).await {
                        Ok(one) => one
                            .complete()
                            .await
                            .pop()
                            .unwrap_or_else(|| Err(Error::chat_not_found())),
                        Err(error) => Err(error),
                    });
                }
                Written::ready(answers)
            }
            Err(Error::Store(StoreError::Duplicate)) => {
                Written::ready(vec![Err(Error::Store(StoreError::Duplicate))])
            }
            Err(Error::Store(error)) => {
                let shared = Arc::new(error);
                Written::ready(
                    (0..count)
                        .map(|_| Err(Error::Store(StoreError::Shared(shared.clone()))))
                        .collect(),
                )
            }
            Err(error) => {
                let reason = error.to_string();
                Written::ready(
                    (0..count)
                        .map(|_| Err(Error::Unavailable(reason.clone())))
                        .collect(),
                )
            }
        }
    }

    /// Writes a batch up to its commit. Its finish waits until it is
    /// durable, then publishes it and answers.
    async fn try_batch(
        self: Arc<Self>,
        chat: ChatId,
        posts: &[Post],
        busy: bool,
    ) -> Result<Written<Answer>> {
        let mut tx = self.begin().await?;
        let Some((chat, members)) = tx.lock_chat(chat).await? else {
            return Ok(Written::ready(
                posts.iter().map(|_| Err(Error::chat_not_found())).collect(),
            ));
        };
        let composed = self.compose(tx.as_mut(), &chat, members, posts).await?;
        if composed.writes.messages.is_empty() {
            tx.commit().await?;
            return Ok(Written::ready(composed.answers));
        }
        // A busy chat releases its lock at commit, before the WAL flush, so
        // that the next batch (this replica's or another's) need not wait
        // that out; nobody hears of the batch before it is durable. A quiet
        // chat commits plainly, a transaction cheaper.
        let (logged, flush) = tx
            .commit_posts(&composed.writes, composed.changes, busy)
            .await?;
        let answers = composed.answers;
        Ok(Written {
            durable: Box::pin(async move {
                // Bounded: the batches after this one wait for its finish.
                match tokio::time::timeout(FLUSH_TIMEOUT, flush).await {
                    Ok(Ok(())) => true,
                    Ok(Err(error)) => {
                        tracing::warn!(%error, "a batch of messages could not be confirmed durable");
                        false
                    }
                    Err(_) => {
                        tracing::warn!("a batch of messages was not confirmed durable in time");
                        false
                    }
                }
            }),
            finish: Box::new(move |durable| {
                Box::pin(async move {
                    if !durable {
                        // Committed, perhaps not durable: the senders retry
                        // with their client ids and get the stored messages.
                        return answers
                            .into_iter()
                            .map(|a| {
                                a.and_then(|_| {
                                    Err(Error::Unavailable(
                                        "the message may not have been stored; retry with the same client_id".into(),
                                    ))
                                })
                            })
                            .collect();
                    }
                    self.counters.count_logged(&logged);
                    self.publish(logged).await;
                    answers
                })
            }),
        })
    }

    /// Lays out a batch of posts into a chat whose lock `tx` holds:
    /// `members` as they are under the lock.
    pub(super) async fn compose(
        &self,
        tx: &mut dyn Tx,
        chat: &ChatRow,
        mut members: Vec<MemberRow>,
        posts: &[Post],
    ) -> Result<Composed> {
        let mut writes = PostWrites {
            chat: chat.id,
            msg_seq: chat.msg_seq,
            last_message: chat.last_message,
            ..PostWrites::default()
        };
        let mut answers = Vec::with_capacity(posts.len());
        let mut accepted: Vec<(&Post, MessageRow)> = Vec::new();
        let mut by_client: HashMap<(UserId, u64), MessageId> = HashMap::new();
        let mut floor = chat.last_message.map_or(0, MessageId::get);
        for post in posts {
            let author = post.author_id;
            let is_member = |members: &[MemberRow], user| members.iter().any(|m| m.user_id == user);
            if !post.system && !is_member(&members, author) {
                // Left, or was removed, since the send was checked.
                answers.push(Err(Error::chat_not_found()));
                continue;
            }
            if let Some(sent) = post.client_id.and_then(|c| by_client.get(&(author, c))) {
                answers.push(Ok(*sent));
                continue;
            }
            if let Some(peer) = render::peer(chat, author) {
                if !is_member(&members, peer) {
                    // The peer's conversation appears with the first message.
                    let so_far = ChatRow {
                        msg_seq: writes.msg_seq,
                        last_message: writes.last_message,
                        ..chat.clone()
                    };
                    let row = self.new_member(&so_far, peer);
                    members.push(row.clone());
                    writes.new_members.push(row);
                }
            }
            let id = MessageId(self.ids.next_after(floor));
            floor = id.get();
            writes.msg_seq += 1;
            writes.last_message = Some(id);
            let mut body = post.body.clone();
            body.message_id = id.get();
            let row = MessageRow {
                chat_id: chat.id,
                id,
                author,
                ordinal: writes.msg_seq,
                client_id: post.client_id,
                mentions: post
                    .mentions
                    .iter()
                    .copied()
                    .filter(|u| *u != author && is_member(&members, *u))
                    .collect(),
                body,
            };
            if let Some(client_id) = post.client_id {
                by_client.insert((author, client_id), id);
            }
            answers.push(Ok(id));
            accepted.push((post, row));
        }

        let after = ChatRow {
            msg_seq: writes.msg_seq,
            last_message: writes.last_message,
            ..chat.clone()
        };
        // Each member's read point as the batch goes, for the unread count
        // each message's update carries.
        let mut reads: HashMap<UserId, ReadPoint> = members
            .iter()
            .map(|m| (m.user_id, m.read_point()))
            .collect();
        let mut readers: Vec<ReadMove> = Vec::new();
        let mut mentioned: Vec<(UserId, u32)> = Vec::new();
        let mut changes = Vec::with_capacity(accepted.len() + 1);
        for (post, row) in &accepted {
            if let Some(read) = reads.get_mut(&row.author) {
                // Sending marks the chat read for its author.
                *read = ReadPoint {
                    read_seq: row.ordinal,
                    skipped: 0,
                };
                mentioned.retain(|(u, _)| *u != row.author);
                let moved = ReadMove {
                    user: row.author,
                    last_read: row.id,
                    read_seq: row.ordinal,
                    mentions: 0,
                };
                match readers.iter_mut().find(|r| r.user == row.author) {
                    Some(reader) => *reader = moved,
                    None => readers.push(moved),
                }
            }
            for user in &row.mentions {
                if let Some(reader) = readers.iter_mut().find(|r| r.user == *user) {
                    reader.mentions += 1;
                } else if let Some((_, n)) = mentioned.iter_mut().find(|(u, _)| u == user) {
                    *n += 1;
                } else {
                    mentioned.push((*user, 1));
                }
            }
            let recipients = members
                .iter()
                .map(|m| {
                    let unread = if m.user_id == row.author {
                        0
                    } else {
                        // `reads` holds every member; its own read point
                        // would be the answer if it did not.
                        reads
                            .get(&m.user_id)
                            .copied()
                            .unwrap_or_else(|| m.read_point())
                            .unread_at(row.ordinal)
                    };
                    (
                        m.user_id,
                        Personal {
                            unread: Some(unread),
                        },
                    )
                })
                .collect();
            let change = Change::new(
                self.ids.next_id(),
                render::update(U::MessageCreated(updates::UpdateMessageCreated {
                    message: Some(row.body.clone()),
                    channel_unread_count: 0,
                    author: Some(post.author.clone()),
                    client_id: None,
                })),
                Some(after.scope()),
                row.client_id.map(|c| (row.author, c)),
            );
            changes.push(NewChange {
                change: Arc::new(change),
                recipients,
            });
        }

        // Authors whose draft the send cleared: their other sessions must drop it too.
        if let Some((_, newest)) = accepted.last() {
            for reader in &readers {
                let Some(member) = members
                    .iter()
                    .find(|m| m.user_id == reader.user && m.draft.is_some())
                else {
                    continue;
                };
                let mut now = MemberRow {
                    sort_key: member.sort_key.max(newest.id.get()),
                    last_read: reader.last_read.get(),
                    read_seq: reader.read_seq,
                    skipped: 0,
                    mentions: reader.mentions,
                    draft: None,
                    ..member.clone()
                };
                now.unread = now.unread_at(after.msg_seq);
                let participants: Vec<UserId> = members.iter().map(|m| m.user_id).collect();
                let view = self
                    .update_view(tx, &after, &now, Some(newest), &participants)
                    .await?;
                changes.push(NewChange::to_all(
                    self.change(U::Chat(updates::UpdateChat { chat: Some(view) }), None),
                    [reader.user],
                ));
            }
        }
        writes.messages = accepted.into_iter().map(|(_, row)| row).collect();
        writes.readers = readers;
        writes.mentioned = mentioned;
        Ok(Composed {
            writes,
            changes,
            answers,
        })
    }
}
