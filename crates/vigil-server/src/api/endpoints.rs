//! `/api/v1/endpoints…`: fleet health and operator-set endpoint state.
//!
//! Health is derived from the time of the last contact (any message: session, batch,
//! heartbeat), against [`ONLINE_WITHIN_MS`] and [`STALE_WITHIN_MS`].

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiState, limit};
use crate::store::Endpoint;

/// An endpoint heard from within this many ms is `online` (three default heartbeats).
pub const ONLINE_WITHIN_MS: i64 = 90_000;
/// An endpoint heard from within this many ms, but not recently enough to be online, is
/// `stale`; beyond it, `offline`.
pub const STALE_WITHIN_MS: i64 = 600_000;

/// `online`, `stale` or `offline` for a last contact at `last_seen`.
pub fn health(last_seen: i64, now: i64) -> &'static str {
    let age = now.saturating_sub(last_seen);
    if age <= ONLINE_WITHIN_MS {
        "online"
    } else if age <= STALE_WITHIN_MS {
        "stale"
    } else {
        "offline"
    }
}

fn view(ep: &Endpoint, now: i64, live: bool) -> Value {
    let mut v = serde_json::to_value(ep).unwrap_or(Value::Null);
    if let Some(obj) = v.as_object_mut() {
        obj.insert("status".into(), json!(health(ep.last_seen, now)));
        obj.insert("session_live".into(), json!(live));
        obj.insert("uid".into(), json!(format!("edr:{}", ep.facts.sensor_id)));
    }
    v
}

pub(super) async fn list(State(st): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let now = vigil_ocsf::now_ms();
    let items: Vec<_> = st
        .store
        .endpoints()
        .await?
        .iter()
        .map(|ep| view(ep, now, st.sessions.is_live(&ep.facts.sensor_id)))
        .collect();
    Ok(Json(json!({ "items": items })))
}

async fn find(st: &ApiState, id: &str) -> Result<Endpoint, ApiError> {
    let id = id.strip_prefix("edr:").unwrap_or(id);
    st.store
        .endpoints()
        .await?
        .into_iter()
        .find(|e| e.facts.sensor_id == id)
        .ok_or_else(|| ApiError::not_found(format!("no endpoint {id}")))
}

pub(super) async fn one(
    State(st): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let ep = find(&st, &id).await?;
    let live = st.sessions.is_live(&ep.facts.sensor_id);
    Ok(Json(view(&ep, vigil_ocsf::now_ms(), live)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HeartbeatParams {
    limit: Option<u32>,
}

pub(super) async fn heartbeats(
    State(st): State<ApiState>,
    Path(id): Path<String>,
    params: Result<Query<HeartbeatParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(p) = params?;
    let ep = find(&st, &id).await?;
    let items = st
        .store
        .heartbeats(&ep.facts.sensor_id, limit(p.limit)?)
        .await?;
    Ok(Json(json!({ "items": items })))
}

pub(super) async fn revoke(
    State(st): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_revoked(st, &id, true).await
}

pub(super) async fn reinstate(
    State(st): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_revoked(st, &id, false).await
}

async fn set_revoked(st: ApiState, id: &str, revoked: bool) -> Result<Json<Value>, ApiError> {
    let ep = find(&st, id).await?;
    let sensor_id = ep.facts.sensor_id;
    st.store
        .set_revoked(&sensor_id, revoked, vigil_ocsf::now_ms())
        .await?;
    if revoked && st.sessions.end(&sensor_id) {
        tracing::info!(sensor_id = %sensor_id, "Ended the live session of a revoked endpoint");
    }
    let controls = st.store.controls(&sensor_id).await?;
    Ok(Json(
        json!({ "sensor_id": sensor_id, "controls": controls }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_thresholds() {
        assert_eq!(health(1000, 1000), "online");
        assert_eq!(health(0, ONLINE_WITHIN_MS), "online");
        assert_eq!(health(0, ONLINE_WITHIN_MS + 1), "stale");
        assert_eq!(health(0, STALE_WITHIN_MS + 1), "offline");
    }
}

/// `POST /api/v1/endpoints`: register a third-party sensor that will use the HTTP fleet API.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RegisterBody {
    hostname: String,
    #[serde(default)]
    os_name: String,
}

pub(super) async fn register(
    State(st): State<ApiState>,
    body: Result<Json<RegisterBody>, axum::extract::rejection::JsonRejection>,
) -> Result<(axum::http::StatusCode, Json<Value>), ApiError> {
    let Json(b) = body?;
    if b.hostname.trim().is_empty() || b.hostname.len() > 255 {
        return Err(ApiError::bad_request(
            "hostname must be 1 to 255 characters",
        ));
    }
    let sensor_id = uuid::Uuid::new_v4().to_string();
    let token = crate::pki::random_secret();
    let now = vigil_ocsf::now_ms();
    let facts = crate::store::EndpointFacts {
        sensor_id: sensor_id.clone(),
        hostname: b.hostname,
        os_name: b.os_name,
        ..Default::default()
    };
    st.store.upsert_endpoint(&facts, now).await?;
    st.store
        .add_token(&sensor_id, &crate::pki::hash_secret(&token), now)
        .await?;
    tracing::info!(sensor_id = %sensor_id, "Registered an HTTP fleet API sensor");
    Ok((
        axum::http::StatusCode::CREATED,
        Json(json!({ "sensor_id": sensor_id, "uid": format!("edr:{sensor_id}"), "token": token })),
    ))
}

pub(super) async fn risk(
    State(st): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let ep = find(&st, &id).await?;
    let risk = st
        .store
        .risk(&ep.facts.sensor_id, vigil_ocsf::now_ms())
        .await?;
    Ok(Json(
        json!({ "sensor_id": ep.facts.sensor_id, "risk": risk }),
    ))
}

pub(super) async fn commands(
    State(st): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let ep = find(&st, &id).await?;
    let items = st.store.commands(&ep.facts.sensor_id, 1000).await?;
    Ok(Json(json!({ "items": items })))
}

/// `POST /api/v1/endpoints/{id}/commands` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CommandBody {
    action: String,
    #[serde(default)]
    args: serde_json::Map<String, Value>,
    #[serde(default)]
    reason: String,
}

/// Actions the command queue accepts.
pub const ACTIONS: &[&str] = &[
    "isolate", "release", "kill", "suspend", "resume", "triage", "query",
];

pub(super) async fn queue_command(
    State(st): State<ApiState>,
    Path(id): Path<String>,
    body: Result<Json<CommandBody>, axum::extract::rejection::JsonRejection>,
) -> Result<(axum::http::StatusCode, Json<Value>), ApiError> {
    let Json(b) = body?;
    if !ACTIONS.contains(&b.action.as_str()) {
        return Err(ApiError::bad_request(format!(
            "unknown action {:?}; one of {ACTIONS:?}",
            b.action
        )));
    }
    let ep = find(&st, &id).await?;
    let cmd = crate::store::NewCommand {
        sensor_id: ep.facts.sensor_id,
        action: b.action,
        args: Value::Object(b.args),
        requested_by: "operator".into(),
        reason: b.reason,
    };
    let queued = st.store.enqueue_command(&cmd, vigil_ocsf::now_ms()).await?;
    Ok((axum::http::StatusCode::CREATED, Json(json!(queued))))
}
