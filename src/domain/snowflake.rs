//! Snowflake ids: 41 bits of milliseconds since [`EPOCH_MS`], 10 bits of
//! worker, 12 bits of sequence. Ids are time-sortable, and unique across
//! replicas because each replica leases its worker number from the store
//! rather than having it set by hand.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// 2020-01-01T00:00:00Z: keeps ids positive as Postgres `BIGINT` until 2089.
pub const EPOCH_MS: u64 = 1_577_836_800_000;
const WORKER_BITS: u32 = 10;
const SEQUENCE_BITS: u32 = 12;
pub const WORKER_COUNT: u64 = 1 << WORKER_BITS;
const SEQUENCE_MASK: u64 = (1 << SEQUENCE_BITS) - 1;

/// Hands out ids for one replica.
pub struct Snowflakes {
    worker: u64,
    /// (last millisecond used, next sequence in it). A std mutex: held for a
    /// few instructions, never across an await.
    state: Mutex<(u64, u64)>,
}

impl Snowflakes {
    pub fn new(worker: u64) -> Self {
        Self {
            worker: worker % WORKER_COUNT,
            state: Mutex::new((0, 0)),
        }
    }

    pub fn next_id(&self) -> u64 {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (last_ms, next_seq) = *state;
        // A clock that steps back must not produce an id below one already given.
        let mut ms = now_ms().max(last_ms);
        let mut seq = if ms == last_ms { next_seq } else { 0 };
        if seq > SEQUENCE_MASK {
            // 4096 ids in one millisecond: borrow the next millisecond.
            ms += 1;
            seq = 0;
        }
        *state = (ms, seq + 1);
        ((ms - EPOCH_MS) << (WORKER_BITS + SEQUENCE_BITS)) | (self.worker << SEQUENCE_BITS) | seq
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(EPOCH_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_strictly_increasing_even_past_the_sequence_space() {
        let ids = Snowflakes::new(3);
        let mut last = 0;
        for _ in 0..10_000 {
            let id = ids.next_id();
            assert!(id > last, "{id} after {last}");
            assert_eq!((id >> SEQUENCE_BITS) & (WORKER_COUNT - 1), 3);
            last = id;
        }
        assert!(last < i64::MAX as u64);
    }

    #[test]
    fn different_workers_never_collide() {
        let a = Snowflakes::new(1);
        let b = Snowflakes::new(2);
        let from_a: std::collections::HashSet<u64> = (0..5000).map(|_| a.next_id()).collect();
        assert!((0..5000).all(|_| !from_a.contains(&b.next_id())));
    }
}
