//! Turns a caller-relative chat target into the chat and the caller's place
//! in it. A direct chat's rows are created by its first message (and by a
//! draft or preference set on it, see [`super::conversations`]), never by
//! a read: before then, reads see it as [`unopened`]. Outsiders get `NOT_FOUND`
//! whether or not the chat exists. Nothing here locks: membership is
//! checked before any lock is taken, and a write that needs the chat's
//! lock takes it afterwards with [`Core::lock_as_member`], which re-checks.
//! Every use-case resolves its chat here, and checks here that the users it
//! names exist.

use super::target::ChatTarget;
use super::Core;
use crate::error::{Error, Result};
use crate::model::{ChatId, ChatKind, ChatRow, MemberRow, UserId};
use crate::proto::types;
use crate::store::{StoreError, Tx};

/// Whether resolving may create the direct chat and the caller's membership.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Reads: nothing is created; a direct chat that does not exist yet is `None`.
    Read,
    /// Writes: the direct chat and the caller's membership are created if
    /// missing.
    Write,
}

/// A chat under its lock, with the caller's membership and every member's.
pub struct Locked {
    pub chat: ChatRow,
    pub member: MemberRow,
    /// Oldest first.
    pub members: Vec<MemberRow>,
}

pub struct Access {
    pub chat: ChatRow,
    /// The caller's membership; `None` only in `Read` mode for a direct chat
    /// the peer created and the caller never touched.
    pub member: Option<MemberRow>,
}

impl Core {
    pub(super) async fn access(
        &self,
        tx: &mut dyn Tx,
        caller: UserId,
        target: ChatTarget,
        mode: Mode,
    ) -> Result<Option<Access>> {
        let (low, high) = match target {
            ChatTarget::Group(id) => return group_access(tx, caller, id).await.map(Some),
            ChatTarget::Saved => (caller, caller),
            ChatTarget::Direct(peer) => (caller.min(peer), caller.max(peer)),
        };
        let mut chat = tx.direct_chat(low, high, false).await?;
        if chat.is_none() {
            let wanted = if low == high {
                vec![low]
            } else {
                vec![low, high]
            };
            known_users(tx, &wanted).await?;
            if mode == Mode::Read {
                return Ok(None);
            }
            let row = ChatRow {
                id: ChatId(self.ids.next_id()),
                kind: ChatKind::Direct { low, high },
                name: String::new(),
                owner: None,
                photo: None,
                highlighted: None,
                last_message: None,
                msg_seq: 0,
            };
            match tx.insert_chat(&row).await {
                // Both sides opened it at the same moment: use theirs.
                Err(StoreError::Duplicate) => {}
                other => other?,
            }
            chat = tx.direct_chat(low, high, false).await?;
        }
        let chat =
            chat.ok_or_else(|| Error::Store(StoreError::Corrupt("direct chat vanished".into())))?;
        let mut member = tx.member(chat.id, caller, false).await?;
        if member.is_none() && mode == Mode::Write {
            tx.insert_member(&self.new_member(&chat, caller)).await?;
            // Ours, or the one a concurrent first use inserted.
            member = tx.member(chat.id, caller, false).await?;
        }
        Ok(Some(Access { chat, member }))
    }

    /// A fresh membership: nothing unread, placed by the chat's activity.
    pub(super) fn new_member(&self, chat: &ChatRow, user: UserId) -> MemberRow {
        MemberRow {
            chat_id: chat.id,
            user_id: user,
            joined: self.ids.next_id(),
            sort_key: chat.last_message.map_or(chat.id.get(), |m| m.get()),
            last_read: chat.last_message.map_or(0, |m| m.get()),
            read_seq: chat.msg_seq,
            skipped: 0,
            unread: 0,
            mentions: 0,
            draft: None,
            notif: 0,
        }
    }

    /// The chat a member may write to, checked first without a lock, then
    /// locked and checked again: membership cannot change while the lock is
    /// held, since every membership change takes it too.
    pub(super) async fn lock_as_member(
        &self,
        tx: &mut dyn Tx,
        caller: UserId,
        target: ChatTarget,
    ) -> Result<Locked> {
        let (chat, _) = self.access_for_write(tx, caller, target).await?;
        let (chat, members) = tx
            .lock_chat(chat.id)
            .await?
            .ok_or_else(Error::chat_not_found)?;
        let member = members
            .iter()
            .find(|m| m.user_id == caller)
            .cloned()
            .ok_or_else(Error::chat_not_found)?;
        Ok(Locked {
            chat,
            member,
            members,
        })
    }

