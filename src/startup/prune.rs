//! Keeps the update log within its retention, and deletes dead invites,
//! from a background task.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::domain::Core;

/// Entries pruned per statement: small enough to keep locks short.
const PRUNE_BATCH: usize = 5_000;

/// Keeps the update log within its retention, and deletes dead invites,
/// until the replica stops.
pub async fn prune_periodically(
    core: Arc<Core>,
    retention: Duration,
    every: Duration,
    mut stopping: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(every.max(Duration::from_millis(10)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stopping.wait_for(|s| *s) => return,
        }
        match core.updates().prune(retention, PRUNE_BATCH).await {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, "pruned the update log"),
            Err(error) => tracing::warn!(%error, "pruning the update log failed"),
        }
        match core.invites().prune_dead(PRUNE_BATCH).await {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, "deleted dead invites"),
            Err(error) => tracing::warn!(%error, "deleting dead invites failed"),
        }
    }
}
