//! The store contract: behaviour every [`Store`] backend must show, written once and run on
//! each (`store_contract!` in `sqlite/tests.rs` and `postgres/tests.rs`).

use std::future::Future;

use serde_json::json;
use vigil_ocsf::{DetectionFinding, Event, FindingInfo, RawEvent, Severity};

use super::{
    AuditQuery, CertRecord, EndpointFacts, EventQuery, FindingQuery, HeartbeatRecord, NewCommand,
    Store, StoreError,
};

/// A database the contract runs on, made for one test and gone after it.
pub(crate) trait Backend {
    /// The store type.
    type S: Store;
    /// A store on the test's database; opening again after [`Backend::close`] finds what
    /// was stored before.
    fn open(&self) -> impl Future<Output = Self::S>;
    /// Closes a store.
    fn close(&self, store: Self::S) -> impl Future<Output = ()>;
    /// How many command result parts the database holds (under the trait: no method says).
    fn result_parts_held(&self, store: &Self::S) -> impl Future<Output = i64>;
}

/// One `#[tokio::test]` per contract test, each on a fresh `$backend` (an expression that
/// may `.await`).
macro_rules! store_contract {
    ($backend:expr) => {
        $crate::store::contract_tests::store_contract!(@each $backend;
            insert_is_idempotent_by_uid_and_log_is_ordered,
            a_group_counts_each_batch_and_stores_a_uid_once,
            events_are_found_by_sensor_text_field_and_time,
            findings_and_cursor_commit_together_and_survive_reopen,
            detector_state_is_replaced_per_endpoint,
            heartbeats_never_touch_operator_state,
            enrollment_is_refused_for_a_known_id_and_tags_are_audited,
            commands_go_queued_delivered_completed_with_every_transition_audited,
            undelivered_commands_expire_and_are_never_delivered,
            commands_page_newest_first,
            policies_are_versioned_unique_by_name_and_audited,
            an_edge_finding_is_stored_once_and_raises_risk_once,
            a_result_in_parts_is_joined_once_all_arrived_and_cleared_on_completion,
            a_triage_result_is_kept_as_a_package,
            alerts_follow_the_workflow_and_page_by_position,
            hunts_find_terms_and_command_lines_newest_first,
            many_distinct_command_lines_index_in_pages,
            live_queries_and_rule_switches_are_kept,
            operators_users_tokens_and_sessions,
            the_last_admin_stays,
        );
    };
    (@each $backend:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let backend = $backend;
                $crate::store::contract_tests::$name(&backend).await;
            }
        )*
    };
}
pub(crate) use store_contract;

mod commands;
mod investigate;
mod operators;

pub(crate) use commands::*;
pub(crate) use investigate::*;
pub(crate) use operators::*;

/// The store the API tests run on: SQLite in `dir`, or, with `VIGIL_TEST_STORE=postgres`, a
/// fresh PostgreSQL database (see `postgres/tests.rs`) dropped with the store. CI runs the API
/// tests both ways.
pub(crate) async fn test_store(dir: &std::path::Path) -> std::sync::Arc<dyn Store> {
    match std::env::var("VIGIL_TEST_STORE").as_deref() {
        Ok("postgres") => {
            let db = super::postgres::tests::PgTestDb::new().await;
            std::sync::Arc::new(db.into_store().await)
        }
        Ok("sqlite" | "") | Err(_) => {
            std::sync::Arc::new(super::sqlite::SqliteStore::open(dir).await.unwrap())
        }
        Ok(other) => panic!("VIGIL_TEST_STORE={other}: expected sqlite or postgres"),
    }
}

pub(crate) fn event(uid: &str, time: i64) -> Event {
    Event::from_value(json!({"class_uid": 1007, "time": time, "metadata": {"uid": uid}})).unwrap()
}

fn raw(uid: &str, time: i64) -> RawEvent {
    RawEvent::from_event(&event(uid, time))
}

pub(super) fn finding(uid: &str, time: i64, severity: Severity, rule: &str) -> DetectionFinding {
    let mut info = FindingInfo {
        uid: uid.into(),
        title: "t".into(),
        ..Default::default()
    };
    info.analytic.uid = rule.into();
    DetectionFinding::new(time, severity, info)
}

pub(super) async fn enrolled<S: Store>(store: &S, id: &str) {
    let facts = EndpointFacts {
        sensor_id: id.into(),
        hostname: "h".into(),
        ..Default::default()
    };
    store.upsert_endpoint(&facts, 1).await.unwrap();
}

