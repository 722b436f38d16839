//! The publishing half of the Redis bus: a task that takes batches of
//! deliveries from the outbox in order and sends each as one pipeline,
//! every change's payload encoded once and carried inline or stored under
//! a name; and, after a failure, a standing "resync" to every replica.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::Instrument as _;

use super::{Inner, Outgoing, HEADER, INLINE, NAMED, RESYNC, USERS};
use crate::bus::{BusError, Delivery};
use crate::model::clock::now_ms;
use crate::model::UserId;
use crate::redis_conn::{redis_span, COMMAND_TIMEOUT};

/// Bytes of inline payload one change may put on the bus over all its
/// recipients; a larger change is stored once and named instead.
pub(super) const INLINE_BUDGET: usize = 64 * 1024;
/// How long a named payload stays in Redis for replicas to fetch.
const PAYLOAD_TTL_MS: u64 = 60_000;
/// Batches of deliveries waiting for the publisher task, and the bytes they
/// may hold; past either, a publish is dropped and replicas resync from the
/// log instead.
pub(super) const OUTBOX_CAPACITY: usize = 4096;
pub(super) const OUTBOX_BYTES: usize = 32 << 20;
/// Most batches, and bytes, one pipeline carries.
const PIPELINE_BATCHES: usize = 256;
const PIPELINE_BYTES: usize = 4 << 20;

impl Inner {
    /// After a publish failed: until it goes through (or the bus is gone),
    /// tell every replica to catch up from the log.
    pub(super) fn resync_later(self: &Arc<Self>) {
        if self.resync_pending.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(inner) = weak.upgrade() {
                if inner.publish_resync().await.is_ok() {
                    inner.resync_pending.store(false, Ordering::Release);
                    return;
                }
                drop(inner);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }

    /// One user's message: the header, then the payload inline or nothing.
    fn message(&self, delivery: &Delivery, inline: Option<&[u8]>) -> Vec<u8> {
        let mut message = Vec::with_capacity(HEADER + inline.map_or(0, <[u8]>::len));
        message.extend_from_slice(&self.origin.to_le_bytes());
        message.extend_from_slice(&delivery.seq.to_le_bytes());
        message.extend_from_slice(&delivery.change.id.to_le_bytes());
        message.push(if inline.is_some() { INLINE } else { NAMED });
        message.push(u8::from(delivery.personal.unread.is_some()));
        message.extend_from_slice(&delivery.personal.unread.unwrap_or(0).to_le_bytes());
        message.extend_from_slice(&now_ms().to_le_bytes());
        if let Some(payload) = inline {
            message.extend_from_slice(payload);
        }
        message
    }

    async fn publish_resync(&self) -> Result<(), BusError> {
        self.publish_control(RESYNC.as_bytes()).await
    }

    /// The control message that tells other replicas these users changed.
    fn users_changed_message(&self, users: &[UserId]) -> Vec<u8> {
        let mut message = Vec::with_capacity(USERS.len() + 8 * (users.len() + 1));
        message.extend_from_slice(USERS);
        message.extend_from_slice(&self.origin.to_le_bytes());
        for user in users {
            message.extend_from_slice(&user.get().to_le_bytes());
        }
        message
    }

    async fn publish_control(&self, message: &[u8]) -> Result<(), BusError> {
        let mut connection = self.publisher().await?;
        let mut command = redis::cmd("PUBLISH");
        command.arg(self.control_channel()).arg(message);
        let publish = command.query_async::<()>(&mut connection);
        tokio::time::timeout(COMMAND_TIMEOUT, publish)
            .await
            .map_err(|_| BusError("timed out".into()))?
            .map_err(|e| BusError(e.to_string()))
    }
}

/// One publish waiting in the outbox.
pub(super) struct Outbox {
    pub(super) committed: Instant,
    pub(super) bytes: usize,
    pub(super) deliveries: Vec<Delivery>,
}

/// What a publish holds while queued: each change's payload once, and a
/// header per recipient.
pub(super) fn outbox_bytes(deliveries: &[Delivery]) -> usize {
    let mut seen: Vec<u64> = Vec::new();
    let mut bytes = deliveries.len() * HEADER;
    for delivery in deliveries {
        if !seen.contains(&delivery.change.id) {
            seen.push(delivery.change.id);
            bytes += delivery.change.encoded_len();
        }
    }
    bytes
}

/// Publishes queued batches (and user changes) in order: whatever has
/// queued up goes out together as one pipeline (one round trip however many recipients and
/// batches), so a burst costs a few round trips, not one per commit. Ends
/// when the bus is dropped.
pub(super) async fn publisher(inner: Arc<Inner>, mut outbox: mpsc::Receiver<Outgoing>) {
    while let Some(first) = outbox.recv().await {
        let mut batches = vec![first];
        while batches.len() < PIPELINE_BATCHES && bytes_of(&batches) < PIPELINE_BYTES {
            match outbox.try_recv() {
                Ok(next) => batches.push(next),
                Err(_) => break,
            }
        }
        let bytes = bytes_of(&batches);
        let mut pipe = redis::pipe();
        for batch in &batches {
            match batch {
                Outgoing::Deliveries(batch) => inner.add_to(&mut pipe, &batch.deliveries),
                Outgoing::UsersChanged(users) => {
                    pipe.cmd("PUBLISH")
                        .arg(inner.control_channel())
                        .arg(inner.users_changed_message(users))
                        .ignore();
                }
            }
        }
        let outcome = match inner.publisher().await {
            Ok(mut connection) => {
                tokio::time::timeout(COMMAND_TIMEOUT, pipe.query_async::<()>(&mut connection))
                    .instrument(redis_span("PUBLISH"))
                    .await
                    .map_err(|_| BusError("timed out".into()))
                    .and_then(|r| r.map_err(|e| BusError(e.to_string())))
            }
            Err(error) => Err(error),
        };
        match outcome {
            Ok(()) => {
                for batch in &batches {
                    if let Outgoing::Deliveries(batch) = batch {
                        inner
                            .lag
                            .publish
                            .observe(batch.committed.elapsed().as_secs_f64());
                    }
                }
            }
            Err(error) => {
                inner.stats.publish_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, "publish to redis failed; other replicas will resync");
                inner.resync_later();
            }
        }
        inner.queued.fetch_sub(batches.len(), Ordering::AcqRel);
        inner.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
        inner.drained.notify_waiters();
    }
}

