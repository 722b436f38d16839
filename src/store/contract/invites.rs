//! A group's invite links.

use async_trait::async_trait;

use crate::model::{ChatId, InviteRow, UserId};
use crate::store::StoreResult;

#[async_trait]
pub trait InviteStore: Send {
    async fn insert_invite(&mut self, invite: &InviteRow) -> StoreResult<()>;
    async fn invite(&mut self, code: &str, lock: bool) -> StoreResult<Option<InviteRow>>;
    /// A group's invites usable at `now` (unix ms), only `creator`'s when
    /// given, oldest first, at most `limit`.
    async fn invites(
        &mut self,
        chat: ChatId,
        creator: Option<UserId>,
        now: u64,
        limit: usize,
    ) -> StoreResult<Vec<InviteRow>>;
    /// Deletes a group's invites that are no longer usable at `now` (unix
    /// ms); returns how many went. Bounded, since a group's invites are.
    async fn prune_invites(&mut self, chat: ChatId, now: u64) -> StoreResult<u64>;
    /// How many invites a group has, usable or not.
    async fn count_invites(&mut self, chat: ChatId) -> StoreResult<u64>;
    async fn delete_invite(&mut self, code: &str) -> StoreResult<()>;
    /// Counts one use of an invite.
    async fn count_invite_use(&mut self, code: &str) -> StoreResult<()>;
}
