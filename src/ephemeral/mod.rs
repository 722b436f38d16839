//! Short-lived state with TTLs that must never touch the database: who is
//! typing where, and each user's per-second budget of typing calls. Kept per
//! replica ([`local`]) or in Redis ([`redis`]) when several replicas share it.
//!
//! Fan-out of the resulting updates is the bus's job, not this module's: the
//! domain asks here whether something changed and then publishes on the bus.

pub mod local;
pub mod redis;

use async_trait::async_trait;

use crate::model::{TypingAction, UserId};

/// The ephemeral state could not be read or written.
///
/// The text is the one clients saw when this state lived in the bus.
#[derive(Debug, thiserror::Error)]
#[error("bus unavailable: {0}")]
pub struct EphemeralError(pub String);

/// What a typing call changed, and so whether to tell anyone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypingChange {
    /// Started, or switched to another action: broadcast.
    Changed,
    /// The same action inside its TTL: the others know already.
    Same,
    /// Just after a message from the same user: a late `typing = true`
    /// racing the send, which must not light the indicator again.
    Suppressed,
}

/// Short-lived state with TTLs, kept per replica or in Redis.
#[async_trait]
pub trait Ephemeral: Send + Sync + 'static {
    /// Marks `user` typing `action` in `chat` for the typing TTL.
    async fn start_typing(
        &self,
        chat: &str,
        user: UserId,
        action: TypingAction,
    ) -> Result<TypingChange, EphemeralError>;
    /// Ends typing; `after_send` also suppresses a late start for a moment.
    /// Returns whether the user was typing (so that the end is news).
    async fn stop_typing(
        &self,
        chat: &str,
        user: UserId,
        after_send: bool,
    ) -> Result<bool, EphemeralError>;
    /// Counts one typing call against the user's per-second budget.
    async fn allow_typing(&self, user: UserId) -> Result<bool, EphemeralError>;
}

/// How long a typing indicator lives without being renewed.
pub const TYPING_TTL_MS: u64 = 6_000;
/// How long after a send a late `typing = true` from its author is ignored.
pub const TYPING_SUPPRESS_MS: u64 = 1_000;
/// Typing calls a user may make per second.
pub const TYPING_PER_SECOND: u64 = 5;
