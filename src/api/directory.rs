//! `osmium.chat.v1.UserDirectory`: the account service keeps our users current.

use std::collections::HashSet;
use std::sync::Arc;

use tonic::{Request, Status};

use super::{parse, serve, Reply};
use crate::auth::{Caller, Role};
use crate::domain::limits::{MAX_UPSERT_USERS, MAX_USERNAME_BYTES, MAX_USER_NAME_CHARS};
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
            check_users(&r.users)?;
            self.core.upsert_users(&r.users).await
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

/// `UpsertUsers.users`: a bounded batch, each id nonzero and listed once,
/// each name, username and photo preview within bounds.
fn check_users(users: &[types::User]) -> crate::error::Result<()> {
    if users.len() > MAX_UPSERT_USERS {
        return Err(Error::invalid(
            "users",
            format!("{} users, at most {MAX_UPSERT_USERS} per call", users.len()),
        ));
    }
    let mut seen = HashSet::new();
    for (i, user) in users.iter().enumerate() {
        parse::nonzero(&format!("users[{i}].id"), user.id)?;
        if !seen.insert(user.id) {
            return Err(Error::invalid(&format!("users[{i}].id"), "listed twice"));
        }
        let name = user.name.trim();
        if name.is_empty() || name.chars().count() > MAX_USER_NAME_CHARS {
            return Err(Error::invalid(
                &format!("users[{i}].name"),
                format!("must be 1 to {MAX_USER_NAME_CHARS} characters"),
            ));
        }
        if let Some(username) = &user.username {
            if username.is_empty()
                || username.len() > MAX_USERNAME_BYTES
                || username.starts_with('@')
            {
                return Err(Error::invalid(
                    &format!("users[{i}].username"),
                    format!("must be 1 to {MAX_USERNAME_BYTES} bytes, without a leading @"),
                ));
            }
        }
        if let Some(photo) = &user.photo {
            parse::preview(&format!("users[{i}].photo.preview"), &photo.preview)?;
        }
    }
    Ok(())
}
