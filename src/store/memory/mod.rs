//! The embedded engine: every table in one process, behind one async mutex
//! that a transaction holds from begin to commit, so transactions are
//! serial. Each write records how to undo itself; a transaction dropped
//! without commit replays those in reverse, which gives the same
//! all-or-nothing behaviour as Postgres.

mod chats;
mod invites;
mod log;
mod members;
mod messages;
mod pages;
mod posts;
mod reads;
mod state;
mod tx;
mod users;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Mutex;

use super::{Store, StoreResult, Tx};
use crate::model::clock::now_ms;
use state::State;
use tx::MemoryTx;

#[derive(Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn begin(&self) -> StoreResult<Box<dyn Tx>> {
        Ok(Box::new(MemoryTx::new(
            self.state.clone().lock_owned().await,
        )))
    }

    async fn prune_updates(
        &self,
        retention: std::time::Duration,
        _batch: usize,
    ) -> StoreResult<u64> {
        let cutoff = now_ms().saturating_sub(retention.as_millis() as u64);
        let mut state = self.state.lock().await;
        let mut pruned = 0;
        for log in state.logs.values_mut() {
            while log.entries.front().is_some_and(|(at, _)| *at < cutoff) {
                log.entries.pop_front();
                pruned += 1;
            }
        }
        Ok(pruned)
    }

    async fn prune_dead_invites(&self, now: u64, _batch: usize) -> StoreResult<u64> {
        let mut state = self.state.lock().await;
        let dead: Vec<String> = state
            .invites
            .values()
            .filter(|i| !i.usable(now))
            .map(|i| i.code.clone())
            .collect();
        for code in &dead {
            state.remove_invite(code);
        }
        Ok(dead.len() as u64)
    }

    // One process owns the embedded state, so one worker is enough, and
    // its lease never ends.
    async fn lease_worker(&self, _holder: &str, _ttl: Duration) -> StoreResult<Option<u64>> {
        Ok(Some(0))
    }

    async fn renew_worker(&self, _worker: u64, _holder: &str, _ttl: Duration) -> StoreResult<bool> {
        Ok(true)
    }

    async fn release_worker(&self, _worker: u64, _holder: &str) -> StoreResult<()> {
        Ok(())
    }

    fn engine(&self) -> &'static str {
        "memory"
    }
}
