//! Reads answered together: GetChats', GetChat's and GetHistory's. A call
//! queues what it asks; whichever queued call gets a read's turn first
//! sends everything queued by then (up to its `most`) in one statement, and
//! each call takes its own answer. Alone, a call's batch is itself. Under
//! load a turn serves many calls for the round trip and the per-statement
//! work of one: a lookup of one chat costs Postgres about 0.07 ms under
//! pgbench, most of it the statement's own overhead, and the replica as
//! much again in the system calls and wake-ups of its round trip. A page of
//! 50 conversations is mostly rows, yet four in one statement cost Postgres
//! a quarter less each than four statements (pgbench).
//!
//! Every call's question is read after it was queued, so a call sees every
//! write acknowledged before it. The statement runs in a task of its own,
//! so that a caller who gives up (a cancelled RPC) cannot strand the others
//! whose questions it took; a caller who gives up before its question is
//! taken withdraws it, so that nobody's statement reads what nobody will
//! use. Each call waits for a connection its own time, [`POOL_WAIT`] from
//! when it began, whichever call's turn sends its question: the statement
//! waits as long as the latest of its calls may, answering each earlier
//! one as its time runs out, and a call out of time for a turn whose
//! question a statement already holds takes that statement's answer.
//! A failed statement reaches each of its callers as it is (retryable
//! or not); a row that cannot be read fails only the question it answers;
//! a statement that panics answers each caller with an internal error, not
//! with the retryable loss of a runtime shutting down.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

use deadpool_postgres::Pool;
use tokio::sync::oneshot;
use tracing::Instrument as _;

use super::turns::{ReadTurns, Turn};
use super::tx::PgTx;
use super::POOL_WAIT;
use crate::store::{Batches, StoreError, StoreResult};

/// Questions in one statement at most, for reads of a row or a few: a
/// statement that long still takes a few milliseconds at most, and the
/// calls queued behind it wait no more.
pub(super) const MOST: usize = 128;

/// Reads the answers to many questions in one statement, in the order
/// asked: the statement's failure, or each question's answer or its own.
pub(super) type ReadMany<Q, A> =
    for<'a> fn(
        &'a mut PgTx,
        &'a [Q],
    ) -> Pin<Box<dyn Future<Output = StoreResult<Vec<StoreResult<A>>>> + Send + 'a>>;

struct Asked<Q, A> {
    question: Q,
    /// Tells the asking call apart from others asking the same.
    ticket: u64,
    /// When the call began: it waits for a connection until [`POOL_WAIT`]
    /// after, whichever call's turn its question goes out in.
    started: Instant,
    reply: oneshot::Sender<StoreResult<A>>,
}

impl<Q, A> Asked<Q, A> {
    fn deadline(&self) -> Instant {
        self.started + POOL_WAIT
    }
}

pub(super) struct Batched<Q, A> {
    queue: Mutex<VecDeque<Asked<Q, A>>>,
    /// Questions in one statement at most.
    most: usize,
    read: ReadMany<Q, A>,
    /// The statement's span.
    name: &'static str,
    tickets: AtomicU64,
    answered: AtomicU64,
    statements: AtomicU64,
}

impl<Q, A> Batched<Q, A> {
    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Asked<Q, A>>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes `ticket`'s question off the queue, if it is still there: false
    /// when a statement took it.
    fn withdraw(&self, ticket: u64) -> bool {
        let mut queue = self.queue();
        let at = queue.iter().position(|asked| asked.ticket == ticket);
        at.and_then(|at| queue.remove(at)).is_some()
    }
}

impl<Q: Send + Sync + 'static, A: Send + 'static> Batched<Q, A> {
    pub(super) fn new(name: &'static str, most: usize, read: ReadMany<Q, A>) -> Arc<Self> {
        Arc::new(Self {
            queue: Mutex::default(),
            most,
            read,
            name,
            tickets: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            statements: AtomicU64::new(0),
        })
    }

    /// The answer to `question`, read in a statement shared with the calls
    /// asking at the same time.
    pub(super) async fn ask(
        self: &Arc<Self>,
        pool: &Pool,
        turns: &ReadTurns,
        question: Q,
    ) -> StoreResult<A> {
        let started = Instant::now();
        let ticket = self.tickets.fetch_add(1, Ordering::Relaxed);
        let (reply, mut answer) = oneshot::channel();
        self.queue().push_back(Asked {
            question,
            ticket,
            started,
            reply,
        });
        let mut pending = Withdraw {
            batched: self,
            ticket,
            queued: true,
        };
        loop {
            tokio::select! {
                biased;
                answered = &mut answer => {
                    pending.queued = false;
                    return answered.unwrap_or_else(|_| Err(lost()));
                }
                turn = turns.take(POOL_WAIT.saturating_sub(started.elapsed())) => {
                    let turn = match turn {
                        Ok(turn) => turn,
                        // Out of time for a turn with the question still
                        // queued: it goes with the call.
                        Err(error) if self.withdraw(ticket) => {
                            pending.queued = false;
                            return Err(error);
                        }
                        // A statement holds the question: it answers within
                        // this call's time for a connection, or once read.
                        Err(_) => {
                            pending.queued = false;
                            return answer.await.unwrap_or_else(|_| Err(lost()));
                        }
                    };
                    let (batch, mine_taken) = self.take(ticket);
                    if batch.is_empty() {
                        // Another call's statement took this one's question:
                        // the turn goes to the next read now, not once that
                        // statement answers.
                        drop(turn);
                    } else {
                        let batched = self.clone();
                        let pool = pool.clone();
                        tokio::spawn(
                            async move { batched.answer(pool, turn, batch).await }
                                .in_current_span(),
                        );
                    }
                    if mine_taken {
                        pending.queued = false;
                        return answer.await.unwrap_or_else(|_| Err(lost()));
                    }
                }
            }
        }
    }

