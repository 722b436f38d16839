//! Memberships of the embedded engine.

use async_trait::async_trait;

use super::tx::MemoryTx;
use crate::model::{ChatId, MemberRow, UserId};
use crate::store::{ConversationRange, MemberStore, StoreResult};

#[async_trait]
impl MemberStore for MemoryTx {
    async fn member(
        &mut self,
        chat: ChatId,
        user: UserId,
        _lock: bool,
    ) -> StoreResult<Option<MemberRow>> {
        Ok(self
            .state
            .members
            .get(&(chat, user))
            .map(|m| self.state.view(m)))
    }

    async fn members(&mut self, chat: ChatId) -> StoreResult<Vec<MemberRow>> {
        let mut members: Vec<MemberRow> = self
            .state
            .chat_members(chat)
            .map(|m| self.state.view(m))
            .collect();
        members.sort_by_key(|m| (m.joined, m.user_id));
        Ok(members)
    }

    async fn members_of(&mut self, chats: &[ChatId]) -> StoreResult<Vec<(ChatId, UserId)>> {
        let mut all = Vec::new();
        for chat in chats {
            let mut members: Vec<&MemberRow> = self.state.chat_members(*chat).collect();
            members.sort_by_key(|m| (m.joined, m.user_id));
            all.extend(members.iter().map(|m| (m.chat_id, m.user_id)));
        }
        Ok(all)
    }

    async fn insert_members(&mut self, members: &[MemberRow]) -> StoreResult<()> {
        for member in members {
            if !self
                .state
                .members
                .contains_key(&(member.chat_id, member.user_id))
            {
                self.put_member(member.clone());
            }
        }
        Ok(())
    }

    async fn remove_member(&mut self, chat: ChatId, user: UserId) -> StoreResult<()> {
        self.take_member(chat, user);
        Ok(())
    }

    async fn update_member(&mut self, member: &MemberRow) -> StoreResult<()> {
        let (draft, notif) = (member.draft.clone(), member.notif);
        self.change_member(member.chat_id, member.user_id, |m| {
            m.draft = draft;
            m.notif = notif;
        });
        Ok(())
    }

    async fn conversations(
        &mut self,
        user: UserId,
        range: ConversationRange,
    ) -> StoreResult<Vec<MemberRow>> {
        let low = range.after.map_or(0, |a| a.saturating_add(1));
        let high = range.before.unwrap_or(u64::MAX);
        if low >= high {
            return Ok(Vec::new());
        }
        Ok(self
            .state
            .by_user
            .range((user, low, ChatId(0))..(user, high, ChatId(0)))
            .rev()
            .take(range.limit)
            .filter_map(|(u, _, c)| self.state.members.get(&(*c, *u)))
            .map(|m| self.state.view(m))
            .collect())
    }
}
