//! The operators' live feed: new alerts, endpoint state changes and command state changes, as
//! JSON messages `{"type": …, "data": …}` on a bounded broadcast channel.
//!
//! Alerts and commands are published by [`LiveStore`], a [`Store`] that wraps the real one and
//! announces what each write committed, whichever role made it (detection, edge findings over
//! gRPC, the HTTP fleet API, the webhook backend). Endpoint changes (session opened or closed,
//! online / stale / offline, isolation confirmed, revoked, tags) are found by
//! [`LiveFeed::watch_endpoints`], which re-reads the endpoints when something hinted at a
//! change and every few seconds (health changes with time alone). A subscriber that falls more
//! than [`CAPACITY`] messages behind loses the oldest and is told so; it never slows the server.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

use crate::bus::{Notice, Relay};
use crate::fleet::Sessions;
use crate::store::Store;

mod store;

pub use store::LiveStore;

/// Messages a subscriber may fall behind by before it loses some.
pub const CAPACITY: usize = 1024;
/// How often endpoint health is re-read without a hint.
pub const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// The feed: cheap to clone, one per server.
#[derive(Debug, Clone)]
pub struct LiveFeed {
    tx: broadcast::Sender<Arc<str>>,
    endpoints: Arc<Notify>,
    /// Carries alerts and command changes to the other server instances' feeds.
    relay: Relay,
}

impl Default for LiveFeed {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(CAPACITY).0,
            endpoints: Arc::new(Notify::new()),
            relay: Relay::default(),
        }
    }
}

impl LiveFeed {
    /// A subscription to every message from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        self.tx.subscribe()
    }

    /// Also sends what this instance publishes to the other instances' feeds (operators may
    /// watch a feed served by another instance than the one that raised the alert).
    #[must_use]
    pub fn with_relay(mut self, relay: Relay) -> Self {
        self.relay = relay;
        self
    }

    /// Whether anyone may listen (publishing is skipped otherwise).
    pub fn has_subscribers(&self) -> bool {
        self.relay.is_active() || self.tx.receiver_count() > 0
    }

    /// Delivers an encoded message to this instance's subscribers (another instance's).
    pub fn deliver(&self, text: &str) {
        if self.tx.receiver_count() > 0 {
            let _ = self.tx.send(text.into());
        }
    }

    /// Sends `{"type": kind, "data": data}` to every subscriber.
    pub fn publish(&self, kind: &str, data: &impl Serialize) {
        if !self.has_subscribers() {
            return;
        }
        match serde_json::to_string(&json!({ "type": kind, "data": data })) {
            Ok(text) => {
                if self.tx.receiver_count() > 0 {
                    let _ = self.tx.send(text.as_str().into());
                }
                self.relay.send(Notice::Live { text });
            }
            Err(error) => tracing::warn!(%error, kind, "Cannot encode a live feed message"),
        }
    }

    /// Says an endpoint may have changed; the watcher re-reads them soon.
    pub fn endpoints_changed(&self) {
        self.endpoints.notify_one();
    }

    /// Publishes endpoint state changes until `shutdown`.
    pub async fn watch_endpoints(
        self,
        store: Arc<dyn Store>,
        sessions: Sessions,
        shutdown: CancellationToken,
    ) {
        let mut session_changes = sessions.session_changes();
        // What subscribers last saw of each endpoint; empty while nobody listens.
        let mut seen: Option<HashMap<String, Value>> = None;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.endpoints.notified() => {}
                r = session_changes.changed() => if r.is_err() { return },
                () = tokio::time::sleep(SWEEP_EVERY) => {}
            }
            // Coalesces a burst of hints (a fleet's heartbeats) into one read.
            tokio::time::sleep(Duration::from_millis(200)).await;
            // Every instance serving the API watches for itself: endpoint changes stay local.
            if self.tx.receiver_count() == 0 {
                seen = None;
                continue;
            }
            let endpoints = match store.endpoints().await {
                Ok(e) => e,
                Err(error) => {
                    tracing::warn!(%error, "Live feed: cannot read endpoints");
                    continue;
                }
            };
            let now = vigil_ocsf::now_ms();
            let first = seen.is_none();
            let seen = seen.get_or_insert_with(HashMap::new);
            for ep in &endpoints {
                let id = &ep.facts.sensor_id;
                let view = crate::api::endpoint_view(ep, now, sessions.is_live(id));
                let state = json!({
                    "status": view["status"],
                    "session_live": view["session_live"],
                    "isolation_status": view["isolation_status"],
                    "controls": view["controls"],
                });
                if seen.get(id) != Some(&state) {
                    let previous = seen.insert(id.clone(), state);
                    if !first {
                        let mut data = view;
                        data["previous"] = previous.unwrap_or(Value::Null);
                        if let Ok(text) =
                            serde_json::to_string(&json!({ "type": "endpoint", "data": data }))
                        {
                            self.deliver(&text);
                        }
                    }
                }
            }
        }
    }
}
