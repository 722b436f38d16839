//! `Subscribe`: the caller's update log, replayed from `since_seq`, then
//! live. A pump task per stream registers with the bus *before* reading the
//! log's head, so nothing committed in between can slip past; every
//! delivery is checked against the next expected seq, so a gap is filled
//! from the log and a duplicate is dropped.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::{broadcast::error::RecvError, mpsc, watch};
use tokio_stream::Stream;
use tonic::Status;

use crate::bus::{Delivery, Event, Subscription};
use crate::domain::Core;
use crate::error::Result;
use crate::model::UserId;
use crate::proto::service::UpdateEnvelope;

/// What the client reads. Ends with `RESOURCE_EXHAUSTED` as soon as the
/// client fell a whole buffer behind, rather than buffering without bound.
/// The buffer holds shared payloads; each update is rendered for the
/// client only as it is sent, so a buffer of a big group's changes costs
/// their payloads once, not a copy per stream.
pub struct UpdateStream {
    receiver: mpsc::Receiver<Result<Delivery, Status>>,
    overflowed: Arc<AtomicBool>,
    ended: bool,
}

impl Stream for UpdateStream {
    type Item = Result<UpdateEnvelope, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        if self.overflowed.load(Ordering::Acquire) {
            self.ended = true;
            return Poll::Ready(Some(Err(Status::resource_exhausted(
                "update stream fell too far behind; resubscribe with since_seq set to the last seq received",
            ))));
        }
        self.receiver.poll_recv(cx).map(|item| {
            item.map(|sent| {
                sent.map(|delivery| UpdateEnvelope {
                    seq: delivery.seq,
                    update: Some(delivery.render()),
                })
            })
        })
    }
}

pub async fn open(
    core: Arc<Core>,
    user: UserId,
    since: Option<u64>,
    stopping: watch::Receiver<bool>,
) -> Result<UpdateStream> {
    // Registered first: anything committed after this point reaches us live.
    let subscription = core.bus.subscribe(user).await;
    let delivered = core.stream_start(user, since).await?;
    let (sender, receiver) = mpsc::channel(core.limits.stream_buffer);
    let overflowed = Arc::new(AtomicBool::new(false));
    let pump = Pump {
        core,
        user,
        delivered,
        sender,
        overflowed: overflowed.clone(),
    };
    tokio::spawn(pump.run(subscription, stopping));
    Ok(UpdateStream {
        receiver,
        overflowed,
        ended: false,
    })
}

/// Why a pump stopped.
enum Stop {
    /// The client went away or was ended for lag: nothing more to say.
    Gone,
    /// Tell the client why before closing.
    With(Status),
}

struct Pump {
    core: Arc<Core>,
    user: UserId,
    /// The highest seq handed to the client (or the start point).
    delivered: u64,
    sender: mpsc::Sender<Result<Delivery, Status>>,
    overflowed: Arc<AtomicBool>,
}

impl Pump {
    async fn run(mut self, mut subscription: Subscription, mut stopping: watch::Receiver<bool>) {
        let stop = self.pump(&mut subscription, &mut stopping).await;
        if let Stop::With(status) = stop {
            // Best effort: the client may already be gone.
            let _ = self.sender.try_send(Err(status));
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
                    return Stop::With(Status::unavailable("server shutting down; resubscribe with since_seq"));
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
                Err(RecvError::Closed) => Err(Stop::With(Status::unavailable(
                    "update bus closed; resubscribe with since_seq",
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
            let entries = match self.core.read_log(self.user, self.delivered).await {
                Ok(entries) => entries,
                Err(error) => return Err(Stop::With(Status::from(error))),
            };
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
