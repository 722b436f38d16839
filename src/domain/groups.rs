//! Group chats: creation, editing, membership, and the ownership rules.
//! Every membership change checks the caller's membership first, then locks
//! the group's row and checks again, so concurrent adds, removals and
//! invite uses are applied one at a time per group: the member cap and
//! "there is always an owner" hold under concurrency. Each sends members
//! `UpdateGroup` with the users that changed, never every member's.

use super::access::{known_user, known_users, Locked};
use super::limits::RateLimit;
use super::posting::Post;
use super::render;
use super::target::ChatTarget;
use super::values::GroupName;
use super::{Core, Groups};
use crate::error::{Error, Result};
use crate::model::{ChatId, ChatKind, ChatRow, MemberRow, MessageId, NewChange, UserId};
use crate::proto::{chats, types, updates};
use crate::store::{PostWrites, Tx};

use updates::update::Update as U;

/// A validated CreateChat: the listed users exclude the creator.
pub struct NewGroup {
    pub name: GroupName,
    pub users: Vec<UserId>,
}

/// A validated EditChat; `None` leaves a field as it is.
#[derive(Default)]
pub struct GroupEdit {
    pub name: Option<GroupName>,
    /// `Some(None)` clears the highlight.
    pub highlighted: Option<Option<MessageId>>,
    /// `Some(None)` removes the photo.
    pub photo: Option<Option<types::ChatPhoto>>,
}

impl Groups<'_> {
    pub async fn create(&self, caller: UserId, new: NewGroup) -> Result<types::Group> {
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
        self.admit(RateLimit::CreateChat, caller).await?;
        let mut tx = self.begin().await?;
        let mut everyone = vec![caller];
        everyone.extend(&new.users);
        let known = known_users(tx.as_mut(), &everyone).await?;
        let chat = ChatRow {
            id: ChatId(self.ids.next_id()),
            kind: ChatKind::Group,
            name: new.name.into_string(),
            owner: Some(caller),
            photo: None,
            highlighted: None,
            last_message: None,
            msg_seq: 0,
        };
        tx.insert_chat(&chat).await?;
        let members: Vec<_> = everyone
            .iter()
            .map(|user| self.new_member(&chat, *user))
            .collect();
        tx.insert_members(&members).await?;
        // Everyone is new here: the users the request named go along, once.
        let update = self.group_update(&chat, &everyone, &[], known);
        let logged = tx.append_changes(vec![update]).await?;
        self.commit(tx, logged).await?;
        Ok(render::group(&chat, &everyone, caller))
    }

    pub async fn edit(&self, caller: UserId, id: ChatId, edit: GroupEdit) -> Result<chats::Chat> {
        let mut tx = self.begin().await?;
        let Locked {
            mut chat,
            member,
            members,
        } = self.lock_group(tx.as_mut(), caller, id).await?;
        if chat.owner != Some(caller) {
            return Err(Error::PermissionDenied(
                "only the group owner may edit it".into(),
            ));
        }
        if let Some(name) = edit.name {
            chat.name = name.into_string();
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
        let people: Vec<UserId> = members.iter().map(|m| m.user_id).collect();
        let logged = tx
            .append_changes(vec![self.group_update(&chat, &people, &[], Vec::new())])
            .await?;
        let view = self.chat_view(tx.as_mut(), &chat, &member).await?;
        self.commit(tx, logged).await?;
        Ok(view)
    }

    /// Any member may add a user.
    pub async fn add_member(&self, caller: UserId, id: ChatId, user: UserId) -> Result<()> {
        self.admit(RateLimit::AddMember, caller).await?;
        let mut tx = self.begin().await?;
        let Locked { chat, members, .. } = self.lock_group(tx.as_mut(), caller, id).await?;
        let logged = self.join(tx.as_mut(), &chat, members, user).await?;
        self.commit(tx, logged).await
    }

    /// The owner removes anyone; anyone removes themselves (leaves).
    pub async fn remove_member(&self, caller: UserId, id: ChatId, user: UserId) -> Result<()> {
        let mut tx = self.begin().await?;
        let Locked {
            mut chat,
            mut members,
            ..
        } = self.lock_group(tx.as_mut(), caller, id).await?;
        if user != caller && chat.owner != Some(caller) {
            return Err(Error::PermissionDenied(
                "only the group owner may remove other members".into(),
            ));
        }
        let Some(at) = members.iter().position(|m| m.user_id == user) else {
            return Err(Error::NotFound(format!(
                "user {user} is not a member of this chat"
            )));
        };
        members.remove(at);
        tx.remove_member(chat.id, user).await?;
        let leaver = known_user(tx.as_mut(), user).await?;
        let remaining: Vec<UserId> = members.iter().map(|m| m.user_id).collect();
        let Some(longest_standing) = remaining.first().copied() else {
            // The last member left: the group and its invites go.
            tx.delete_chat(chat.id).await?;
            let logged = tx
                .append_changes(vec![self.group_update(&chat, &[], &[user], vec![leaver])])
                .await?;
            return self.commit(tx, logged).await;
        };
        if chat.owner == Some(user) {
            chat.owner = Some(longest_standing);
            tx.update_chat(&chat).await?;
        }
        let (writes, mut changes) = self
            .system_message(
                tx.as_mut(),
                &chat,
                members,
                leaver.clone(),
                types::message::MessageType::Leave,
            )
            .await?;
        changes.push(self.group_update(&chat, &remaining, &[user], vec![leaver]));
        let logged = tx.write_posts(&writes, changes).await?;
        self.commit(tx, logged).await
    }
}

