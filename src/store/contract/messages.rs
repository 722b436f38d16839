//! Messages, one at a time and in pages of a chat's history.

use async_trait::async_trait;

use crate::model::{ChatId, MessageId, MessageRow, UserId};
use crate::store::StoreResult;

#[async_trait]
pub trait MessageStore: Send {
    async fn message(
        &mut self,
        chat: ChatId,
        id: MessageId,
        lock: bool,
    ) -> StoreResult<Option<MessageRow>>;
    async fn messages_by_id(&mut self, ids: &[MessageId]) -> StoreResult<Vec<MessageRow>>;
    async fn message_by_client_id(
        &mut self,
        author: UserId,
        client_id: u64,
    ) -> StoreResult<Option<MessageRow>>;
    async fn update_message(&mut self, message: &MessageRow) -> StoreResult<()>;
    async fn delete_messages(&mut self, chat: ChatId, ids: &[MessageId]) -> StoreResult<()>;
    /// Newest first, ids below `before` (all when `None`).
    async fn messages_before(
        &mut self,
        chat: ChatId,
        before: Option<MessageId>,
        limit: usize,
    ) -> StoreResult<Vec<MessageRow>>;
    /// Oldest first, ids above `after`.
    async fn messages_after(
        &mut self,
        chat: ChatId,
        after: MessageId,
        limit: usize,
    ) -> StoreResult<Vec<MessageRow>>;
}
