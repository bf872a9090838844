//! Fleet-wide hunting over stored events: an index of the values analysts search by
//! (executable hash, file name and path, IP address, domain, user) and a trigram index of
//! command lines, filled by a durable consumer of the event log — like detection, it resumes
//! where it stopped and never slows ingest — and a search that answers from the indexes.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::background::Lane;
use crate::bus::Bus;
use crate::store::{HuntTerm, Store, StoreError, StoredBody};

/// Name of the indexer's cursor.
pub const CONSUMER: &str = "hunt";
/// Events indexed per round trip.
const PAGE: u32 = 4096;

/// Where the values worth searching by are, and their kind: a tree of object keys. `cmd` is
/// the command line (indexed apart, for substring search).
enum Node {
    /// A string value of this kind.
    Value(&'static str),
    /// An object: the keys worth descending into.
    Object(&'static [(&'static str, Node)]),
    /// An array: each element read at this node.
    Array(&'static Node),
}

const FILE: Node = Node::Object(&[
    ("path", Node::Value("path")),
    ("name", Node::Value("name")),
    // OCSF fingerprints: `[{"algorithm_id": …, "value": …}]`.
    (
        "hashes",
        Node::Array(&Node::Object(&[("value", Node::Value("hash"))])),
    ),
]);
const USER: Node = Node::Object(&[("name", Node::Value("user"))]);
const IP: Node = Node::Object(&[("ip", Node::Value("ip"))]);
const EVENT: Node = Node::Object(&[
    (
        "process",
        Node::Object(&[
            ("file", FILE),
            ("name", Node::Value("name")),
            ("user", USER),
            ("cmd_line", Node::Value("cmd")),
        ]),
    ),
    ("file", FILE),
    // A rename's new name.
    (
        "file_result",
        Node::Object(&[("path", Node::Value("path")), ("name", Node::Value("name"))]),
    ),
    ("src_endpoint", IP),
    ("dst_endpoint", IP),
    (
        "query",
        Node::Object(&[("hostname", Node::Value("domain"))]),
    ),
    ("actor", Node::Object(&[("user", USER)])),
    ("user", USER),
]);

/// (kind, value) pairs an event is found by.
pub type Terms = BTreeSet<(&'static str, String)>;

/// The searchable values of an event document as stored, and its command line, read in one
/// pass over the text: only the keys of [`EVENT`] are descended into, and nothing else of the
/// document is built. `None` when the text is not a JSON object.
pub fn terms_of_json(body: &str) -> Option<(Terms, Option<String>)> {
    let mut found = Found::default();
    let mut de = serde_json::Deserializer::from_str(body);
    serde::de::DeserializeSeed::deserialize(
        Walk {
            node: &EVENT,
            found: &mut found,
            root: true,
        },
        &mut de,
    )
    .ok()?;
    de.end().ok()?;
    found.object.then_some((found.terms, found.cmd))
}

#[derive(Default)]
struct Found {
    terms: Terms,
    cmd: Option<String>,
    /// Whether the document was an object.
    object: bool,
}

impl Found {
    fn add(&mut self, kind: &'static str, value: &str) {
        if value.is_empty() {
            return;
        }
        match kind {
            "cmd" => self.cmd = Some(value.to_owned()),
            "ip" => {
                self.terms.insert((kind, value.to_owned()));
            }
            _ => {
                self.terms.insert((kind, value.to_lowercase()));
            }
        }
    }
}

/// Reads one value at `node`; whatever is not of the expected shape is skipped.
struct Walk<'f> {
    node: &'static Node,
    found: &'f mut Found,
    /// Whether this is the document itself.
    root: bool,
}

impl<'de> serde::de::DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        if let Node::Value(kind) = self.node {
            self.found.add(kind, v);
        }
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if self.root {
            self.found.object = true;
        }
        let keys = match self.node {
            Node::Object(keys) => *keys,
            _ => &[],
        };
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match keys.iter().find(|(k, _)| *k == key) {
                Some((_, node)) => map.next_value_seed(Walk {
                    node,
                    found: &mut *self.found,
                    root: false,
                })?,
                None => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        match self.node {
            Node::Array(element) => {
                while seq
                    .next_element_seed(Walk {
                        node: element,
                        found: &mut *self.found,
                        root: false,
                    })?
                    .is_some()
                {}
            }
            _ => while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {},
        }
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

/// The indexer: reads the event log from its cursor and indexes each event once.
pub struct HuntIndexer {
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    /// The analysis thread pages are read on ([`crate::background`]).
    lane: Lane,
}

impl HuntIndexer {
    /// An indexer over the store, woken by the bus.
    pub fn new(store: Arc<dyn Store>, bus: Arc<dyn Bus>) -> Self {
        Self {
            store,
            bus,
            lane: Lane::new("vigil-hunt"),
        }
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
            let page = self.store.event_bodies_after(cursor, PAGE).await?;
            let Some(last) = page.last_seq else {
                return Ok(());
            };
            let (terms, cmdlines) = self
                .lane
                .run(move || page_terms(page.events))
                .await
                .ok_or_else(|| {
                    StoreError::Engine("the hunt thread did not start or stopped (a panic)".into())
                })?;
            self.store
                .index_hunt(CONSUMER, last, &terms, &cmdlines)
                .await?;
            cursor = last;
        }
    }
}