    /// Like [`Core::access`] in `Write` mode, where the result is always there.
    pub(super) async fn access_for_write(
        &self,
        tx: &mut dyn Tx,
        caller: UserId,
        target: ChatTarget,
    ) -> Result<(ChatRow, MemberRow)> {
        match self.access(tx, caller, target, Mode::Write).await? {
            Some(Access {
                chat,
                member: Some(member),
            }) => Ok((chat, member)),
            _ => Err(Error::chat_not_found()),
        }
    }

    /// The chat of a target the caller is a member of, checked without a
    /// lock; `None` for a direct chat the caller has no conversation in yet,
    /// which therefore holds no message. Creates nothing.
    pub(super) async fn member_chat(
        &self,
        caller: UserId,
        target: ChatTarget,
    ) -> Result<Option<ChatRow>> {
        let mut tx = self.store.reader().await?;
        let access = self.access(tx.as_mut(), caller, target, Mode::Read).await?;
        tx.commit().await?;
        Ok(match access {
            Some(Access {
                chat,
                member: Some(_),
            }) => Some(chat),
            _ => None,
        })
    }

    /// Creates a direct chat and the caller's conversation in it, if missing:
    /// for its first message.
    pub(super) async fn open_chat(&self, caller: UserId, target: ChatTarget) -> Result<ChatRow> {
        let mut tx = self.begin().await?;
        let (chat, _) = self.access_for_write(tx.as_mut(), caller, target).await?;
        tx.commit().await?;
        Ok(chat)
    }

    /// A group the caller is a member of, for reading.
    pub(super) async fn group_read(
        &self,
        tx: &mut dyn Tx,
        caller: UserId,
        id: ChatId,
    ) -> Result<ChatRow> {
        match self
            .access(tx, caller, ChatTarget::Group(id), Mode::Read)
            .await?
        {
            Some(Access { chat, .. }) => Ok(chat),
            None => Err(Error::chat_not_found()),
        }
    }
}

/// A direct chat (or saved messages) that has no row yet, as reads show it:
/// no id (0), no message. Never stored.
pub(super) fn unopened(caller: UserId, target: ChatTarget) -> Option<ChatRow> {
    let (low, high) = match target {
        ChatTarget::Group(_) => return None,
        ChatTarget::Saved => (caller, caller),
        ChatTarget::Direct(peer) => (caller.min(peer), caller.max(peer)),
    };
    Some(ChatRow {
        id: ChatId(0),
        kind: ChatKind::Direct { low, high },
        name: String::new(),
        owner: None,
        photo: None,
        highlighted: None,
        last_message: None,
        msg_seq: 0,
    })
}

async fn group_access(tx: &mut dyn Tx, caller: UserId, id: ChatId) -> Result<Access> {
    let chat = tx
        .chat(id, false)
        .await?
        .filter(|c| c.kind == ChatKind::Group)
        .ok_or_else(Error::chat_not_found)?;
    let member = tx
        .member(id, caller, false)
        .await?
        .ok_or_else(Error::chat_not_found)?;
    Ok(Access {
        chat,
        member: Some(member),
    })
}

/// The users `ids` name, in that order; `NOT_FOUND` naming the first the
/// service does not know.
pub(super) async fn known_users(tx: &mut dyn Tx, ids: &[UserId]) -> Result<Vec<types::User>> {
    let mut known = tx.users(ids).await?;
    let mut ordered = Vec::with_capacity(ids.len());
    for id in ids {
        let at = known
            .iter()
            .position(|k| k.id == id.get())
            .ok_or_else(|| Error::NotFound(format!("user {id} not found")))?;
        ordered.push(known.swap_remove(at));
    }
    Ok(ordered)
}

/// [`known_users`] for one user.
pub(super) async fn known_user(tx: &mut dyn Tx, id: UserId) -> Result<types::User> {
    let mut known = known_users(tx, &[id]).await?;
    known
        .pop()
        .ok_or_else(|| Error::NotFound(format!("user {id} not found")))
}
