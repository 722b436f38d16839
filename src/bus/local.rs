//! The in-process bus, for a single replica (the embedded mode).

use async_trait::async_trait;

use super::hub::Hub;
use super::{Bus, Delivery, Subscription};
use crate::domain::ids::UserId;

#[derive(Default)]
pub struct LocalBus {
    hub: Hub,
}

#[async_trait]
impl Bus for LocalBus {
    async fn publish(&self, deliveries: Vec<Delivery>) {
        for delivery in deliveries {
            self.hub.deliver(delivery);
        }
    }

    fn subscribe(&self, user: UserId) -> Subscription {
        self.hub.subscribe(user)
    }
}