    /// Calls answered and the statements that answered them, in all.
    pub(super) fn counts(&self) -> Batches {
        Batches {
            calls: self.answered.load(Ordering::Relaxed),
            statements: self.statements.load(Ordering::Relaxed),
        }
    }

    /// The oldest questions queued, and whether `ticket`'s is among them (or
    /// was taken before: it is no longer queued).
    fn take(&self, ticket: u64) -> (Vec<Asked<Q, A>>, bool) {
        let mut queue = self.queue();
        let count = queue.len().min(self.most);
        let batch: Vec<Asked<Q, A>> = queue.drain(..count).collect();
        let mine_taken = !queue.iter().any(|asked| asked.ticket == ticket);
        (batch, mine_taken)
    }

    async fn answer(&self, pool: Pool, turn: Turn, batch: Vec<Asked<Q, A>>) {
        let Some((mut reader, batch)) = connect(&pool, turn, batch).await else {
            return;
        };
        let (questions, replies): (Vec<Q>, Vec<_>) = batch
            .into_iter()
            .map(|asked| (asked.question, asked.reply))
            .unzip();
        let mut replies = Replies(replies);
        self.statements.fetch_add(1, Ordering::Relaxed);
        self.answered
            .fetch_add(questions.len() as u64, Ordering::Relaxed);
        let span = tracing::debug_span!(
            "batched read",
            read = self.name,
            questions = questions.len()
        );
        let read = (self.read)(&mut reader, &questions)
            .instrument(span)
            .await
            .and_then(|answers| match answers.len() == replies.0.len() {
                true => Ok(answers),
                false => Err(StoreError::Corrupt(format!(
                    "{} answers to {} questions",
                    answers.len(),
                    replies.0.len()
                ))),
            });
        let replies = std::mem::take(&mut replies.0);
        match read {
            Ok(answers) => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    // A caller who gave up no longer listens.
                    let _ = reply.send(answer);
                }
            }
            Err(error) => fail_all(replies, error),
        }
    }
}

/// A connection for `batch`'s statement in `turn`, waited for as long as
/// one of its calls may still wait. A call out of time before it comes is
/// answered then, as a wait for its own turn would have ended, and the
/// others wait on: a call is never held to the time left to the call whose
/// turn took its question. `None` once every call is answered.
async fn connect<Q, A>(
    pool: &Pool,
    turn: Turn,
    mut batch: Vec<Asked<Q, A>>,
) -> Option<(PgTx, Vec<Asked<Q, A>>)> {
    let latest = batch.iter().map(Asked::deadline).max()?;
    let mut timeouts = pool.timeouts();
    timeouts.wait = Some(latest.saturating_duration_since(Instant::now()));
    let connecting = pool.timeout_get(&timeouts);
    tokio::pin!(connecting);
    loop {
        let earliest = batch.iter().map(Asked::deadline).min()?;
        tokio::select! {
            biased;
            client = &mut connecting => {
                return match client {
                    Ok(client) => Some((PgTx::reader(client, turn), batch)),
                    Err(error) => {
                        fail_all(batch.into_iter().map(|asked| asked.reply), error.into());
                        None
                    }
                };
            }
            () = tokio::time::sleep_until(earliest) => {
                let now = Instant::now();
                let (late, waiting) = batch.into_iter().partition(|asked| asked.deadline() <= now);
                batch = waiting;
                fail_all(late.into_iter().map(|asked: Asked<Q, A>| asked.reply), out_of_time());
            }
        }
    }
}

/// Answers every one of `replies` with `error`.
fn fail_all<A>(
    replies: impl IntoIterator<Item = oneshot::Sender<StoreResult<A>>>,
    error: StoreError,
) {
    let error = Arc::new(error);
    for reply in replies {
        let _ = reply.send(Err(StoreError::Shared(error.clone())));
    }
}

/// Withdraws a caller's question if the caller goes (cancelled, or out of
/// time for a turn) while it may still be queued.
struct Withdraw<'a, Q, A> {
    batched: &'a Batched<Q, A>,
    ticket: u64,
    /// False once the question is known to be taken or withdrawn.
    queued: bool,
}

impl<Q, A> Drop for Withdraw<'_, Q, A> {
    fn drop(&mut self) {
        if self.queued {
            self.batched.withdraw(self.ticket);
        }
    }
}

/// The callers a statement answers. Dropped unanswered while the task
/// unwinds from a panic, it tells each that the read failed for good: a
/// retry would only panic again. Dropped unanswered otherwise (the runtime
/// shutting down), the callers see the retryable [`lost`].
struct Replies<A>(Vec<oneshot::Sender<StoreResult<A>>>);

impl<A> Drop for Replies<A> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for reply in self.0.drain(..) {
                let _ = reply.send(Err(StoreError::Corrupt(
                    "reading the rows of a batched read panicked".into(),
                )));
            }
        }
    }
}

/// A call waited for a connection as long as it may: the pool's own wait
/// timeout, which the caller retries on UNAVAILABLE.
fn out_of_time() -> StoreError {
    StoreError::Pool(deadpool_postgres::PoolError::Timeout(
        deadpool_postgres::TimeoutType::Wait,
    ))
}

/// The task answering a call ended without answering: the runtime is
/// shutting down.
fn lost() -> StoreError {
    StoreError::Pool(deadpool_postgres::PoolError::Closed)
}
