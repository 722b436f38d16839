//! The safety net under the bus: on a short timer, one query reads the log
//! heads of every user with a stream on this replica, and only the streams
//! whose log moved past what they delivered catch up. It is what delivers a
//! committed update whose publish never happened, and what carries updates
//! between replicas while Redis is down.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::watch;

use super::registry::behind;
use crate::domain::Updates;
use crate::error::Result;
use crate::model::UserId;

/// Users whose heads one query reads.
const SWEEP_CHUNK: usize = 2_000;

impl Updates<'_> {
    /// Sweeps every `every`, and at once when the bus says deliveries may
    /// have been lost, until `stopping`.
    pub async fn sweep_periodically(&self, every: Duration, mut stopping: watch::Receiver<bool>) {
        let mut ticks = tokio::time::interval(every.max(Duration::from_millis(10)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let urgent = tokio::select! {
                _ = ticks.tick() => false,
                () = self.streams.urgent.notified() => true,
                _ = stopping.wait_for(|s| *s) => return,
            };
            let started = std::time::Instant::now();
            let swept = self.sweep(urgent).await;
            self.counters.time_sweep(started.elapsed());
            match swept {
                Ok(0) => {}
                Ok(behind) => tracing::info!(behind, urgent, "streams behind their log catch up"),
                Err(error) => tracing::warn!(%error, "could not compare streams with their logs"),
            }
        }
    }

    /// One pass; returns how many users' streams were told to catch up.
    pub(super) async fn sweep(&self, urgent: bool) -> Result<usize> {
        let users = self.streams.users();
        let mut nudged = 0;
        for chunk in users.chunks(SWEEP_CHUNK) {
            let ids: Vec<UserId> = chunk.iter().map(|(user, _)| *user).collect();
            let mut tx = self.store.reader().await?;
            let heads = tx.update_heads(&ids).await?;
            tx.commit().await?;
            let heads: HashMap<UserId, u64> = heads.into_iter().collect();
            for (user, streams) in chunk {
                let head = heads.get(user).copied().unwrap_or(0);
                if behind(streams, head, urgent) {
                    nudged += 1;
                }
            }
        }
        self.counters.count_swept(nudged as u64);
        Ok(nudged)
    }
}