pub(super) fn new_command(action: &str, ttl_ms: Option<i64>) -> NewCommand {
    NewCommand {
        sensor_id: "s1".into(),
        action: action.into(),
        args: json!({}),
        requested_by: "operator".into(),
        reason: "test".into(),
        ttl_ms,
        backend: String::new(),
    }
}

pub(super) async fn audit_actions<S: Store>(store: &S, target: Option<String>) -> Vec<String> {
    let q = AuditQuery {
        target,
        limit: 50,
        ..Default::default()
    };
    let log = store.audit_log(&q).await.unwrap();
    log.into_iter().map(|a| a.action).collect()
}

pub(crate) async fn insert_is_idempotent_by_uid_and_log_is_ordered<B: Backend>(b: &B) {
    let store = b.open().await;
    let out = store
        .insert_events("s1", &[event("a", 1), event("b", 2)])
        .await
        .unwrap();
    assert_eq!((out.stored, out.duplicates), (2, 0));
    let out = store
        .insert_events("s1", &[event("b", 2), event("c", 3)])
        .await
        .unwrap();
    assert_eq!((out.stored, out.duplicates), (1, 1));

    let log = store.events_after(0, 10).await.unwrap().events;
    let uids: Vec<_> = log.iter().map(|e| e.event.uid.as_str()).collect();
    assert_eq!(uids, ["a", "b", "c"]);
    let tail = store.events_after(log[0].seq, 10).await.unwrap();
    assert_eq!(tail.events.len(), 2);
    assert_eq!(tail.last_seq, Some(log[2].seq));
    assert_eq!(tail.events[0].sensor_id, "s1");
    assert_eq!(tail.events[0].event.class_uid, 1007);
    assert!(
        store
            .events_after(log[2].seq, 10)
            .await
            .unwrap()
            .last_seq
            .is_none()
    );

    let q = EventQuery {
        class_uid: Some(1007),
        since: Some(2),
        limit: 10,
        ..Default::default()
    };
    let newest_first = store.query_events(&q).await.unwrap();
    assert_eq!(newest_first[0]["metadata"]["uid"], "c");
    assert_eq!(newest_first.len(), 2);
}

pub(crate) async fn a_group_counts_each_batch_and_stores_a_uid_once<B: Backend>(b: &B) {
    let store = b.open().await;
    store.insert_events("s1", &[event("old", 5)]).await.unwrap();
    let outs = store
        .insert_event_batches(vec![
            ("s1".into(), vec![raw("old", 5), raw("x", 6)]),
            ("s2".into(), vec![]),
            ("s2".into(), vec![raw("x", 6), raw("y", 7), raw("y", 7)]),
        ])
        .await
        .unwrap();
    let counts: Vec<_> = outs.iter().map(|o| (o.stored, o.duplicates)).collect();
    assert_eq!(counts, [(1, 1), (0, 0), (1, 2)]);
    let log = store.events_after(0, 10).await.unwrap().events;
    let rows: Vec<_> = log
        .iter()
        .map(|e| (e.event.uid.as_str(), e.sensor_id.as_str()))
        .collect();
    assert_eq!(rows, [("old", "s1"), ("x", "s1"), ("y", "s2")]);
    assert!(log.windows(2).all(|w| w[0].seq < w[1].seq));
    // One sensor with two batches in a group: each batch gets its own count.
    let outs = store
        .insert_event_batches(vec![
            ("s1".into(), vec![raw("p", 8), raw("old", 5)]),
            ("s3".into(), vec![raw("q", 8)]),
            ("s1".into(), vec![raw("p", 8), raw("r", 9), raw("s", 9)]),
        ])
        .await
        .unwrap();
    let counts: Vec<_> = outs.iter().map(|o| (o.stored, o.duplicates)).collect();
    assert_eq!(counts, [(1, 1), (1, 0), (2, 1)]);
    let uids: Vec<_> = store
        .events_after(log[2].seq, 10)
        .await
        .unwrap()
        .events
        .into_iter()
        .map(|e| e.event.uid)
        .collect();
    assert_eq!(uids, ["p", "q", "r", "s"], "log order is batch order");
    let empty = store.insert_event_batches(vec![]).await.unwrap();
    assert!(empty.is_empty());
}

