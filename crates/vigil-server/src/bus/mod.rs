//! The event bus: how the ingest role tells detection workers (and the hunting indexer) that
//! something new is durable, and how server instances tell each other what operators and agents
//! changed.
//!
//! On the embedded default ([`InProcessBus`]) the bus carries only wake-ups: the store's event
//! log is the durable queue and consumers read it from their cursor, and every notice is
//! already applied in the one process. At scale ([`nats::NatsBus`]) JetStream carries the
//! events themselves, partitioned by host for the detection workers, and notices cross
//! instances on NATS subjects. No business logic knows which one runs.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};
use vigil_ocsf::RawEvent;

pub mod lease;
pub mod nats;

/// A bus failure: the events were not handed over and must not be acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The broker refused or did not answer.
    #[error("event bus unavailable: {0}")]
    Unavailable(String),
}

/// Something one server instance changed that the others must act on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Notice {
    /// Commands were queued for an endpoint: the instance holding its session delivers them.
    Commands {
        /// The endpoint.
        sensor_id: String,
    },
    /// An endpoint was revoked: the instance holding its session ends it.
    EndSession {
        /// The endpoint.
        sensor_id: String,
    },
    /// Policies changed: every live session gets its new policy.
    Policies,
    /// An operator switched a rule on or off.
    RuleSwitch {
        /// The rule.
        rule_id: String,
        /// Whether it may raise findings.
        enabled: bool,
    },
    /// A message of the operators' live feed (alerts, commands), already encoded.
    Live {
        /// `{"type": …, "data": …}`.
        text: String,
    },
}

/// The bus as the roles see it.
#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// What [`Bus::publish`] will send for these batches (sensor id, events), made before the
    /// store takes them: at scale the encoded messages, on the in-process bus nothing.
    fn prepare(&self, batches: &[(String, Vec<RawEvent>)]) -> Prepared;

    /// Announces prepared batches that are now durable in the store. The ingest role
    /// acknowledges them to the sensor only after this returns `Ok`: at scale it returns once
    /// the broker has them, so a failure means the sensor sends them again.
    async fn publish(&self, prepared: Prepared) -> Result<(), BusError>;

    /// [`Bus::prepare`] then [`Bus::publish`].
    async fn events_stored(&self, batches: &[(String, Vec<RawEvent>)]) -> Result<(), BusError> {
        self.publish(self.prepare(batches)).await
    }

    /// A subscription that wakes when events are announced.
    fn subscribe_events(&self) -> EventsSubscription;

    /// Tells the other server instances about a change; best effort (each instance also
    /// re-reads the store on its own schedule). The in-process bus has no one to tell.
    fn notify(&self, notice: &Notice);

    /// Notices from other instances, or `None` when this is the only one.
    fn notices(&self) -> Option<broadcast::Receiver<Notice>>;

    /// Whether detection workers read the events from the bus (JetStream) rather than from
    /// the store's log.
    fn detection_stream(&self) -> Option<&nats::NatsBus> {
        None
    }
}

/// Where an instance sends its [`Notice`]s: nowhere on the embedded default, the bus at scale.
/// Cheap to clone; the default sends nothing.
#[derive(Clone, Default)]
pub struct Relay(Option<std::sync::Arc<dyn Bus>>);

impl Relay {
    /// Sends notices on `bus` when it has other instances to reach.
    pub fn new(bus: std::sync::Arc<dyn Bus>) -> Self {
        Self(bus.notices().is_some().then_some(bus))
    }

    /// Whether notices leave this process.
    pub fn is_active(&self) -> bool {
        self.0.is_some()
    }

    /// Tells the other instances (no-op without any).
    pub fn send(&self, notice: Notice) {
        if let Some(bus) = &self.0 {
            bus.notify(&notice);
        }
    }
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.is_active() {
            "Relay(bus)"
        } else {
            "Relay(none)"
        })
    }
}

/// Batches as a bus sends them: (subject, message id, payload) per message; empty on the
/// in-process bus, which carries no events.
#[derive(Debug, Default)]
pub struct Prepared(pub(crate) Vec<(String, String, Vec<u8>)>);

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

    /// Wakes every log reader.
    fn wake(&self) {
        self.tx.send_modify(|n| *n = n.wrapping_add(1));
    }
}

impl Default for InProcessBus {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Bus for InProcessBus {
    fn prepare(&self, _batches: &[(String, Vec<RawEvent>)]) -> Prepared {
        Prepared::default()
    }

    async fn publish(&self, _prepared: Prepared) -> Result<(), BusError> {
        self.wake();
        Ok(())
    }

    fn subscribe_events(&self) -> EventsSubscription {
        EventsSubscription {
            rx: self.tx.subscribe(),
        }
    }

    fn notify(&self, _notice: &Notice) {}

    fn notices(&self) -> Option<broadcast::Receiver<Notice>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn announcements_before_waiting_are_not_lost() {
        let bus = InProcessBus::new();
        let mut sub = bus.subscribe_events();
        bus.events_stored(&[]).await.unwrap();
        bus.events_stored(&[]).await.unwrap();
        let woke = tokio::time::timeout(std::time::Duration::from_secs(5), sub.next()).await;
        assert_eq!(woke.ok(), Some(true));
    }

    #[test]
    fn notices_read_back_as_written() {
        let n = Notice::RuleSwitch {
            rule_id: "r".into(),
            enabled: false,
        };
        let text = serde_json::to_string(&n).unwrap();
        assert_eq!(
            text,
            r#"{"kind":"rule_switch","rule_id":"r","enabled":false}"#
        );
        assert_eq!(serde_json::from_str::<Notice>(&text).unwrap(), n);
    }
}
