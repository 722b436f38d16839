//! Group commit: requests for the same key (a chat) that arrive while one
//! batch of them is being written wait and are written together in the
//! next, so that a busy chat pays one transaction and one WAL flush per
//! batch rather than per request. Each request still gets its own answer.
//!
//! The writing runs in a task of its own, not in any caller's future: a
//! caller that goes away (deadline, reset) cannot cut a batch in half or
//! leave the others waiting. A batch is written in two steps: the write,
//! after which the next batch may start, and its finish (waiting until it
//! is durable, then telling whoever must hear of it), which runs beside the
//! next batches but always after the previous batch's finish.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

type Boxed<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A written batch, still to be finished.
pub struct Written<R> {
    /// Resolves once what the batch wrote is durable (false: it may not be).
    pub durable: Boxed<bool>,
    /// Given whether it became durable, tells whoever must hear of the
    /// batch and gives each job's answer, in order.
    pub finish: Box<dyn FnOnce(bool) -> Boxed<Vec<R>> + Send>,
}

impl<R: Send + 'static> Written<R> {
    /// A batch that is already finished.
    pub fn ready(answers: Vec<R>) -> Self {
        Self {
            durable: Box::pin(async { true }),
            finish: Box::new(move |_| Box::pin(async move { answers })),
        }
    }

    /// Waits for the whole batch, for callers that need it done before going on.
    pub async fn complete(self) -> Vec<R> {
        let durable = self.durable.await;
        (self.finish)(durable).await
    }
}

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
    /// batch, in order, and is told whether the key is busy (more than one
    /// job, or the previous batch still finishing). `None`: the task ended
    /// without answering (it panicked).
    pub async fn submit<F, Fut>(self: &Arc<Self>, key: K, job: J, write: F) -> Option<R>
    where
        F: Fn(K, Vec<J>, bool) -> Fut + Send + 'static,
        Fut: Future<Output = Written<R>> + Send,
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
        F: Fn(K, Vec<J>, bool) -> Fut,
        Fut: Future<Output = Written<R>>,
    {
        // The previous batch's finish: the next one's waits for it, so that
        // batches are heard of in the order they were written.
        let mut previous: Option<JoinHandle<()>> = None;
        loop {
            let batch: Waiting<J, R> = {
                let mut queues = self.lock();
                let Some(waiting) = queues.get_mut(&key) else {
                    return;
                };
                if waiting.is_empty() && previous.is_none() {
                    queues.remove(&key);
                    return;
                }
                let take = waiting.len().min(MAX_BATCH);
                waiting.drain(..take).collect()
            };
            if batch.is_empty() {
                // Idle: let the last finish end before giving up the key, so
                // that a batch queued meanwhile still comes after it.
                if let Some(last) = previous.take() {
                    let _ = last.await;
                }
                continue;
            }
            let (jobs, answers): (Vec<J>, Vec<oneshot::Sender<R>>) = batch.into_iter().unzip();
            let busy = jobs.len() > 1 || previous.as_ref().is_some_and(|p| !p.is_finished());
            let written = write(key, jobs, busy).await;
            let before = previous.take();
            previous = Some(tokio::spawn(async move {
                let (durable, _) = tokio::join!(written.durable, async {
                    if let Some(before) = before {
                        let _ = before.await;
                    }
                });
                let results = (written.finish)(durable).await;
                for (answer, result) in answers.into_iter().zip(results) {
                    // The caller may have gone; its write stands all the same.
                    let _ = answer.send(result);
                }
            }));
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
            move |_key: u8, jobs: Vec<u32>, _busy: bool| {
                let calls = calls.clone();
                let mut released = released.clone();
                async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    // The first batch waits until the others are queued.
                    let _ = released.wait_for(|r| *r).await;
                    Written::ready(jobs.into_iter().map(|j| j * 10).collect())
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
