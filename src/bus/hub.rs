//! This replica's registry of open streams: one broadcast channel per user
//! with at least one stream, removed when the last one goes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::broadcast;

use super::Delivery;
use crate::domain::ids::UserId;

/// How many deliveries a user's channel holds for its slowest stream before
/// that stream sees `Lagged` (and refills from the log).
const CHANNEL_CAPACITY: usize = 256;

type Channels = Mutex<HashMap<UserId, broadcast::Sender<Delivery>>>;

#[derive(Default)]
pub struct Hub {
    /// A std mutex: held only to look up or insert a sender, never across an await.
    channels: Arc<Channels>,
}

impl Hub {
    pub fn subscribe(&self, user: UserId) -> Subscription {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        let receiver = channels
            .entry(user)
            .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
            .subscribe();
        Subscription {
            user,
            receiver: Some(receiver),
            channels: Arc::downgrade(&self.channels),
        }
    }

    /// Delivers to this replica's streams of the delivery's user, if any.
    pub fn deliver(&self, delivery: Delivery) {
        let channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sender) = channels.get(&delivery.user) {
            // No receiver left is not an error: the last stream just closed.
            let _ = sender.send(delivery);
        }
    }

    /// Users with at least one open stream on this replica.
    pub fn users(&self) -> Vec<UserId> {
        let channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels.keys().copied().collect()
    }
}

/// A stream's view of its user's deliveries; unregisters itself on drop.
pub struct Subscription {
    user: UserId,
    /// `Some` until dropped, so that `Drop` can release it before counting.
    receiver: Option<broadcast::Receiver<Delivery>>,
    channels: Weak<Channels>,
}

impl Subscription {
    pub async fn recv(&mut self) -> Result<Delivery, broadcast::error::RecvError> {
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
        }
    }
}
