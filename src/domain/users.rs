//! The users the service knows, from the account service or from tokens.

use super::values::{DisplayName, Profile};
use super::{Core, Users};
use crate::error::Result;
use crate::model::UserId;
use crate::proto::types;

/// Registrations remembered per replica before the memory is reset; a reset
/// only costs one idempotent write per user.
const REGISTERED_CACHE: usize = 100_000;

impl Users<'_> {
    pub async fn upsert(&self, users: Vec<Profile>) -> Result<()> {
        let users: Vec<types::User> = users.into_iter().map(Profile::into_user).collect();
        let mut tx = self.begin().await?;
        tx.upsert_users(&users).await?;
        tx.commit().await?;
        self.users_changed(users.iter().map(|u| UserId(u.id)).collect())
            .await;
        Ok(())
    }

    /// After a commit that changed profiles: this replica forgets them
    /// before answering, the others when the bus tells them.
    async fn users_changed(&self, users: Vec<UserId>) {
        self.user_cache.invalidate(&users);
        self.bus.users_changed(users).await;
    }

    /// Registers a caller whose token carries a name, once per replica.
    pub async fn register(&self, user: UserId, name: &DisplayName) -> Result<()> {
        if self.is_registered(user) {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        tx.insert_user_if_absent(user, name.as_str()).await?;
        tx.commit().await?;
        // A registration never changes a known user and unknown users are
        // never cached, so no entry is stale now; the word goes out anyway
        // (one small publish per user and replica) so that caches stay
        // right should registration ever update a profile.
        self.users_changed(vec![user]).await;
        let mut registered = self.registered_users();
        if registered.len() >= REGISTERED_CACHE {
            registered.clear();
        }
        registered.insert(user);
        Ok(())
    }
}

impl Core {
    fn is_registered(&self, user: UserId) -> bool {
        self.registered_users().contains(&user)
    }
}
