//! Turns a caller-relative chat target into the chat and the caller's place
//! in it, creating direct chats on first use. Outsiders get `NOT_FOUND`
//! whether or not the chat exists.

use super::ids::{ChatId, UserId};
use super::target::ChatTarget;
use super::Core;
use crate::error::{Error, Result};
use crate::store::{ChatKind, ChatRow, MemberRow, StoreError, Tx};

/// Whether resolving may create the direct chat and the caller's membership.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Reads: nothing is created; a direct chat that does not exist yet is `None`.
    Read,
    /// Writes: the direct chat and the caller's membership are created if
    /// missing, and the chat row is locked until commit.
    Write,
}

pub struct Access {
    pub chat: ChatRow,
    /// The caller's membership; `None` only in `Read` mode for a direct chat
    /// the peer created and the caller never touched.
    pub member: Option<MemberRow>,
}

impl Core {
    pub async fn access(
        &self,
        tx: &mut dyn Tx,
        caller: UserId,
        target: ChatTarget,
        mode: Mode,
    ) -> Result<Option<Access>> {
        let lock = mode == Mode::Write;
        let (low, high) = match target {
            ChatTarget::Group(id) => return group_access(tx, caller, id, lock).await.map(Some),
            ChatTarget::Saved => (caller, caller),
            ChatTarget::Direct(peer) => (caller.min(peer), caller.max(peer)),
        };
        let mut chat = tx.direct_chat(low, high, lock).await?;
        if chat.is_none() {
            let wanted = if low == high {
                vec![low]
            } else {
                vec![low, high]
            };
            let known = tx.users(&wanted).await?;
            if let Some(missing) = wanted
                .iter()
                .find(|u| !known.iter().any(|k| k.id == u.get()))
            {
                return Err(Error::NotFound(format!("user {missing} not found")));
            }
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
            };
            match tx.insert_chat(&row).await {
                // Both sides opened it at the same moment: use theirs.
                Err(StoreError::Duplicate) => {}
                other => other?,
            }
            chat = tx.direct_chat(low, high, lock).await?;
        }
        let chat =
            chat.ok_or_else(|| Error::Store(StoreError::Corrupt("direct chat vanished".into())))?;
        let mut member = tx.member(chat.id, caller, lock).await?;
        if member.is_none() && mode == Mode::Write {
            let row = self.new_member(&chat, caller);
            tx.insert_member(&row).await?;
            member = Some(row);
        }
        Ok(Some(Access { chat, member }))
    }

    /// A fresh membership: nothing unread, placed by the chat's activity.
    pub fn new_member(&self, chat: &ChatRow, user: UserId) -> MemberRow {
        MemberRow {
            chat_id: chat.id,
            user_id: user,
            joined: self.ids.next_id(),
            sort_key: chat.last_message.map_or(chat.id.get(), |m| m.get()),
            last_read: chat.last_message.map_or(0, |m| m.get()),
            unread: 0,
            mentions: 0,
            draft: None,
            notif: 0,
        }
    }

    /// Like [`Core::access`] in `Write` mode, where the result is always there.
    pub async fn access_for_write(
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
}

async fn group_access(tx: &mut dyn Tx, caller: UserId, id: ChatId, lock: bool) -> Result<Access> {
    let chat = tx
        .chat(id, lock)
        .await?
        .filter(|c| c.kind == ChatKind::Group)
        .ok_or_else(Error::chat_not_found)?;
    let member = tx
        .member(id, caller, lock)
        .await?
        .ok_or_else(Error::chat_not_found)?;
    Ok(Access {
        chat,
        member: Some(member),
    })
}
