//! The rules of the chats domain, free of transport and SQL: who may do
//! what, how each change is applied inside one store transaction, and which
//! already-rendered updates it appends to whose log.
//!
//! [`Core`] is one per replica and private inside: callers reach the
//! use-cases through its area handles ([`Core::chats`], [`Core::groups`],
//! [`Core::invites`], [`Core::messages`], [`Core::typing`],
//! [`Core::updates`], [`Core::users`]) and read its figures through
//! [`Core::stats`]. Each handle is the [`Core`] itself, seen through one
//! area's methods.

mod access;
mod batch;
mod conversations;
mod deletions;
mod durable;
pub mod groups;
pub mod invites;
pub mod limits;
pub mod messages;
mod posting;
mod rates;
mod render;
mod streams;
pub mod target;
mod text;
mod typing;
mod updates;
mod users;
pub mod values;
mod views;

use std::collections::HashSet;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

use crate::bus::{Bus, Delivery};
use crate::ephemeral::Ephemeral;
use crate::error::{Error, Result};
use crate::model::{Change, ChatId, LoggedUpdate, MessageId, Scope, Snowflakes, UserId};
use crate::store::{Store, Tx, UserCache};
use batch::Batches;
use limits::Limits;
use posting::Post;
pub use streams::UpdateFeed;

/// Everything a use-case needs; one per replica, shared by all requests.
pub struct Core {
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    ephemeral: Arc<dyn Ephemeral>,
    ids: Snowflakes,
    limits: Limits,
    /// Events counted for metrics.
    counters: Counters,
    /// Callers already registered from a token's `name` claim by this
    /// replica, so that registration writes once per user, not per request.
    registered: Mutex<HashSet<UserId>>,
    /// This replica's open streams, per user, for the sweep and the cap.
    streams: streams::registry::Registry,
    /// Streams catching up from the log at once, at most: an outage makes
    /// many fall behind together.
    catch_ups: tokio::sync::Semaphore,
    /// Profiles read recently, kept coherent across replicas by the bus.
    user_cache: Arc<UserCache>,
    /// What relaxed writes logged, waiting for a flush to be published.
    after_flush: Arc<durable::AfterFlush>,
    /// Sends waiting to be written with the next batch of their chat.
    posts: Arc<Batches<ChatId, Post, Result<MessageId>>>,
    /// This core, for the tasks that write batches.
    me: Weak<Core>,
}

impl Core {
    pub fn new(
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
        ephemeral: Arc<dyn Ephemeral>,
        ids: Snowflakes,
        limits: Limits,
    ) -> Arc<Self> {
        let user_cache = Arc::new(UserCache::new(
            limits.user_cache_ttl,
            limits.user_cache_size,
            limits.user_cache_bytes,
        ));
        let cache = user_cache.clone();
        bus.on_users_changed(Arc::new(move |users| match users {
            Some(users) => cache.invalidate(users),
            None => cache.clear(),
        }));
        let after_flush = durable::AfterFlush::new(store.clone(), bus.clone());
        Arc::new_cyclic(|me| Self {
            store,
            bus,
            after_flush,
            ephemeral,
            ids,
            streams: streams::registry::Registry::new(limits.max_streams_per_user),
            catch_ups: tokio::sync::Semaphore::new(CONCURRENT_CATCH_UPS),
            limits,
            counters: Counters::default(),
            registered: Mutex::new(HashSet::new()),
            user_cache,
            posts: Arc::default(),
            me: me.clone(),
        })
    }

    /// What the replica has done and how its engines are doing, for telemetry.
    pub fn stats(&self) -> Stats<'_> {
        Stats(self)
    }

    /// A change's shared payload, with a fresh id.
    fn change(
        &self,
        update: crate::proto::updates::update::Update,
        scope: Option<Scope>,
    ) -> Arc<Change> {
        Arc::new(Change::new(
            self.ids.next_id(),
            render::update(update),
            scope,
            None,
        ))
    }

    fn registered_users(&self) -> std::sync::MutexGuard<'_, HashSet<UserId>> {
        self.registered.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn begin(&self) -> Result<Box<dyn Tx>> {
        Ok(self.store.begin().await?)
    }

    /// Commits, then tells the bus: publishing only what is durable means a
    /// subscriber can never see an update that a rollback takes back. Both
    /// run in a task of their own, so a caller that goes away during COMMIT
    /// cannot stop the publish of what committed.
    async fn commit(&self, tx: Box<dyn Tx>, logged: Vec<LoggedUpdate>) -> Result<()> {
        let core = self
            .me
            .upgrade()
            .ok_or_else(|| Error::Unavailable("the replica is stopping; retry".into()))?;
        let committed = tokio::spawn(async move {
            tx.commit().await?;
            core.counters.count_logged(&logged);
            core.publish(logged).await;
            Ok(())
        });
        committed
            .await
            .map_err(|e| Error::Unavailable(format!("commit task failed: {e}; retry")))?
    }

    /// On shutdown, after the last call: waits at most `within` for what
    /// was committed to be published and to leave this replica.
    pub async fn drain(&self, within: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + within;
        self.after_flush.drain(within).await;
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        self.bus.drain(left).await;
    }

    async fn publish(&self, logged: Vec<LoggedUpdate>) {
        if logged.is_empty() {
            return;
        }
        let deliveries = logged.into_iter().map(Delivery::from).collect();
        self.bus.publish(deliveries).await;
    }
}

