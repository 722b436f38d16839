//! Subscribe's algorithm, below the transport: a user's update log replayed
//! from a start point, then live. A pump task per stream registers with the
//! bus *before* reading the log's head, so nothing committed in between can
//! slip past; every delivery is checked against the next expected seq, so a
//! gap is filled from the log and a duplicate is dropped. A stream that falls
//! a whole buffer behind is ended rather than buffered without bound.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::{broadcast::error::RecvError, mpsc, watch};
use tokio_stream::Stream;

use super::{Core, Updates};
use crate::bus::{Delivery, Event, Subscription};
use crate::error::{Error, Result};
use crate::model::UserId;

/// A user's updates in seq order (seq 0 for ephemeral ones), ending with
/// the reason as an error when the stream cannot go on: the client fell a
/// whole buffer behind (`ResourceExhausted`), the replica is stopping or the
/// bus closed (`Unavailable`), or the log could not be read. The buffer holds
/// shared payloads; whoever reads a delivery renders it, so a buffer of a big
/// group's changes costs their payloads once, not a copy per stream.
pub struct UpdateFeed {
    receiver: mpsc::Receiver<Result<Delivery>>,
    overflowed: Arc<AtomicBool>,
    ended: bool,
}

impl Stream for UpdateFeed {
    type Item = Result<Delivery>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        if self.overflowed.load(Ordering::Acquire) {
            self.ended = true;
            return Poll::Ready(Some(Err(Error::ResourceExhausted(
                "update stream fell too far behind; resubscribe with since_seq set to the last seq received".into(),
            ))));
        }
        self.receiver.poll_recv(cx)
    }
}

/// Why a pump stopped.
enum Stop {
    /// The client went away or was ended for lag: nothing more to say.
    Gone,
    /// Tell the client why before closing.
    With(Error),
}

struct Pump {
    core: Arc<Core>,
    user: UserId,
    /// The highest seq handed to the client (or the start point).
    delivered: u64,
    sender: mpsc::Sender<Result<Delivery>>,
    overflowed: Arc<AtomicBool>,
}

impl Pump {
    async fn run(mut self, mut subscription: Subscription, mut stopping: watch::Receiver<bool>) {
        let stop = self.pump(&mut subscription, &mut stopping).await;
        if let Stop::With(error) = stop {
            // Best effort: the client may already be gone.
            let _ = self.sender.try_send(Err(error));
        }
    }

    async fn pump(
        &mut self,
        subscription: &mut Subscription,
        stopping: &mut watch::Receiver<bool>,
    ) -> Stop {
        if let Err(stop) = self.catch_up(u64::MAX).await {
            return stop;
        }
        loop {
            let received = tokio::select! {
                received = subscription.recv() => received,
                _ = stopping.wait_for(|s| *s) => {
                    return Stop::With(Error::Unavailable("server shutting down; resubscribe with since_seq".into()));
                }
                _ = self.sender.closed() => return Stop::Gone,
            };
            let outcome = match received {
                Ok(Event::Update(delivery)) if delivery.seq == 0 => self.send(delivery),
                Ok(Event::Update(delivery)) if delivery.seq <= self.delivered => Ok(()),
                Ok(Event::Update(delivery)) if delivery.seq == self.delivered + 1 => {
                    let seq = delivery.seq;
                    self.send(delivery).map(|()| self.delivered = seq)
                }
                // Something was missed: the log has it, and this one too.
                Ok(Event::Update(delivery)) => self.catch_up(delivery.seq).await,
                Ok(Event::Resync) => self.catch_up(u64::MAX).await,
                Err(RecvError::Lagged(skipped)) => {
                    tracing::debug!(user = %self.user, skipped, "stream lagged behind the bus; refilling from the log");
                    self.catch_up(u64::MAX).await
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

    /// Delivers logged entries after `delivered`, up to `until` inclusive or
    /// the end of the log.
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
                self.send(Delivery::from(entry))?;
                self.delivered = seq;
            }
        }
        Ok(())
    }

    fn send(&self, delivery: Delivery) -> Result<(), Stop> {
        match self.sender.try_send(Ok(delivery)) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::info!(user = %self.user, "ending a stream that fell a whole buffer behind");
                self.overflowed.store(true, Ordering::Release);
                self.core.counters.count_lag_ended();
                Err(Stop::Gone)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Stop::Gone),
        }
    }
}

impl Updates<'_> {
    /// Opens `user`'s feed after `since` (or live from the log's head), which
    /// ends when `stopping` becomes `true`.
    pub async fn subscribe(
        &self,
        user: UserId,
        since: Option<u64>,
        stopping: watch::Receiver<bool>,
    ) -> Result<UpdateFeed> {
        // Registered first: anything committed after this point reaches us live.
        let subscription = self.bus.subscribe(user).await;
        let delivered = self.stream_start(user, since).await?;
        let (sender, receiver) = mpsc::channel(self.limits.stream_buffer);
        let overflowed = Arc::new(AtomicBool::new(false));
        let core = self
            .me
            .upgrade()
            .ok_or_else(|| Error::Unavailable("the replica is stopping; retry".into()))?;
        let pump = Pump {
            core,
            user,
            delivered,
            sender,
            overflowed: overflowed.clone(),
        };
        tokio::spawn(pump.run(subscription, stopping));
        Ok(UpdateFeed {
            receiver,
            overflowed,
            ended: false,
        })
    }
}
