//! Subscribe's algorithm, below the transport: a user's update log replayed
//! from a start point, then live. A pump task per stream ([`pump`])
//! registers with the bus *before* reading the log's head, so nothing
//! committed in between can slip past; every delivery is checked against the
//! next expected seq, so a gap is filled from the log and a duplicate is
//! dropped. A stream that falls a whole buffer of live deliveries behind is
//! ended rather than buffered without bound.
//!
//! Nothing here trusts the bus to deliver: the [`sweep`] compares, on a
//! short timer and in one query, every local user's log head with what their
//! streams delivered, and makes the streams that fell behind catch up. A
//! publish lost after its commit (a cancelled call, a crash, Redis down)
//! reaches its streams within two sweeps.

mod pump;
pub(crate) mod registry;
mod sweep;

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;

use super::{Core, Updates};
use crate::bus::Delivery;
use crate::error::{Error, Result};
use crate::model::UserId;
use pump::{Live, Pump};

/// What a pump hands its feed: a delivery (with the bytes it holds of the
/// live bound, 0 for one read from the log), or why the stream ends.
struct Item {
    next: Result<Delivery>,
    live_bytes: Option<usize>,
}

impl Item {
    fn live(delivery: Delivery, bytes: usize) -> Self {
        Self {
            next: Ok(delivery),
            live_bytes: Some(bytes),
        }
    }

    fn logged(delivery: Delivery) -> Self {
        Self {
            next: Ok(delivery),
            live_bytes: None,
        }
    }

    fn end(error: Error) -> Self {
        Self {
            next: Err(error),
            live_bytes: None,
        }
    }
}

/// A user's updates in seq order (seq 0 for ephemeral ones), ending with
/// the reason as an error when the stream cannot go on: the client fell a
/// whole buffer behind (`ResourceExhausted`), the replica is stopping or the
/// bus closed (`Unavailable`), the log no longer holds what the stream needs
/// (`OutOfRange`), or the log could not be read. The buffer holds shared
/// payloads; whoever reads a delivery renders it, so a buffer of a big
/// group's changes costs their payloads once, not a copy per stream.
pub struct UpdateFeed {
    receiver: mpsc::Receiver<Item>,
    live: Arc<Live>,
    ended: bool,
}

impl Stream for UpdateFeed {
    type Item = Result<Delivery>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let Poll::Ready(item) = self.receiver.poll_recv(cx) else {
            return Poll::Pending;
        };
        let Some(item) = item else {
            return Poll::Ready(None);
        };
        if let Some(bytes) = item.live_bytes {
            self.live.entries.fetch_sub(1, Ordering::AcqRel);
            self.live.bytes.fetch_sub(bytes, Ordering::AcqRel);
        }
        if item.next.is_err() {
            self.ended = true;
        }
        Poll::Ready(Some(item.next))
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
        let core: Arc<Core> = self
            .me
            .upgrade()
            .ok_or_else(|| Error::Unavailable("the replica is stopping; retry".into()))?;
        // Taken first: a caller past the cap costs nothing more.
        let slot = self.streams.open(user)?;
        // Registered first: anything committed after this point reaches us live.
        let subscription = self.bus.subscribe(user).await;
        let delivered = self.stream_start(user, since).await?;
        slot.streams.delivered(delivered);
        let (sender, receiver) = mpsc::channel(self.limits.stream_buffer);
        let live = Arc::new(Live::default());
        let pump = Pump {
            core,
            user,
            delivered,
            sender,
            live: live.clone(),
            slot,
            stopping,
        };
        tokio::spawn(pump.run(subscription));
        Ok(UpdateFeed {
            receiver,
            live,
            ended: false,
        })
    }
}
