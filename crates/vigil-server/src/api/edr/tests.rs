//! The HTTP fleet API as a third-party sensor written against docs/FLEET_API.md would call it.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::api::{ApiState, app};

struct Fixture {
    _dir: tempfile::TempDir,
    st: ApiState,
    sensor: String,
    token: String,
}

/// Calls the API. `token` is the bearer token sent; without one, a call to an operator route
/// (anything outside `/api/v1/edr/`) is made as the test admin (`test_support::admin`), and a
/// call to the fleet API is made with no credentials.
pub(crate) async fn call(
    st: &ApiState,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<String>,
) -> (StatusCode, Value) {
    let admin = if token.is_none() && !uri.starts_with("/api/v1/edr/") {
        Some(crate::api::test_support::admin(st).await)
    } else {
        None
    };
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token.or(admin.as_deref()) {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(Body::from(b)),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let res = app(st.clone()).oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn crate::store::Store> =
        crate::store::contract_tests::test_store(dir.path()).await;
    let st = ApiState::for_tests(store.clone(), &Default::default());
    let (status, body) = call(
        &st,
        "POST",
        "/api/v1/endpoints",
        None,
        Some(json!({"hostname": "fw-01"}).to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    Fixture {
        sensor: body["sensor_id"].as_str().unwrap().to_owned(),
        token: body["token"].as_str().unwrap().to_owned(),
        _dir: dir,
        st,
    }
}

fn event(uid: &str, class: u32) -> Value {
    json!({"class_uid": class, "activity_id": 1, "time": 1_700_000_000_000i64, "metadata": {"uid": uid},
           "device": {"uid": "spoofed", "hostname": "fw-01"}})
}

#[tokio::test]
async fn events_are_stored_once_and_stamped_with_the_sensor() {
    let f = fixture().await;
    let uri = format!("/api/v1/edr/{}/events", f.sensor);
    let batch = json!([event("e1", 1007), event("e2", 4001)]).to_string();
    let (status, body) = call(&f.st, "POST", &uri, Some(&f.token), Some(batch.clone())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"stored": 2, "duplicates": 0}));
    let (_, body) = call(&f.st, "POST", &uri, Some(&f.token), Some(batch)).await;
    assert_eq!(body, json!({"stored": 0, "duplicates": 2}));
    // The `edr:` form of the id addresses the same endpoint.
    let (status, _) = call(
        &f.st,
        "POST",
        &format!("/api/v1/edr/edr:{}/events", f.sensor),
        Some(&f.token),
        Some("[]".into()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, evs) = call(&f.st, "GET", "/api/v1/events", None, None).await;
    let items = evs["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(
        items
            .iter()
            .all(|e| e["device"]["uid"] == f.sensor.as_str()),
        "device.uid is the authenticated sensor"
    );
}

#[tokio::test]
async fn bad_event_requests_are_refused_and_store_nothing() {
    let f = fixture().await;
    let uri = format!("/api/v1/edr/{}/events", f.sensor);
    let cases: Vec<(Option<&str>, String, StatusCode, &str)> = vec![
        (
            Some(f.token.as_str()),
            "[{".into(),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            Some(f.token.as_str()),
            json!({"not": "an array"}).to_string(),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            Some(f.token.as_str()),
            json!([event("ok", 1007), event("bad", 9999)]).to_string(),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            Some(f.token.as_str()),
            json!([{"class_uid": 1007}]).to_string(),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            Some("wrong-token"),
            json!([event("x", 1007)]).to_string(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            None,
            json!([event("x", 1007)]).to_string(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            Some(f.token.as_str()),
            format!("[{}]", "1,".repeat(3 << 20)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
    ];
    for (token, body, want, code) in cases {
        let (status, resp) = call(&f.st, "POST", &uri, token, Some(body)).await;
        assert_eq!(status, want, "{resp}");
        assert_eq!(resp["error"]["code"], code, "{resp}");
        assert!(!resp["error"]["message"].as_str().unwrap().is_empty());
    }
    let (_, resp) = call(
        &f.st,
        "POST",
        &uri,
        Some(&f.token),
        Some(json!([event("ok", 1007), event("bad", 9999)]).to_string()),
    )
    .await;
    assert!(
        resp["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("event 1: class_uid 9999"),
        "{resp}"
    );

    // Another sensor's id with this token.
    let other = fixture_sensor(&f.st).await;
    let (status, resp) = call(
        &f.st,
        "POST",
        &format!("/api/v1/edr/{other}/events"),
        Some(&f.token),
        Some("[]".into()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        resp["error"]["message"]
            .as_str()
            .unwrap()
            .contains("another sensor")
    );

    let (_, evs) = call(&f.st, "GET", "/api/v1/events", None, None).await;
    assert!(
        evs["items"].as_array().unwrap().is_empty(),
        "nothing stored: {evs}"
    );
}

async fn fixture_sensor(st: &ApiState) -> String {
    let (_, body) = call(
        st,
        "POST",
        "/api/v1/endpoints",
        None,
        Some(json!({"hostname": "other"}).to_string()),
    )
    .await;
    body["sensor_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn heartbeat_marks_online_and_cannot_clear_operator_state() {
    let f = fixture().await;
    let uri = format!("/api/v1/edr/{}/heartbeat", f.sensor);
    let hb = json!({"agent_version": "fw 2.1", "capabilities": [{"name": "network", "source": "netflow", "live": true}], "isolation": "none"});
    let (status, body) = call(&f.st, "POST", &uri, Some(&f.token), Some(hb.to_string())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, ep) = call(
        &f.st,
        "GET",
        &format!("/api/v1/endpoints/{}", f.sensor),
        None,
        None,
    )
    .await;
    assert_eq!(ep["status"], "online");
    assert_eq!(ep["transport"], "http");
    assert_eq!(ep["heartbeat"]["agent_version"], "fw 2.1");

    let (status, body) = call(
        &f.st,
        "POST",
        &uri,
        Some(&f.token),
        Some(json!({"surprise": 1}).to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("surprise")
    );

    let (status, _) = call(
        &f.st,
        "POST",
        &format!("/api/v1/endpoints/{}/revoke", f.sensor),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = call(&f.st, "POST", &uri, Some(&f.token), Some(hb.to_string())).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (_, ep) = call(
        &f.st,
        "GET",
        &format!("/api/v1/endpoints/{}", f.sensor),
        None,
        None,
    )
    .await;
    assert!(ep["controls"]["revoked_at"].is_i64(), "still revoked: {ep}");
}

#[tokio::test]
async fn commands_flow_from_queue_to_result_and_risk_is_served() {
    let f = fixture().await;
    // Until the sensor says it can kill, a kill is refused, never simulated.
    let queue = format!("/api/v1/endpoints/{}/commands", f.sensor);
    let kill = json!({"action": "kill", "args": {"pid": 4242}, "reason": "test"}).to_string();
    let (status, body) = call(&f.st, "POST", &queue, None, Some(kill.clone())).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "cannot_enforce");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("response.kill"),
        "{body}"
    );
    let hb = json!({"capabilities": [{"name": "response.kill", "source": "edr", "live": true}]});
    let (status, _) = call(
        &f.st,
        "POST",
        &format!("/api/v1/edr/{}/heartbeat", f.sensor),
        Some(&f.token),
        Some(hb.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, cmd) = call(
        &f.st,
        "POST",
        &format!("/api/v1/endpoints/{}/commands", f.sensor),
        None,
        Some(json!({"action": "kill", "args": {"pid": 4242}, "reason": "test"}).to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{cmd}");
    let id = cmd["id"].as_str().unwrap().to_owned();
    let (status, _) = call(
        &f.st,
        "POST",
        &format!("/api/v1/endpoints/{}/commands", f.sensor),
        None,
        Some(json!({"action": "format-disk"}).to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = call(
        &f.st,
        "POST",
        "/api/v1/endpoints/no-such/commands",
        None,
        Some(json!({"action": "kill"}).to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let pending = format!("/api/v1/edr/{}/pending-commands", f.sensor);
    let (status, body) = call(&f.st, "GET", &pending, Some(&f.token), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["items"].as_array().unwrap().len(), 1);
    assert_eq!(body["items"][0]["id"], id.as_str());
    assert_eq!(body["items"][0]["state"], "delivered");
    assert_eq!(body["items"][0]["args"]["pid"], 4242);
    let (_, body) = call(&f.st, "GET", &pending, Some(&f.token), None).await;
    assert!(
        body["items"].as_array().unwrap().is_empty(),
        "delivered once"
    );

    let result = format!("/api/v1/edr/{}/commands/{id}/result", f.sensor);
    let (status, _) = call(
        &f.st,
        "POST",
        &result,
        Some(&f.token),
        Some(json!({"status": "maybe"}).to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = call(
        &f.st,
        "POST",
        &result,
        Some(&f.token),
        Some(json!({"status": "succeeded", "detail": {"killed": [4242]}}).to_string()),
    )
    .await;
    assert_eq!(
        (status, body["recorded"].clone()),
        (StatusCode::OK, json!(true))
    );
    let (_, body) = call(
        &f.st,
        "POST",
        &result,
        Some(&f.token),
        Some(json!({"status": "failed"}).to_string()),
    )
    .await;
    assert_eq!(body["recorded"], false, "the first outcome stands");
    let (status, _) = call(
        &f.st,
        "POST",
        &format!("/api/v1/edr/{}/commands/nope/result", f.sensor),
        Some(&f.token),
        Some(json!({"status": "failed"}).to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, cmds) = call(
        &f.st,
        "GET",
        &format!("/api/v1/endpoints/{}/commands", f.sensor),
        None,
        None,
    )
    .await;
    assert_eq!(cmds["items"][0]["state"], "succeeded");

    let (status, body) = call(
        &f.st,
        "GET",
        &format!("/api/v1/edr/{}/risk", f.sensor),
        Some(&f.token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["risk"]["score"], 0.0);
    assert_eq!(body["risk"]["high_water"], 0.0);
}
