//! What a `ChatRef` means once parsed: always relative to the caller.

use crate::model::{ChatId, UserId};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChatTarget {
    /// The caller's saved messages.
    Saved,
    /// The direct chat with another user (never the caller).
    Direct(UserId),
    Group(ChatId),
}
