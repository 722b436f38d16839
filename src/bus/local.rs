//! The in-process bus, for a single replica (the embedded mode): the same
//! behaviour as Redis, without the network.

use async_trait::async_trait;

use super::hub::Hub;
use super::{Bus, BusStats, Delivery, Subscription};
use crate::model::UserId;

pub struct LocalBus {
    hub: Hub,
}

impl Default for LocalBus {
    fn default() -> Self {
        Self {
            hub: Hub::new(None),
        }
    }
}

#[async_trait]
impl Bus for LocalBus {
    async fn publish(&self, deliveries: Vec<Delivery>) {
        for delivery in deliveries {
            self.hub.deliver(delivery);
        }
    }

    async fn subscribe(&self, user: UserId) -> Subscription {
        self.hub.subscribe(user)
    }

    fn engine(&self) -> &'static str {
        "local"
    }

    fn stats(&self) -> BusStats {
        BusStats {
            open_streams: self.hub.streams(),
            ..BusStats::default()
        }
    }
}
