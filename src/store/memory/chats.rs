//! Chats of the embedded engine.

use async_trait::async_trait;

use super::tx::MemoryTx;
use crate::model::{ChatId, ChatKind, ChatRow, MemberRow, MessageId, UserId};
use crate::store::{ChatStore, MemberStore, StoreError, StoreResult};

#[async_trait]
impl ChatStore for MemoryTx {
    async fn chat(&mut self, id: ChatId, _lock: bool) -> StoreResult<Option<ChatRow>> {
        Ok(self.state.chats.get(&id).cloned())
    }

    async fn chats(&mut self, ids: &[ChatId]) -> StoreResult<Vec<ChatRow>> {
        Ok(ids
            .iter()
            .filter_map(|id| self.state.chats.get(id).cloned())
            .collect())
    }

    async fn lock_chat(&mut self, id: ChatId) -> StoreResult<Option<(ChatRow, Vec<MemberRow>)>> {
        let Some(chat) = self.state.chats.get(&id).cloned() else {
            return Ok(None);
        };
        let members = self.members(id).await?;
        Ok(Some((chat, members)))
    }

    async fn direct_chat(
        &mut self,
        low: UserId,
        high: UserId,
        _lock: bool,
    ) -> StoreResult<Option<ChatRow>> {
        Ok(self
            .state
            .direct
            .get(&(low, high))
            .and_then(|id| self.state.chats.get(id))
            .cloned())
    }

    async fn insert_chat(&mut self, chat: &ChatRow) -> StoreResult<()> {
        if self.state.chats.contains_key(&chat.id) {
            return Err(StoreError::IdTaken);
        }
        if let ChatKind::Direct { low, high } = chat.kind {
            if self.state.direct.contains_key(&(low, high)) {
                return Err(StoreError::Duplicate);
            }
        }
        self.put_chat(chat.clone());
        Ok(())
    }

    async fn set_last_message(&mut self, chat: ChatId, last: Option<MessageId>) -> StoreResult<()> {
        if let Some(mut row) = self.state.chats.get(&chat).cloned() {
            row.last_message = last;
            self.put_chat(row);
        }
        let sort_key = last.map_or(chat.get(), MessageId::get);
        let members: Vec<UserId> = self
            .state
            .chat_members(chat)
            .filter(|m| m.sort_key > sort_key)
            .map(|m| m.user_id)
            .collect();
        for user in members {
            self.change_member(chat, user, |m| m.sort_key = sort_key);
        }
        Ok(())
    }

    async fn update_chat(&mut self, chat: &ChatRow) -> StoreResult<()> {
        if let Some(current) = self.state.chats.get(&chat.id).cloned() {
            self.put_chat(ChatRow {
                name: chat.name.clone(),
                owner: chat.owner,
                photo: chat.photo.clone(),
                highlighted: chat.highlighted,
                ..current
            });
        }
        Ok(())
    }

    async fn delete_chat(&mut self, chat: ChatId) -> StoreResult<()> {
        let members: Vec<UserId> = self.state.chat_members(chat).map(|m| m.user_id).collect();
        for user in members {
            self.take_member(chat, user);
        }
        let messages: Vec<MessageId> = self
            .state
            .by_chat
            .range((chat, MessageId(0))..=(chat, MessageId(u64::MAX)))
            .map(|(_, id)| *id)
            .collect();
        for id in messages {
            self.take_message(id);
        }
        let invites: Vec<String> = self
            .state
            .chat_invites(chat)
            .map(|i| i.code.clone())
            .collect();
        for code in invites {
            self.take_invite(&code);
        }
        if let Some(removed) = self.state.remove_chat(chat) {
            self.undo.push(Box::new(move |s| {
                s.put_chat(removed);
            }));
        }
        Ok(())
    }
}
