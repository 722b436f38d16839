//! Users: profiles as the clients see them, and lookups by username.

use async_trait::async_trait;

use crate::model::UserId;
use crate::proto::types;
use crate::store::StoreResult;

#[async_trait]
pub trait UserStore: Send {
    async fn users(&mut self, ids: &[UserId]) -> StoreResult<Vec<types::User>>;
    async fn user_ids_by_username(&mut self, names: &[String]) -> StoreResult<Vec<UserId>>;
    async fn upsert_users(&mut self, users: &[types::User]) -> StoreResult<()>;
    /// Registers a user with only a name, leaving a known user untouched.
    async fn insert_user_if_absent(&mut self, id: UserId, name: &str) -> StoreResult<()>;
}
