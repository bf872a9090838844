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
            .commit_findings("detect", 42, &[("s1".into(), f)], &[])
            .await
            .unwrap();
        store.close().await;
    }
    let store = SqliteStore::open(dir.path()).await.unwrap();
    assert_eq!(store.cursor("detect").await.unwrap(), 42);
    let got = store
        .query_findings(&FindingQuery {
            limit: 5,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body["severity_id"], 4);
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

async fn enrolled(store: &SqliteStore, id: &str) {
    let facts = EndpointFacts {
        sensor_id: id.into(),
        hostname: "h".into(),
        ..Default::default()
    };
    store.upsert_endpoint(&facts, 1).await.unwrap();
}

fn new_command(action: &str, ttl_ms: Option<i64>) -> crate::store::NewCommand {
    crate::store::NewCommand {
        sensor_id: "s1".into(),
        action: action.into(),
        args: json!({}),
        requested_by: "operator".into(),
        reason: "test".into(),
        ttl_ms,
        backend: String::new(),
    }
}

#[tokio::test]
async fn commands_go_queued_delivered_completed_with_every_transition_audited() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    enrolled(&store, "s1").await;
    let isolate = store
        .enqueue_command(&new_command("isolate", None), 10)
        .await
        .unwrap();
    assert_eq!(
        (isolate.state.as_str(), isolate.backend.as_str()),
        ("queued", "agent")
    );
    assert!(store.controls("s1").await.unwrap().isolation_requested);

    // Delivered once; a session that reconnects gets the unconfirmed command again.
    assert_eq!(
        store
            .take_pending_commands("s1", true, 20)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        store
            .take_pending_commands("s1", false, 25)
            .await
            .unwrap()
            .is_empty()
    );
    let again = store.take_pending_commands("s1", true, 30).await.unwrap();
    assert_eq!(again[0].id, isolate.id);

    let done = store
        .complete_command("s1", &isolate.id, true, &json!({"table": "vigil"}), 40)
        .await
        .unwrap();
    assert_eq!(done, crate::store::CompleteOutcome::Completed);
    let repeat = store
        .complete_command("s1", &isolate.id, false, &json!({}), 41)
        .await
        .unwrap();
    assert_eq!(repeat, crate::store::CompleteOutcome::AlreadyCompleted);
    assert!(
        store
            .take_pending_commands("s1", true, 50)
            .await
            .unwrap()
            .is_empty()
    );

    let (cmd, transitions) = store.command("s1", &isolate.id).await.unwrap().unwrap();
    assert_eq!(cmd.state, "succeeded");
    let states: Vec<_> = transitions
        .iter()
        .map(|t| (t.state.as_str(), t.time))
        .collect();
    assert_eq!(
        states,
        [
            ("queued", 10),
            ("delivered", 20),
            ("redelivered", 30),
            ("succeeded", 40)
        ]
    );
    let ep = &store.endpoints().await.unwrap()[0];
    assert_eq!(
        (ep.isolation.as_str(), ep.isolation_at),
        ("isolated", Some(40))
    );

    let audit = store
        .audit_log(&crate::store::AuditQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let actions: Vec<_> = audit.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(actions, ["command.succeeded", "command.queued"]);
    assert_eq!(audit[1].detail["reason"], "test");
}

#[tokio::test]
async fn undelivered_commands_expire_and_are_never_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    enrolled(&store, "s1").await;
    let stale = store
        .enqueue_command(&new_command("kill", Some(100)), 10)
        .await
        .unwrap();
    let fresh = store
        .enqueue_command(&new_command("suspend", Some(1_000)), 50)
        .await
        .unwrap();
    let got = store.take_pending_commands("s1", false, 200).await.unwrap();
    assert_eq!(got.iter().map(|c| &c.id).collect::<Vec<_>>(), [&fresh.id]);
    let (cmd, _) = store.command("s1", &stale.id).await.unwrap().unwrap();
    assert_eq!(cmd.state, "expired");
    assert_eq!(
        store
            .complete_command("s1", &stale.id, true, &json!({}), 300)
            .await
            .unwrap(),
        crate::store::CompleteOutcome::AlreadyCompleted,
        "an expired command cannot be completed"
    );
}

