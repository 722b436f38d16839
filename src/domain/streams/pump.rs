//! One stream's task: replays the log from the stream's start, then follows
//! the bus, checking every delivery against the next seq it expects. Entries
//! read from the log wait for the client (they are durable, so a slow
//! reader only slows its own replay); live deliveries are buffered up to the
//! stream's bound and, past it, end the stream after what was buffered.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{broadcast::error::RecvError, mpsc, watch};

use super::registry::Slot;
use super::Item;
use crate::bus::{Delivery, Event, Subscription};
use crate::domain::Core;
use crate::error::Error;
use crate::model::UserId;

/// Why a pump stopped.
pub(super) enum Stop {
    /// The client went away: nothing more to say.
    Gone,
    /// Tell the client why, after what is buffered.
    With(Error),
}

/// What live deliveries occupy in a stream's buffer, shared with the feed
/// that empties it.
#[derive(Default)]
pub(super) struct Live {
    pub(super) entries: AtomicUsize,
    pub(super) bytes: AtomicUsize,
}

pub(super) struct Pump {
    pub(super) core: Arc<Core>,
    pub(super) user: UserId,
    /// The highest seq handed to the client (or the start point).
    pub(super) delivered: u64,
    pub(super) sender: mpsc::Sender<Item>,
    pub(super) live: Arc<Live>,
    pub(super) slot: Slot,
    pub(super) stopping: watch::Receiver<bool>,
}

impl Pump {
    pub(super) async fn run(mut self, mut subscription: Subscription) {
        let stop = self.pump(&mut subscription).await;
        drop(subscription);
        if let Stop::With(error) = stop {
            // After what is buffered; unless the client or the replica goes first.
            let mut stopping = self.stopping.clone();
            tokio::select! {
                _ = self.sender.send(Item::end(error)) => {}
                _ = stopping.wait_for(|s| *s) => {}
            }
        }
    }

    async fn pump(&mut self, subscription: &mut Subscription) -> Stop {
        if let Err(stop) = self.catch_up(u64::MAX).await {
            return stop;
        }
        let mut nudges = self.slot.streams.nudges();
        let mut stopping = self.stopping.clone();
        loop {
            let received = tokio::select! {
                received = subscription.recv() => Some(received),
                // The sweep found the log ahead of what this user's streams delivered.
                Ok(()) = nudges.changed() => None,
                _ = stopping.wait_for(|s| *s) => {
                    return Stop::With(Error::Unavailable("server shutting down; resubscribe with since_seq".into()));
                }
                _ = self.sender.closed() => return Stop::Gone,
            };
            let Some(received) = received else {
                if let Err(stop) = self.catch_up_bounded().await {
                    return stop;
                }
                continue;
            };
            let outcome = match received {
                Ok(Event::Update(delivery)) => self.live(delivery).await,
                // The bus may have lost deliveries: one sweep finds whose,
                // rather than every stream reading its log.
                Ok(Event::Resync) => {
                    self.core.streams.urgent.notify_one();
                    Ok(())
                }
                Err(RecvError::Lagged(skipped)) => {
                    tracing::debug!(user = %self.user, skipped, "stream lagged behind the bus; refilling from the log");
                    self.catch_up_bounded().await
                }
                Err(RecvError::Closed) => Err(Stop::With(Error::Unavailable(
                    "update bus closed; resubscribe with since_seq".into(),
                ))),
            };
            if let Err(stop) = outcome {
                return stop;
            }
        }
    }

    async fn live(&mut self, delivery: Delivery) -> Result<(), Stop> {
        match delivery.seq {
            0 => self.buffer_live(delivery).map(|_| ()),
            seq if seq <= self.delivered => Ok(()),
            seq if seq == self.delivered + 1 => {
                if self.buffer_live(delivery)? {
                    self.advance(seq);
                    Ok(())
                } else {
                    // The buffer is full of replayed entries: this one is in
                    // the log too, and waits for the client there.
                    self.catch_up(seq).await
                }
            }
            // Something was missed: the log has it, and this one too.
            seq => self.catch_up(seq).await,
        }
    }

    /// Buffers a live delivery; `false` when the buffer is full of replayed
    /// entries. Past the live bound the stream ends, after its buffer.
    fn buffer_live(&self, delivery: Delivery) -> Result<bool, Stop> {
        let bytes = delivery.change.encoded_len();
        let limits = &self.core.limits;
        let live_entries = self.live.entries.load(Ordering::Acquire);
        let live_bytes = self.live.bytes.load(Ordering::Acquire);
        if live_entries >= limits.stream_buffer || live_bytes + bytes > limits.stream_buffer_bytes {
            return Err(self.overflow());
        }
        self.live.entries.fetch_add(1, Ordering::AcqRel);
        self.live.bytes.fetch_add(bytes, Ordering::AcqRel);
        match self.sender.try_send(Item::live(delivery, bytes)) {
            Ok(()) => Ok(true),
            Err(refused) => {
                self.live.entries.fetch_sub(1, Ordering::AcqRel);
                self.live.bytes.fetch_sub(bytes, Ordering::AcqRel);
                match refused {
                    mpsc::error::TrySendError::Full(_) => Ok(false),
                    mpsc::error::TrySendError::Closed(_) => Err(Stop::Gone),
                }
            }
        }
    }

    fn overflow(&self) -> Stop {
        tracing::info!(user = %self.user, "ending a stream whose client fell a whole buffer behind");
        self.core.counters.count_lag_ended();
        Stop::With(Error::ResourceExhausted(
            "update stream fell too far behind; resubscribe with since_seq set to the last seq received".into(),
        ))
    }

    /// [`Pump::catch_up`] to the end of the log, as one of a bounded number
    /// of streams doing so at once: a bus outage makes many streams catch
    /// up together, and the database should not see them all at once.
    async fn catch_up_bounded(&mut self) -> Result<(), Stop> {
        let core = self.core.clone();
        let _permit = core.catch_ups.acquire().await;
        self.catch_up(u64::MAX).await
    }

    /// Delivers logged entries after `delivered`, up to `until` inclusive or
    /// the end of the log, each waiting for room in the buffer. A seq missing
    /// from the log was pruned: the stream cannot be complete, and says so.
    async fn catch_up(&mut self, until: u64) -> Result<(), Stop> {
        while self.delivered < until {
            let entries = self
                .core
                .read_log(self.user, self.delivered)
                .await
                .map_err(Stop::With)?;
            if entries.is_empty() {
                return Ok(());
            }
            self.core.counters.count_replayed(entries.len() as u64);
            for entry in entries {
                if entry.seq > until {
                    return Ok(());
                }
                let seq = entry.seq;
                if seq != self.delivered + 1 {
                    return Err(Stop::With(Error::OutOfRange(format!(
                        "updates after seq {} are no longer in the log; resync: fetch state, then subscribe without since_seq",
                        self.delivered
                    ))));
                }
                let mut stopping = self.stopping.clone();
                tokio::select! {
                    sent = self.sender.send(Item::logged(Delivery::from(entry))) => sent.map_err(|_| Stop::Gone)?,
                    _ = stopping.wait_for(|s| *s) => {
                        return Err(Stop::With(Error::Unavailable("server shutting down; resubscribe with since_seq".into())));
                    }
                }
                self.advance(seq);
            }
        }
        Ok(())
    }

    fn advance(&mut self, seq: u64) {
        self.delivered = seq;
        self.slot.streams.delivered(seq);
    }
}
