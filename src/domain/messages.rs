//! Messages: sending (idempotent per client id, ending the author's typing
//! after), history pages and edits, each with its updates to every
//! participant. Deletions are in [`super::deletions`].

use super::access::{known_user, Mode};
use super::limits::RateLimit;
use super::posting::Post;
use super::render;
use super::target::ChatTarget;
use super::text;
use super::values::{MessageEdit, NewMessage, Page, TextEdit};
use super::views::participants;
use super::{Core, Messages};
use crate::error::{Error, Result};
use crate::model::{ChatKind, ChatRow, MessageId, NewChange, UserId};
use crate::proto::{messages, types, updates};
use crate::store::{HistoryRange, StoreError, Tx};

use updates::update::Update as U;

fn history(below: Option<MessageId>, older: usize, above: MessageId, newer: usize) -> HistoryRange {
    HistoryRange {
        below,
        older,
        above,
        newer,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Anchor {
    Latest,
    Before(MessageId),
    Since(MessageId),
    Around(MessageId),
}

impl Messages<'_> {
    /// Sends, then ends the author's typing there: off the request's path,
    /// since the send is done and Redis may be slow.
    pub async fn send(&self, caller: UserId, new: NewMessage) -> Result<MessageId> {
        self.admit(RateLimit::Send, caller).await?;
        let target = new.target();
        let sent = self.send_once(caller, new).await?;
        if let Some(core) = self.me.upgrade() {
            tokio::spawn(async move { core.typing_ended_by_send(caller, target).await });
        }
        Ok(sent)
    }

    /// A page of history in one statement (the chat, the caller's right to
    /// read it and the messages together); authors come from the cache.
    pub async fn history(
        &self,
        caller: UserId,
        target: ChatTarget,
        anchor: Anchor,
        page: Page,
    ) -> Result<messages::Messages> {
        let limit = page.get();
        let range = match anchor {
            Anchor::Latest => history(None, limit, MessageId(0), 0),
            Anchor::Before(id) => history(Some(id), limit, MessageId(0), 0),
            Anchor::Since(id) => history(None, 0, id, limit),
            // The anchor and older take the larger half; newer the rest.
            Anchor::Around(id) => history(
                Some(MessageId(id.get().saturating_add(1))),
                limit.div_ceil(2),
                id,
                limit - limit.div_ceil(2),
            ),
        };
        let key = super::conversations::chat_key(caller, target);
        // Read on its own (not in a reader of this call) so that the engine
        // may answer calls made at the same time together.
        let page = self.store.history_page(key, caller, range).await?;
        let chat = match page.chat {
            Some(chat) if page.member || chat.kind != ChatKind::Group => chat,
            Some(_) => return Err(Error::chat_not_found()),
            None => {
                // A group that does not exist is NOT_FOUND; a direct chat
                // nobody opened yet has no history, if both users exist.
                let mut tx = self.store.reader().await?;
                self.access(tx.as_mut(), caller, target, Mode::Read).await?;
                tx.commit().await?;
                return Ok(messages::Messages::default());
            }
        };
        let mut authors: Vec<UserId> = Vec::new();
        for row in &page.messages {
            if !authors.contains(&row.author) {
                authors.push(row.author);
            }
        }
        let users = self
            .user_cache
            .users_outside(self.store.as_ref(), &authors)
            .await?;
        let chat_ref = render::chat_ref(&chat, caller);
        Ok(messages::Messages {
            // Each stored body moves into the reply; only its chat_ref is added.
            messages: page
                .messages
                .into_iter()
                .map(|m| types::Message {
                    chat_ref: Some(chat_ref),
                    ..m.body
                })
                .collect(),
            users,
        })
    }

    /// Locks only the message: the chat's other writers go on meanwhile.
    pub async fn edit(&self, caller: UserId, edit: MessageEdit) -> Result<()> {
        let missing = || {
            Error::invalid(
                "message_id",
                format!("no message {} in this chat", edit.message_id),
            )
        };
        let chat = self
            .member_chat(caller, edit.target)
            .await?
            .ok_or_else(missing)?;
        let mut tx = self.begin().await?;
        let mut row = tx
            .message(chat.id, edit.message_id, true)
            .await?
            .ok_or_else(missing)?;
        if row.author != caller {
            return Err(Error::PermissionDenied(
                "only the author may edit a message".into(),
            ));
        }
        if row
            .body
            .r#type
            .is_some_and(|t| t != types::message::MessageType::Unknown as i32)
        {
            return Err(Error::invalid(
                "message_id",
                "system messages cannot be edited",
            ));
        }
        let body = &mut row.body;
        match edit.text {
            TextEdit::Keep => {}
            TextEdit::Text(text) => (body.message, body.entities) = text.into_parts(),
            TextEdit::Entities(entities) => {
                // Checked against the text as stored, which the caller did not send.
                entities.check_within("entities", &body.message)?;
                body.entities = entities.into_vec();
            }
        }
        if edit.remove_media {
            body.media.clear();
        }
        if !edit.media.is_empty() {
            body.media = edit.media;
        }
        // What the edit keeps counts too: measured under the message's lock.
        text::message_size("message", body)?;
        body.edited_at = Some(crate::model::clock::now_ms());

        let members = tx.members(chat.id).await?;
        let mentioned = self
            .mentioned_members(
                tx.as_mut(),
                caller,
                &row.body.message,
                &row.body.entities,
                &chat,
            )
            .await?;
        let removed: Vec<UserId> = row
            .mentions
            .iter()
            .copied()
            .filter(|u| !mentioned.contains(u))
            .collect();
        let added: Vec<UserId> = mentioned
            .iter()
            .copied()
            .filter(|u| !row.mentions.contains(u))
            .collect();
        if !removed.is_empty() || !added.is_empty() {
            tx.remention(&row, &removed, &added).await?;
        }
        row.mentions = mentioned;
        tx.update_message(&row).await?;
        let change = self.change(
            U::Message(updates::UpdateMessage {
                message: Some(row.body.clone()),
            }),
            Some(chat.scope()),
        );
        let logged = tx
            .append_changes(vec![NewChange::to_all(
                change,
                members.iter().map(|m| m.user_id),
            )])
            .await?;
        self.commit(tx, logged).await
    }
}

impl Core {
    async fn send_once(&self, caller: UserId, new: NewMessage) -> Result<MessageId> {
        let client_id = new.client_id();
        match self.try_send(caller, new).await {
            // A concurrent retry with the same client id won: answer with its message.
            Err(Error::Store(StoreError::Duplicate)) => match client_id {
                Some(client_id) => self
                    .find_sent(caller, client_id)
                    .await?
                    .ok_or_else(|| Error::Store(StoreError::Duplicate)),
                None => Err(Error::Store(StoreError::Duplicate)),
            },
            other => other,
        }
    }

    async fn find_sent(&self, caller: UserId, client_id: u64) -> Result<Option<MessageId>> {
        let mut tx = self.store.reader().await?;
        let found = tx.message_by_client_id(caller, client_id).await?;
        tx.commit().await?;
        if found.is_some() {
            // Another attempt's batch may still be in its WAL flush.
            self.store.flush().await?;
        }
        Ok(found.map(|m| m.id))
    }

    /// Checks the send without any lock, then hands it to its chat's next batch.
    async fn try_send(&self, caller: UserId, new: NewMessage) -> Result<MessageId> {
        let key = super::conversations::chat_key(caller, new.target());
        let mut tx = self.store.reader().await?;
        // The usual send needs one round trip before it is queued.
        let context = tx.send_context(key, caller, new.client_id()).await?;
        if let Some(sent) = context.sent {
            // A retry: answer with the message the first attempt stored.
            // That attempt may have died before publishing: this replica's
            // streams look at their logs now, the others' at their next sweeps.
            tx.commit().await?;
            // The first attempt's batch may still be in its WAL flush.
            self.store.flush().await?;
            self.streams.urgent.notify_one();
            return Ok(sent);
        }
        let author = match context.author {
            Some(author) => author,
            None => known_user(tx.as_mut(), caller).await?,
        };
        let chat = match context.chat {
            Some(chat) if context.member => chat,
            existing => {
                // Not a member (NOT_FOUND), or a direct chat's first message,
                // which creates it in a write of its own: only once nothing
                // else can refuse the send, so that a refused first message
                // leaves no empty chat behind.
                if existing.is_none() {
                    if let Some(reply_to) = new.reply_to() {
                        return Err(no_reply_target(reply_to));
                    }
                }
                check_cloak(&author, &new)?;
                tx.commit().await?;
                let chat = self.open_chat(caller, new.target()).await?;
                tx = self.store.reader().await?;
                chat
            }
        };
        let post = self.check_send(tx.as_mut(), author, &chat, new).await?;
        tx.commit().await?;
        self.submit_post(chat.id, post).await
    }

    async fn check_send(
        &self,
        tx: &mut dyn Tx,
        author: types::User,
        chat: &ChatRow,
        new: NewMessage,
    ) -> Result<Post> {
        let caller = UserId(author.id);
        check_cloak(&author, &new)?;
        if let Some(reply_to) = new.reply_to() {
            if tx.message(chat.id, reply_to, false).await?.is_none() {
                return Err(no_reply_target(reply_to));
            }
        }
        let text = new.text();
        let mentions = self
            .mentioned_members(tx, caller, text.text(), text.entities(), chat)
            .await?;
        let client_id = new.client_id();
        Ok(Post {
            author,
            author_id: caller,
            body: new.into_body(caller),
            client_id,
            mentions,
            system: false,
        })
    }

    /// Users other than the author that the text mentions: only the chat's
    /// members count, which the batch checks under the lock.
    async fn mentioned_members(
        &self,
        tx: &mut dyn Tx,
        author: UserId,
        text: &str,
        entities: &[types::MessageEntity],
        chat: &ChatRow,
    ) -> Result<Vec<UserId>> {
        let peer = render::peer(chat, author);
        let chat = chat.id;
        let found = text::mentions(text, entities);
        let mut ids = found.ids;
        if !found.usernames.is_empty() {
            ids.extend(tx.user_ids_by_username(&found.usernames).await?);
        }
        ids.retain(|u| *u != author);
        ids.sort();
        ids.dedup();
        if ids.is_empty() {
            // Most messages mention nobody: no need to read the members.
            return Ok(ids);
        }
        // One read of the members, however many the text names; a direct
        // chat's peer counts before their first message too.
        let members = participants(tx, chat).await?;
        ids.retain(|u| peer == Some(*u) || members.contains(u));
        Ok(ids)
    }
}

fn check_cloak(author: &types::User, new: &NewMessage) -> Result<()> {
    if new.is_cloaked() && !author.bot {
        return Err(Error::PermissionDenied(
            "bot_info: only bots may send cloaked messages".into(),
        ));
    }
    Ok(())
}

fn no_reply_target(reply_to: MessageId) -> Error {
    Error::invalid(
        "reply_to.message_id",
        format!("no message {reply_to} in this chat"),
    )
}
