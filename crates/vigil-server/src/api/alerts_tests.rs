//! The alert workflow, event search and the rule catalog, as a console would call them.

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::json;
use vigil_ocsf::{DetectionFinding, Event, FindingInfo, Severity};

use crate::api::ApiState;
use crate::api::edr::tests::call;
use crate::store::Store;

async fn state() -> (tempfile::TempDir, ApiState) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = crate::store::contract_tests::test_store(dir.path()).await;
    (dir, ApiState::for_tests(store, &Default::default()))
}

async fn one_alert(st: &ApiState, uid: &str, severity: Severity) {
    let info = FindingInfo {
        uid: uid.into(),
        title: "t".into(),
        ..Default::default()
    };
    let f = DetectionFinding::new(vigil_ocsf::now_ms(), severity, info);
    st.store
        .commit_findings("test", 1, &[("s1".into(), f)], &[])
        .await
        .unwrap();
}

#[tokio::test]
async fn alerts_go_new_acknowledged_closed_with_a_verdict_and_comments() {
    let (_dir, st) = state().await;
    one_alert(&st, "a1", Severity::High).await;
    one_alert(&st, "a2", Severity::Low).await;
    let (_, list) = call(
        &st,
        "GET",
        "/api/v1/alerts?status=new&min_severity=4",
        None,
        None,
    )
    .await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["workflow"]["status"], "new");
    assert_eq!(items[0]["sensor_id"], "s1");

    let patch = |body: serde_json::Value| {
        let st = st.clone();
        async move {
            call(
                &st,
                "PATCH",
                "/api/v1/alerts/a1",
                None,
                Some(body.to_string()),
            )
            .await
        }
    };
    let (status, body) = patch(json!({"status": "closed"})).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "closing needs a verdict: {body}"
    );
    let (status, body) = patch(json!({"status": "acknowledged", "assignee": "ana"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["workflow"]["assignee"], "ana");
    let (status, body) = patch(json!({"status": "closed", "verdict": "false_positive"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["workflow"]["verdict"], "false_positive");
    let (status, _) = patch(json!({"status": "new"})).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "closed alerts are reopened as acknowledged"
    );

    let (status, body) = call(
        &st,
        "POST",
        "/api/v1/alerts/a1/comments",
        None,
        Some(json!({"text": "benign admin script"}).to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["comments"][0]["text"], "benign admin script");
    let (status, _) = call(&st, "GET", "/api/v1/alerts/nope", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, audit) = call(&st, "GET", "/api/v1/audit?target=alert:a1", None, None).await;
    assert_eq!(audit["items"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn events_are_searched_by_time_text_and_field() {
    let (_dir, st) = state().await;
    let ev = |uid: &str, t: i64, path: &str| {
        Event::from_value(
            json!({"class_uid": 1007, "time": t, "metadata": {"uid": uid},
            "process": {"file": {"path": path}, "cmd_line": format!("{path} --flag")}}),
        )
        .unwrap()
    };
    st.store
        .insert_events(
            "s1",
            &[
                ev("e1", 10, "/usr/bin/curl"),
                ev("e2", 20, "/bin/bash"),
                ev("e3", 30, "/usr/bin/curl"),
            ],
        )
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
    let (_, v) = call(&st, "GET", "/api/v1/events?q=CURL&until=30", None, None).await;
    assert_eq!(uids(&v), ["e1"]);
    let (_, v) = call(
        &st,
        "GET",
        "/api/v1/events?field=process.file.path&value=/bin/bash",
        None,
        None,
    )
    .await;
    assert_eq!(uids(&v), ["e2"]);
    let (status, _) = call(&st, "GET", "/api/v1/events?field=x')--&value=1", None, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_rule_catalog_lists_every_rule_with_its_status_and_attack() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = crate::store::contract_tests::test_store(dir.path()).await;
    let mut st = ApiState::for_tests(store, &Default::default());
    let maps = vigil_ocsf::fieldmap::FieldMaps::builtin().unwrap();
    let rules_dir = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../rules"));
    let (set, report) = vigil_detect::RuleSet::load_dirs(&[rules_dir], &maps).unwrap();
    st.catalog = Arc::new(crate::api::rules::RuleCatalog::new(&set, &report));
    let (status, body) = call(&st, "GET", "/api/v1/rules", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let items = body["items"].as_array().unwrap();
    let scan = items
        .iter()
        .find(|r| r["title"] == "Port Scan of a Host From One Source")
        .expect("the port-scan correlation rule");
    assert_eq!(scan["kind"], "correlation");
    assert_eq!(scan["attacks"][0]["technique"]["uid"], "T1046");
    assert!(body["counts"]["loaded"].as_u64().unwrap() >= 5);
    let brute = items
        .iter()
        .find(|r| r["title"] == "Password Guessing Against One Account (SSH or su)")
        .expect("the brute-force correlation rule");
    assert_eq!(
        brute["status"], "loaded",
        "the auth field map serves it: {brute}"
    );
    assert!(items.iter().all(|r| r["status"].is_string()));
}
