//! Group commit: requests for the same key (a chat) that arrive while one
//! batch of them is being written wait and are written together in the
//! next, so that a busy chat pays one transaction and one WAL flush per
//! batch rather than per request. Each request still gets its own answer.
//!
//! The writing runs in a task of its own, not in any caller's future: a
//! caller that goes away (deadline, reset) cannot cut a batch in half or
//! leave the others waiting.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// Most requests written in one transaction.
pub const MAX_BATCH: usize = 64;

type Waiting<J, R> = Vec<(J, oneshot::Sender<R>)>;

/// Per-key queues. A key is present exactly while a task is writing its batches.
pub struct Batches<K, J, R> {
    queues: Mutex<HashMap<K, Waiting<J, R>>>,
}

impl<K, J, R> Default for Batches<K, J, R> {
    fn default() -> Self {
        Self {
            queues: Mutex::new(HashMap::new()),
        }
    }
}

impl<K, J, R> Batches<K, J, R>
where
    K: Eq + Hash + Copy + Send + 'static,
    J: Send + 'static,
    R: Send + 'static,
{
    /// Queues `job` under `key` and waits for its answer. When no batch of
    /// the key is being written, starts a task that writes batches with
    /// `write` until the queue is empty; `write` answers each job of a
    /// batch, in order. `None`: the task ended without answering (it panicked).
    pub async fn submit<F, Fut>(self: &Arc<Self>, key: K, job: J, write: F) -> Option<R>
    where
        F: Fn(K, Vec<J>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<R>> + Send,
    {
        let (answer, answered) = oneshot::channel();
        let start = {
            let mut queues = self.lock();
            match queues.get_mut(&key) {
                Some(waiting) => {
                    waiting.push((job, answer));
                    false
                }
                None => {
                    queues.insert(key, vec![(job, answer)]);
                    true
                }
            }
        };
        if start {
            let batches = self.clone();
            tokio::spawn(async move { batches.drain(key, write).await });
        }
        answered.await.ok()
    }

    async fn drain<F, Fut>(&self, key: K, write: F)
    where
        F: Fn(K, Vec<J>) -> Fut,
        Fut: Future<Output = Vec<R>>,
    {
        loop {
            let batch: Waiting<J, R> = {
                let mut queues = self.lock();
                let Some(waiting) = queues.get_mut(&key) else {
                    return;
                };
                if waiting.is_empty() {
                    queues.remove(&key);
                    return;
                }
                let take = waiting.len().min(MAX_BATCH);
                waiting.drain(..take).collect()
            };
            let (jobs, answers): (Vec<J>, Vec<oneshot::Sender<R>>) = batch.into_iter().unzip();
            let results = write(key, jobs).await;
            for (answer, result) in answers.into_iter().zip(results) {
                // The caller may have gone; its write stands all the same.
                let _ = answer.send(result);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Waiting<J, R>>> {
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn jobs_queued_during_a_batch_are_written_together_and_each_answered() {
        let batches: Arc<Batches<u8, u32, u32>> = Arc::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let (release, released) = tokio::sync::watch::channel(false);
        let write = {
            let calls = calls.clone();
            move |_key: u8, jobs: Vec<u32>| {
                let calls = calls.clone();
                let mut released = released.clone();
                async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    // The first batch waits until the others are queued.
                    let _ = released.wait_for(|r| *r).await;
                    jobs.into_iter().map(|j| j * 10).collect()
                }
            }
        };
        let first = tokio::spawn({
            let batches = batches.clone();
            let write = write.clone();
            async move { batches.submit(1, 1, write).await }
        });
        // Wait until the first batch is being written.
        while calls.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let rest: Vec<_> = (2..6)
            .map(|j| {
                let batches = batches.clone();
                let write = write.clone();
                tokio::spawn(async move { batches.submit(1, j, write).await })
            })
            .collect();
        while batches.lock().get(&1).map_or(0, Vec::len) < 4 {
            tokio::task::yield_now().await;
        }
        release.send_replace(true);
        assert_eq!(first.await.unwrap(), Some(10));
        for (j, handle) in (2..6).zip(rest) {
            assert_eq!(handle.await.unwrap(), Some(j * 10));
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "one batch, then the four together"
        );
        assert!(batches.lock().is_empty());
    }
}
