//! The in-process bus that carries committed events to subscriptions.
//!
//! A write publishes its event after its transaction commits, so a subscriber
//! never sees an event that was rolled back. The bus is per process: with several
//! replicas, each delivers the events committed through it (a PostgreSQL
//! LISTEN/NOTIFY relay would carry them across; see ARCHITECTURE.md). A subscriber
//! that falls more than [`CAPACITY`] events behind skips the ones it missed and is
//! told so in the log and in the `appeals_subscription_lagged_total` counter.

use std::sync::Arc;

use appeals_core::{MunicipalityId, UserId};
use appeals_storage::StoredEvent;
use tokio::sync::broadcast;

/// How many events the bus holds for a slow subscriber.
pub const CAPACITY: usize = 4096;

/// A committed event and the municipality of its appeal (for scoping).
#[derive(Debug, Clone)]
pub struct Published {
    pub municipality_id: MunicipalityId,
    pub event: StoredEvent,
}

/// Committed events, and users revoked (whose subscriptions must end).
#[derive(Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Arc<Published>>,
    revocations: broadcast::Sender<UserId>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self { sender: broadcast::channel(CAPACITY).0, revocations: broadcast::channel(256).0 }
    }
}

impl EventBus {
    pub fn publish(&self, municipality_id: MunicipalityId, event: StoredEvent) {
        // Sending fails only when nobody is subscribed, which is fine.
        let _ = self.sender.send(Arc::new(Published { municipality_id, event }));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Published>> {
        self.sender.subscribe()
    }

    pub fn publish_revocation(&self, user: UserId) {
        let _ = self.revocations.send(user);
    }

    pub fn subscribe_revocations(&self) -> broadcast::Receiver<UserId> {
        self.revocations.subscribe()
    }
}
