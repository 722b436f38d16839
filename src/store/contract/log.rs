//! The update log: each user's gap-free sequence of changes to deliver.

use async_trait::async_trait;

use crate::model::{LoggedUpdate, NewChange, UserId};
use crate::store::StoreResult;

#[async_trait]
pub trait LogStore: Send {
    /// Appends each change to its recipients' logs (the payload once);
    /// returns every recipient's entry with its seq.
    async fn append_changes(&mut self, changes: Vec<NewChange>) -> StoreResult<Vec<LoggedUpdate>>;
    /// The newest seq of the user's log (0 when empty).
    async fn update_head(&mut self, user: UserId) -> StoreResult<u64>;
    /// The newest seq of each of `users`' logs that has one, in one read:
    /// what a replica compares with what its streams delivered.
    async fn update_heads(&mut self, users: &[UserId]) -> StoreResult<Vec<(UserId, u64)>>;
    /// The oldest seq still kept, if any entry is.
    async fn oldest_update(&mut self, user: UserId) -> StoreResult<Option<u64>>;
    /// Entries with seq > `after`, in order: up to `limit` of them, fewer when
    /// their payloads pass `max_bytes` (but always at least one).
    async fn updates_after(
        &mut self,
        user: UserId,
        after: u64,
        limit: usize,
        max_bytes: usize,
    ) -> StoreResult<Vec<LoggedUpdate>>;
}
