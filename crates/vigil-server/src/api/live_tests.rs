//! The live feed over a real socket: a WebSocket client sees an alert raised after it
//! connected, a command's state changes and an endpoint change.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use vigil_ocsf::{DetectionFinding, FindingInfo, Severity};

use super::test_support::token_for;
use super::{ApiState, app};
use crate::api::edr::tests::call;
use crate::store::OperatorRole;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn serve(st: ApiState) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = app(st).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// The next message of `kind`, skipping others, within 10 s.
async fn next_of(ws: &mut Ws, kind: &str) -> Value {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let msg = ws.next().await.expect("feed open").expect("frame");
            if let Message::Text(t) = msg {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == kind {
                    return v;
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {kind} message within 10 s"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_pushes_alerts_commands_and_endpoint_changes() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn crate::store::Store> =
        crate::store::contract_tests::test_store(dir.path()).await;
    let st = ApiState::for_tests(store, &Default::default());
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(st.live.clone().watch_endpoints(
        Arc::clone(&st.store),
        st.sessions.clone(),
        stop.clone(),
    ));
    let addr = serve(st.clone()).await;
    let analyst = token_for(&st, "ann", OperatorRole::Analyst).await;
    let viewer = token_for(&st, "vic", OperatorRole::Viewer).await;

    // A third-party sensor that can kill.
    let (_, reg) = call(
        &st,
        "POST",
        "/api/v1/endpoints",
        None,
        Some(json!({"hostname": "fw"}).to_string()),
    )
    .await;
    let sensor = reg["sensor_id"].as_str().unwrap().to_owned();
    let sensor_token = reg["token"].as_str().unwrap().to_owned();
    let hb = json!({"capabilities": [{"name": "response.kill", "source": "edr", "live": true}]});
    call(
        &st,
        "POST",
        &format!("/api/v1/edr/{sensor}/heartbeat"),
        Some(&sensor_token),
        Some(hb.to_string()),
    )
    .await;

    // Without credentials: refused before the upgrade.
    let url = format!("ws://{addr}/api/v1/live");
    let err = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");

    // A viewer with a header; a browser would use a ticket.
    let mut req = url.as_str().into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {viewer}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let hello = next_of(&mut ws, "hello").await;
    assert_eq!(hello["data"]["role"], "viewer");

    // An alert raised after the client connected.
    let info = FindingInfo {
        uid: "live-1".into(),
        title: "raised while watching".into(),
        ..Default::default()
    };
    let f = DetectionFinding::new(vigil_ocsf::now_ms(), Severity::High, info);
    st.store.insert_findings(&sensor, &[f]).await.unwrap();
    let alert = next_of(&mut ws, "alert").await;
    assert_eq!(alert["data"]["finding_info"]["uid"], "live-1");

    // A command: queued by the analyst, delivered to the sensor, completed by it.
    let (status, cmd) = call(
        &st,
        "POST",
        &format!("/api/v1/endpoints/{sensor}/commands"),
        Some(&analyst),
        Some(json!({"action": "kill", "args": {"pid": 4242}}).to_string()),
    )
    .await;
    assert_eq!(status.as_u16(), 201, "{cmd}");
    let id = cmd["id"].as_str().unwrap().to_owned();
    let queued = next_of(&mut ws, "command").await;
    assert_eq!(
        (
            queued["data"]["id"].as_str(),
            queued["data"]["state"].as_str()
        ),
        (Some(id.as_str()), Some("queued"))
    );
    assert!(
        queued["data"]["requested_by"]
            .as_str()
            .unwrap()
            .starts_with("token:ann-")
    );
    call(
        &st,
        "GET",
        &format!("/api/v1/edr/{sensor}/pending-commands"),
        Some(&sensor_token),
        None,
    )
    .await;
    assert_eq!(
        next_of(&mut ws, "command").await["data"]["state"],
        "delivered"
    );
    let result = json!({"status": "succeeded", "detail": {"killed": [4242]}});
    let (status, body) = call(
        &st,
        "POST",
        &format!("/api/v1/edr/{sensor}/commands/{id}/result"),
        Some(&sensor_token),
        Some(result.to_string()),
    )
    .await;
    assert!(status.is_success(), "{body}");
    assert_eq!(
        next_of(&mut ws, "command").await["data"]["state"],
        "succeeded"
    );

    // An endpoint change (tags, as an operator sets them) reaches the feed too. The watcher
    // first learns the current state, so keep changing until one arrives.
    let mut endpoint = None;
    for i in 0..40 {
        call(
            &st,
            "PUT",
            &format!("/api/v1/endpoints/{sensor}/tags"),
            Some(&analyst),
            Some(json!({"tags": [format!("t{i}")]}).to_string()),
        )
        .await;
        if let Ok(v) =
            tokio::time::timeout(Duration::from_millis(500), next_of(&mut ws, "endpoint")).await
        {
            endpoint = Some(v);
            break;
        }
    }
    let endpoint = endpoint.expect("an endpoint message");
    assert_eq!(endpoint["data"]["sensor_id"], sensor.as_str());
    assert!(endpoint["data"]["previous"].is_object());

    // Tickets work once.
    let (_, t) = call(&st, "POST", "/api/v1/live/ticket", Some(&viewer), None).await;
    let ticket = t["ticket"].as_str().unwrap();
    let with_ticket = format!("{url}?ticket={ticket}");
    let (mut ws2, _) = tokio_tungstenite::connect_async(with_ticket.as_str())
        .await
        .unwrap();
    assert_eq!(next_of(&mut ws2, "hello").await["data"]["role"], "viewer");
    let again = tokio_tungstenite::connect_async(with_ticket.as_str())
        .await
        .unwrap_err();
    assert!(again.to_string().contains("401"), "{again}");
    ws.close(None).await.unwrap();
    stop.cancel();
}
