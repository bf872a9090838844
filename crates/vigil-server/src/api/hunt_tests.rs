//! Hunting over stored events: the index follows the log, and a search by hash, name, IP or
//! command-line substring finds the seeded events and names their endpoints.

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::json;
use vigil_ocsf::Event;

use crate::api::ApiState;
use crate::api::edr::tests::call;
use crate::store::Store;

fn exec(uid: &str, t: i64, path: &str, cmd: &str, sha: &str) -> Event {
    Event::from_value(json!({
        "class_uid": 1007, "activity_id": 1, "time": t, "metadata": {"uid": uid},
        "process": {"pid": 7, "cmd_line": cmd,
                    "file": {"path": path, "name": path.rsplit('/').next().unwrap(),
                             "hashes": [{"algorithm_id": 3, "algorithm": "SHA-256", "value": sha}]},
                    "user": {"name": "Alice", "uid": "1000"}}
    }))
    .unwrap()
}

#[tokio::test]
async fn hunting_finds_seeded_events_by_hash_name_ip_and_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = crate::store::contract_tests::test_store(dir.path()).await;
    let st = ApiState::for_tests(Arc::clone(&store), &Default::default());
    let bad = "ab".repeat(32);
    let good = "cd".repeat(32);
    store
        .insert_events(
            "s1",
            &[
                exec(
                    "e1",
                    100,
                    "/tmp/.x/kworkerd",
                    "/tmp/.x/kworkerd --pool stratum+tcp://pool:3333",
                    &bad,
                ),
                exec("e2", 200, "/usr/bin/ls", "ls -la", &good),
            ],
        )
        .await
        .unwrap();
    store
        .insert_events(
            "s2",
            &[
                exec(
                    "e3",
                    300,
                    "/var/tmp/kworkerd",
                    "kworkerd --pool stratum+tcp://pool:3333 -t 2",
                    &bad,
                ),
                Event::from_value(json!({"class_uid": 4001, "activity_id": 1, "time": 400,
                    "metadata": {"uid": "n1"},
                    "src_endpoint": {"ip": "10.0.0.5", "port": 41000},
                    "dst_endpoint": {"ip": "203.0.113.7", "port": 3333}}))
                .unwrap(),
            ],
        )
        .await
        .unwrap();
    crate::hunt::HuntIndexer::new(
        Arc::clone(&store),
        Arc::new(crate::bus::InProcessBus::new()),
    )
    .drain()
    .await
    .unwrap();

    let uids = |v: &serde_json::Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["metadata"]["uid"].as_str().unwrap().to_owned())
            .collect()
    };
    let (status, v) = call(
        &st,
        "GET",
        &format!("/api/v1/hunt?hash={}", bad.to_uppercase()),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(uids(&v), ["e3", "e1"]);
    assert_eq!(v["endpoints"].as_array().unwrap().len(), 2);

    let (_, v) = call(&st, "GET", "/api/v1/hunt?cmdline=stratum%2Btcp", None, None).await;
    assert_eq!(uids(&v), ["e3", "e1"]);
    let (_, v) = call(
        &st,
        "GET",
        "/api/v1/hunt?cmdline=stratum%2Btcp&since=250",
        None,
        None,
    )
    .await;
    assert_eq!(uids(&v), ["e3"]);
    let (_, v) = call(
        &st,
        "GET",
        "/api/v1/hunt?name=KWORKERD&path=/tmp/.x/kworkerd",
        None,
        None,
    )
    .await;
    assert_eq!(uids(&v), ["e1"]);
    let (_, v) = call(&st, "GET", "/api/v1/hunt?ip=203.0.113.7", None, None).await;
    assert_eq!(uids(&v), ["n1"]);
    let (_, v) = call(&st, "GET", "/api/v1/hunt?user=alice&name=ls", None, None).await;
    assert_eq!(uids(&v), ["e2"]);
    // A term with a substring and a time range; and the newest first, cut at the limit.
    let (_, v) = call(
        &st,
        "GET",
        &format!("/api/v1/hunt?hash={bad}&cmdline=pool:3333&until=250"),
        None,
        None,
    )
    .await;
    assert_eq!(uids(&v), ["e1"]);
    let (_, v) = call(
        &st,
        "GET",
        &format!("/api/v1/hunt?hash={bad}&limit=1"),
        None,
        None,
    )
    .await;
    assert_eq!(uids(&v), ["e3"]);

    let (status, _) = call(&st, "GET", "/api/v1/hunt?cmdline=ls", None, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = call(&st, "GET", "/api/v1/hunt?since=1", None, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // The indexer resumes from its cursor: a second drain adds nothing twice.
    crate::hunt::HuntIndexer::new(
        Arc::clone(&store),
        Arc::new(crate::bus::InProcessBus::new()),
    )
    .drain()
    .await
    .unwrap();
    let (_, v) = call(&st, "GET", &format!("/api/v1/hunt?hash={bad}"), None, None).await;
    assert_eq!(uids(&v), ["e3", "e1"]);
}

#[tokio::test]
async fn the_process_tree_around_an_alert_has_ancestors_siblings_descendants_and_activity() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = crate::store::contract_tests::test_store(dir.path()).await;
    let st = ApiState::for_tests(Arc::clone(&store), &Default::default());
    let t = vigil_ocsf::now_ms();
    let launch = |uid: &str, dt: i64, pid: u32, ppid: u32, name: &str, launch: u8| {
        Event::from_value(
            json!({"class_uid": 1007, "activity_id": 1, "launch_type_id": launch,
            "time": t + dt, "metadata": {"uid": uid},
            "process": {"pid": pid, "uid": format!("{pid}-1"), "name": name,
                        "file": {"path": format!("/usr/bin/{name}")},
                        "parent_process": {"pid": ppid}}}),
        )
        .unwrap()
    };
    let focus = json!({"pid": 20, "uid": "20-1", "name": "sh", "cmd_line": "sh -c evil",
        "file": {"path": "/usr/bin/sh"}, "parent_process": {"pid": 10, "name": "bash"},
        "ancestry": [{"pid": 10, "name": "bash"}, {"pid": 1, "name": "systemd"}]});
    store
        .insert_events(
            "s1",
            &[
                launch("f", 0, 20, 10, "sh", 3),
                launch("sib", 5, 21, 10, "ls", 3),
                launch("c-fork", 10, 30, 20, "sh", 2),
                launch("c-exec", 10, 30, 20, "curl", 3),
                launch("gc", 20, 40, 30, "tar", 3),
                Event::from_value(json!({"class_uid": 4001, "activity_id": 1, "time": t + 15,
                    "metadata": {"uid": "net"}, "actor": {"process": {"pid": 30}},
                    "src_endpoint": {"ip": "10.0.0.5"}, "dst_endpoint": {"ip": "203.0.113.9", "port": 443}}))
                .unwrap(),
            ],
        )
        .await
        .unwrap();
    let info = vigil_ocsf::FindingInfo {
        uid: "a-tree".into(),
        title: "t".into(),
        ..Default::default()
    };
    let mut f = vigil_ocsf::DetectionFinding::new(t, vigil_ocsf::Severity::High, info);
    f.evidences.push(vigil_ocsf::Evidence {
        process: Some(focus),
        ..Default::default()
    });
    store
        .commit_findings("test", 1, &[("s1".into(), f)], &[])
        .await
        .unwrap();

    let (status, tree) = call(&st, "GET", "/api/v1/alerts/a-tree/tree", None, None).await;
    assert_eq!(status, StatusCode::OK, "{tree}");
    assert_eq!(tree["process"]["pid"], 20);
    assert_eq!(tree["ancestors"][0]["name"], "bash");
    let child = &tree["process"]["children"][0];
    assert_eq!(
        child["name"], "curl",
        "a fork and its exec are one process: {tree:#}"
    );
    assert_eq!(tree["process"]["children"].as_array().unwrap().len(), 1);
    assert_eq!(child["network"][0]["dst"]["ip"], "203.0.113.9");
    assert_eq!(child["children"][0]["name"], "tar");
    assert_eq!(tree["siblings"][0]["name"], "ls");
    let (status, _) = call(&st, "GET", "/api/v1/alerts/nope/tree", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
