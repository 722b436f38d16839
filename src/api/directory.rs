//! `osmium.chat.v1.UserDirectory`: the account service keeps our users current.

use std::collections::HashSet;
use std::sync::Arc;

use tonic::{Request, Status};

use super::{serve, Reply};
use crate::auth::{Caller, Role};
use crate::domain::limits::MAX_UPSERT_USERS;
use crate::domain::values::Profile;
use crate::domain::Core;
use crate::error::Error;
use crate::proto::service::user_directory_server::UserDirectory;
use crate::proto::service::UpsertUsers;
use crate::proto::types;

#[derive(Clone)]
pub struct DirectoryApi {
    core: Arc<Core>,
}

impl DirectoryApi {
    pub fn new(core: Arc<Core>) -> Self {
        Self { core }
    }
}

#[tonic::async_trait]
impl UserDirectory for DirectoryApi {
    async fn upsert_users(&self, request: Request<UpsertUsers>) -> Reply<()> {
        serve(request, service_only, |(), r| async move {
            let profiles = profiles(r.users)?;
            self.core.users().upsert(profiles).await
        })
        .await
    }
}

/// Only the account service keeps the directory.
fn service_only(caller: &Caller) -> Result<(), Status> {
    if caller.role != Role::Service {
        return Err(Status::permission_denied(
            "UpsertUsers needs a service token",
        ));
    }
    Ok(())
}

/// `UpsertUsers.users`: a bounded batch of profiles, each id listed once.
pub(super) fn profiles(users: Vec<types::User>) -> crate::error::Result<Vec<Profile>> {
    if users.len() > MAX_UPSERT_USERS {
        return Err(Error::invalid(
            "users",
            format!("{} users, at most {MAX_UPSERT_USERS} per call", users.len()),
        ));
    }
    let mut seen = HashSet::new();
    let mut profiles = Vec::with_capacity(users.len());
    for (i, user) in users.into_iter().enumerate() {
        let profile = Profile::parse(&format!("users[{i}]"), user)?;
        if !seen.insert(profile.id()) {
            return Err(Error::invalid(&format!("users[{i}].id"), "listed twice"));
        }
        profiles.push(profile);
    }
    Ok(profiles)
}
