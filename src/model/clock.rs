//! The time source: wall-clock milliseconds, as every timestamp the service
//! writes (invite expiry, edit times, log retention, rate-limit windows,
//! token expiry) reads them. Ids read it too, through
//! [`Snowflakes`](super::snowflake::Snowflakes), whose skew is the test seam
//! for a replica whose clock is off.

use std::time::{SystemTime, UNIX_EPOCH};

use super::snowflake::EPOCH_MS;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(EPOCH_MS)
}

/// Microseconds since the Unix epoch: what rate limits count in, so that a
/// rate of many calls a second still has a whole interval between calls.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(EPOCH_MS * 1_000)
}