impl Core {
    /// Adds `user` to a locked group: the JOIN message and the group update
    /// (with the newcomer's user) to every member, the newcomer included.
    pub(super) async fn join(
        &self,
        tx: &mut dyn Tx,
        chat: &ChatRow,
        mut members: Vec<MemberRow>,
        user: UserId,
    ) -> Result<Vec<crate::model::LoggedUpdate>> {
        let newcomer = known_user(tx, user).await?;
        if members.iter().any(|m| m.user_id == user) {
            return Err(Error::AlreadyExists(format!(
                "user {user} is already a member"
            )));
        }
        if members.len() >= self.limits.max_group_members {
            return Err(Error::FailedPrecondition(format!(
                "the group is full ({} members)",
                self.limits.max_group_members
            )));
        }
        let row = self.new_member(chat, user);
        tx.insert_member(&row).await?;
        members.push(row);
        let everyone: Vec<UserId> = members.iter().map(|m| m.user_id).collect();
        let (writes, mut changes) = self
            .system_message(
                tx,
                chat,
                members,
                newcomer.clone(),
                types::message::MessageType::Join,
            )
            .await?;
        changes.push(self.group_update(chat, &everyone, &[], vec![newcomer]));
        Ok(tx.write_posts(&writes, changes).await?)
    }

    /// A JOIN or LEAVE message, authored by the user who joined or left.
    async fn system_message(
        &self,
        tx: &mut dyn Tx,
        chat: &ChatRow,
        members: Vec<MemberRow>,
        author: types::User,
        kind: types::message::MessageType,
    ) -> Result<(PostWrites, Vec<NewChange>)> {
        let post = Post {
            author_id: UserId(author.id),
            body: types::Message {
                author_id: author.id,
                r#type: Some(kind as i32),
                ..Default::default()
            },
            author,
            client_id: None,
            mentions: Vec::new(),
            system: true,
        };
        let composed = self.compose(tx, chat, members, &[post]).await?;
        Ok((composed.writes, composed.changes))
    }

    /// The group locked for a change by one of its members.
    async fn lock_group(&self, tx: &mut dyn Tx, caller: UserId, id: ChatId) -> Result<Locked> {
        self.lock_as_member(tx, caller, ChatTarget::Group(id)).await
    }

    /// `UpdateGroup` to each participant and to `also` (members just
    /// removed): the group once, `owner` set in each recipient's copy, and
    /// only the `users` that changed.
    fn group_update(
        &self,
        chat: &ChatRow,
        participants: &[UserId],
        also: &[UserId],
        users: Vec<types::User>,
    ) -> NewChange {
        let mut group = render::group(chat, participants, UserId(0));
        group.owner = false;
        let change = self.change(
            U::Group(updates::UpdateGroup {
                group: Some(group),
                users,
            }),
            Some(chat.scope()),
        );
        NewChange::to_all(change, participants.iter().chain(also).copied())
    }
}
