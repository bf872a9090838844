use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{ApiState, app};

/// GET as the test admin.
async fn get(state: &ApiState, uri: &str) -> (StatusCode, Value) {
    let token = super::test_support::admin(state).await;
    let req = Request::get(uri)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let res = app(state.clone()).oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

async fn state() -> (tempfile::TempDir, ApiState) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn crate::store::Store> =
        crate::store::contract_tests::test_store(dir.path()).await;
    (dir, ApiState::for_tests(store, &Default::default()))
}

#[tokio::test]
async fn events_filter_by_class_and_since() {
    let (_dir, st) = state().await;
    let evs: Vec<_> = [(1007, 10, "a"), (4001, 20, "b"), (1007, 30, "c")]
        .iter()
        .map(|(c, t, u)| {
            vigil_ocsf::Event::from_value(
                json!({"class_uid": c, "time": t, "metadata": {"uid": u}}),
            )
            .unwrap()
        })
        .collect();
    st.store.insert_events("s", &evs).await.unwrap();
    let (status, body) = get(&st, "/api/v1/events?class_uid=1007&since=15").await;
    assert_eq!(status, StatusCode::OK);
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["metadata"]["uid"], "c");
    let (_, body) = get(&st, "/api/v1/events?limit=2").await;
    assert_eq!(body["items"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn bad_query_gets_the_error_shape() {
    let (_dir, st) = state().await;
    let (status, body) = get(&st, "/api/v1/events?since=yesterday").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "bad_request");
    assert!(body["error"]["message"].as_str().unwrap().contains("since"));
    let (status, body) = get(&st, "/api/v1/alerts?limit=0").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["message"], "limit must be at least 1");
    let (status, body) = get(&st, "/api/v1/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test]
async fn the_console_is_served_at_the_root_with_a_strict_policy() {
    let (_dir, st) = state().await;
    let res = app(st.clone())
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let csp = res.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    let html = String::from_utf8_lossy(&bytes);
    if super::console::built() {
        // Every asset the page names is served.
        for asset in html.split('"').filter(|s| s.starts_with("/assets/")) {
            let res = app(st.clone())
                .oneshot(Request::get(asset).body(Body::empty()).unwrap())
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK, "{asset}");
        }
    } else {
        assert!(html.contains("built without its web console"), "{html}");
    }
}
