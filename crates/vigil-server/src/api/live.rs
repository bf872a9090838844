//! `GET /api/v1/live`: the live feed over a WebSocket, and `POST /api/v1/live/ticket`, a
//! one-time credential for it (browsers cannot set headers on a WebSocket).
//!
//! The server sends text frames, each one JSON message: `{"type": "hello"}` first, then
//! `alert`, `endpoint` and `command` messages as [`crate::live`] publishes them, and
//! `{"type": "lagged", "data": {"missed": n}}` when this client fell so far behind that `n`
//! messages were dropped for it. Messages from the client are ignored.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{
    Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection,
};
use axum::http::HeaderMap;
use axum::http::header::{HOST, ORIGIN};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{Value, json};
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;

use super::auth::{Principal, Via};
use super::{ApiError, ApiState};

/// How often an open feed checks that its session or token is still valid.
const RECHECK_EVERY: Duration = Duration::from_secs(30);

pub(super) async fn ticket(
    State(st): State<ApiState>,
    Extension(who): Extension<Principal>,
) -> Json<Value> {
    let ticket = st.auth.issue_ticket(&who);
    Json(json!({
        "ticket": ticket,
        "expires_in_s": super::auth::TICKET_TTL.as_secs(),
    }))
}

/// Whether a browser's `Origin` is this server (a cookie-authenticated WebSocket from another
/// site would be cross-site WebSocket hijacking).
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true; // not a browser
    };
    let host = headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| authority == host)
}

pub(super) async fn feed(
    State(st): State<ApiState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if matches!(who.via, Via::Session { .. }) && !same_origin(&headers) {
        return ApiError::forbidden("the live feed takes the session cookie from this origin only")
            .into_response();
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => {
            return ApiError::new(
                rejection.status(),
                "websocket_required",
                format!("{}: connect with a WebSocket client", rejection.body_text()),
            )
            .into_response();
        }
    };
    // Subscribed before the upgrade: nothing published from here on is missed.
    let rx = st.live.subscribe();
    ws.on_upgrade(move |socket| pump(st, socket, rx, who))
}

async fn still_valid(st: &ApiState, who: &Principal) -> bool {
    let idle = i64::try_from(st.auth.config.session_idle.as_millis()).unwrap_or(i64::MAX);
    match &who.via {
        Via::Session { id_hash, .. } => st
            .store
            .session(id_hash, idle, vigil_ocsf::now_ms())
            .await
            .is_ok_and(|s| s.is_some()),
        Via::Token { token_id, .. } => st
            .store
            .api_token(token_id)
            .await
            .is_ok_and(|t| t.is_some()),
    }
}

async fn pump(st: ApiState, mut socket: WebSocket, mut rx: Receiver<Arc<str>>, who: Principal) {
    let hello = json!({ "type": "hello", "data": { "user": who.user, "role": who.role } });
    if socket
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    let mut recheck = tokio::time::interval(RECHECK_EVERY);
    recheck.tick().await;
    loop {
        let out = tokio::select! {
            msg = rx.recv() => match msg {
                Ok(text) => text.as_ref().to_owned(),
                Err(RecvError::Lagged(missed)) => {
                    json!({ "type": "lagged", "data": { "missed": missed } }).to_string()
                }
                Err(RecvError::Closed) => break,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                Some(Ok(_)) => continue,
            },
            _ = recheck.tick() => {
                if still_valid(&st, &who).await {
                    continue;
                }
                break;
            }
        };
        if socket.send(Message::Text(out.into())).await.is_err() {
            break;
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}
