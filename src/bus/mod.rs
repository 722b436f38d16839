//! Fan-out of new updates to the streams that deliver them. The bus is a
//! doorbell with the update attached: the update log is the truth, and a
//! stream that misses something fills it from the log. Typing and
//! rate-limit state live in [`crate::ephemeral`].

pub mod hub;
pub mod local;
pub mod redis;

use std::sync::Arc;

use async_trait::async_trait;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

pub use hub::{Event, Subscription};

use crate::model::{Change, LoggedUpdate, Personal, UserId};
use crate::proto::updates;

/// One update on its way to one user's streams: the change's shared payload
/// (one allocation for all its recipients) and this user's part of it.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub user: UserId,
    /// The entry's seq in the user's log; 0 for ephemeral updates (typing).
    pub seq: u64,
    pub change: Arc<Change>,
    pub personal: Personal,
}

impl Delivery {
    /// The update as its user sees it, made only when it is sent.
    pub fn render(&self) -> updates::Update {
        self.change.render(self.user, self.personal)
    }
}

impl From<LoggedUpdate> for Delivery {
    fn from(entry: LoggedUpdate) -> Self {
        Self {
            user: entry.user,
            seq: entry.seq,
            change: entry.change,
            personal: entry.personal,
        }
    }
}

/// Told of users whose profiles changed on another replica; `None`: any
/// may have.
pub type UsersChanged = Arc<dyn Fn(Option<&[UserId]>) + Send + Sync>;

/// The bus could not start or reach its broker.
#[derive(Debug, thiserror::Error)]
#[error("bus unavailable: {0}")]
pub struct BusError(pub String);

#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Hands deliveries to every replica's subscribers. Never fails the
    /// caller: the change is already durable and streams catch up from the log.
    async fn publish(&self, deliveries: Vec<Delivery>);
    /// Events for `user` from now on, until the subscription is dropped.
    /// Returns once deliveries published after it are sure to arrive.
    async fn subscribe(&self, user: UserId) -> Subscription;
    /// Tells the other replicas that these users' profiles changed (this
    /// replica has dropped them from its cache already), in order with the
    /// deliveries published before and after. Never fails the caller: a
    /// replica that misses it drops its whole cache when it resyncs, and
    /// its entries expire meanwhile.
    async fn users_changed(&self, users: Vec<UserId>) {
        let _ = users;
    }
    /// Calls `hook` with the users another replica changed, or with `None`
    /// when such changes may have been missed (the bus reconnected or was
    /// told to resync). A bus within one replica has no others to hear.
    fn on_users_changed(&self, hook: UsersChanged) {
        let _ = hook;
    }
    fn engine(&self) -> &'static str;
    /// Waits, at most `within`, until what was published has left this
    /// replica: on shutdown, so that queued publishes are not lost with it.
    async fn drain(&self, _within: std::time::Duration) {}
    /// Readings for metrics.
    fn stats(&self) -> BusStats;
    /// Histograms of how long updates take to cross replicas, for a bus
    /// that carries them between replicas.
    fn lag(&self) -> Option<BusLag> {
        None
    }
}

/// How long updates take on their way between replicas.
#[derive(Clone, Debug)]
pub struct BusLag {
    /// From commit to the publish being acknowledged by the broker.
    pub publish: Histogram,
    /// From the publish to its arrival at a subscribing replica (wall
    /// clocks of two replicas: skew shows here).
    pub delivery: Histogram,
}

impl Default for BusLag {
    fn default() -> Self {
        let histogram = || Histogram::new(exponential_buckets(0.000_5, 2.0, 14));
        Self {
            publish: histogram(),
            delivery: histogram(),
        }
    }
}

/// What the bus has seen, for metrics.
#[derive(Clone, Copy, Debug, Default)]
pub struct BusStats {
    pub open_streams: usize,
    pub reconnects: u64,
    pub publish_failures: u64,
}
