//! Waiting until what is committed is durable, shared by every caller that
//! waits at once: one round of [`FLUSH`](super::tx) covers everything
//! committed before the round began, so callers that ask while a round runs
//! wait for the next one, and all of them share it. A round first asks
//! whether the WAL is flushed as far as it is written: when it is (an idle
//! database, or one whose writes are all synchronous), it costs a read and
//! no fsync.

use std::sync::{Arc, Mutex};

use deadpool_postgres::Pool;
use tokio::sync::watch;

use super::tx;
use crate::store::{StoreError, StoreResult};

/// Whether every WAL record inserted so far is flushed: then every commit
/// any session could have seen before this statement is durable.
const FLUSHED: &str = "SELECT pg_current_wal_insert_lsn() <= pg_current_wal_flush_lsn()";

pub(super) struct Flusher {
    pool: Pool,
    rounds: Mutex<Rounds>,
    /// The last round that ended: the highest ticket it covers, and how it
    /// failed, if it did.
    ended: watch::Sender<Round>,
}

#[derive(Default)]
struct Rounds {
    /// Tickets handed out; a round covers every ticket up to the count at its start.
    issued: u64,
    /// Whether a task is running rounds.
    running: bool,
}

#[derive(Clone, Default)]
struct Round {
    covers: u64,
    failed: Option<Arc<StoreError>>,
}

impl Flusher {
    pub(super) fn new(pool: Pool) -> Arc<Self> {
        Arc::new(Self {
            pool,
            rounds: Mutex::default(),
            ended: watch::channel(Round::default()).0,
        })
    }

    /// Returns once a round that began after this call has made everything
    /// committed before it durable. The rounds run in a task of their own,
    /// so a caller that goes away stops no one else's wait.
    pub(super) async fn flush(self: &Arc<Self>) -> StoreResult<()> {
        let mut ended = self.ended.subscribe();
        let ticket = {
            let mut rounds = self.rounds.lock().unwrap_or_else(|e| e.into_inner());
            rounds.issued += 1;
            if !rounds.running {
                rounds.running = true;
                tokio::spawn(self.clone().run());
            }
            rounds.issued
        };
        // The sender lives as long as `self`: waiting cannot fail.
        let round = ended
            .wait_for(|round| round.covers >= ticket)
            .await
            .map(|round| round.clone())
            .unwrap_or_default();
        match round.failed {
            None => Ok(()),
            Some(error) => Err(StoreError::Shared(error)),
        }
    }

    /// Runs rounds while tickets wait for one.
    async fn run(self: Arc<Self>) {
        loop {
            let covers = {
                let mut rounds = self.rounds.lock().unwrap_or_else(|e| e.into_inner());
                if rounds.issued == self.ended.borrow().covers {
                    rounds.running = false;
                    return;
                }
                rounds.issued
            };
            let failed = self.round().await.err().map(|error| {
                tracing::warn!(%error, "a WAL flush failed");
                Arc::new(error)
            });
            self.ended.send_replace(Round { covers, failed });
        }
    }

    async fn round(&self) -> StoreResult<()> {
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(FLUSHED).await?;
        let flushed: bool = client.query_one(&statement, &[]).await?.get(0);
        if flushed {
            return Ok(());
        }
        tx::flush(client).await
    }
}
