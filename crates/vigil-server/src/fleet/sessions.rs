//! Live agent sessions, so an operator action (revocation) can end one at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio_util::sync::CancellationToken;

/// The open sessions, by sensor id. At most one per endpoint: a new session replaces (and
/// ends) an older one of the same endpoint.
#[derive(Debug, Clone, Default)]
pub struct Sessions {
    inner: Arc<Mutex<HashMap<String, (u64, CancellationToken)>>>,
    next: Arc<AtomicU64>,
}

/// A registered session: its id and the token that ends it.
#[derive(Debug, Clone)]
pub struct SessionHandle {
    id: u64,
    /// Cancelled when the session must end.
    pub stop: CancellationToken,
}

impl Sessions {
    /// Registers a session; its token is a child of `parent` (server shutdown).
    pub fn open(&self, sensor_id: &str, parent: &CancellationToken) -> SessionHandle {
        let handle = SessionHandle {
            id: self.next.fetch_add(1, Ordering::Relaxed),
            stop: parent.child_token(),
        };
        let mut map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, old)) = map.insert(sensor_id.to_owned(), (handle.id, handle.stop.clone())) {
            old.cancel();
        }
        handle
    }

    /// Forgets a session that ended, unless a newer one already replaced it.
    pub fn close(&self, sensor_id: &str, handle: &SessionHandle) {
        let mut map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if map.get(sensor_id).is_some_and(|(id, _)| *id == handle.id) {
            map.remove(sensor_id);
        }
    }

    /// Ends an endpoint's live session; `false` when it has none.
    pub fn end(&self, sensor_id: &str) -> bool {
        let map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(sensor_id).map(|(_, t)| t.cancel()).is_some()
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
