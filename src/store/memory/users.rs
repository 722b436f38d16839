//! Users of the embedded engine.

use async_trait::async_trait;

use super::tx::MemoryTx;
use crate::model::UserId;
use crate::proto::types;
use crate::store::{StoreResult, UserStore};

#[async_trait]
impl UserStore for MemoryTx {
    async fn users(&mut self, ids: &[UserId]) -> StoreResult<Vec<types::User>> {
        Ok(ids
            .iter()
            .filter_map(|id| self.state.users.get(id).cloned())
            .collect())
    }

    async fn user_ids_by_username(&mut self, names: &[String]) -> StoreResult<Vec<UserId>> {
        Ok(names
            .iter()
            .filter_map(|name| self.state.by_username.get(name))
            .flatten()
            .copied()
            .collect())
    }

    async fn upsert_users(&mut self, users: &[types::User]) -> StoreResult<()> {
        for user in users {
            let id = UserId(user.id);
            let previous = self.state.put_user(user.clone());
            self.undo.push(Box::new(move |s| {
                s.remove_user(id);
                if let Some(p) = previous {
                    s.put_user(p);
                }
            }));
        }
        Ok(())
    }

    async fn insert_user_if_absent(&mut self, id: UserId, name: &str) -> StoreResult<()> {
        if !self.state.users.contains_key(&id) {
            let user = types::User {
                id: id.get(),
                name: name.to_owned(),
                ..Default::default()
            };
            self.upsert_users(&[user]).await?;
        }
        Ok(())
    }
}
