//! Short-lived state with TTLs that must never touch the database: who is
//! typing where, and each user's rate-limit state per limited call. Kept per
//! replica ([`local`]) or in Redis ([`redis`]) when several replicas share it.
//!
//! Fan-out of the resulting updates is the bus's job, not this module's: the
//! domain asks here whether something changed and then publishes on the bus.

pub mod local;
pub mod redis;

use std::time::Duration;

use async_trait::async_trait;

use crate::domain::limits::Rate;
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
    /// Counts one call of `user` against `limit`'s `rate` (`limit` names the
    /// call, e.g. `send`); a refused call is not counted.
    async fn admit(
        &self,
        limit: &str,
        user: UserId,
        rate: Rate,
    ) -> Result<Admission, EphemeralError>;
}

/// Whether a rate-limited call may go ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    /// Refused: the next call would be admitted after this long.
    RetryAfter(Duration),
}

/// One step of the generic cell rate algorithm, in microseconds: `tat` is
/// the moment the user's burst is whole again (absent or past: whole now).
/// A call uses up one interval of it; it is admitted while the burst it
/// leaves used does not exceed the rate's period. Returns the new `tat`, or
/// how long until the call would be admitted. One number per user and limit
/// is all either engine keeps.
pub fn gcra(tat: Option<u64>, now: u64, rate: Rate) -> Result<u64, Duration> {
    let tat = tat.unwrap_or(now).max(now);
    let next = tat.saturating_add(rate.interval_us());
    let allowed = now.saturating_add(rate.period_us());
    if next > allowed {
        return Err(Duration::from_micros(next - allowed));
    }
    Ok(next)
}

/// How long a typing indicator lives without being renewed.
pub const TYPING_TTL_MS: u64 = 6_000;
/// How long after a send a late `typing = true` from its author is ignored.
pub const TYPING_SUPPRESS_MS: u64 = 1_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_admitted_then_one_call_per_interval() {
        let rate = Rate::new(5, Duration::from_secs(1));
        let mut tat = None;
        for _ in 0..5 {
            tat = Some(gcra(tat, 1_000, rate).unwrap());
        }
        assert_eq!(gcra(tat, 1_000, rate), Err(Duration::from_millis(200)));
        assert_eq!(gcra(tat, 151_000, rate), Err(Duration::from_millis(50)));
        assert!(gcra(tat, 201_000, rate).is_ok(), "one interval later");
        assert_eq!(
            gcra(tat, 5_000_000, rate),
            Ok(5_200_000),
            "a long pause refills"
        );
    }
}
