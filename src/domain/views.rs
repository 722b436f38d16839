//! A chat as one user sees it: the `Chat` GetChat returns, and the bounded
//! one an update carries.

use super::render;
use super::Core;
use crate::error::Result;
use crate::model::{ChatId, ChatKind, ChatRow, MemberRow, MessageRow, UserId};
use crate::proto::chats;
use crate::store::Tx;

/// A chat's members, oldest first.
pub async fn participants(tx: &mut dyn Tx, chat: ChatId) -> Result<Vec<UserId>> {
    Ok(tx
        .members_of(&[chat])
        .await?
        .into_iter()
        .map(|(_, u)| u)
        .collect())
}

/// Users sent along per group in a page or a chat update: enough for a
/// title and avatars, bounded so a page or an update of big groups stays
/// small. The full participant ids are in each `Group`.
pub const PARTICIPANT_USERS_PER_GROUP: usize = 10;

impl Core {
    /// The `Chat` as `member` sees it, with every participant of a group.
    pub(super) async fn chat_view(
        &self,
        tx: &mut dyn Tx,
        chat: &ChatRow,
        member: &MemberRow,
    ) -> Result<chats::Chat> {
        let last = match chat.last_message {
            Some(id) => tx.message(chat.id, id, false).await?,
            None => None,
        };
        let participants = match chat.kind {
            ChatKind::Group => Some(participants(tx, chat.id).await?),
            ChatKind::Direct { .. } => None,
        };
        let mut wanted: Vec<UserId> =
            render::referenced_users(chat, member.user_id, last.as_ref().map(|m| m.author))
                .collect();
        for user in participants.iter().flatten() {
            if !wanted.contains(user) {
                wanted.push(*user);
            }
        }
        let users = self.user_cache.users(tx, &wanted).await?;
        let last = last.map(|m| render::last_message(m.into(), chat, member.user_id));
        Ok(render::chat(
            chat,
            member,
            last,
            participants.as_deref(),
            users,
        ))
    }

    /// The `Chat` an update carries for `member`: like GetChat's, with the
    /// users bounded to the peer, the last author and a few participants.
    pub(super) async fn update_view(
        &self,
        tx: &mut dyn Tx,
        chat: &ChatRow,
        member: &MemberRow,
        last: Option<&MessageRow>,
        participants: &[UserId],
    ) -> Result<chats::Chat> {
        let is_group = chat.kind == ChatKind::Group;
        let mut wanted: Vec<UserId> =
            render::referenced_users(chat, member.user_id, last.map(|m| m.author)).collect();
        if is_group {
            for user in participants.iter().take(PARTICIPANT_USERS_PER_GROUP) {
                if !wanted.contains(user) {
                    wanted.push(*user);
                }
            }
        }
        let users = self.user_cache.users(tx, &wanted).await?;
        Ok(render::chat(
            chat,
            member,
            last.map(|m| render::message(m, chat, member.user_id)),
            is_group.then_some(participants),
            users,
        ))
    }
}