/// The bytes queued batches hold.
fn bytes_of(batches: &[Outgoing]) -> usize {
    batches
        .iter()
        .map(|b| match b {
            Outgoing::Deliveries(batch) => batch.bytes,
            Outgoing::UsersChanged(_) => 0,
        })
        .sum()
}

impl Inner {
    /// One batch's commands: each change's payload once, however many it
    /// reaches, inline when small enough over all its copies, else stored
    /// once under a name.
    fn add_to(&self, pipe: &mut redis::Pipeline, deliveries: &[Delivery]) {
        let mut copies: std::collections::HashMap<u64, usize> = std::collections::HashMap::new();
        for delivery in deliveries {
            *copies.entry(delivery.change.id).or_default() += 1;
        }
        let mut inlined: Vec<(u64, bool)> = Vec::new();
        for delivery in deliveries {
            let id = delivery.change.id;
            if inlined.iter().any(|(c, _)| *c == id) {
                continue;
            }
            let copies = copies.get(&id).copied().unwrap_or(1);
            let inline = delivery.change.encoded_len().saturating_mul(copies) <= INLINE_BUDGET;
            if !inline {
                pipe.cmd("SET")
                    .arg(self.payload_key(id))
                    .arg(delivery.change.encoded().as_ref())
                    .arg("PX")
                    .arg(PAYLOAD_TTL_MS)
                    .ignore();
            }
            inlined.push((id, inline));
        }
        for delivery in deliveries {
            let inline = inlined
                .iter()
                .any(|(c, inline)| *c == delivery.change.id && *inline)
                .then(|| delivery.change.encoded().as_ref());
            pipe.cmd("PUBLISH")
                .arg(self.user_channel(delivery.user))
                .arg(self.message(delivery, inline))
                .ignore();
        }
    }
}
