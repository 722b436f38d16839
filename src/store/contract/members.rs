//! Memberships: who is in which chat, and each member's own state there
//! (draft, notification preference, place in the conversation list).

use async_trait::async_trait;

use crate::model::{ChatId, MemberRow, UserId};
use crate::store::StoreResult;

/// A page of one user's conversations, newest activity first.
#[derive(Clone, Copy, Debug)]
pub struct ConversationRange {
    /// Only `sort_key < before`.
    pub before: Option<u64>,
    /// Only `sort_key > after`.
    pub after: Option<u64>,
    pub limit: usize,
}

#[async_trait]
pub trait MemberStore: Send {
    async fn member(
        &mut self,
        chat: ChatId,
        user: UserId,
        lock: bool,
    ) -> StoreResult<Option<MemberRow>>;
    async fn members(&mut self, chat: ChatId) -> StoreResult<Vec<MemberRow>>;
    /// (chat, user) of every member of the given chats, oldest members first.
    async fn members_of(&mut self, chats: &[ChatId]) -> StoreResult<Vec<(ChatId, UserId)>>;
    /// Leaves an existing membership as it is (two first uses of a direct
    /// chat may race).
    async fn insert_member(&mut self, member: &MemberRow) -> StoreResult<()> {
        self.insert_members(std::slice::from_ref(member)).await
    }
    /// [`insert_member`](Self::insert_member) of each, in one write.
    async fn insert_members(&mut self, members: &[MemberRow]) -> StoreResult<()>;
    async fn remove_member(&mut self, chat: ChatId, user: UserId) -> StoreResult<()>;
    /// Writes the member's draft and notification preference, and nothing
    /// else of the row (read state moves only through
    /// [`ReadStore::mark_read`](crate::store::ReadStore::mark_read) and
    /// [`PostStore::write_posts`](crate::store::PostStore::write_posts)).
    async fn update_member(&mut self, member: &MemberRow) -> StoreResult<()>;
    async fn conversations(
        &mut self,
        user: UserId,
        range: ConversationRange,
    ) -> StoreResult<Vec<MemberRow>>;
}
