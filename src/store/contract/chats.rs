//! Chats: direct chats and groups, without their members and messages.

use async_trait::async_trait;

use crate::model::{ChatId, ChatRow, MemberRow, MessageId, UserId};
use crate::store::StoreResult;

#[async_trait]
pub trait ChatStore: Send {
    async fn chat(&mut self, id: ChatId, lock: bool) -> StoreResult<Option<ChatRow>>;
    async fn chats(&mut self, ids: &[ChatId]) -> StoreResult<Vec<ChatRow>>;
    /// The chat locked against other writers of its messages and members,
    /// with its members oldest first; `None` when it does not exist.
    async fn lock_chat(&mut self, id: ChatId) -> StoreResult<Option<(ChatRow, Vec<MemberRow>)>>;
    async fn direct_chat(
        &mut self,
        low: UserId,
        high: UserId,
        lock: bool,
    ) -> StoreResult<Option<ChatRow>>;
    /// Fails with [`StoreError::Duplicate`](crate::store::StoreError::Duplicate)
    /// when a direct chat of the same pair was created concurrently.
    async fn insert_chat(&mut self, chat: &ChatRow) -> StoreResult<()>;
    /// Moves the chat's last message back to `last` (its messages after it
    /// are gone), and every member's conversation with it: a sort key past
    /// `last` (the chat's id when there is none) becomes it, so that the
    /// conversation shows and sorts by the message it now ends with.
    async fn set_last_message(&mut self, chat: ChatId, last: Option<MessageId>) -> StoreResult<()>;
    /// Writes a group's name, owner, photo and highlighted message.
    async fn update_chat(&mut self, chat: &ChatRow) -> StoreResult<()>;
    /// Deletes a chat with its members, messages and invites.
    async fn delete_chat(&mut self, chat: ChatId) -> StoreResult<()>;
}
