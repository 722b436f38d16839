//! This replica's registry of open streams: one broadcast channel per user
//! with at least one stream, removed when the last one goes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::broadcast;

use super::Delivery;
use crate::model::UserId;

/// How many events a user's channel holds for its slowest stream before
/// that stream sees `Lagged` (and refills from the log).
const CHANNEL_CAPACITY: usize = 256;

/// What a stream hears from the bus.
#[derive(Clone, Debug)]
pub enum Event {
    Update(Delivery),
    /// Deliveries may have been lost (the bus reconnected): catch up from the log.
    Resync,
}

type Channels = Mutex<HashMap<UserId, broadcast::Sender<Event>>>;

pub struct Hub {
    /// A std mutex: held only to look up or insert a sender, never across an await.
    channels: Arc<Channels>,
    /// Called when a user's last stream on this replica closes.
    on_last_gone: Option<LastGone>,
}

/// Called with a user whose last stream on this replica closed.
pub type LastGone = Arc<dyn Fn(UserId) + Send + Sync>;

impl Hub {
    pub fn new(on_last_gone: Option<LastGone>) -> Self {
        Self {
            channels: Arc::default(),
            on_last_gone,
        }
    }

    pub fn subscribe(&self, user: UserId) -> Subscription {
        let mut channels = self.lock();
        let receiver = channels
            .entry(user)
            .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
            .subscribe();
        Subscription {
            user,
            receiver: Some(receiver),
            channels: Arc::downgrade(&self.channels),
            on_last_gone: self.on_last_gone.clone(),
        }
    }

    /// Delivers to this replica's streams of the delivery's user, if any.
    pub fn deliver(&self, delivery: Delivery) {
        if let Some(sender) = self.lock().get(&delivery.user) {
            // No receiver left is not an error: the last stream just closed.
            let _ = sender.send(Event::Update(delivery));
        }
    }

    /// Tells `user`'s streams on this replica to catch up from the log.
    pub fn resync(&self, user: UserId) {
        if let Some(sender) = self.lock().get(&user) {
            let _ = sender.send(Event::Resync);
        }
    }

    /// Tells every stream on this replica to catch up from the log.
    pub fn resync_all(&self) {
        for sender in self.lock().values() {
            let _ = sender.send(Event::Resync);
        }
    }

    /// Whether `user` has a stream on this replica.
    pub fn has(&self, user: UserId) -> bool {
        self.lock().contains_key(&user)
    }

    /// Users with at least one open stream on this replica.
    pub fn users(&self) -> Vec<UserId> {
        self.lock().keys().copied().collect()
    }

    /// Open streams on this replica.
    pub fn streams(&self) -> usize {
        self.lock()
            .values()
            .map(broadcast::Sender::receiver_count)
            .sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, broadcast::Sender<Event>>> {
        self.channels.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A stream's view of its user's events; unregisters itself on drop.
pub struct Subscription {
    user: UserId,
    /// `Some` until dropped, so that `Drop` can release it before counting.
    receiver: Option<broadcast::Receiver<Event>>,
    channels: Weak<Channels>,
    on_last_gone: Option<LastGone>,
}

impl Subscription {
    pub async fn recv(&mut self) -> Result<Event, broadcast::error::RecvError> {
        match self.receiver.as_mut() {
            Some(receiver) => receiver.recv().await,
            None => Err(broadcast::error::RecvError::Closed),
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        drop(self.receiver.take());
        let Some(channels) = self.channels.upgrade() else {
            return;
        };
        let mut channels = channels.lock().unwrap_or_else(|e| e.into_inner());
        if channels
            .get(&self.user)
            .is_some_and(|sender| sender.receiver_count() == 0)
        {
            channels.remove(&self.user);
            drop(channels);
            if let Some(tell) = &self.on_last_gone {
                tell(self.user);
            }
        }
    }
}
