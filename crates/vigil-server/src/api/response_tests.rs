//! Commands through the external action backend, policies and the audit log, as an operator
//! (or a script) calls them.

use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::api::ApiState;
use crate::api::edr::tests::call;
use crate::response::ResponseConfig;

/// A webhook on 127.0.0.1 answering `status` and recording what it received.
async fn webhook(status: StatusCode) -> (String, Arc<Mutex<Vec<Value>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post({
            let seen = Arc::clone(&seen);
            move |axum::Json(body): axum::Json<Value>| async move {
                seen.lock().unwrap().push(body);
                (status, axum::Json(json!({"ticket": "T-1"})))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

async fn state(hook: Option<String>) -> (tempfile::TempDir, ApiState) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn crate::store::Store> =
        crate::store::contract_tests::test_store(dir.path()).await;
    let cfg = ResponseConfig {
        action_webhook: hook,
        command_ttl: None,
    };
    (dir, ApiState::for_tests(store, &cfg))
}

async fn register(st: &ApiState) -> String {
    let (status, body) = call(
        st,
        "POST",
        "/api/v1/endpoints",
        None,
        Some(json!({"hostname": "appliance"}).to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    body["sensor_id"].as_str().unwrap().to_owned()
}

async fn settled(st: &ApiState, sensor: &str, id: &str) -> Value {
    let uri = format!("/api/v1/endpoints/{sensor}/commands/{id}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (status, cmd) = call(st, "GET", &uri, None, None).await;
        assert_eq!(status, StatusCode::OK, "{cmd}");
        if cmd["state"] != "queued" {
            return cmd;
        }
        assert!(std::time::Instant::now() < deadline, "never settled: {cmd}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_sensor_without_the_capability_goes_to_the_webhook() {
    let (url, seen) = webhook(StatusCode::OK).await;
    let (_dir, st) = state(Some(url)).await;
    let sensor = register(&st).await;
    let (status, cmd) = call(
        &st,
        "POST",
        &format!("/api/v1/endpoints/edr:{sensor}/commands"),
        None,
        Some(json!({"action": "isolate", "reason": "ransomware"}).to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{cmd}");
    assert_eq!(cmd["backend"], "webhook");
    let done = settled(&st, &sensor, cmd["id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["result"]["response"]["ticket"], "T-1");
    let states: Vec<_> = done["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["state"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(states, ["queued", "succeeded"]);
    let got = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["command"]["action"], "isolate");
    assert_eq!(got[0]["endpoint"]["uid"], format!("edr:{sensor}"));
    // The webhook's answer is not the endpoint's: isolation stays unconfirmed.
    let (_, ep) = call(
        &st,
        "GET",
        &format!("/api/v1/endpoints/{sensor}"),
        None,
        None,
    )
    .await;
    assert_eq!(ep["controls"]["isolation_requested"], true);
    // Nothing for the sensor to pull: the backend owns the command.
    let (_, audit) = call(&st, "GET", "/api/v1/audit", None, None).await;
    let actions: Vec<_> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap().to_owned())
        .filter(|a| a.starts_with("command."))
        .collect();
    assert_eq!(actions, ["command.succeeded", "command.queued"]);
}

#[tokio::test]
async fn a_failing_webhook_fails_the_command_with_its_answer() {
    let (url, _seen) = webhook(StatusCode::BAD_GATEWAY).await;
    let (_dir, st) = state(Some(url)).await;
    let sensor = register(&st).await;
    let (_, cmd) = call(
        &st,
        "POST",
        &format!("/api/v1/endpoints/{sensor}/commands"),
        None,
        Some(json!({"action": "kill", "args": {"pid": 4242}}).to_string()),
    )
    .await;
    let done = settled(&st, &sensor, cmd["id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "failed", "{done}");
    assert_eq!(done["result"]["status"], 502);
}

#[tokio::test]
async fn policies_are_validated_and_every_change_is_audited() {
    let (_dir, st) = state(None).await;
    let rule = "0b7c9e2a-41d6-4f0f-8a53-2c8e6f9d4a12";
    let post = |body: Value| {
        let st = st.clone();
        async move {
            call(
                &st,
                "POST",
                "/api/v1/policies",
                None,
                Some(body.to_string()),
            )
            .await
        }
    };
    let (status, body) =
        post(json!({"name": "p", "rules": [{"rule_id": "nope", "response": "kill"}]})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no loaded rule")
    );
    let (status, body) =
        post(json!({"name": "p", "rules": [{"rule_id": rule, "response": "nuke"}]})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) =
        post(json!({"name": "p", "rules": [{"sigma": "title: x", "response": "kill"}]})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = post(
        json!({"name": "p", "rules": [{"rule_id": rule, "response": "kill"}], "tags": ["prod"]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let (status, _) = post(json!({"name": "p", "rules": []})).await;
    assert_eq!(status, StatusCode::CONFLICT);

    let (status, body) = call(
        &st,
        "PUT",
        &format!("/api/v1/policies/{id}"),
        None,
        Some(json!({"name": "p", "rules": [{"rule_id": rule, "response": "alert"}], "enabled": false}).to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["revision"].as_i64(), body["enabled"].as_bool()),
        (Some(2), Some(false))
    );
    let (status, _) = call(&st, "DELETE", &format!("/api/v1/policies/{id}"), None, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(&st, "GET", &format!("/api/v1/policies/{id}"), None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, audit) = call(
        &st,
        "GET",
        &format!("/api/v1/audit?target=policy:{id}"),
        None,
        None,
    )
    .await;
    assert_eq!(audit["items"].as_array().unwrap().len(), 3);
}
