//! The rules of the chats domain, free of transport and SQL: who may do
//! what, how each change is applied inside one store transaction, and which
//! already-rendered updates it appends to whose log.

pub mod access;
pub mod batch;
pub mod conversations;
pub mod deletions;
pub mod groups;
pub mod invites;
pub mod limits;
pub mod messages;
pub mod posting;
pub mod render;
pub mod streams;
pub mod target;
pub mod text;
pub mod typing;
pub mod updates;
pub mod users;

use std::collections::HashSet;

use prost::Message as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use crate::bus::{Bus, Delivery};
use crate::ephemeral::Ephemeral;
use crate::error::Result;
use crate::model::{Change, ChatId, LoggedUpdate, MessageId, Scope, Snowflakes, UserId};
use crate::store::{Store, Tx, UserCache};
use batch::Batches;
use limits::Limits;
use posting::Post;

/// Everything a use-case needs; one per replica, shared by all requests.
pub struct Core {
    pub store: Arc<dyn Store>,
    pub bus: Arc<dyn Bus>,
    pub ephemeral: Arc<dyn Ephemeral>,
    pub ids: Snowflakes,
    pub limits: Limits,
    /// Events counted for metrics.
    pub counters: Counters,
    /// Callers already registered from a token's `name` claim by this
    /// replica, so that registration writes once per user, not per request.
    registered: Mutex<HashSet<UserId>>,
    /// Profiles read recently, kept coherent across replicas by the bus.
    pub user_cache: Arc<UserCache>,
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
        ));
        let cache = user_cache.clone();
        bus.on_users_changed(Arc::new(move |users| match users {
            Some(users) => cache.invalidate(users),
            None => cache.clear(),
        }));
        Arc::new_cyclic(|me| Self {
            store,
            bus,
            ephemeral,
            ids,
            limits,
            counters: Counters::default(),
            registered: Mutex::new(HashSet::new()),
            user_cache,
            posts: Arc::default(),
            me: me.clone(),
        })
    }

    /// A change's shared payload, with a fresh id.
    pub fn change(
        &self,
        update: crate::proto::updates::update::Update,
        scope: Option<Scope>,
    ) -> Arc<Change> {
        Arc::new(Change {
            id: self.ids.next_id(),
            update: render::update(update),
            scope,
            client_id: None,
        })
    }

    fn registered_users(&self) -> std::sync::MutexGuard<'_, HashSet<UserId>> {
        self.registered.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub async fn begin(&self) -> Result<Box<dyn Tx>> {
        Ok(self.store.begin().await?)
    }

    /// Commits, then tells the bus: publishing only what is durable means a
    /// subscriber can never see an update that a rollback takes back.
    pub async fn commit(&self, tx: Box<dyn Tx>, logged: Vec<LoggedUpdate>) -> Result<()> {
        tx.commit().await?;
        self.counters.count_logged(&logged);
        self.publish(logged).await;
        Ok(())
    }

    pub async fn publish(&self, logged: Vec<LoggedUpdate>) {
        if logged.is_empty() {
            return;
        }
        let deliveries = logged.into_iter().map(Delivery::from).collect();
        self.bus.publish(deliveries).await;
    }
}

/// Things that happened, counted for metrics without the domain knowing
/// how they are exported.
#[derive(Default)]
pub struct Counters {
    replayed: AtomicU64,
    lag_ended: AtomicU64,
    typing_limited: AtomicU64,
    log_entries: AtomicU64,
    log_payload_bytes: AtomicU64,
}

impl Counters {
    /// Entries committed to the log, and their changes' payloads, each once.
    pub(crate) fn count_logged(&self, logged: &[LoggedUpdate]) {
        let mut seen: Vec<u64> = Vec::new();
        let mut bytes = 0;
        for entry in logged {
            if !seen.contains(&entry.change.id) {
                seen.push(entry.change.id);
                bytes += entry.change.update.encoded_len() as u64;
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
    pub fn count_lag_ended(&self) {
        self.lag_ended.fetch_add(1, Ordering::Relaxed);
    }
    pub fn count_typing_limited(&self) {
        self.typing_limited.fetch_add(1, Ordering::Relaxed);
    }
    pub fn replayed(&self) -> u64 {
        self.replayed.load(Ordering::Relaxed)
    }
    pub fn lag_ended(&self) -> u64 {
        self.lag_ended.load(Ordering::Relaxed)
    }
    pub fn typing_limited(&self) -> u64 {
        self.typing_limited.load(Ordering::Relaxed)
    }
}
