//! GetChat's reads, answered together. A call queues its key; whichever
//! queued call gets a read's turn first sends every key queued by then (up
//! to [`MOST`]) in one statement, and each call takes its own row. Alone, a
//! call's batch is itself. Under load a turn serves many calls for the
//! round trip and the per-statement work of one: a lookup of one chat costs
//! Postgres about 0.04 ms, most of it the statement's own overhead, and
//! eight in one statement cost it about as much as two.
//!
//! The statement runs in a task of its own, so that a caller who gives up
//! (a cancelled RPC) cannot strand the others whose keys it took.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use deadpool_postgres::Pool;
use tokio::sync::oneshot;
use tracing::Instrument as _;

use super::turns::{ReadTurns, Turn};
use super::tx::PgTx;
use super::POOL_WAIT;
use crate::model::{ChatKey, UserId};
use crate::store::{ChatEntry, PageStore, StoreError, StoreResult};

/// Keys in one statement at most: a statement that long still takes well
/// under a millisecond, and the calls queued behind it wait for no more.
const MOST: usize = 128;

type Answer = StoreResult<Option<ChatEntry>>;

struct Asked {
    key: ChatKey,
    user: UserId,
    /// Tells the asking call apart from others with the same key.
    ticket: u64,
    reply: oneshot::Sender<Answer>,
}

#[derive(Default)]
pub(super) struct EntryReads {
    queue: Mutex<VecDeque<Asked>>,
    tickets: AtomicU64,
    answered: AtomicU64,
    statements: AtomicU64,
}

impl EntryReads {
    /// The entry of `key` as `user` sees it, read in a statement shared
    /// with the calls asking at the same time.
    pub(super) async fn read(
        self: &Arc<Self>,
        pool: &Pool,
        turns: &ReadTurns,
        key: ChatKey,
        user: UserId,
    ) -> Answer {
        let started = Instant::now();
        let ticket = self.tickets.fetch_add(1, Ordering::Relaxed);
        let (reply, mut answer) = oneshot::channel();
        self.queue().push_back(Asked {
            key,
            user,
            ticket,
            reply,
        });
        loop {
            tokio::select! {
                biased;
                answered = &mut answer => return answered.unwrap_or_else(|_| Err(lost())),
                turn = turns.take(POOL_WAIT.saturating_sub(started.elapsed())) => {
                    let turn = turn?;
                    let (batch, mine_taken) = self.take(ticket);
                    if !batch.is_empty() {
                        let batch_reads = self.clone();
                        let pool = pool.clone();
                        tokio::spawn(
                            async move { batch_reads.answer(pool, turn, batch, started).await }
                                .in_current_span(),
                        );
                    }
                    if mine_taken {
                        return answer.await.unwrap_or_else(|_| Err(lost()));
                    }
                }
            }
        }
    }

    /// Calls answered and the statements that answered them, in all.
    pub(super) fn counts(&self) -> (u64, u64) {
        (
            self.answered.load(Ordering::Relaxed),
            self.statements.load(Ordering::Relaxed),
        )
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Asked>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The oldest keys queued, and whether `ticket`'s is among them (or
    /// was taken before: it is no longer queued).
    fn take(&self, ticket: u64) -> (Vec<Asked>, bool) {
        let mut queue = self.queue();
        let count = queue.len().min(MOST);
        let batch: Vec<Asked> = queue.drain(..count).collect();
        let mine_taken = !queue.iter().any(|asked| asked.ticket == ticket);
        (batch, mine_taken)
    }

    async fn answer(&self, pool: Pool, turn: Turn, batch: Vec<Asked>, started: Instant) {
        let wanted: Vec<(ChatKey, UserId)> = batch.iter().map(|a| (a.key, a.user)).collect();
        self.statements.fetch_add(1, Ordering::Relaxed);
        self.answered
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        match read_entries(&pool, turn, &wanted, started).await {
            Ok(entries) => {
                for (asked, entry) in batch.into_iter().zip(entries) {
                    // A caller who gave up no longer listens.
                    let _ = asked.reply.send(Ok(entry));
                }
            }
            Err(error) => {
                let error = Arc::new(error);
                for asked in batch {
                    let _ = asked.reply.send(Err(StoreError::Shared(error.clone())));
                }
            }
        }
    }
}

/// The entries, on a connection waited for no longer than what is left of
/// the callers' [`POOL_WAIT`].
async fn read_entries(
    pool: &Pool,
    turn: Turn,
    wanted: &[(ChatKey, UserId)],
    started: Instant,
) -> StoreResult<Vec<Option<ChatEntry>>> {
    let mut timeouts = pool.timeouts();
    timeouts.wait = Some(POOL_WAIT.saturating_sub(started.elapsed()));
    let client = pool.timeout_get(&timeouts).await?;
    let mut reader = PgTx::reader(client, turn);
    let span = tracing::debug_span!("chat entries", keys = wanted.len());
    reader.chat_entries(wanted).instrument(span).await
}

/// The task answering a call ended without answering: it panicked.
fn lost() -> StoreError {
    StoreError::Pool(deadpool_postgres::PoolError::Closed)
}
