//! Messages of the embedded engine.

use async_trait::async_trait;

use super::tx::MemoryTx;
use crate::model::{ChatId, MessageId, MessageRow, UserId};
use crate::store::{MessageStore, StoreResult};

#[async_trait]
impl MessageStore for MemoryTx {
    async fn message(
        &mut self,
        chat: ChatId,
        id: MessageId,
        _lock: bool,
    ) -> StoreResult<Option<MessageRow>> {
        Ok(self
            .state
            .messages
            .get(&id)
            .filter(|m| m.chat_id == chat)
            .cloned())
    }

    async fn messages_by_id(&mut self, ids: &[MessageId]) -> StoreResult<Vec<MessageRow>> {
        Ok(ids
            .iter()
            .filter_map(|id| self.state.messages.get(id).cloned())
            .collect())
    }

    async fn message_by_client_id(
        &mut self,
        author: UserId,
        client_id: u64,
    ) -> StoreResult<Option<MessageRow>> {
        Ok(self
            .state
            .client_ids
            .get(&(author, client_id))
            .and_then(|id| self.state.messages.get(id))
            .cloned())
    }

    async fn update_message(&mut self, message: &MessageRow) -> StoreResult<()> {
        self.put_message(message.clone());
        Ok(())
    }

    async fn delete_messages(&mut self, chat: ChatId, ids: &[MessageId]) -> StoreResult<()> {
        for id in ids {
            if self
                .state
                .messages
                .get(id)
                .is_some_and(|m| m.chat_id == chat)
            {
                if let Some(removed) = self.state.remove_message(*id) {
                    self.undo.push(Box::new(move |s| {
                        s.put_message(removed);
                    }));
                }
            }
        }
        Ok(())
    }

    async fn messages_before(
        &mut self,
        chat: ChatId,
        before: Option<MessageId>,
        limit: usize,
    ) -> StoreResult<Vec<MessageRow>> {
        let end = before.unwrap_or(MessageId(u64::MAX));
        Ok(self
            .state
            .by_chat
            .range((chat, MessageId(0))..(chat, end))
            .rev()
            .take(limit)
            .map(|(_, id)| self.state.messages[id].clone())
            .collect())
    }

    async fn messages_after(
        &mut self,
        chat: ChatId,
        after: MessageId,
        limit: usize,
    ) -> StoreResult<Vec<MessageRow>> {
        Ok(self
            .state
            .by_chat
            .range((chat, MessageId(after.get().saturating_add(1)))..=(chat, MessageId(u64::MAX)))
            .take(limit)
            .map(|(_, id)| self.state.messages[id].clone())
            .collect())
    }
}
