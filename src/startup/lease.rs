//! The replica's snowflake worker number, leased from the store and kept
//! by renewing it, so that no two live replicas mint ids with the same
//! worker. A replica that cannot confirm its lease in time stops minting:
//! it turns NOT_SERVING and stops without a drain (see
//! `Application::run_until_stopped`), and exits with EXIT_UNAVAILABLE so that
//! it is restarted and leases a number afresh.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::StartError;
use crate::store::Store;

/// How the lease ended, when it was lost rather than released.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lost {
    /// Another replica holds the number: this one's lease had expired.
    Taken,
    /// Renewals failed for half the lease's lifetime: the rest of it is kept
    /// as a margin for the stop.
    Unconfirmed,
}

pub struct WorkerLease {
    store: Arc<dyn Store>,
    worker: u64,
    /// Random per start, so a restarted replica never mistakes its previous
    /// life's lease for its own.
    holder: String,
    ttl: Duration,
    /// When the statement behind the latest confirmed lease or renewal was
    /// sent: the lease runs at least `ttl` from then.
    confirmed: Instant,
}

impl WorkerLease {
    /// Leases a worker number, or explains why none is free.
    pub async fn acquire(store: Arc<dyn Store>, ttl: Duration) -> Result<Self, StartError> {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).map_err(|e| StartError::Lease(e.to_string()))?;
        let holder = bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let confirmed = Instant::now();
        let worker = store
            .lease_worker(&holder, ttl)
            .await?
            .ok_or(StartError::NoWorker)?;
        tracing::info!(worker, holder, ?ttl, "leased a snowflake worker number");
        Ok(Self {
            store,
            worker,
            holder,
            ttl,
            confirmed,
        })
    }

    pub fn worker(&self) -> u64 {
        self.worker
    }

    /// Renews the lease every third of its lifetime until `stopping` is
    /// set (then `None`), or until it is lost: taken by another replica, or
    /// not confirmed for half its lifetime. The other half is the margin in
    /// which the replica stops while its lease is still live.
    pub async fn keep(mut self, mut stopping: watch::Receiver<bool>) -> (Self, Option<Lost>) {
        let every = (self.ttl / 3).max(Duration::from_millis(10));
        loop {
            let deadline = self.confirmed + self.ttl / 2;
            let pause = every.min(deadline.saturating_duration_since(Instant::now()));
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stopping.wait_for(|s| *s) => return (self, None),
            }
            let sent = Instant::now();
            let renewed = self.store.renew_worker(self.worker, &self.holder, self.ttl);
            match tokio::time::timeout_at(deadline, renewed).await {
                Ok(Ok(true)) => self.confirmed = sent,
                Ok(Ok(false)) => {
                    tracing::error!(
                        worker = self.worker,
                        "the worker lease was taken by another replica: stopping"
                    );
                    return (self, Some(Lost::Taken));
                }
                Ok(Err(error)) => {
                    tracing::warn!(worker = self.worker, %error, "renewing the worker lease failed")
                }
                Err(_) => {
                    tracing::warn!(worker = self.worker, "renewing the worker lease timed out")
                }
            }
            if Instant::now() >= self.confirmed + self.ttl / 2 {
                tracing::error!(
                    worker = self.worker,
                    "the worker lease could not be renewed in time: stopping"
                );
                return (self, Some(Lost::Unconfirmed));
            }
        }
    }

    /// Runs [`WorkerLease::keep`] in a task: the task hands the lease back
    /// when it ends, and the future resolves only if the lease is lost.
    pub fn spawn_keeper(
        self,
        stopping: watch::Receiver<bool>,
    ) -> (JoinHandle<Self>, impl std::future::Future<Output = Lost>) {
        let (lost_tx, lost_rx) = oneshot::channel();
        let keeper = tokio::spawn(async move {
            let (lease, lost) = self.keep(stopping).await;
            if let Some(lost) = lost {
                let _ = lost_tx.send(lost);
            }
            lease
        });
        let lost = async {
            match lost_rx.await {
                Ok(lost) => lost,
                // The keeper ended without a loss, which it does only after
                // the stop.
                Err(_) => std::future::pending().await,
            }
        };
        (keeper, lost)
    }

    /// After the stop: gives a kept lease back, or reports its loss (a lost
    /// one is left alone: it may be another replica's now).
    pub async fn finish(keeper: JoinHandle<Self>, lost: Option<Lost>) -> Result<(), StartError> {
        let lease = keeper.await;
        if let Some(lost) = lost {
            return Err(StartError::LeaseLost(lost));
        }
        if let Ok(lease) = lease {
            lease.release().await;
        }
        Ok(())
    }

    /// Gives the number back for the next replica, at a clean stop.
    async fn release(self) {
        match self.store.release_worker(self.worker, &self.holder).await {
            Ok(()) => tracing::info!(worker = self.worker, "released the worker lease"),
            Err(error) => {
                tracing::warn!(worker = self.worker, %error, "releasing the worker lease failed; it expires on its own")
            }
        }
    }
}
