//! Fleet-wide hunting over stored events: an index of the values analysts search by
//! (executable hash, file name and path, IP address, domain, user) and a trigram index of
//! command lines, filled by a durable consumer of the event log — like detection, it resumes
//! where it stopped and never slows ingest — and a search that answers from the indexes.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use vigil_ocsf::Event;

use crate::bus::Bus;
use crate::store::{HuntTerm, Store, StoreError};

/// Name of the indexer's cursor.
pub const CONSUMER: &str = "hunt";
/// Events indexed per round trip.
const PAGE: u32 = 4096;

/// Paths of values worth searching by, and their kind.
const TERMS: &[(&str, &str)] = &[
    ("process.file.path", "path"),
    ("process.file.name", "name"),
    ("process.name", "name"),
    ("file.path", "path"),
    ("file.name", "name"),
    // A rename's new name.
    ("file_result.path", "path"),
    ("file_result.name", "name"),
    ("src_endpoint.ip", "ip"),
    ("dst_endpoint.ip", "ip"),
    ("query.hostname", "domain"),
    ("process.user.name", "user"),
    ("actor.user.name", "user"),
    ("user.name", "user"),
];

/// The searchable values of an event, and its command line.
pub fn terms_of(event: &Event) -> (BTreeSet<(&'static str, String)>, Option<String>) {
    let mut out = BTreeSet::new();
    for (path, kind) in TERMS {
        if let Some(v) = event.get(path).and_then(Value::as_str)
            && !v.is_empty()
        {
            let v = if *kind == "ip" {
                v.to_owned()
            } else {
                v.to_lowercase()
            };
            out.insert((*kind, v));
        }
    }
    for path in ["process.file.hashes", "file.hashes"] {
        if let Some(hashes) = event.get(path).and_then(Value::as_array) {
            for h in hashes {
                if let Some(v) = h.get("value").and_then(Value::as_str) {
                    out.insert(("hash", v.to_lowercase()));
                }
            }
        }
    }
    let cmd = event
        .get("process.cmd_line")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        .map(str::to_owned);
    (out, cmd)
}

/// The indexer: reads the event log from its cursor and indexes each event once.
pub struct HuntIndexer {
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
}

impl HuntIndexer {
    /// An indexer over the store, woken by the bus.
    pub fn new(store: Arc<dyn Store>, bus: Arc<dyn Bus>) -> Self {
        Self { store, bus }
    }

    /// Runs until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut wake = self.bus.subscribe_events();
        loop {
            if let Err(error) = self.drain().await {
                tracing::error!(%error, "Hunt indexer failed to read or write; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                alive = wake.next() => if !alive { return },
            }
        }
    }

    /// Indexes everything after the cursor.
    pub async fn drain(&self) -> Result<(), StoreError> {
        let mut cursor = self.store.cursor(CONSUMER).await?;
        loop {
            let page = self.store.events_after(cursor, PAGE).await?;
            let Some(last) = page.last_seq else {
                return Ok(());
            };
            let mut terms = Vec::new();
            let mut cmdlines = Vec::new();
            for e in &page.events {
                let (values, cmd) = terms_of(&e.event);
                for (kind, value) in values {
                    terms.push(HuntTerm {
                        kind,
                        value,
                        seq: e.seq,
                        sensor_id: e.sensor_id.clone(),
                        time: e.event.time,
                    });
                }
                if let Some(c) = cmd {
                    cmdlines.push((e.seq, c));
                }
            }
            self.store
                .index_hunt(CONSUMER, last, &terms, &cmdlines)
                .await?;
            cursor = last;
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_rename_is_found_by_both_names() {
        let ev = Event::from_value(json!({"class_uid": 1001, "activity_id": 5, "time": 1,
            "file": {"path": "/tmp/x", "name": "x"},
            "file_result": {"path": "/etc/cron.d/Evil", "name": "Evil"},
            "actor": {"user": {"name": "Root"}}}))
        .unwrap();
        let (terms, cmd) = terms_of(&ev);
        for t in [
            ("path", "/tmp/x"),
            ("path", "/etc/cron.d/evil"),
            ("name", "evil"),
            ("user", "root"),
        ] {
            assert!(terms.contains(&(t.0, t.1.to_owned())), "{t:?} in {terms:?}");
        }
        assert_eq!(cmd, None);
    }
}