/// Streams that may catch up from the log at once (see [`Core::catch_ups`]).
const CONCURRENT_CATCH_UPS: usize = 16;

/// The area handles: each is the [`Core`], seen through one area's methods
/// (and through [`std::ops::Deref`], its shared context).
macro_rules! areas {
    ($($(#[$doc:meta])* $name:ident => $accessor:ident;)*) => {
        $(
            $(#[$doc])*
            #[derive(Clone, Copy)]
            pub struct $name<'a>(&'a Core);

            impl std::ops::Deref for $name<'_> {
                type Target = Core;
                fn deref(&self) -> &Core {
                    self.0
                }
            }
        )*

        impl Core {
            $(
                pub fn $accessor(&self) -> $name<'_> {
                    $name(self)
                }
            )*
        }
    };
}

areas! {
    /// A user's conversations: the list, one chat, read state, drafts and
    /// notification preferences.
    Chats => chats;
    /// Groups: creating, editing, adding and removing members.
    Groups => groups;
    /// Invite codes to groups.
    Invites => invites;
    /// Sending, reading, editing and deleting messages.
    Messages => messages;
    /// Typing indicators.
    Typing => typing;
    /// Each user's stream of updates.
    Updates => updates;
    /// The users the service knows.
    Users => users;
}

/// The replica's figures, read by telemetry without reaching into the engines.
pub struct Stats<'a>(&'a Core);

impl Stats<'_> {
    pub fn counters(&self) -> &Counters {
        &self.0.counters
    }
    pub fn pool(&self) -> Option<crate::store::PoolStatus> {
        self.0.store.pool_status()
    }
    pub fn bus(&self) -> crate::bus::BusStats {
        self.0.bus.stats()
    }
    /// The bus's lag histograms, when it has any (Redis).
    pub fn lag(&self) -> Option<crate::bus::BusLag> {
        self.0.bus.lag()
    }
    pub fn user_cache(&self) -> &UserCache {
        &self.0.user_cache
    }
    /// The store's and the bus's engine names.
    pub fn engines(&self) -> (&'static str, &'static str) {
        (self.0.store.engine(), self.0.bus.engine())
    }
}

/// Things that happened, counted for metrics without the domain knowing
/// how they are exported.
pub struct Counters {
    replayed: AtomicU64,
    lag_ended: AtomicU64,
    swept: AtomicU64,
    /// Refusals per [`limits::RateLimit`], by its index.
    rate_limited: [AtomicU64; limits::RateLimit::ALL.len()],
    log_entries: AtomicU64,
    log_payload_bytes: AtomicU64,
    /// Shared with the exporter, which reads it as it is: a histogram
    /// cannot be caught up from a total as the counters are.
    sweep_duration: Histogram,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            replayed: AtomicU64::default(),
            lag_ended: AtomicU64::default(),
            swept: AtomicU64::default(),
            rate_limited: Default::default(),
            log_entries: AtomicU64::default(),
            log_payload_bytes: AtomicU64::default(),
            // 1 ms to about 16 s: one query per chunk of streamed users.
            sweep_duration: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
        }
    }
}

impl Counters {
    pub(crate) fn time_sweep(&self, took: std::time::Duration) {
        self.sweep_duration.observe(took.as_secs_f64());
    }
    /// How long sweeps took; a handle on the same histogram.
    pub fn sweep_duration(&self) -> Histogram {
        self.sweep_duration.clone()
    }
    /// Entries committed to the log, and their changes' payloads, each once.
    pub(crate) fn count_logged(&self, logged: &[LoggedUpdate]) {
        let mut seen: Vec<u64> = Vec::new();
        let mut bytes = 0;
        for entry in logged {
            if !seen.contains(&entry.change.id) {
                seen.push(entry.change.id);
                bytes += entry.change.encoded_len() as u64;
            }
        }
        self.log_entries
            .fetch_add(logged.len() as u64, Ordering::Relaxed);
        self.log_payload_bytes.fetch_add(bytes, Ordering::Relaxed);
    }
    pub fn log_entries(&self) -> u64 {
        self.log_entries.load(Ordering::Relaxed)
    }
    pub fn log_payload_bytes(&self) -> u64 {
        self.log_payload_bytes.load(Ordering::Relaxed)
    }
    pub fn count_replayed(&self, entries: u64) {
        self.replayed.fetch_add(entries, Ordering::Relaxed);
    }
    pub fn count_swept(&self, users: u64) {
        self.swept.fetch_add(users, Ordering::Relaxed);
    }
    /// Users whose streams the sweep found behind their log.
    pub fn swept(&self) -> u64 {
        self.swept.load(Ordering::Relaxed)
    }
    pub fn count_lag_ended(&self) {
        self.lag_ended.fetch_add(1, Ordering::Relaxed);
    }
    pub fn count_rate_limited(&self, limit: limits::RateLimit) {
        if let Some(count) = self.rate_limited.get(limit.index()) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }
    pub fn replayed(&self) -> u64 {
        self.replayed.load(Ordering::Relaxed)
    }
    pub fn lag_ended(&self) -> u64 {
        self.lag_ended.load(Ordering::Relaxed)
    }
    /// Calls refused by `limit` so far.
    pub fn rate_limited(&self, limit: limits::RateLimit) -> u64 {
        self.rate_limited
            .get(limit.index())
            .map_or(0, |count| count.load(Ordering::Relaxed))
    }
}
