//! Group chats: creation, editing, membership, and the ownership rules.
//! Every membership change locks the group's row first, so concurrent
//! adds, removals and invite uses are applied one at a time per group: the
//! member cap and "there is always an owner" hold under concurrency.

use super::access::{Access, Mode};
use super::conversations::participants;
use super::ids::{ChatId, MessageId, UserId};
use super::render;
use super::target::ChatTarget;
use super::Core;
use crate::error::{Error, Result};
use crate::proto::{chats, types, updates};
use crate::store::{ChatKind, ChatRow, MemberRow, MessageRow, Tx};

use updates::update::Update as U;

/// A validated CreateChat: the listed users exclude the creator.
pub struct NewGroup {
    pub name: String,
    pub users: Vec<UserId>,
}

/// A validated EditChat; `None` leaves a field as it is.
#[derive(Default)]
pub struct GroupEdit {
    pub name: Option<String>,
    /// `Some(None)` clears the highlight.
    pub highlighted: Option<Option<MessageId>>,
    /// `Some(None)` removes the photo.
    pub photo: Option<Option<types::ChatPhoto>>,
}

impl Core {
    pub async fn create_group(&self, caller: UserId, new: NewGroup) -> Result<types::Group> {
        if new.users.len() + 1 > self.limits.max_group_members {
            return Err(Error::invalid(
                "users",
                format!(
                    "{} participants with the creator, at most {} allowed",
                    new.users.len() + 1,
                    self.limits.max_group_members
                ),
            ));
        }
        let mut tx = self.begin().await?;
        let mut everyone = vec![caller];
        everyone.extend(&new.users);
        let known = tx.users(&everyone).await?;
        if let Some(missing) = everyone
            .iter()
            .find(|u| !known.iter().any(|k| k.id == u.get()))
        {
            return Err(Error::NotFound(format!("user {missing} not found")));
        }
        let chat = ChatRow {
            id: ChatId(self.ids.next_id()),
            kind: ChatKind::Group,
            name: new.name,
            owner: Some(caller),
            photo: None,
            highlighted: None,
            last_message: None,
        };
        tx.insert_chat(&chat).await?;
        for user in &everyone {
            tx.insert_member(&self.new_member(&chat, *user)).await?;
        }
        let entries = group_updates(&chat, &everyone, &[], &known);
        let logged = tx.append_updates(entries).await?;
        self.commit(tx, logged).await?;
        Ok(render::group(&chat, &everyone, caller))
    }

    pub async fn edit_group(
        &self,
        caller: UserId,
        id: ChatId,
        edit: GroupEdit,
    ) -> Result<chats::Chat> {
        let mut tx = self.begin().await?;
        let (mut chat, member) = self.group_for_write(tx.as_mut(), caller, id).await?;
        if chat.owner != Some(caller) {
            return Err(Error::PermissionDenied(
                "only the group owner may edit it".into(),
            ));
        }
        if let Some(name) = edit.name {
            chat.name = name;
        }
        if let Some(highlighted) = edit.highlighted {
            if let Some(message) = highlighted {
                if tx.message(chat.id, message, false).await?.is_none() {
                    return Err(Error::invalid(
                        "highlighted_msg_id.highlighted_msg_id",
                        format!("no message {message} in this chat"),
                    ));
                }
            }
            chat.highlighted = highlighted;
        }
        if let Some(photo) = edit.photo {
            chat.photo = photo;
        }
        tx.update_chat(&chat).await?;
        let people = participants(tx.as_mut(), chat.id).await?;
        let users = tx.users(&people).await?;
        let logged = tx
            .append_updates(group_updates(&chat, &people, &[], &users))
            .await?;
        let view = self.chat_view(tx.as_mut(), &chat, &member).await?;
        self.commit(tx, logged).await?;
        Ok(view)
    }

    /// Any member may add a user.
    pub async fn add_member(&self, caller: UserId, id: ChatId, user: UserId) -> Result<()> {
        let mut tx = self.begin().await?;
        let (chat, _) = self.group_for_write(tx.as_mut(), caller, id).await?;
        let entries = self.join(tx.as_mut(), &chat, user).await?;
        let logged = tx.append_updates(entries).await?;
        self.commit(tx, logged).await
    }

