use serde_json::json;
use vigil_ocsf::{DetectionFinding, Event, FindingInfo, Severity};

use super::SqliteStore;
use crate::store::{CertRecord, EndpointFacts, EventQuery, FindingQuery, HeartbeatRecord, Store};

fn event(uid: &str, time: i64) -> Event {
    Event::from_value(json!({"class_uid": 1007, "time": time, "metadata": {"uid": uid}})).unwrap()
}

#[tokio::test]
async fn insert_is_idempotent_by_uid_and_log_is_ordered() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
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

#[tokio::test]
async fn findings_and_cursor_commit_together_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SqliteStore::open(dir.path()).await.unwrap();
        assert_eq!(store.cursor("detect").await.unwrap(), 0);
        let info = FindingInfo {
            uid: "f1".into(),
            title: "t".into(),
            ..Default::default()
        };
        let f = DetectionFinding::new(5, Severity::High, info);
        store
            .commit_findings("detect", 42, &[("s1".into(), f)])
            .await
            .unwrap();
        store.close().await;
    }
    let store = SqliteStore::open(dir.path()).await.unwrap();
    assert_eq!(store.cursor("detect").await.unwrap(), 42);
    let got = store
        .query_findings(&FindingQuery {
            since: None,
            limit: 5,
        })
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["severity_id"], 4);
}

#[tokio::test]
async fn heartbeats_never_touch_operator_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
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
}
