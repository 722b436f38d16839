//! Snowflake ids: 41 bits of milliseconds since [`EPOCH_MS`], 10 bits of
//! worker, 12 bits of sequence. Ids are time-sortable, and unique across
//! replicas because each replica leases its worker number from the store
//! rather than having it set by hand. The generator reads [`now_ms`] plus a
//! skew of its own: the seam through which tests play replicas whose clocks
//! disagree.

use std::sync::Mutex;

use super::clock::now_ms;

/// 2020-01-01T00:00:00Z: keeps ids positive as Postgres `BIGINT` until 2089.
pub const EPOCH_MS: u64 = 1_577_836_800_000;
const WORKER_BITS: u32 = 10;
const SEQUENCE_BITS: u32 = 12;
pub const WORKER_COUNT: u64 = 1 << WORKER_BITS;
const SEQUENCE_MASK: u64 = (1 << SEQUENCE_BITS) - 1;

/// Hands out ids for one replica.
pub struct Snowflakes {
    worker: u64,
    /// Added to the system clock: a test seam for replicas whose clocks
    /// disagree, 0 in production.
    skew_ms: i64,
    /// (last millisecond used, next sequence in it). A std mutex: held for a
    /// few instructions, never across an await.
    state: Mutex<(u64, u64)>,
}

impl Snowflakes {
    pub fn new(worker: u64) -> Self {
        Self::with_skew(worker, 0)
    }

    /// Ids as a replica whose clock is `skew_ms` off would make them.
    pub fn with_skew(worker: u64, skew_ms: i64) -> Self {
        Self {
            worker: worker % WORKER_COUNT,
            skew_ms,
            state: Mutex::new((0, 0)),
        }
    }

    pub fn next_id(&self) -> u64 {
        self.next_after(0)
    }

    /// An id above `floor` (an id from any replica): another replica's
    /// clock may run ahead of ours, and ids within a chat must still grow.
    pub fn next_after(&self, floor: u64) -> u64 {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (last_ms, next_seq) = *state;
        let now = now_ms().saturating_add_signed(self.skew_ms);
        // The floor's own millisecond is not enough: its worker bits may be
        // above ours. The next millisecond is above it whatever they are.
        let floor_ms = if floor == 0 {
            0
        } else {
            (floor >> (WORKER_BITS + SEQUENCE_BITS)) + EPOCH_MS + 1
        };
        // A clock that steps back must not produce an id below one already given.
        let mut ms = now.max(last_ms).max(floor_ms);
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
    fn ids_after_a_floor_from_a_clock_far_ahead_are_above_it() {
        let ahead = Snowflakes::with_skew(900, 5_000);
        let behind = Snowflakes::with_skew(1, -5_000);
        let mut floor = ahead.next_id();
        for _ in 0..100 {
            let id = behind.next_after(floor);
            assert!(id > floor, "{id} not above {floor}");
            floor = id;
        }
    }

    #[test]
    fn different_workers_never_collide() {
        let a = Snowflakes::new(1);
        let b = Snowflakes::new(2);
        let from_a: std::collections::HashSet<u64> = (0..5000).map(|_| a.next_id()).collect();
        assert!((0..5000).all(|_| !from_a.contains(&b.next_id())));
    }
}
