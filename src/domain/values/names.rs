//! Names and codes: a group's name, a user's display name and username, a
//! bot's cloak name, an invite code, and a user's profile as a whole.

use super::{short, trimmed_chars};
use crate::domain::limits::{
    MAX_CLOAK_NAME_CHARS, MAX_GROUP_NAME_CHARS, MAX_PREVIEW_BYTES, MAX_USERNAME_BYTES,
    MAX_USER_NAME_CHARS,
};
use crate::error::{Error, Result};
use crate::model::UserId;
use crate::proto::types;

/// A group's name: 1 to [`MAX_GROUP_NAME_CHARS`] characters once trimmed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupName(String);

impl GroupName {
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        trimmed_chars(field, raw, MAX_GROUP_NAME_CHARS).map(Self)
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A bot's cloak name: 1 to [`MAX_CLOAK_NAME_CHARS`] characters once trimmed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloakName(String);

impl CloakName {
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        trimmed_chars(field, raw, MAX_CLOAK_NAME_CHARS).map(Self)
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A user's display name: 1 to [`MAX_USER_NAME_CHARS`] characters once
/// trimmed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        trimmed_chars(field, raw, MAX_USER_NAME_CHARS).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A username: 1 to [`MAX_USERNAME_BYTES`] bytes, without the `@` that
/// mentions put before it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        if raw.is_empty() || raw.len() > MAX_USERNAME_BYTES || raw.starts_with('@') {
            return Err(Error::invalid(
                field,
                format!("must be 1 to {MAX_USERNAME_BYTES} bytes, without a leading @"),
            ));
        }
        Ok(Self(raw.to_owned()))
    }
}

/// An invite code as a caller hands it back: 1 to 64 characters once trimmed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InviteCode(String);

impl InviteCode {
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        let code = raw.trim();
        if code.is_empty() || code.len() > 64 {
            return Err(Error::invalid(field, "must be 1 to 64 characters"));
        }
        Ok(Self(code.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A user as the account service describes them (UpsertUsers): id, display
/// name, username and photo each within bounds.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile(types::User);

impl Profile {
    /// `field` names the user in the request, e.g. `users[3]`.
    pub fn parse(field: &str, user: types::User) -> Result<Self> {
        if user.id == 0 {
            return Err(Error::invalid(&format!("{field}.id"), "must not be 0"));
        }
        DisplayName::parse(&format!("{field}.name"), &user.name)?;
        if let Some(username) = &user.username {
            Username::parse(&format!("{field}.username"), username)?;
        }
        if let Some(photo) = &user.photo {
            short(
                &format!("{field}.photo.preview"),
                &photo.preview,
                MAX_PREVIEW_BYTES,
            )?;
        }
        Ok(Self(user))
    }

    pub fn id(&self) -> UserId {
        UserId(self.0.id)
    }

    pub fn into_user(self) -> types::User {
        self.0
    }
}
