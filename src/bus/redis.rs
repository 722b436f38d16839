//! The Redis bus, for several replicas.
//!
//! Channel layout: one channel per user, `{prefix}:u:{id}`, carrying that
//! user's already-rendered updates. A replica subscribes to a user's channel
//! while it holds at least one of the user's streams, on ONE pub/sub
//! connection per replica. A change publishes all its deliveries in one
//! pipeline, so a message to a 250-member group costs one round trip, and
//! each replica receives only the users it serves. `{prefix}:control`
//! carries "resync", sent after this replica failed to publish.
//!
//! Deliveries go to this replica's own streams directly, before Redis; the
//! echo is recognised by its origin and skipped. Every (re)connection of the
//! subscriber makes all local streams catch up from the log, which is what
//! fills a gap left by an outage.
//!
//! A change's payload travels once: each user's message carries it inline
//! only while all the change's copies together stay small
//! ([`INLINE_BUDGET`]); past that, the pipeline first stores the payload
//! under `{prefix}:c:{change id}` for a minute and each user's message names
//! it. A replica fetches such a payload once and shares it between its
//! streams; one it cannot fetch makes that user's streams catch up from the log.
//!
//! Commands (publishes, payload fetches) go over the replica's shared
//! command connection ([`RedisCommands`]), which the ephemeral store uses too.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::aio::PubSub;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::StreamExt;
use tracing::Instrument as _;

use super::hub::{Hub, LastGone};
use super::{Bus, BusError, BusLag, BusStats, Delivery, Subscription};
use crate::model::{clock::now_ms, Change, Personal, UserId};
use crate::redis_conn::{
    redis_span, RedisCommands, Unavailable, COMMAND_TIMEOUT, CONNECT_TIMEOUT, MAX_BACKOFF,
};

/// How long Subscribe waits for Redis to confirm a new channel.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(1);

const RESYNC: &str = "resync";

/// Bytes of inline payload one change may put on the bus over all its
/// recipients; a larger change is stored once and named instead.
const INLINE_BUDGET: usize = 64 * 1024;
/// How long a named payload stays in Redis for replicas to fetch.
const PAYLOAD_TTL_MS: u64 = 60_000;
/// Named payloads a replica keeps after fetching them, for its other streams.
const PAYLOAD_CACHE: usize = 256;
/// origin, seq, change id (8 bytes each), form, unread flag, unread (u32),
/// when it was published (unix ms).
const HEADER: usize = 38;
const INLINE: u8 = 0;
const NAMED: u8 = 1;

/// Counters of what went wrong, for logs and metrics.
#[derive(Default)]
pub struct RedisStats {
    pub reconnects: AtomicU64,
    pub publish_failures: AtomicU64,
}

/// Batches of deliveries waiting for the publisher task; past this, a
/// publish is dropped and replicas resync from the log instead.
const OUTBOX_CAPACITY: usize = 4096;

enum Command {
    Subscribe(UserId, oneshot::Sender<()>),
    Unsubscribe(UserId),
}

pub struct RedisBus {
    inner: Arc<Inner>,
    commands: mpsc::UnboundedSender<Command>,
    outbox: mpsc::Sender<(Instant, Vec<Delivery>)>,
}

struct Inner {
    hub: Hub,
    /// The command connection, shared with the ephemeral store.
    redis: Arc<RedisCommands>,
    prefix: String,
    /// Tells this replica's own deliveries apart from other replicas'.
    origin: u64,
    resync_pending: AtomicBool,
    lag: BusLag,
    /// Payloads fetched by name, newest last.
    fetched: std::sync::Mutex<std::collections::VecDeque<Arc<Change>>>,
    stats: RedisStats,
}

impl RedisBus {
    /// Starts the subscriber task; nothing here waits for Redis to be up.
    pub fn start(redis: Arc<RedisCommands>, prefix: &str) -> Result<Self, BusError> {
        let (commands, command_rx) = mpsc::unbounded_channel();
        // Weak, so that dropping the bus closes the command queue and ends the task.
        let weak = commands.downgrade();
        let on_last_gone: LastGone = Arc::new(move |user| {
            if let Some(commands) = weak.upgrade() {
                let _ = commands.send(Command::Unsubscribe(user));
            }
        });
        let mut origin = [0u8; 8];
        getrandom::fill(&mut origin).map_err(|e| BusError(e.to_string()))?;
        let inner = Arc::new(Inner {
            hub: Hub::new(Some(on_last_gone)),
            redis,
            prefix: prefix.to_owned(),
            origin: u64::from_le_bytes(origin),
            resync_pending: AtomicBool::new(false),
            lag: BusLag::default(),
            fetched: std::sync::Mutex::default(),
            stats: RedisStats::default(),
        });
        tokio::spawn(subscriber(inner.clone(), command_rx));
        let (outbox, outbox_rx) = mpsc::channel(OUTBOX_CAPACITY);
        tokio::spawn(publisher(inner.clone(), outbox_rx));
        Ok(Self {
            inner,
            commands,
            outbox,
        })
    }
}

