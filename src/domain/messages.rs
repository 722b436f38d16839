//! Messages: sending (idempotent per client id), history pages, edits and
//! deletions, each with its updates to every participant.

use super::access::{Access, Mode};
use super::conversations::participants;
use super::ids::{ChatId, MessageId, UserId};
use super::render;
use super::target::ChatTarget;
use super::text;
use super::Core;
use crate::error::{Error, Result};
use crate::proto::{media, messages, types, updates};
use crate::store::{ChatRow, MemberRow, MessageRow, StoreError, Tx};

use updates::update::Update as U;

/// A validated SendMessage.
#[derive(Clone, Debug)]
pub struct NewMessage {
    pub target: ChatTarget,
    pub text: String,
    pub entities: Vec<types::MessageEntity>,
    pub media: Vec<media::MessageMedia>,
    pub reply: Option<Reply>,
    pub cloak: Option<types::message::message_bot_info::MessageCloak>,
    pub client_id: Option<u64>,
}

#[derive(Clone, Debug)]
pub struct Reply {
    pub message_id: MessageId,
    pub quote: Option<types::message::message_reply_info::Quote>,
}

/// A validated EditMessage: `None`/empty fields leave things as they are.
#[derive(Clone, Debug)]
pub struct MessageEdit {
    pub target: ChatTarget,
    pub message_id: MessageId,
    pub text: Option<String>,
    /// Replaces the entities when not empty or when `text` is set.
    pub entities: Vec<types::MessageEntity>,
    pub remove_media: bool,
    /// Replaces the media when not empty.
    pub media: Vec<media::MessageMedia>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Anchor {
    Latest,
    Before(MessageId),
    Since(MessageId),
    Around(MessageId),
}

impl Core {
    pub async fn send_message(&self, caller: UserId, new: NewMessage) -> Result<MessageId> {
        match self.try_send(caller, new.clone()).await {
            // A concurrent retry with the same client id won: answer with its message.
            Err(Error::Store(StoreError::Duplicate)) => match new.client_id {
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
        let mut tx = self.begin().await?;
        let found = tx.message_by_client_id(caller, client_id).await?;
        tx.commit().await?;
        Ok(found.map(|m| m.id))
    }

    async fn try_send(&self, caller: UserId, new: NewMessage) -> Result<MessageId> {
        let mut tx = self.begin().await?;
        if let Some(client_id) = new.client_id {
            // A retry: answer with the message the first attempt stored.
            if let Some(sent) = tx.message_by_client_id(caller, client_id).await? {
                tx.commit().await?;
                return Ok(sent.id);
            }
        }
        let (chat, _) = self
            .access_for_write(tx.as_mut(), caller, new.target)
            .await?;
        let author = tx
            .users(&[caller])
            .await?
            .pop()
            .ok_or_else(|| Error::NotFound(format!("user {caller} not found")))?;
        if new.cloak.is_some() && !author.bot {
            return Err(Error::PermissionDenied(
                "bot_info: only bots may send cloaked messages".into(),
            ));
        }
        if let Some(reply) = &new.reply {
            if tx
                .message(chat.id, reply.message_id, false)
                .await?
                .is_none()
            {
                return Err(Error::invalid(
                    "reply_to.message_id",
                    format!("no message {} in this chat", reply.message_id),
                ));
            }
        }
        if let Some(peer) = render::peer(&chat, caller) {
            if tx.member(chat.id, peer, true).await?.is_none() {
                tx.insert_member(&self.new_member(&chat, peer)).await?;
            }
        }
        let mentioned = self
            .mentioned_members(tx.as_mut(), caller, &new.text, &new.entities, chat.id)
            .await?;
        let id = MessageId(self.ids.next_id());
        // `reply_to` is deprecated but still filled in for clients that read only it.
        #[allow(deprecated)]
        let body = types::Message {
            chat_ref: None,
            message_id: id.get(),
            author_id: caller.get(),
            message: new.text,
            reply_to: new.reply.as_ref().map(|r| r.message_id.get()),
            media: new.media,
            entities: new.entities,
            edited_at: None,
            r#type: None,
            forward: None,
            reply: new.reply.map(|r| types::message::MessageReplyInfo {
                message_id: Some(r.message_id.get()),
                quote: r.quote,
            }),
            bot_info: new
                .cloak
                .map(|c| types::message::MessageBotInfo { cloak: Some(c) }),
        };
        let row = MessageRow {
            chat_id: chat.id,
            id,
            author: caller,
            client_id: new.client_id,
            mentions: mentioned.clone(),
            body,
        };
        let entries = self.post(tx.as_mut(), &chat, &row, &author).await?;
        let logged = tx.append_updates(entries).await?;
        self.commit(tx, logged).await?;
        Ok(id)
    }

    /// Stores a message (a user's or a system one) and builds its updates:
    /// every member gets `UpdateMessageCreated`, and an author whose draft
    /// the message cleared gets `UpdateChat` as well.
    pub(super) async fn post(
        &self,
        tx: &mut dyn Tx,
        chat: &ChatRow,
        row: &MessageRow,
        author: &types::User,
    ) -> Result<Vec<(UserId, updates::Update)>> {
        tx.insert_message(row).await?;
        let before = tx
            .record_message(chat.id, row.id, row.author, &row.mentions)
            .await?;
        tx.set_last_message(chat.id, Some(row.id)).await?;
        let chat = ChatRow {
            last_message: Some(row.id),
            ..chat.clone()
        };
        let mut entries = Vec::with_capacity(before.len() + 1);
        for member in &before {
            let is_author = member.user_id == row.author;
            entries.push((
                member.user_id,
                render::update(U::MessageCreated(updates::UpdateMessageCreated {
                    message: Some(render::message(row, &chat, member.user_id)),
                    channel_unread_count: if is_author { 0 } else { member.unread + 1 },
                    author: Some(author.clone()),
                    client_id: if is_author { row.client_id } else { None },
                })),
            ));
            if is_author && member.draft.is_some() {
                // The send cleared the author's draft: their other sessions must drop it too.
                let after = MemberRow {
                    sort_key: member.sort_key.max(row.id.get()),
                    last_read: member.last_read.max(row.id.get()),
                    unread: 0,
                    mentions: 0,
                    draft: None,
                    ..member.clone()
                };
                let view = self.chat_view(tx, &chat, &after).await?;
                entries.push((
                    row.author,
                    render::update(U::Chat(updates::UpdateChat { chat: Some(view) })),
                ));
            }
        }
        Ok(entries)
    }

    /// Chat members (other than the author) that the text mentions.
    async fn mentioned_members(
        &self,
        tx: &mut dyn Tx,
        author: UserId,
        text: &str,
        entities: &[types::MessageEntity],
        chat: ChatId,
    ) -> Result<Vec<UserId>> {
        let found = text::mentions(text, entities);
        let mut ids = found.ids;
        if !found.usernames.is_empty() {
            ids.extend(tx.user_ids_by_username(&found.usernames).await?);
        }
        if ids.is_empty() {
            // Most messages mention nobody: no need to read the members.
            return Ok(ids);
        }
        let mut mentioned: Vec<UserId> = participants(tx, chat)
            .await?
            .into_iter()
            .filter(|u| *u != author && ids.contains(u))
            .collect();
        mentioned.dedup();
        Ok(mentioned)
    }

    pub async fn get_history(
        &self,
        caller: UserId,
        target: ChatTarget,
        anchor: Anchor,
        limit: usize,
    ) -> Result<messages::Messages> {
        let mut tx = self.begin().await?;
        let Some(Access { chat, .. }) =
            self.access(tx.as_mut(), caller, target, Mode::Read).await?
        else {
            tx.commit().await?;
            return Ok(messages::Messages::default());
        };
        let rows = match anchor {
            Anchor::Latest => tx.messages_before(chat.id, None, limit).await?,
            Anchor::Before(id) => tx.messages_before(chat.id, Some(id), limit).await?,
            Anchor::Since(id) => {
                let mut rows = tx.messages_after(chat.id, id, limit).await?;
                rows.reverse();
                rows
            }
            Anchor::Around(id) => {
                // The anchor and older take the larger half; newer the rest.
                let older_limit = limit.div_ceil(2);
                let older = tx
                    .messages_before(
                        chat.id,
                        Some(MessageId(id.get().saturating_add(1))),
                        older_limit,
                    )
                    .await?;
                let mut newer = tx.messages_after(chat.id, id, limit - older_limit).await?;
                newer.reverse();
                newer.extend(older);
                newer
            }
        };
        let mut authors: Vec<UserId> = Vec::new();
        for row in &rows {
            if !authors.contains(&row.author) {
                authors.push(row.author);
            }
        }
        let users = tx.users(&authors).await?;
        tx.commit().await?;
        Ok(messages::Messages {
            messages: rows
                .iter()
                .map(|m| render::message(m, &chat, caller))
                .collect(),
            users,
        })
    }

    pub async fn edit_message(&self, caller: UserId, edit: MessageEdit) -> Result<()> {
        let mut tx = self.begin().await?;
        let (chat, _) = self
            .access_for_write(tx.as_mut(), caller, edit.target)
            .await?;
        let mut row = tx
            .message(chat.id, edit.message_id, true)
            .await?
            .ok_or_else(|| {
                Error::invalid(
                    "message_id",
                    format!("no message {} in this chat", edit.message_id),
                )
            })?;
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
        if let Some(text) = edit.text {
            body.message = text;
            body.entities = edit.entities;
        } else if !edit.entities.is_empty() {
            body.entities = edit.entities;
        }
        text::validate_entities("entities", &body.message, &body.entities)?;
        if edit.remove_media {
            body.media.clear();
        }
        if !edit.media.is_empty() {
            body.media = edit.media;
        }
        body.edited_at = Some(super::snowflake::now_ms());

        let members = tx.members(chat.id).await?;
        let mentioned = self
            .mentioned_members(
                tx.as_mut(),
                caller,
                &row.body.message,
                &row.body.entities,
                chat.id,
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
            tx.remention(chat.id, row.id, &removed, &added).await?;
        }
        row.mentions = mentioned;
        tx.update_message(&row).await?;
        let entries = members
            .iter()
            .map(|m| {
                let message = render::message(&row, &chat, m.user_id);
                (
                    m.user_id,
                    render::update(U::Message(updates::UpdateMessage {
                        message: Some(message),
                    })),
                )
            })
            .collect();
        let logged = tx.append_updates(entries).await?;
        self.commit(tx, logged).await
    }

    pub async fn delete_messages(
        &self,
        caller: UserId,
        target: ChatTarget,
        ids: Vec<MessageId>,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let (chat, _) = self.access_for_write(tx.as_mut(), caller, target).await?;
        let mut doomed = Vec::with_capacity(ids.len());
        for id in &ids {
            let row = tx.message(chat.id, *id, true).await?.ok_or_else(|| {
                Error::invalid("message_ids", format!("no message {id} in this chat"))
            })?;
            let may = row.author == caller || chat.owner == Some(caller);
            if !may {
                return Err(Error::PermissionDenied(format!(
                    "message {id}: only its author or the group owner may delete it"
                )));
            }
            doomed.push(row);
        }
        tx.delete_messages(chat.id, &ids).await?;
        tx.forget_messages(chat.id, &doomed).await?;
        if chat.last_message.is_some_and(|last| ids.contains(&last)) {
            let newest = tx
                .messages_before(chat.id, None, 1)
                .await?
                .pop()
                .map(|m| m.id);
            tx.set_last_message(chat.id, newest).await?;
        }
        let members = tx.members(chat.id).await?;
        let entries = members
            .iter()
            .map(|m| {
                (
                    m.user_id,
                    render::update(U::MessageDeleted(updates::UpdateMessageDeleted {
                        chat_ref: Some(render::chat_ref(&chat, m.user_id)),
                        message_ids: ids.iter().map(|i| i.get()).collect(),
                    })),
                )
            })
            .collect();
        let logged = tx.append_updates(entries).await?;
        self.commit(tx, logged).await
    }
}