/// The index rows of a page of the log: its terms, and its command lines by position.
fn page_terms(events: Vec<StoredBody>) -> (Vec<HuntTerm>, Vec<(i64, String)>) {
    let mut terms = Vec::new();
    let mut cmdlines = Vec::new();
    for e in events {
        let Some((values, cmd)) = terms_of_json(&e.body) else {
            tracing::warn!(
                seq = e.seq,
                "Stored event is not a JSON object; not indexed"
            );
            continue;
        };
        for (kind, value) in values {
            terms.push(HuntTerm {
                kind,
                value,
                seq: e.seq,
                sensor_id: e.sensor_id.clone(),
                time: e.time,
            });
        }
        if let Some(c) = cmd {
            cmdlines.push((e.seq, c));
        }
    }
    (terms, cmdlines)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// The indexed values by the paths they come from, looked up in a parsed document: what the
    /// one-pass reader must agree with.
    fn by_lookup(doc: &Value) -> (Terms, Option<String>) {
        const TERMS: &[(&str, &str)] = &[
            ("process.file.path", "path"),
            ("process.file.name", "name"),
            ("process.name", "name"),
            ("file.path", "path"),
            ("file.name", "name"),
            ("file_result.path", "path"),
            ("file_result.name", "name"),
            ("src_endpoint.ip", "ip"),
            ("dst_endpoint.ip", "ip"),
            ("query.hostname", "domain"),
            ("process.user.name", "user"),
            ("actor.user.name", "user"),
            ("user.name", "user"),
        ];
        let at = |path: &str| {
            path.split('.')
                .try_fold(doc, |v, k| v.get(k))
                .filter(|v| !v.is_null())
        };
        let mut out = BTreeSet::new();
        for (path, kind) in TERMS {
            if let Some(v) = at(path).and_then(Value::as_str).filter(|v| !v.is_empty()) {
                let v = if *kind == "ip" {
                    v.to_owned()
                } else {
                    v.to_lowercase()
                };
                out.insert((*kind, v));
            }
        }
        for path in ["process.file.hashes", "file.hashes"] {
            for h in at(path).and_then(Value::as_array).into_iter().flatten() {
                if let Some(v) = h
                    .get("value")
                    .and_then(Value::as_str)
                    .filter(|v| !v.is_empty())
                {
                    out.insert(("hash", v.to_lowercase()));
                }
            }
        }
        let cmd = at("process.cmd_line")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
            .map(str::to_owned);
        (out, cmd)
    }

    #[test]
    fn a_rename_is_found_by_both_names() {
        let doc = json!({"class_uid": 1001, "activity_id": 5, "time": 1,
            "file": {"path": "/tmp/x", "name": "x"},
            "file_result": {"path": "/etc/cron.d/Evil", "name": "Evil"},
            "actor": {"user": {"name": "Root"}}});
        let (terms, cmd) = terms_of_json(&doc.to_string()).unwrap();
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

    #[test]
    fn one_pass_reads_the_same_values_as_lookups() {
        let docs = [
            json!({"class_uid": 1007, "activity_id": 1, "time": 5,
                "process": {"pid": 7, "cmd_line": "/usr/bin/Curl http://x", "name": "Curl",
                    "file": {"path": "/usr/bin/Curl", "name": "Curl",
                        "hashes": [{"algorithm_id": 6, "value": "ABCDEF"}, {"value": ""}, 7, {"value": 3}]},
                    "user": {"uid": "0", "name": "Root"},
                    "parent_process": {"cmd_line": "bash", "file": {"path": "/bin/bash"}}},
                "actor": {"process": {"cmd_line": "sshd"}, "user": {"name": "Alice"}},
                "device": {"uid": "s1", "hostname": "h"}}),
            json!({"class_uid": 4001, "activity_id": 1, "time": 1,
                "src_endpoint": {"ip": "10.0.0.1", "port": 5},
                "dst_endpoint": {"ip": "FE80::1", "port": 443}, "user": {"name": ""}}),
            json!({"class_uid": 4003, "activity_id": 1, "time": 1,
                "query": {"hostname": "Evil.Example", "type": "A"},
                "answers": [{"rdata": "1.2.3.4"}]}),
            json!({"class_uid": 1001, "activity_id": 1, "time": 1,
                "file": {"path": null, "name": ["odd"], "hashes": {"value": "notalist"}},
                "process": "not an object", "query": {"hostname": 5}}),
            json!({"class_uid": 3002, "activity_id": 1, "time": 1, "user": {"name": "Bob"},
                "unmapped": {"process": {"cmd_line": "nested elsewhere"}},
                "message": "escaped \"quotes\" and \\u00e9"}),
        ];
        for doc in docs {
            assert_eq!(
                terms_of_json(&doc.to_string()),
                Some(by_lookup(&doc)),
                "{doc}"
            );
        }
    }

    #[test]
    fn a_document_that_is_not_an_object_is_refused() {
        for text in ["[1,2]", "\"x\"", "{\"a\":", "{} trailing", ""] {
            assert_eq!(terms_of_json(text), None, "{text}");
        }
        assert_eq!(terms_of_json("{}"), Some(Default::default()));
    }
}