pub(crate) async fn events_are_found_by_sensor_text_field_and_time<B: Backend>(b: &B) {
    let store = b.open().await;
    let exec = |uid: &str, time: i64, path: &str, pid: i64| {
        Event::from_value(
            json!({"class_uid": 1007, "time": time, "metadata": {"uid": uid},
            "process": {"pid": pid, "file": {"path": path}}}),
        )
        .unwrap()
    };
    store
        .insert_events(
            "s1",
            &[
                exec("a", 10, "/usr/bin/Curl", 7),
                exec("b", 20, "/bin/sh", 8),
            ],
        )
        .await
        .unwrap();
    store
        .insert_events("s2", &[exec("c", 30, "/usr/bin/curl", 9)])
        .await
        .unwrap();
    // A NUL in a string (JSON `\u0000`) is stored, read back, and does not break searches.
    let nul = exec("n", 5, "/tmp/a\0b", 10);
    assert_eq!(store.insert_events("s3", &[nul]).await.unwrap().stored, 1);
    let log = store.events_after(0, 10).await.unwrap().events;
    assert_eq!(log[3].event.data["process"]["file"]["path"], "/tmp/a\0b");
    let find = |q: EventQuery| {
        let store = &store;
        async move {
            let found = store.query_events(&q).await.unwrap();
            found
                .iter()
                .map(|e| e["metadata"]["uid"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    let all = |q: EventQuery| EventQuery { limit: 10, ..q };
    assert_eq!(
        find(all(EventQuery {
            text: Some("CURL".into()),
            ..Default::default()
        }))
        .await,
        ["c", "a"]
    );
    assert_eq!(
        find(all(EventQuery {
            sensor_id: Some("s1".into()),
            until: Some(20),
            ..Default::default()
        }))
        .await,
        ["a"]
    );
    assert_eq!(
        find(all(EventQuery {
            field: Some(("process.file.path".into(), "/bin/sh".into())),
            ..Default::default()
        }))
        .await,
        ["b"]
    );
    assert_eq!(
        find(all(EventQuery {
            field: Some(("process.pid".into(), "9".into())),
            ..Default::default()
        }))
        .await,
        ["c"]
    );
    assert_eq!(
        find(EventQuery {
            limit: 1,
            ..Default::default()
        })
        .await,
        ["c"]
    );
    assert_eq!(
        find(all(EventQuery {
            sensor_id: Some("s3".into()),
            text: Some("/tmp/a".into()),
            ..Default::default()
        }))
        .await,
        ["n"]
    );
}

pub(crate) async fn findings_and_cursor_commit_together_and_survive_reopen<B: Backend>(b: &B) {
    {
        let store = b.open().await;
        assert_eq!(store.cursor("detect").await.unwrap(), 0);
        let f = finding("f1", 5, Severity::High, "r1");
        store
            .commit_findings("detect", 42, &[("s1".into(), f)], &[])
            .await
            .unwrap();
        // A cursor never goes back.
        store.commit_findings("detect", 7, &[], &[]).await.unwrap();
        b.close(store).await;
    }
    let store = b.open().await;
    assert_eq!(store.cursor("detect").await.unwrap(), 42);
    assert_eq!(store.cursor("other").await.unwrap(), 0);
    let got = store
        .query_findings(&FindingQuery {
            limit: 5,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body["severity_id"], 4);
    assert_eq!(got[0].body["sensor_id"], "s1");
    assert_eq!(got[0].body["workflow"]["status"], "new");
    assert!(store.risk("s1", 5).await.unwrap().score > 0.0);
}

pub(crate) async fn detector_state_is_replaced_per_endpoint<B: Backend>(b: &B) {
    let store = b.open().await;
    let state = |s: &str, v: &[u8]| (s.to_owned(), v.to_vec());
    store
        .commit_findings("detect", 1, &[], &[state("s2", b"a"), state("s1", b"b")])
        .await
        .unwrap();
    store
        .commit_findings("detect", 2, &[], &[state("s2", b"\x00\xffc")])
        .await
        .unwrap();
    store
        .commit_findings("other", 2, &[], &[state("s9", b"z")])
        .await
        .unwrap();
    assert_eq!(
        store.detector_states("detect").await.unwrap(),
        [state("s1", b"b"), state("s2", b"\x00\xffc")]
    );
    assert!(store.detector_states("none").await.unwrap().is_empty());
}

pub(crate) async fn heartbeats_never_touch_operator_state<B: Backend>(b: &B) {
    let store = b.open().await;
    let facts = EndpointFacts {
        sensor_id: "s1".into(),
        hostname: "h".into(),
        ..Default::default()
    };
    let cert = CertRecord {
        fingerprint: "ab".into(),
        not_after: 99,
    };
    store
        .enroll_endpoint(&facts, &cert, "tokhash", 10)
        .await
        .unwrap();
    assert!(store.set_revoked("s1", true, 15).await.unwrap());
    assert!(!store.set_revoked("nobody", true, 15).await.unwrap());
    let hb = HeartbeatRecord {
        time: 20,
        buffered: 3,
        dropped: 1,
        isolation: "none".into(),
        ..Default::default()
    };
    store.record_heartbeat("s1", &hb, "grpc", 20).await.unwrap();
    let eps = store.endpoints().await.unwrap();
    assert_eq!(eps.len(), 1);
    assert_eq!((eps[0].first_seen, eps[0].last_seen), (10, 20));
    assert_eq!(eps[0].heartbeat.as_ref().unwrap().buffered, 3);
    assert_eq!(
        eps[0].controls.revoked_at,
        Some(15),
        "a heartbeat cannot clear a revocation"
    );
    let id = store.identify_certificate("ab").await.unwrap().unwrap();
    assert_eq!((id.sensor_id.as_str(), id.revoked), ("s1", true));
    assert!(
        store
            .identify_token("tokhash")
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
    assert!(store.identify_certificate("zz").await.unwrap().is_none());
    assert_eq!(store.heartbeats("s1", 10).await.unwrap().len(), 1);
    // Contact moves last_seen forward only.
    store.touch_endpoint("s1", 18).await.unwrap();
    store.touch_endpoint("s1", 25).await.unwrap();
    assert_eq!(store.endpoints().await.unwrap()[0].last_seen, 25);
    assert!(store.set_revoked("s1", false, 30).await.unwrap());
    assert!(
        !store
            .identify_certificate("ab")
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
}

pub(crate) async fn enrollment_is_refused_for_a_known_id_and_tags_are_audited<B: Backend>(b: &B) {
    let store = b.open().await;
    let facts = EndpointFacts {
        sensor_id: "s1".into(),
        hostname: "h".into(),
        ..Default::default()
    };
    let cert = |f: &str| CertRecord {
        fingerprint: f.into(),
        not_after: 99,
    };
    store
        .enroll_endpoint(&facts, &cert("c1"), "t1", 10)
        .await
        .unwrap();
    let again = store
        .enroll_endpoint(&facts, &cert("c2"), "t2", 11)
        .await
        .unwrap_err();
    assert!(matches!(again, StoreError::Conflict(_)), "{again}");
    assert!(store.identify_certificate("c2").await.unwrap().is_none());
    store.add_certificate("s1", &cert("c3"), 12).await.unwrap();
    store.add_certificate("s1", &cert("c3"), 12).await.unwrap();
    store.add_token("s1", "t4", 12).await.unwrap();
    assert_eq!(
        store
            .identify_certificate("c3")
            .await
            .unwrap()
            .unwrap()
            .sensor_id,
        "s1"
    );
    assert_eq!(
        store.identify_token("t4").await.unwrap().unwrap().sensor_id,
        "s1"
    );

    let tags = vec!["prod".to_owned(), "db".to_owned()];
    assert!(store.set_tags("s1", &tags, "user:alice", 13).await.unwrap());
    assert!(
        !store
            .set_tags("nobody", &tags, "user:alice", 13)
            .await
            .unwrap()
    );
    let controls = store.controls("s1").await.unwrap();
    assert_eq!(controls.tags, tags);
    assert!(!controls.isolation_requested);
    assert_eq!(store.controls("nobody").await.unwrap(), Default::default());
    assert_eq!(
        audit_actions(&store, Some("endpoint:s1".into())).await,
        ["endpoint.tags_set"]
    );
    store.confirm_isolation("s1", "isolated", 14).await.unwrap();
    store.confirm_isolation("s1", "isolated", 15).await.unwrap();
    let ep = &store.endpoints().await.unwrap()[0];
    assert_eq!(
        (ep.isolation.as_str(), ep.isolation_at),
        ("isolated", Some(14))
    );
    assert_eq!(ep.controls.tags, tags);
}
