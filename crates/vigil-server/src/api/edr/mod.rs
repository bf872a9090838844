//! The HTTP fleet API for third-party sensors and collectors, under `/api/v1/edr/{sensor_id}/`.
//!
//! Every call carries `Authorization: Bearer <token>`, the per-sensor token issued at
//! enrollment or by an operator (`POST /api/v1/endpoints`). Events go through the same store,
//! bus and detection as gRPC events. Documented in docs/FLEET_API.md.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};
use vigil_ocsf::{Event, class};

use super::{ApiError, ApiState};
use crate::pki;
use crate::store::{CapabilityRecord, CompleteOutcome, HeartbeatRecord};

#[cfg(test)]
pub(crate) mod tests;

/// Largest body the event route accepts.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Most events one `POST events` may carry.
pub const MAX_EVENTS: usize = 5000;
/// OCSF classes the fleet accepts from sensors.
pub const ACCEPTED_CLASSES: &[u32] = &[
    class::FILE_ACTIVITY,
    class::PROCESS_ACTIVITY,
    class::DETECTION_FINDING,
    class::AUTHENTICATION,
    class::NETWORK_ACTIVITY,
    class::DNS_ACTIVITY,
];

/// Checks the bearer token against the sensor in the path; returns the sensor id.
async fn authorize(st: &ApiState, headers: &HeaderMap, sensor: &str) -> Result<String, ApiError> {
    let sensor = sensor.strip_prefix("edr:").unwrap_or(sensor);
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::unauthorized("missing `Authorization: Bearer <sensor token>`"))?;
    let identity = st
        .store
        .identify_token(&pki::hash_secret(token))
        .await?
        .ok_or_else(|| ApiError::unauthorized("unknown sensor token"))?;
    if identity.sensor_id != sensor {
        return Err(ApiError::forbidden(format!(
            "this token belongs to another sensor, not {sensor}"
        )));
    }
    if identity.revoked {
        return Err(ApiError::forbidden(format!(
            "sensor {sensor} is revoked by an operator"
        )));
    }
    Ok(identity.sensor_id)
}

/// `POST heartbeat` body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HeartbeatBody {
    #[serde(default)]
    agent_version: String,
    #[serde(default)]
    os_name: String,
    #[serde(default)]
    kernel_release: String,
    #[serde(default)]
    uptime_s: u64,
    #[serde(default)]
    capabilities: Vec<CapabilityRecord>,
    #[serde(default)]
    buffered: u64,
    #[serde(default)]
    dropped: u64,
    #[serde(default)]
    evicted: u64,
    #[serde(default)]
    cpu_percent: f64,
    #[serde(default)]
    rss_bytes: u64,
    #[serde(default = "no_isolation")]
    isolation: String,
}

fn no_isolation() -> String {
    "none".into()
}

pub(super) async fn heartbeat(
    State(st): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Json<HeartbeatBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(sensor) = path?;
    let sensor_id = authorize(&st, &headers, &sensor).await?;
    let Json(b) = body?;
    let now = vigil_ocsf::now_ms();
    let record = HeartbeatRecord {
        time: now,
        agent_version: b.agent_version,
        os_name: b.os_name,
        kernel_release: b.kernel_release,
        uptime_s: b.uptime_s,
        capabilities: b.capabilities,
        buffered: b.buffered,
        dropped: b.dropped,
        evicted: b.evicted,
        cpu_percent: b.cpu_percent,
        rss_bytes: b.rss_bytes,
        isolation: b.isolation,
    };
    st.store
        .record_heartbeat(&sensor_id, &record, "http", now)
        .await?;
    let controls = st.store.controls(&sensor_id).await?;
    Ok(Json(
        json!({ "sensor_id": sensor_id, "controls": controls }),
    ))
}

/// Validates every event before storing any: a batch is all or nothing.
fn parse_events(body: Value, sensor_id: &str) -> Result<Vec<Event>, ApiError> {
    let Value::Array(items) = body else {
        return Err(ApiError::bad_request(
            "the body must be a JSON array of OCSF events",
        ));
    };
    if items.len() > MAX_EVENTS {
        return Err(ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "{} events in one request; at most {MAX_EVENTS}",
                items.len()
            ),
        ));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let mut ev = Event::from_value(item)
                .map_err(|e| ApiError::bad_request(format!("event {i}: {e}")))?;
            if !ACCEPTED_CLASSES.contains(&ev.class_uid) {
                return Err(ApiError::bad_request(format!(
                    "event {i}: class_uid {} is not an OCSF class Vigil accepts ({ACCEPTED_CLASSES:?})",
                    ev.class_uid
                )));
            }
            ev.stamp_device_uid(sensor_id);
            Ok(ev)
        })
        .collect()
}

pub(super) async fn events(
    State(st): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(sensor) = path?;
    let sensor_id = authorize(&st, &headers, &sensor).await?;
    let Json(body) = body?;
    let events = parse_events(body, &sensor_id)?;
    let events = events
        .iter()
        .map(vigil_ocsf::RawEvent::from_event)
        .collect();
    let out = st.ingest.submit(&sensor_id, events).await.map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            e.to_string(),
        )
    })?;
    st.store
        .touch_endpoint(&sensor_id, vigil_ocsf::now_ms())
        .await?;
    Ok(Json(
        json!({ "stored": out.stored, "duplicates": out.duplicates }),
    ))
}

pub(super) async fn pending_commands(
    State(st): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let Path(sensor) = path?;
    let sensor_id = authorize(&st, &headers, &sensor).await?;
    let now = vigil_ocsf::now_ms();
    st.store.touch_endpoint(&sensor_id, now).await?;
    let items = st
        .store
        .take_pending_commands(&sensor_id, false, now)
        .await?;
    Ok(Json(json!({ "items": items })))
}

/// `POST commands/{id}/result` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ResultBody {
    /// `succeeded` or `failed`.
    status: String,
    /// Free-form outcome detail.
    #[serde(default)]
    detail: Value,
}

pub(super) async fn command_result(
    State(st): State<ApiState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Result<Json<ResultBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path((sensor, id)) = path?;
    let sensor_id = authorize(&st, &headers, &sensor).await?;
    let Json(b) = body?;
    let succeeded = match b.status.as_str() {
        "succeeded" => true,
        "failed" => false,
        other => {
            return Err(ApiError::bad_request(format!(
                "status must be \"succeeded\" or \"failed\", not {other:?}"
            )));
        }
    };
    let result = json!({ "status": b.status, "detail": b.detail });
    let now = vigil_ocsf::now_ms();
    match st
        .store
        .complete_command(&sensor_id, &id, succeeded, &result, now)
        .await?
    {
        CompleteOutcome::Unknown => Err(ApiError::not_found(format!(
            "no command {id} for sensor {sensor_id}"
        ))),
        CompleteOutcome::AlreadyCompleted => Ok(Json(json!({ "id": id, "recorded": false }))),
        CompleteOutcome::Completed => Ok(Json(json!({ "id": id, "recorded": true }))),
    }
}

pub(super) async fn risk(
    State(st): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let Path(sensor) = path?;
    let sensor_id = authorize(&st, &headers, &sensor).await?;
    let risk = st.store.risk(&sensor_id, vigil_ocsf::now_ms()).await?;
    Ok(Json(json!({ "sensor_id": sensor_id, "risk": risk })))
}
