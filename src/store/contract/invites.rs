//! A group's invite links.

use async_trait::async_trait;

use crate::model::{ChatId, InviteRow, UserId};
use crate::store::StoreResult;

#[async_trait]
pub trait InviteStore: Send {
    async fn insert_invite(&mut self, invite: &InviteRow) -> StoreResult<()>;
    async fn invite(&mut self, code: &str, lock: bool) -> StoreResult<Option<InviteRow>>;
    /// A group's invites, only `creator`'s when given, oldest first.
    async fn invites(
        &mut self,
        chat: ChatId,
        creator: Option<UserId>,
    ) -> StoreResult<Vec<InviteRow>>;
    async fn delete_invite(&mut self, code: &str) -> StoreResult<()>;
    /// Counts one use of an invite.
    async fn count_invite_use(&mut self, code: &str) -> StoreResult<()>;
}