#[tokio::test]
async fn policies_are_versioned_unique_by_name_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    let input = crate::store::PolicyInput {
        name: "block miners".into(),
        description: String::new(),
        rules: vec![crate::store::PolicyRuleSpec {
            rule_id: Some("r1".into()),
            sigma: None,
            response: "kill".into(),
        }],
        endpoints: vec![],
        tags: vec!["prod".into()],
        enabled: true,
    };
    let p = store.create_policy(&input, "user:alice", 5).await.unwrap();
    assert_eq!(p.revision, 1);
    let dup = store
        .create_policy(&input, "user:alice", 6)
        .await
        .unwrap_err();
    assert!(
        matches!(dup, crate::store::StoreError::Conflict(_)),
        "{dup}"
    );
    let mut changed = input.clone();
    changed.rules[0].response = "alert".into();
    let p2 = store
        .update_policy(&p.id, &changed, "token:ci", 7)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (p2.revision, p2.spec.rules[0].response.as_str()),
        (2, "alert")
    );
    assert!(
        store
            .update_policy("nope", &changed, "token:ci", 8)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.policies().await.unwrap(), vec![p2.clone()]);
    assert!(store.delete_policy(&p.id, "user:alice").await.unwrap());
    assert!(!store.delete_policy(&p.id, "user:alice").await.unwrap());
    let audit = store
        .audit_log(&crate::store::AuditQuery {
            target: Some(format!("policy:{}", p.id)),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let actions: Vec<_> = audit.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(
        actions,
        ["policy.deleted", "policy.updated", "policy.created"]
    );
    let actors: Vec<_> = audit.iter().map(|a| a.actor.as_str()).collect();
    assert_eq!(actors, ["user:alice", "token:ci", "user:alice"]);
}

#[tokio::test]
async fn an_edge_finding_is_stored_once_and_raises_risk_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    enrolled(&store, "s1").await;
    let info = FindingInfo {
        uid: "f-1".into(),
        title: "t".into(),
        ..Default::default()
    };
    let f = DetectionFinding::new(5, Severity::High, info);
    assert_eq!(
        store
            .insert_findings("s1", std::slice::from_ref(&f))
            .await
            .unwrap(),
        1
    );
    let risk = store.risk("s1", 5).await.unwrap();
    assert_eq!(store.insert_findings("s1", &[f]).await.unwrap(), 0);
    assert_eq!(store.risk("s1", 5).await.unwrap().score, risk.score);
    assert!(risk.score > 0.0);
}

#[tokio::test]
async fn a_result_in_parts_is_joined_once_all_arrived_and_cleared_on_completion() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    enrolled(&store, "s1").await;
    enrolled(&store, "s2").await;
    let cmd = store
        .enqueue_command(&new_command("query", None), 10)
        .await
        .unwrap();
    let put = |sensor: &'static str, part: u32, body: &'static [u8]| {
        let (store, id) = (&store, cmd.id.clone());
        async move {
            store
                .put_result_part(sensor, &id, (part, 3), body, 20)
                .await
                .unwrap()
        }
    };
    // Out of order, one resent, and another endpoint's part ignored.
    assert_eq!(put("s1", 2, b"\"}").await, None);
    assert_eq!(put("s1", 0, b"{\"a\":").await, None);
    assert_eq!(put("s1", 0, b"{\"a\":").await, None);
    assert_eq!(put("s2", 1, b"\"evil").await, None);
    let joined = put("s1", 1, b"\"x").await.expect("all three parts");
    assert_eq!(joined, b"{\"a\":\"x\"}");
    // A resent part after joining still answers the whole (the command is not complete yet).
    assert_eq!(put("s1", 1, b"\"x").await.as_deref(), Some(&joined[..]));
    let result: serde_json::Value = serde_json::from_slice(&joined).unwrap();
    store
        .complete_command("s1", &cmd.id, true, &result, 30)
        .await
        .unwrap();
    let held: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM result_parts")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(held, 0, "completion clears the parts");
    // Parts of a completed command are not kept.
    assert_eq!(put("s1", 0, b"{").await, None);
    let (done, _) = store.command("s1", &cmd.id).await.unwrap().unwrap();
    assert_eq!(done.result, Some(json!({"a": "x"})));
}
