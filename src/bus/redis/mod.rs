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
//! ([`publish::INLINE_BUDGET`]); past that, the pipeline first stores the payload
//! under `{prefix}:c:{change id}` for a minute and each user's message names
//! it. A replica fetches such a payload once and shares it between its
//! streams; one it cannot fetch makes that user's streams catch up from the log.
//!
//! Commands (publishes, payload fetches) go over the replica's shared
//! command connection ([`RedisCommands`]), which the ephemeral store uses too.
//!
//! This file holds the bus's shared state and its [`Bus`] face;
//! [`publish`] is the publisher task (pipelines, inline or named payloads,
//! the outbox, resync after a failure) and [`subscribe`] the subscriber
//! task (the pub/sub connection, reconnects, receiving and fetching named
//! payloads).

mod publish;
mod subscribe;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};

use super::hub::{Hub, LastGone};
use super::{Bus, BusError, BusLag, BusStats, Delivery, Subscription, UsersChanged};
use crate::model::{Change, UserId};
use crate::redis_conn::{RedisCommands, Unavailable};
use publish::{outbox_bytes, publisher, Outbox, OUTBOX_BYTES, OUTBOX_CAPACITY};
use subscribe::{subscriber, Command};

/// How long Subscribe waits for Redis to confirm a new channel.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(1);

const RESYNC: &str = "resync";
/// On the control channel: users whose profiles changed, as `users`, the
/// origin (8 bytes) and each id (8 bytes, little-endian).
const USERS: &[u8] = b"users";

/// Each user's message, as both halves read and write it: origin, seq,
/// change id (8 bytes each), form, unread flag, unread (u32), when it was
/// published (unix ms); then the payload if the form is [`INLINE`].
const HEADER: usize = 38;
const INLINE: u8 = 0;
const NAMED: u8 = 1;

/// How the pub/sub connection checks that Redis still answers: a PING
/// every `interval` (above zero), answered within `timeout`.
#[derive(Clone, Copy, Debug)]
pub struct Ping {
    pub interval: Duration,
    pub timeout: Duration,
}

/// Counters of what went wrong, for logs and metrics.
#[derive(Default)]
pub struct RedisStats {
    pub reconnects: AtomicU64,
    pub publish_failures: AtomicU64,
}

pub struct RedisBus {
    inner: Arc<Inner>,
    commands: mpsc::UnboundedSender<Command>,
    outbox: mpsc::Sender<Outgoing>,
}

/// What the publisher task sends, in the order queued.
enum Outgoing {
    /// A change's deliveries, with when it committed.
    Deliveries(Outbox),
    /// Users whose profiles changed.
    UsersChanged(Vec<UserId>),
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
    /// Publishes queued or in flight, and their bytes: what a shutdown
    /// waits for, and what bounds the outbox's memory.
    queued: AtomicUsize,
    queued_bytes: AtomicUsize,
    /// Payloads fetched by name, newest last.
    fetched: std::sync::Mutex<std::collections::VecDeque<Arc<Change>>>,
    stats: RedisStats,
    ping: Ping,
    /// Told each time the publisher finishes a pipeline.
    drained: tokio::sync::Notify,
    /// Told of users changed elsewhere, once someone listens.
    users_changed: std::sync::OnceLock<UsersChanged>,
}

impl RedisBus {
    /// Starts the subscriber task; nothing here waits for Redis to be up.
    pub fn start(redis: Arc<RedisCommands>, prefix: &str, ping: Ping) -> Result<Self, BusError> {
        if ping.interval.is_zero() {
            return Err(BusError(
                "the pub/sub PING interval must be above zero".into(),
            ));
        }
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
            queued: AtomicUsize::new(0),
            queued_bytes: AtomicUsize::new(0),
            fetched: std::sync::Mutex::default(),
            stats: RedisStats::default(),
            ping,
            drained: tokio::sync::Notify::new(),
            users_changed: std::sync::OnceLock::new(),
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

    /// Tells the listener, if any, of users changed elsewhere (`None`: any may have).
    fn tell_users_changed(&self, users: Option<&[UserId]>) {
        if let Some(hook) = self.users_changed.get() {
            hook(users);
        }
    }

    /// Makes every local stream catch up from the log, and forgets every
    /// cached user: whatever was missed is in the log and the database.
    fn resync_everything(&self) {
        self.hub.resync_all();
        self.tell_users_changed(None);
    }

    /// The shared command connection.
    async fn publisher(&self) -> Result<redis::aio::ConnectionManager, BusError> {
        self.redis
            .connection()
            .await
            .map_err(|Unavailable(e)| BusError(e))
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
        // Bounded in bytes too; a publish dropped here reaches other
        // replicas' streams through their sweep of the log.
        let bytes = outbox_bytes(&deliveries);
        // Counted before it is queued: the publisher may be done with it
        // before `try_send` returns.
        let before = inner.queued_bytes.fetch_add(bytes, Ordering::AcqRel);
        inner.queued.fetch_add(1, Ordering::AcqRel);
        let queued = before + bytes <= OUTBOX_BYTES
            && self
                .outbox
                .try_send(Outgoing::Deliveries(Outbox {
                    committed: Instant::now(),
                    bytes,
                    deliveries,
                }))
                .is_ok();
        if !queued {
            inner.queued.fetch_sub(1, Ordering::AcqRel);
            inner.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
            inner.stats.publish_failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("redis publish queue full; dropping a publish, replicas will resync");
            inner.resync_later();
        }
    }

    async fn drain(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while self.inner.queued.load(Ordering::Acquire) > 0 {
            if Instant::now() >= deadline {
                tracing::warn!(
                    queued = self.inner.queued.load(Ordering::Acquire),
                    "publishes still queued at shutdown; other replicas' sweeps deliver them"
                );
                return;
            }
            // Bounded, so that a notification between the check and the wait costs little.
            let _ = tokio::time::timeout(Duration::from_millis(20), self.inner.drained.notified())
                .await;
        }
    }

    async fn users_changed(&self, users: Vec<UserId>) {
        if users.is_empty() {
            return;
        }
        self.inner.queued.fetch_add(1, Ordering::AcqRel);
        if self.outbox.try_send(Outgoing::UsersChanged(users)).is_err() {
            self.inner.queued.fetch_sub(1, Ordering::AcqRel);
            self.inner
                .stats
                .publish_failures
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                "redis publish queue full; dropping a user change, replicas will resync"
            );
            self.inner.resync_later();
        }
    }

    fn on_users_changed(&self, hook: UsersChanged) {
        if self.inner.users_changed.set(hook).is_err() {
            tracing::warn!("a second listener for user changes ignored");
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
