//! Live agent sessions, so an operator action can reach one at once: revocation ends it, a
//! queued command or a policy change wakes it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::bus::{Notice, Relay};

/// The open sessions, by sensor id. At most one per endpoint: a new session replaces (and
/// ends) an older one of the same endpoint.
#[derive(Debug, Clone)]
pub struct Sessions {
    inner: Arc<Mutex<HashMap<String, SessionHandle>>>,
    next: Arc<AtomicU64>,
    policies: Arc<watch::Sender<u64>>,
    changes: Arc<watch::Sender<u64>>,
    /// Reaches sessions held by the other server instances.
    relay: Relay,
}

impl Default for Sessions {
    fn default() -> Self {
        Self {
            inner: Arc::default(),
            next: Arc::default(),
            policies: Arc::new(watch::channel(0).0),
            changes: Arc::new(watch::channel(0).0),
            relay: Relay::default(),
        }
    }
}

/// A registered session: its id, the token that ends it and its wake-ups.
#[derive(Debug, Clone)]
pub struct SessionHandle {
    id: u64,
    /// Cancelled when the session must end.
    pub stop: CancellationToken,
    /// Notified when commands were queued for the endpoint.
    pub commands: Arc<Notify>,
}

impl Sessions {
    /// Also reaches the sessions other server instances hold: revocations, queued commands and
    /// policy changes go to them as notices.
    #[must_use]
    pub fn with_relay(mut self, relay: Relay) -> Self {
        self.relay = relay;
        self
    }

    /// Registers a session; its token is a child of `parent` (server shutdown).
    pub fn open(&self, sensor_id: &str, parent: &CancellationToken) -> SessionHandle {
        let handle = SessionHandle {
            id: self.next.fetch_add(1, Ordering::Relaxed),
            stop: parent.child_token(),
            commands: Arc::new(Notify::new()),
        };
        let mut map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = map.insert(sensor_id.to_owned(), handle.clone()) {
            old.stop.cancel();
        }
        self.changes.send_modify(|n| *n += 1);
        handle
    }

    /// Forgets a session that ended, unless a newer one already replaced it.
    pub fn close(&self, sensor_id: &str, handle: &SessionHandle) {
        let mut map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if map.get(sensor_id).is_some_and(|h| h.id == handle.id) {
            map.remove(sensor_id);
            self.changes.send_modify(|n| *n += 1);
        }
    }

    /// Ends an endpoint's live session, wherever it is; `false` when this instance has none.
    pub fn end(&self, sensor_id: &str) -> bool {
        self.relay.send(Notice::EndSession {
            sensor_id: sensor_id.to_owned(),
        });
        self.end_local(sensor_id)
    }

    /// Ends an endpoint's session if this instance holds it.
    pub fn end_local(&self, sensor_id: &str) -> bool {
        let map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(sensor_id).map(|h| h.stop.cancel()).is_some()
    }

    /// Wakes an endpoint's live session to deliver queued commands; `false` when it has none
    /// (the commands wait in the store for its next session or pull).
    pub fn wake_commands(&self, sensor_id: &str) -> bool {
        let here = self.wake_commands_local(sensor_id);
        if !here {
            self.relay.send(Notice::Commands {
                sensor_id: sensor_id.to_owned(),
            });
        }
        here
    }

    /// Wakes the endpoint's session if this instance holds it.
    pub fn wake_commands_local(&self, sensor_id: &str) -> bool {
        let map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(sensor_id)
            .map(|h| h.commands.notify_one())
            .is_some()
    }

    /// Tells every live session, on every instance, that policies changed.
    pub fn wake_policies(&self) {
        self.relay.send(Notice::Policies);
        self.wake_policies_local();
    }

    /// Tells this instance's sessions that policies changed.
    pub fn wake_policies_local(&self) {
        self.policies.send_modify(|n| *n += 1);
    }

    /// Watches policy changes.
    pub fn policy_changes(&self) -> watch::Receiver<u64> {
        self.policies.subscribe()
    }

    /// Watches sessions opening and closing (for the operators' live feed).
    pub fn session_changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Whether an endpoint has a live session.
    pub fn is_live(&self, sensor_id: &str) -> bool {
        let map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        map.contains_key(sensor_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_session_ends_the_old_one_and_close_keeps_the_newer() {
        let sessions = Sessions::default();
        let root = CancellationToken::new();
        let a = sessions.open("s", &root);
        let b = sessions.open("s", &root);
        assert!(a.stop.is_cancelled());
        sessions.close("s", &a);
        assert!(
            sessions.is_live("s"),
            "closing the old session keeps the new one"
        );
        assert!(sessions.end("s"));
        assert!(b.stop.is_cancelled());
        sessions.close("s", &b);
        assert!(!sessions.is_live("s"));
        assert!(!sessions.end("s"));
    }
}
