//! `/api/v1/alerts…` (findings with the analyst's workflow) and `/api/v1/events` (search).

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Principal;
use super::{ApiError, ApiState, limit, list_body, paginate};
use crate::store::{AlertUpdate, EventQuery, FindingQuery};

/// `GET /api/v1/events` parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EventParams {
    /// Only this OCSF class.
    class_uid: Option<u32>,
    /// Only events at or after this time (ms since the epoch).
    since: Option<i64>,
    /// Only events before this time (ms since the epoch).
    until: Option<i64>,
    /// Only this endpoint (`edr:` prefix allowed).
    sensor_id: Option<String>,
    /// Only events whose document contains this text.
    q: Option<String>,
    /// Only events whose attribute at this dotted OCSF path equals `value`.
    field: Option<String>,
    /// The value `field` must have.
    value: Option<String>,
    /// At most this many (default 100, max 1000).
    limit: Option<u32>,
}

pub(super) async fn events(
    State(st): State<ApiState>,
    params: Result<Query<EventParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(p) = params?;
    let field = match (p.field, p.value) {
        (Some(f), Some(v)) => {
            let ok = !f.is_empty()
                && f.len() <= 200
                && f.split('.').all(|part| {
                    !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                });
            if !ok {
                return Err(ApiError::bad_request(format!(
                    "field {f:?} must be a dotted OCSF path such as process.file.path"
                )));
            }
            Some((f, v))
        }
        (None, None) => None,
        _ => return Err(ApiError::bad_request("field and value go together")),
    };
    let q = EventQuery {
        class_uid: p.class_uid,
        since: p.since,
        until: p.until,
        sensor_id: p
            .sensor_id
            .map(|s| s.strip_prefix("edr:").map(str::to_owned).unwrap_or(s)),
        text: p.q.filter(|t| !t.is_empty()),
        field,
        limit: limit(p.limit)?,
    };
    let items = st.store.query_events(&q).await?;
    Ok(Json(json!({ "items": items })))
}

/// `GET /api/v1/alerts` parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AlertParams {
    /// Only alerts raised at or after this time (ms since the epoch).
    since: Option<i64>,
    /// Only alerts raised before this time.
    until: Option<i64>,
    /// Only this endpoint's.
    sensor_id: Option<String>,
    /// Only in this state: `new`, `acknowledged`, `closed`.
    status: Option<String>,
    /// Only this severe or worse: an OCSF severity id (1 informational … 5 critical).
    min_severity: Option<u8>,
    /// Only this severe or worse, by name (`low`, `medium`, `high`, `critical`,
    /// `informational`) or OCSF severity id.
    severity: Option<String>,
    /// Only raised by this rule.
    rule_id: Option<String>,
    /// The `next` of the previous page.
    cursor: Option<String>,
    /// At most this many (default 100, max 1000).
    limit: Option<u32>,
}

/// An OCSF severity id from a name or a number.
fn severity_id(s: &str) -> Result<u8, ApiError> {
    let id = match s.to_ascii_lowercase().as_str() {
        "informational" | "info" => 1,
        "low" => 2,
        "medium" => 3,
        "high" => 4,
        "critical" => 5,
        other => other.parse().unwrap_or(0),
    };
    if (1..=6).contains(&id) {
        Ok(id)
    } else {
        Err(ApiError::bad_request(format!(
            "severity {s:?}: expected informational, low, medium, high, critical or 1 to 6"
        )))
    }
}

/// A `time.seq` cursor.
fn position_cursor(cursor: &str) -> Result<(i64, i64), ApiError> {
    cursor
        .split_once('.')
        .and_then(|(t, s)| Some((t.parse().ok()?, s.parse().ok()?)))
        .ok_or_else(|| {
            ApiError::bad_request(format!("cursor {cursor:?} is not one this list gave"))
        })
}

pub(super) async fn list(
    State(st): State<ApiState>,
    params: Result<Query<AlertParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(p) = params?;
    if let Some(s) = p.status.as_deref()
        && !matches!(s, "new" | "acknowledged" | "closed")
    {
        return Err(ApiError::bad_request(format!(
            "status {s:?} is not one of new, acknowledged, closed"
        )));
    }
    let limit = limit(p.limit)?;
    let min_severity = match (p.min_severity, p.severity.as_deref()) {
        (Some(n), _) => Some(n),
        (None, Some(s)) => Some(severity_id(s)?),
        (None, None) => None,
    };
    let q = FindingQuery {
        since: p.since,
        until: p.until,
        before: p.cursor.as_deref().map(position_cursor).transpose()?,
        sensor_id: p
            .sensor_id
            .map(|s| s.strip_prefix("edr:").map(str::to_owned).unwrap_or(s)),
        status: p.status,
        min_severity,
        rule_id: p.rule_id,
        limit: limit + 1,
    };
    let rows = st.store.query_findings(&q).await?;
    let (rows, next) = paginate(rows, limit, |r| format!("{}.{}", r.time, r.seq));
    let items: Vec<Value> = rows.into_iter().map(|r| r.body).collect();
    Ok(list_body(&items, next))
}

pub(super) async fn one(
    State(st): State<ApiState>,
    Path(uid): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let alert = st
        .store
        .alert(&uid)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no alert {uid}")))?;
    Ok(Json(json!(alert)))
}

/// `PATCH /api/v1/alerts/{uid}` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UpdateBody {
    status: Option<String>,
    verdict: Option<String>,
    assignee: Option<String>,
}

pub(super) async fn update(
    State(st): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(uid): Path<String>,
    body: Result<Json<UpdateBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(b) = body?;
    let update = AlertUpdate {
        status: b.status,
        verdict: b.verdict,
        assignee: b.assignee,
    };
    let alert = st
        .store
        .update_alert(&uid, &update, &who.actor(), vigil_ocsf::now_ms())
        .await
        .map_err(|e| match e {
            crate::store::StoreError::Conflict(m) => ApiError::bad_request(m),
            other => other.into(),
        })?
        .ok_or_else(|| ApiError::not_found(format!("no alert {uid}")))?;
    Ok(Json(json!(alert)))
}

/// `POST /api/v1/alerts/{uid}/comments` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CommentBody {
    text: String,
}

pub(super) async fn comment(
    State(st): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(uid): Path<String>,
    body: Result<Json<CommentBody>, JsonRejection>,
) -> Result<(axum::http::StatusCode, Json<Value>), ApiError> {
    let Json(b) = body?;
    let text = b.text.trim();
    if text.is_empty() || text.len() > 10_000 {
        return Err(ApiError::bad_request("a comment is 1 to 10,000 characters"));
    }
    if !st
        .store
        .comment_alert(&uid, &who.actor(), text, vigil_ocsf::now_ms())
        .await?
    {
        return Err(ApiError::not_found(format!("no alert {uid}")));
    }
    let alert = st.store.alert(&uid).await?;
    Ok((axum::http::StatusCode::CREATED, Json(json!(alert))))
}
