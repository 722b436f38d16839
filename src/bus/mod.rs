//! Fan-out of new updates to the streams that deliver them. The bus is only
//! a doorbell with the update attached: the update log is the truth, and a
//! stream that misses something fills it from the log.

pub mod hub;
pub mod local;

use std::sync::Arc;

use async_trait::async_trait;

pub use hub::Subscription;

use crate::domain::ids::UserId;
use crate::proto::updates;

/// One update on its way to one user's streams.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub user: UserId,
    /// The entry's seq in the user's log; 0 for ephemeral updates (typing).
    pub seq: u64,
    pub update: Arc<updates::Update>,
}

#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Hands deliveries to every replica's subscribers. Never fails the
    /// caller: the change is already durable and streams catch up from the log.
    async fn publish(&self, deliveries: Vec<Delivery>);
    /// Deliveries for `user` from now on, until the subscription is dropped.
    fn subscribe(&self, user: UserId) -> Subscription;
}