impl Inner {
    fn user_channel(&self, user: UserId) -> String {
        format!("{}:u:{}", self.prefix, user)
    }

    fn control_channel(&self) -> String {
        format!("{}:control", self.prefix)
    }

    fn payload_key(&self, change: u64) -> String {
        format!("{}:c:{change}", self.prefix)
    }

    /// After a publish failed: until it goes through (or the bus is gone),
    /// tell every replica to catch up from the log.
    fn resync_later(self: &Arc<Self>) {
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

    /// The shared command connection.
    async fn publisher(&self) -> Result<redis::aio::ConnectionManager, BusError> {
        self.redis
            .connection()
            .await
            .map_err(|Unavailable(e)| BusError(e))
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

    async fn receive(&self, message: &redis::Msg) {
        let channel = message.get_channel_name();
        let payload = message.get_payload_bytes();
        if channel == self.control_channel() {
            if payload == RESYNC.as_bytes() {
                self.hub.resync_all();
            }
            return;
        }
        let Some(user) = channel
            .rsplit(':')
            .next()
            .and_then(|id| id.parse::<u64>().ok())
            .map(UserId)
        else {
            return;
        };
        if payload.len() < HEADER {
            return;
        }
        let (head, body) = payload.split_at(HEADER);
        let word = |at: usize| u64::from_le_bytes(head[at..at + 8].try_into().unwrap_or_default());
        if word(0) == self.origin {
            return;
        }
        let (seq, id) = (word(8), word(16));
        let delay_ms = now_ms().saturating_sub(word(30));
        self.lag.delivery.observe(delay_ms as f64 / 1000.0);
        let personal = Personal {
            unread: (head[25] == 1)
                .then(|| u32::from_le_bytes(head[26..30].try_into().unwrap_or_default())),
        };
        let change = match head[24] {
            INLINE => Change::decode(id, body)
                .map(Arc::new)
                .map_err(|e| e.to_string()),
            _ => self.fetch(id).await,
        };
        match change {
            Ok(change) => self.hub.deliver(Delivery {
                user,
                seq,
                change,
                personal,
            }),
            Err(error) => {
                tracing::warn!(%error, %user, "update payload unavailable on the bus; the user's streams catch up from the log");
                self.hub.resync(user);
            }
        }
    }

    /// A named payload: from this replica's recent ones, else from Redis.
    async fn fetch(&self, id: u64) -> Result<Arc<Change>, String> {
        let cached = self
            .fetched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|c| c.id == id)
            .cloned();
        if let Some(change) = cached {
            return Ok(change);
        }
        let mut connection = self.publisher().await.map_err(|e| e.to_string())?;
        let mut command = redis::cmd("GET");
        command.arg(self.payload_key(id));
        let bytes: Option<Vec<u8>> =
            tokio::time::timeout(COMMAND_TIMEOUT, command.query_async(&mut connection))
                .instrument(redis_span("GET"))
                .await
                .map_err(|_| "timed out".to_owned())?
                .map_err(|e| e.to_string())?;
        let bytes = bytes.ok_or_else(|| format!("payload {id} expired"))?;
        let change = Arc::new(Change::decode(id, &bytes).map_err(|e| e.to_string())?);
        let mut fetched = self.fetched.lock().unwrap_or_else(|e| e.into_inner());
        if fetched.len() >= PAYLOAD_CACHE {
            fetched.pop_front();
        }
        fetched.push_back(change.clone());
        Ok(change)
    }

    async fn publish_resync(&self) -> Result<(), BusError> {
        let mut connection = self.publisher().await?;
        let mut command = redis::cmd("PUBLISH");
        command.arg(self.control_channel()).arg(RESYNC);
        let publish = command.query_async::<()>(&mut connection);
        tokio::time::timeout(COMMAND_TIMEOUT, publish)
            .await
            .map_err(|_| BusError("timed out".into()))?
            .map_err(|e| BusError(e.to_string()))
    }
}

/// Publishes queued batches in order, each as one pipeline (one round trip
/// however many recipients). Ends when the bus is dropped.
async fn publisher(inner: Arc<Inner>, mut outbox: mpsc::Receiver<(Instant, Vec<Delivery>)>) {
    while let Some((committed, deliveries)) = outbox.recv().await {
        let mut pipe = redis::pipe();
        // Each change's payload is encoded once, however many it reaches.
        let mut encoded: Vec<(u64, Vec<u8>, bool)> = Vec::new();
        for delivery in &deliveries {
            let id = delivery.change.id;
            if encoded.iter().any(|(c, _, _)| *c == id) {
                continue;
            }
            let payload = delivery.change.encode();
            let copies = deliveries.iter().filter(|d| d.change.id == id).count();
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

/// Owns the pub/sub connection: reconnects with backoff, follows the
/// streams that open and close, and resyncs every stream after connecting.
async fn subscriber(inner: Arc<Inner>, mut commands: mpsc::UnboundedReceiver<Command>) {
    let mut backoff = Duration::from_millis(100);
    let mut first = true;
    loop {
        match tokio::time::timeout(CONNECT_TIMEOUT, inner.redis.client().get_async_pubsub()).await {
            Ok(Ok(pubsub)) => {
                if !first {
                    inner.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                    tracing::info!("redis pub/sub reconnected; streams catch up from the log");
                }
                first = false;
                backoff = Duration::from_millis(100);
                if serve(&inner, pubsub, &mut commands).await.is_none() {
                    return;
                }
                tracing::warn!("redis pub/sub connection lost; reconnecting");
            }
            Ok(Err(error)) => tracing::warn!(%error, "cannot connect to redis pub/sub"),
            Err(_) => tracing::warn!("timed out connecting to redis pub/sub"),
        }
        // While disconnected, subscriptions are acknowledged at once: the
        // reconnect subscribes every open stream and makes it catch up.
        let pause = tokio::time::sleep(backoff);
        tokio::pin!(pause);
        loop {
            tokio::select! {
                _ = &mut pause => break,
                command = commands.recv() => match command {
                    Some(Command::Subscribe(_, ack)) => { let _ = ack.send(()); }
                    Some(Command::Unsubscribe(_)) => {}
                    None => return,
                },
            }
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Runs one connection until it drops (`Some`) or the bus is gone (`None`).
async fn serve(
    inner: &Inner,
    pubsub: PubSub,
    commands: &mut mpsc::UnboundedReceiver<Command>,
) -> Option<()> {
    let (mut sink, mut stream) = pubsub.split();
    let mut channels = vec![inner.control_channel()];
    channels.extend(inner.hub.users().into_iter().map(|u| inner.user_channel(u)));
    for chunk in channels.chunks(500) {
        if sink.subscribe(chunk).await.is_err() {
            return Some(());
        }
    }
    inner.hub.resync_all();
    loop {
        tokio::select! {
            message = stream.next() => match message {
                Some(message) => inner.receive(&message).await,
                None => return Some(()),
            },
            command = commands.recv() => match command {
                Some(Command::Subscribe(user, ack)) => {
                    if inner.hub.has(user) {
                        let confirmed = tokio::time::timeout(SUBSCRIBE_TIMEOUT, sink.subscribe(inner.user_channel(user))).await;
                        let _ = ack.send(());
                        if !matches!(confirmed, Ok(Ok(()))) {
                            return Some(());
                        }
                    } else {
                        let _ = ack.send(());
                    }
                }
                Some(Command::Unsubscribe(user)) => {
                    // A stream of the user may have opened since it was queued.
                    if !inner.hub.has(user)
                        && tokio::time::timeout(COMMAND_TIMEOUT, sink.unsubscribe(inner.user_channel(user))).await.is_err()
                    {
                        return Some(());
                    }
                }
                None => return None,
            },
        }
    }
}

#[async_trait]
impl Bus for RedisBus {
    async fn publish(&self, deliveries: Vec<Delivery>) {
        let inner = &self.inner;
        for delivery in &deliveries {
            inner.hub.deliver(delivery.clone());
        }
        // Queued, not awaited: a slow or absent Redis never holds up an RPC.
        if self.outbox.try_send((Instant::now(), deliveries)).is_err() {
            inner.stats.publish_failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("redis publish queue full; dropping a publish, replicas will resync");
            inner.resync_later();
        }
    }

    async fn subscribe(&self, user: UserId) -> Subscription {
        let subscription = self.inner.hub.subscribe(user);
        let (ack, acked) = oneshot::channel();
        if self.commands.send(Command::Subscribe(user, ack)).is_ok() {
            // Without Redis the stream still starts; the reconnect resyncs it.
            let _ = tokio::time::timeout(SUBSCRIBE_TIMEOUT, acked).await;
        }
        subscription
    }

    fn engine(&self) -> &'static str {
        "redis"
    }

    fn lag(&self) -> Option<BusLag> {
        Some(self.inner.lag.clone())
    }

    fn stats(&self) -> BusStats {
        BusStats {
            open_streams: self.inner.hub.streams(),
            reconnects: self.inner.stats.reconnects.load(Ordering::Relaxed),
            publish_failures: self.inner.stats.publish_failures.load(Ordering::Relaxed),
        }
    }
}
