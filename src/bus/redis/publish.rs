//! The publishing half of the Redis bus: a task that takes batches of
//! deliveries from the outbox in order and sends each as one pipeline,
//! every change's payload encoded once and carried inline or stored under
//! a name; and, after a failure, a standing "resync" to every replica.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

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
/// Batches of deliveries waiting for the publisher task; past this, a
/// publish is dropped and replicas resync from the log instead.
pub(super) const OUTBOX_CAPACITY: usize = 4096;

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

    async fn publish_users_changed(&self, users: &[UserId]) -> Result<(), BusError> {
        let mut message = Vec::with_capacity(USERS.len() + 8 * (users.len() + 1));
        message.extend_from_slice(USERS);
        message.extend_from_slice(&self.origin.to_le_bytes());
        for user in users {
            message.extend_from_slice(&user.get().to_le_bytes());
        }
        self.publish_control(&message).await
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

/// Publishes queued batches in order, each as one pipeline (one round trip
/// however many recipients). Ends when the bus is dropped.
pub(super) async fn publisher(inner: Arc<Inner>, mut outbox: mpsc::Receiver<Outgoing>) {
    while let Some(outgoing) = outbox.recv().await {
        let (committed, deliveries) = match outgoing {
            Outgoing::Deliveries(committed, deliveries) => (committed, deliveries),
            Outgoing::UsersChanged(users) => {
                if let Err(error) = inner.publish_users_changed(&users).await {
                    inner.stats.publish_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%error, "publishing a user change failed; replicas will resync");
                    inner.resync_later();
                }
                continue;
            }
        };
        let mut pipe = redis::pipe();
        // Each change's payload is encoded once, however many it reaches.
        let mut copies: std::collections::HashMap<u64, usize> = std::collections::HashMap::new();
        for delivery in &deliveries {
            *copies.entry(delivery.change.id).or_default() += 1;
        }
        let mut encoded: Vec<(u64, Vec<u8>, bool)> = Vec::new();
        for delivery in &deliveries {
            let id = delivery.change.id;
            if encoded.iter().any(|(c, _, _)| *c == id) {
                continue;
            }
            let payload = delivery.change.encode();
            let copies = copies.get(&id).copied().unwrap_or(1);
            let inline = payload.len().saturating_mul(copies) <= INLINE_BUDGET;
            if !inline {
                pipe.cmd("SET")
                    .arg(inner.payload_key(id))
                    .arg(&payload)
                    .arg("PX")
                    .arg(PAYLOAD_TTL_MS)
                    .ignore();
            }
            encoded.push((id, payload, inline));
        }
        for delivery in &deliveries {
            let inline = encoded
                .iter()
                .find(|(c, _, _)| *c == delivery.change.id)
                .and_then(|(_, payload, inline)| inline.then_some(payload.as_slice()));
            pipe.cmd("PUBLISH")
                .arg(inner.user_channel(delivery.user))
                .arg(inner.message(delivery, inline))
                .ignore();
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
            Ok(()) => inner.lag.publish.observe(committed.elapsed().as_secs_f64()),
            Err(error) => {
                inner.stats.publish_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, "publish to redis failed; other replicas will resync");
                inner.resync_later();
            }
        }
    }
}