    /// The owner removes anyone; anyone removes themselves (leaves).
    pub async fn remove_member(&self, caller: UserId, id: ChatId, user: UserId) -> Result<()> {
        let mut tx = self.begin().await?;
        let (mut chat, _) = self.group_for_write(tx.as_mut(), caller, id).await?;
        if user != caller && chat.owner != Some(caller) {
            return Err(Error::PermissionDenied(
                "only the group owner may remove other members".into(),
            ));
        }
        if tx.member(chat.id, user, true).await?.is_none() {
            return Err(Error::NotFound(format!(
                "user {user} is not a member of this chat"
            )));
        }
        tx.remove_member(chat.id, user).await?;
        let remaining = participants(tx.as_mut(), chat.id).await?;
        let Some(longest_standing) = remaining.first().copied() else {
            // The last member left: the group and its invites go.
            tx.delete_chat(chat.id).await?;
            let users = tx.users(&[user]).await?;
            let logged = tx
                .append_updates(group_updates(&chat, &[], &[user], &users))
                .await?;
            return self.commit(tx, logged).await;
        };
        if chat.owner == Some(user) {
            chat.owner = Some(longest_standing);
            tx.update_chat(&chat).await?;
        }
        let mut entries = self
            .system_message(tx.as_mut(), &chat, user, types::message::MessageType::Leave)
            .await?;
        let users = tx.users(&remaining).await?;
        entries.extend(group_updates(&chat, &remaining, &[user], &users));
        let logged = tx.append_updates(entries).await?;
        self.commit(tx, logged).await
    }

    /// Adds `user` to a locked group: the JOIN message and the group update
    /// to every member, the newcomer included.
    pub(super) async fn join(
        &self,
        tx: &mut dyn Tx,
        chat: &ChatRow,
        user: UserId,
    ) -> Result<Vec<(UserId, updates::Update)>> {
        if tx.users(&[user]).await?.is_empty() {
            return Err(Error::NotFound(format!("user {user} not found")));
        }
        if tx.member(chat.id, user, false).await?.is_some() {
            return Err(Error::AlreadyExists(format!(
                "user {user} is already a member"
            )));
        }
        let members = participants(tx, chat.id).await?;
        if members.len() >= self.limits.max_group_members {
            return Err(Error::FailedPrecondition(format!(
                "the group is full ({} members)",
                self.limits.max_group_members
            )));
        }
        tx.insert_member(&self.new_member(chat, user)).await?;
        let mut entries = self
            .system_message(tx, chat, user, types::message::MessageType::Join)
            .await?;
        let everyone = participants(tx, chat.id).await?;
        let users = tx.users(&everyone).await?;
        entries.extend(group_updates(chat, &everyone, &[], &users));
        Ok(entries)
    }

    /// A JOIN or LEAVE message, authored by the user who joined or left.
    async fn system_message(
        &self,
        tx: &mut dyn Tx,
        chat: &ChatRow,
        user: UserId,
        kind: types::message::MessageType,
    ) -> Result<Vec<(UserId, updates::Update)>> {
        let author = tx
            .users(&[user])
            .await?
            .pop()
            .ok_or_else(|| Error::NotFound(format!("user {user} not found")))?;
        let id = MessageId(self.ids.next_id());
        let row = MessageRow {
            chat_id: chat.id,
            id,
            author: user,
            client_id: None,
            mentions: Vec::new(),
            body: types::Message {
                message_id: id.get(),
                author_id: user.get(),
                r#type: Some(kind as i32),
                ..Default::default()
            },
        };
        self.post(tx, chat, &row, &author).await
    }

    /// The group locked for a membership change, and the caller's membership.
    async fn group_for_write(
        &self,
        tx: &mut dyn Tx,
        caller: UserId,
        id: ChatId,
    ) -> Result<(ChatRow, MemberRow)> {
        match self
            .access(tx, caller, ChatTarget::Group(id), Mode::Write)
            .await?
        {
            Some(Access {
                chat,
                member: Some(member),
            }) => Ok((chat, member)),
            _ => Err(Error::chat_not_found()),
        }
    }
}

/// `UpdateGroup` to each participant and to `also` (members just removed),
/// each copy rendered for its recipient.
fn group_updates(
    chat: &ChatRow,
    participants: &[UserId],
    also: &[UserId],
    users: &[types::User],
) -> Vec<(UserId, updates::Update)> {
    participants
        .iter()
        .chain(also)
        .map(|recipient| {
            (
                *recipient,
                render::update(U::Group(updates::UpdateGroup {
                    group: Some(render::group(chat, participants, *recipient)),
                    users: users.to_vec(),
                })),
            )
        })
        .collect()
}
