//! The event bus: how the ingest role tells detection workers (and, later, live feeds) that
//! something new is durable.
//!
//! On the embedded default the bus carries only wake-ups: the store's event log is the durable
//! queue and consumers read it from their cursor. At scale a JetStream implementation carries the
//! events themselves. No business logic knows which one runs.

use tokio::sync::watch;

/// The bus as the roles see it.
pub trait Bus: Send + Sync + 'static {
    /// Announces that a batch of events is durable in the store.
    fn events_stored(&self);
    /// A subscription that wakes when events are announced.
    fn subscribe_events(&self) -> EventsSubscription;
}

/// Wakes a consumer when new events are durable. Announcements made while the consumer was busy
/// are coalesced into one wake-up, never lost.
#[derive(Debug)]
pub struct EventsSubscription {
    rx: watch::Receiver<u64>,
}

impl EventsSubscription {
    /// Waits for the next announcement. Returns `false` when the bus is gone.
    pub async fn next(&mut self) -> bool {
        self.rx.changed().await.is_ok()
    }
}

/// The embedded, in-process bus.
#[derive(Debug)]
pub struct InProcessBus {
    tx: watch::Sender<u64>,
}

impl InProcessBus {
    /// A new bus.
    pub fn new() -> Self {
        Self {
            tx: watch::Sender::new(0),
        }
    }
}

impl Default for InProcessBus {
    fn default() -> Self {
        Self::new()
    }
}

impl Bus for InProcessBus {
    fn events_stored(&self) {
        self.tx.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn subscribe_events(&self) -> EventsSubscription {
        EventsSubscription {
            rx: self.tx.subscribe(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn announcements_before_waiting_are_not_lost() {
        let bus = InProcessBus::new();
        let mut sub = bus.subscribe_events();
        bus.events_stored();
        bus.events_stored();
        let woke = tokio::time::timeout(std::time::Duration::from_secs(5), sub.next()).await;
        assert_eq!(woke.ok(), Some(true));
    }
}
