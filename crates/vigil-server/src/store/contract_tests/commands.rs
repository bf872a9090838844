//! The contract on response: commands, their results, policies, edge findings and risk.

use serde_json::json;
use vigil_ocsf::Severity;

use super::{Backend, audit_actions, enrolled, finding, new_command};
use crate::store::{AuditQuery, CompleteOutcome, PolicyInput, PolicyRuleSpec, Store, StoreError};

pub(crate) async fn commands_go_queued_delivered_completed_with_every_transition_audited<
    B: Backend,
>(
    b: &B,
) {
    let store = b.open().await;
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
    assert_eq!(done, CompleteOutcome::Completed);
    let repeat = store
        .complete_command("s1", &isolate.id, false, &json!({}), 41)
        .await
        .unwrap();
    assert_eq!(repeat, CompleteOutcome::AlreadyCompleted);
    let unknown = store
        .complete_command("s2", &isolate.id, true, &json!({}), 41)
        .await
        .unwrap();
    assert_eq!(unknown, CompleteOutcome::Unknown);
    assert!(
        store
            .take_pending_commands("s1", true, 50)
            .await
            .unwrap()
            .is_empty()
    );

    let (cmd, transitions) = store.command("s1", &isolate.id).await.unwrap().unwrap();
    assert_eq!(cmd.state, "succeeded");
    assert_eq!(cmd.result, Some(json!({"table": "vigil"})));
    assert_eq!((cmd.delivered_at, cmd.completed_at), (Some(20), Some(40)));
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
    assert!(store.command("s2", &isolate.id).await.unwrap().is_none());
    let ep = &store.endpoints().await.unwrap()[0];
    assert_eq!(
        (ep.isolation.as_str(), ep.isolation_at),
        ("isolated", Some(40))
    );

    let audit = store
        .audit_log(&AuditQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let actions: Vec<_> = audit.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(actions, ["command.succeeded", "command.queued"]);
    assert_eq!(audit[1].detail["reason"], "test");
    let older = store
        .audit_log(&AuditQuery {
            before: Some(audit[0].seq),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(older.len(), 1);

    // A release clears the operator's isolation request.
    store
        .enqueue_command(&new_command("release", None), 60)
        .await
        .unwrap();
    assert!(!store.controls("s1").await.unwrap().isolation_requested);
}

pub(crate) async fn undelivered_commands_expire_and_are_never_delivered<B: Backend>(b: &B) {
    let store = b.open().await;
    enrolled(&store, "s1").await;
    let stale = store
        .enqueue_command(&new_command("kill", Some(100)), 10)
        .await
        .unwrap();
    let fresh = store
        .enqueue_command(&new_command("suspend", Some(1_000)), 50)
        .await
        .unwrap();
    let mut hook = new_command("kill", None);
    hook.backend = "webhook".into();
    store.enqueue_command(&hook, 60).await.unwrap();
    let got = store.take_pending_commands("s1", false, 200).await.unwrap();
    assert_eq!(got.iter().map(|c| &c.id).collect::<Vec<_>>(), [&fresh.id]);
    let (cmd, _) = store.command("s1", &stale.id).await.unwrap().unwrap();
    assert_eq!(cmd.state, "expired");
    assert_eq!(
        store
            .complete_command("s1", &stale.id, true, &json!({}), 300)
            .await
            .unwrap(),
        CompleteOutcome::AlreadyCompleted,
        "an expired command cannot be completed"
    );
    assert!(
        audit_actions(&store, None)
            .await
            .contains(&"command.expired".to_owned())
    );
}

pub(crate) async fn commands_page_newest_first<B: Backend>(b: &B) {
    let store = b.open().await;
    enrolled(&store, "s1").await;
    let mut ids = Vec::new();
    for t in 0..5 {
        ids.push(
            store
                .enqueue_command(&new_command("kill", None), 10 + t)
                .await
                .unwrap()
                .id,
        );
    }
    let page = store.commands("s1", None, 2).await.unwrap();
    assert_eq!(
        page.iter().map(|c| &c.id).collect::<Vec<_>>(),
        [&ids[4], &ids[3]]
    );
    let next = store.commands("s1", Some(&ids[3]), 10).await.unwrap();
    assert_eq!(
        next.iter().map(|c| &c.id).collect::<Vec<_>>(),
        [&ids[2], &ids[1], &ids[0]]
    );
    assert!(store.commands("s2", None, 10).await.unwrap().is_empty());
}

pub(crate) async fn policies_are_versioned_unique_by_name_and_audited<B: Backend>(b: &B) {
    let store = b.open().await;
    let input = PolicyInput {
        name: "block miners".into(),
        description: String::new(),
        rules: vec![PolicyRuleSpec {
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
    assert!(matches!(dup, StoreError::Conflict(_)), "{dup}");
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
    let mut other = input.clone();
    other.name = "another".into();
    let p3 = store.create_policy(&other, "user:alice", 9).await.unwrap();
    let clash = store
        .update_policy(&p3.id, &input, "user:alice", 10)
        .await
        .unwrap_err();
    assert!(matches!(clash, StoreError::Conflict(_)), "{clash}");
    assert_eq!(
        store.policies().await.unwrap(),
        vec![p3.clone(), p2.clone()]
    );
    assert!(store.delete_policy(&p.id, "user:alice").await.unwrap());
    assert!(!store.delete_policy(&p.id, "user:alice").await.unwrap());
    let audit = store
        .audit_log(&AuditQuery {
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

pub(crate) async fn an_edge_finding_is_stored_once_and_raises_risk_once<B: Backend>(b: &B) {
    let store = b.open().await;
    enrolled(&store, "s1").await;
    let f = finding("f-1", 5, Severity::High, "r1");
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
    assert_eq!(risk.high_water, risk.score);
    let week_later = vigil_ocsf::now_ms() + 7 * 86_400_000;
    assert!(store.risk("s1", week_later).await.unwrap().score < risk.score);
    assert_eq!(store.risk("nobody", 5).await.unwrap().score, 0.0);
}

pub(crate) async fn a_result_in_parts_is_joined_once_all_arrived_and_cleared_on_completion<
    B: Backend,
>(
    b: &B,
) {
    let store = b.open().await;
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
    assert_eq!(
        b.result_parts_held(&store).await,
        0,
        "completion clears the parts"
    );
    // Parts of a completed command are not kept.
    assert_eq!(put("s1", 0, b"{").await, None);
    let (done, _) = store.command("s1", &cmd.id).await.unwrap().unwrap();
    assert_eq!(done.result, Some(json!({"a": "x"})));
}
