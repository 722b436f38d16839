//! Publishing what relaxed writes logged (read markers, drafts,
//! preferences) only once it is durable. Their commits return before the
//! WAL flush, so a database crash can still take one back together with its
//! log entry; the entry's seq is then handed out again, and a stream that
//! had delivered the lost entry would drop its successor as a repeat.
//! Queued here, they go out in order after a flush, one flush for all that
//! queued meanwhile.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::bus::{Bus, Delivery};
use crate::model::LoggedUpdate;
use crate::store::Store;

/// Commits queued at most; past it the oldest are not published, and the
/// sweep delivers them from the log (which it reads flushed).
const QUEUED: usize = 16_384;

pub(super) struct AfterFlush {
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    queue: Mutex<Queue>,
    /// True while nothing is queued or on its way.
    idle: watch::Sender<bool>,
}

#[derive(Default)]
struct Queue {
    commits: VecDeque<Vec<LoggedUpdate>>,
    running: bool,
}

impl AfterFlush {
    pub(super) fn new(store: Arc<dyn Store>, bus: Arc<dyn Bus>) -> Arc<Self> {
        Arc::new(Self {
            store,
            bus,
            queue: Mutex::default(),
            idle: watch::channel(true).0,
        })
    }

    /// Publishes one commit's entries after a flush that covers it.
    pub(super) fn publish(self: &Arc<Self>, logged: Vec<LoggedUpdate>) {
        if logged.is_empty() {
            return;
        }
        let mut queue = self.lock();
        if queue.commits.len() == QUEUED {
            queue.commits.pop_front();
            tracing::warn!("relaxed updates queue full; the sweep delivers the oldest");
        }
        queue.commits.push_back(logged);
        if !queue.running {
            queue.running = true;
            self.idle.send_replace(false);
            tokio::spawn(self.clone().run());
        }
    }

    /// Waits at most `within` for everything queued to be published.
    pub(super) async fn drain(&self, within: Duration) {
        let mut idle = self.idle.subscribe();
        let _ = tokio::time::timeout(within, idle.wait_for(|idle| *idle)).await;
    }

    async fn run(self: Arc<Self>) {
        loop {
            let commits: Vec<_> = {
                let mut queue = self.lock();
                if queue.commits.is_empty() {
                    queue.running = false;
                    self.idle.send_replace(true);
                    return;
                }
                queue.commits.drain(..).collect()
            };
            if let Err(error) = self.store.flush().await {
                // What survived is in the log; the sweep delivers it.
                tracing::warn!(%error, "relaxed updates not published: their flush failed");
                continue;
            }
            for logged in commits {
                let deliveries = logged.into_iter().map(Delivery::from).collect();
                self.bus.publish(deliveries).await;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}
