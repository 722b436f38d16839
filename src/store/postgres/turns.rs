//! Turns for single-statement reads: at most so many run on Postgres at
//! once, the rest wait in arrival order. A read is the database's CPU
//! alone, so past its cores more reads at once only wait inside the server,
//! spread over every call as longer tails; writes, which mostly wait on the
//! WAL flush, keep the pool's full width (group commit).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::store::StoreResult;

pub(super) struct ReadTurns {
    turns: Arc<Semaphore>,
    waiting: AtomicUsize,
}

/// A read's turn, given back when dropped.
pub(super) type Turn = OwnedSemaphorePermit;

impl ReadTurns {
    pub(super) fn new(at_once: usize) -> Self {
        Self {
            turns: Arc::new(Semaphore::new(at_once)),
            waiting: AtomicUsize::new(0),
        }
    }

    /// The next turn, in arrival order (the semaphore is fair), or the
    /// pool's own wait timeout: the caller retries on UNAVAILABLE.
    pub(super) async fn take(&self, wait: Duration) -> StoreResult<Turn> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let _counted = Counted(&self.waiting);
        let turn = tokio::time::timeout(wait, self.turns.clone().acquire_owned())
            .await
            .map_err(|_| {
                deadpool_postgres::PoolError::Timeout(deadpool_postgres::TimeoutType::Wait)
            })?
            .map_err(|_| deadpool_postgres::PoolError::Closed)?;
        Ok(turn)
    }

    /// Reads waiting for their turn now.
    pub(super) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }
}

/// Uncounts a waiting read however its wait ends, a cancelled call's included.
struct Counted<'a>(&'a AtomicUsize);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
