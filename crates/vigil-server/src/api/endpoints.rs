//! `/api/v1/endpoints…`: fleet health and operator-set endpoint state.
//!
//! Health is derived from the time of the last contact (any message: session, batch,
//! heartbeat), against [`ONLINE_WITHIN_MS`] and [`STALE_WITHIN_MS`].

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Principal;
use super::{ApiError, ApiState, limit, list_body, paginate};
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

/// Isolation as operators see it: what they asked for against what the endpoint confirmed.
/// `none` (never isolated), `requested` (asked, not yet confirmed), `isolated`,
/// `release_requested`, `released`. `confirmed_at` is when the endpoint last confirmed a change.
pub fn isolation_status(
    requested: bool,
    confirmed: &str,
    confirmed_at: Option<i64>,
) -> &'static str {
    match (requested, confirmed == "isolated") {
        (true, true) => "isolated",
        (true, false) => "requested",
        (false, true) => "release_requested",
        (false, false) if confirmed_at.is_some() => "released",
        (false, false) => "none",
    }
}

/// An endpoint as the API and the live feed show it: the stored record with its health,
/// whether its session is live, its `edr:` uid and its isolation status.
pub fn view(ep: &Endpoint, now: i64, live: bool) -> Value {
    let mut v = serde_json::to_value(ep).unwrap_or(Value::Null);
    if let Some(obj) = v.as_object_mut() {
        obj.insert("status".into(), json!(health(ep.last_seen, now)));
        obj.insert("session_live".into(), json!(live));
        obj.insert("uid".into(), json!(format!("edr:{}", ep.facts.sensor_id)));
        obj.insert(
            "isolation_status".into(),
            json!(isolation_status(
                ep.controls.isolation_requested,
                &ep.isolation,
                ep.isolation_at,
            )),
        );
    }
    v
}

/// `GET /api/v1/endpoints` parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListParams {
    /// Only endpoints with this health: `online`, `stale` or `offline`.
    status: Option<String>,
    /// Only endpoints with this operator tag.
    tag: Option<String>,
    /// Only endpoints whose host name contains this (case-insensitive).
    hostname: Option<String>,
    /// The `next` of the previous page.
    cursor: Option<String>,
    /// At most this many (default 100, max 1000).
    limit: Option<u32>,
}

/// Endpoints, most recently seen first (ties by id); the cursor is `last_seen.sensor_id`.
pub(super) async fn list(
    State(st): State<ApiState>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(p) = params?;
    if let Some(s) = p.status.as_deref()
        && !matches!(s, "online" | "stale" | "offline")
    {
        return Err(ApiError::bad_request(format!(
            "status {s:?}: expected online, stale or offline"
        )));
    }
    let after = p
        .cursor
        .as_deref()
        .map(|c| {
            c.split_once('.')
                .and_then(|(t, id)| Some((t.parse::<i64>().ok()?, id.to_owned())))
                .ok_or_else(|| {
                    ApiError::bad_request(format!("cursor {c:?} is not one this list gave"))
                })
        })
        .transpose()?;
    let limit = limit(p.limit)?;
    let now = vigil_ocsf::now_ms();
    let needle = p.hostname.map(|h| h.to_lowercase());
    let mut eps = st.store.endpoints().await?;
    eps.sort_by(|a, b| {
        b.last_seen
            .cmp(&a.last_seen)
            .then_with(|| a.facts.sensor_id.cmp(&b.facts.sensor_id))
    });
    let eps: Vec<_> = eps
        .into_iter()
        .filter(|e| {
            after.as_ref().is_none_or(|(t, id)| {
                e.last_seen < *t || (e.last_seen == *t && e.facts.sensor_id > *id)
            })
        })
        .filter(|e| {
            p.status
                .as_deref()
                .is_none_or(|s| health(e.last_seen, now) == s)
        })
        .filter(|e| p.tag.as_ref().is_none_or(|t| e.controls.tags.contains(t)))
        .filter(|e| {
            needle
                .as_deref()
                .is_none_or(|n| e.facts.hostname.to_lowercase().contains(n))
        })
        .take(
            usize::try_from(limit)
                .unwrap_or(usize::MAX)
                .saturating_add(1),
        )
        .collect();
    let (eps, next) = paginate(eps, limit, |e| {
        format!("{}.{}", e.last_seen, e.facts.sensor_id)
    });
    let mut items = Vec::with_capacity(eps.len());
    for ep in &eps {
        let mut v = view(ep, now, st.sessions.is_live(&ep.facts.sensor_id));
        v["risk"] = json!(st.store.risk(&ep.facts.sensor_id, now).await?);
        items.push(v);
    }
    Ok(list_body(&items, next))
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
    let now = vigil_ocsf::now_ms();
    let mut v = view(&ep, now, live);
    v["risk"] = json!(st.store.risk(&ep.facts.sensor_id, now).await?);
    Ok(Json(v))
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
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_revoked(st, &who, &id, true).await
}

pub(super) async fn reinstate(
    State(st): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_revoked(st, &who, &id, false).await
}

async fn set_revoked(
    st: ApiState,
    who: &Principal,
    id: &str,
    revoked: bool,
) -> Result<Json<Value>, ApiError> {
    let ep = find(&st, id).await?;
    let sensor_id = ep.facts.sensor_id;
    let now = vigil_ocsf::now_ms();
    st.store.set_revoked(&sensor_id, revoked, now).await?;
    let entry = crate::store::AuditEntry {
        actor: who.actor(),
        action: if revoked {
            "endpoint.revoked"
        } else {
            "endpoint.reinstated"
        }
        .into(),
        target: format!("endpoint:{sensor_id}"),
        detail: json!({}),
    };
    st.store.audit(&entry, now).await?;
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

    #[test]
    fn isolation_shows_only_what_the_endpoint_confirmed() {
        assert_eq!(isolation_status(false, "none", None), "none");
        assert_eq!(isolation_status(true, "none", None), "requested");
        assert_eq!(isolation_status(true, "isolated", Some(1)), "isolated");
        assert_eq!(
            isolation_status(false, "isolated", Some(1)),
            "release_requested"
        );
        assert_eq!(isolation_status(false, "none", Some(2)), "released");
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
    Extension(who): Extension<Principal>,
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
    let entry = crate::store::AuditEntry {
        actor: who.actor(),
        action: "endpoint.registered".into(),
        target: format!("endpoint:{sensor_id}"),
        detail: json!({ "hostname": facts.hostname }),
    };
    st.store.audit(&entry, now).await?;
    tracing::info!(sensor_id = %sensor_id, by = %who.actor(), "Registered an HTTP fleet API sensor");
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

/// `GET /api/v1/endpoints/{id}/risk/history` parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RiskHistoryParams {
    /// How many days back (default 7, at most 90).
    days: Option<u32>,
}

/// The risk score over time, derived from the endpoint's findings by the rule the score itself
/// follows (`crate::risk`): 100 points from `days` ago to now.
pub(super) async fn risk_history(
    State(st): State<ApiState>,
    Path(id): Path<String>,
    params: Result<Query<RiskHistoryParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(p) = params?;
    let days = i64::from(p.days.unwrap_or(7));
    if !(1..=90).contains(&days) {
        return Err(ApiError::bad_request("days must be 1 to 90"));
    }
    let ep = find(&st, &id).await?;
    let now = vigil_ocsf::now_ms();
    let from = now - days * 86_400_000;
    // Findings older than seven half-lives add under 1 % of their contribution.
    let lookback = from - 7 * crate::risk::HALF_LIFE_MS as i64;
    let q = crate::store::FindingQuery {
        since: Some(lookback),
        sensor_id: Some(ep.facts.sensor_id.clone()),
        limit: super::MAX_LIMIT,
        ..Default::default()
    };
    let findings: Vec<(i64, u8)> = st
        .store
        .query_findings(&q)
        .await?
        .iter()
        .filter_map(|f| Some((f.time, u8::try_from(f.body["severity_id"].as_u64()?).ok()?)))
        .collect();
    let points = crate::risk::history(&findings, from, now, 100);
    Ok(Json(json!({
        "sensor_id": ep.facts.sensor_id,
        "points": points,
        "findings": findings.len(),
    })))
}

/// `GET /api/v1/endpoints/{id}/commands` parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CommandParams {
    /// Only commands in this state (`queued`, `delivered`, `succeeded`, `failed`, `expired`).
    state: Option<String>,
    /// Only commands with this action.
    action: Option<String>,
    /// The `next` of the previous page (a command id).
    cursor: Option<String>,
    /// At most this many (default 100, max 1000).
    limit: Option<u32>,
}

/// Commands of an endpoint, newest first. `state` and `action` filter the page the store
/// returned, so a filtered page may hold fewer than `limit` items while `next` is present.
pub(super) async fn commands(
    State(st): State<ApiState>,
    Path(id): Path<String>,
    params: Result<Query<CommandParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(p) = params?;
    let limit = limit(p.limit)?;
    let ep = find(&st, &id).await?;
    let cmds = st
        .store
        .commands(&ep.facts.sensor_id, p.cursor.as_deref(), limit + 1)
        .await?;
    let (cmds, next) = paginate(cmds, limit, |c| c.id.clone());
    let items: Vec<_> = cmds
        .into_iter()
        .filter(|c| p.state.as_ref().is_none_or(|s| c.state == *s))
        .filter(|c| p.action.as_ref().is_none_or(|a| c.action == *a))
        .collect();
    Ok(list_body(&items, next))
}

/// `POST /api/v1/endpoints/{id}/commands` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CommandBody {
    action: String,
    #[serde(default = "empty_args")]
    args: Value,
    #[serde(default)]
    reason: String,
}

fn empty_args() -> Value {
    json!({})
}

pub(super) async fn queue_command(
    State(st): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    body: Result<Json<CommandBody>, axum::extract::rejection::JsonRejection>,
) -> Result<(axum::http::StatusCode, Json<Value>), ApiError> {
    let Json(b) = body?;
    let queued = st
        .responder
        .queue(&id, &b.action, b.args, &b.reason, &who.actor())
        .await?;
    Ok((axum::http::StatusCode::CREATED, Json(json!(queued))))
}

pub(super) async fn command(
    State(st): State<ApiState>,
    Path((id, command_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let ep = find(&st, &id).await?;
    let (cmd, transitions) = st
        .store
        .command(&ep.facts.sensor_id, &command_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no command {command_id} for endpoint {id}")))?;
    let mut v = json!(cmd);
    v["transitions"] = json!(transitions);
    Ok(Json(v))
}

/// `PUT /api/v1/endpoints/{id}/tags` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TagsBody {
    tags: Vec<String>,
}

pub(super) async fn set_tags(
    State(st): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    body: Result<Json<TagsBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(b) = body?;
    if let Some(bad) = b
        .tags
        .iter()
        .find(|t| t.is_empty() || t.len() > 64 || *t == "*" || t.chars().any(char::is_whitespace))
    {
        return Err(ApiError::bad_request(format!(
            "tag {bad:?}: tags are 1 to 64 characters, no spaces, and not \"*\""
        )));
    }
    let ep = find(&st, &id).await?;
    let mut tags = b.tags;
    tags.sort();
    tags.dedup();
    st.store
        .set_tags(
            &ep.facts.sensor_id,
            &tags,
            &who.actor(),
            vigil_ocsf::now_ms(),
        )
        .await?;
    st.responder.policies_changed();
    let controls = st.store.controls(&ep.facts.sensor_id).await?;
    Ok(Json(
        json!({ "sensor_id": ep.facts.sensor_id, "controls": controls }),
    ))
}

pub(super) async fn triage_list(
    State(st): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let ep = find(&st, &id).await?;
    let items = st
        .store
        .triage_packages(&ep.facts.sensor_id, super::MAX_LIMIT)
        .await?;
    Ok(Json(json!({ "items": items })))
}

/// The package as a JSON download.
pub(super) async fn triage_download(
    State(st): State<ApiState>,
    Path((id, package)): Path<(String, String)>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let ep = find(&st, &id).await?;
    let body = st
        .store
        .triage_package(&ep.facts.sensor_id, &package)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no triage package {package} for {id}")))?;
    let name = format!(
        "attachment; filename=\"triage-{}-{package}.json\"",
        ep.facts.hostname
    );
    let disposition = axum::http::HeaderValue::from_str(&name)
        .unwrap_or_else(|_| axum::http::HeaderValue::from_static("attachment"));
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/json"),
            ),
            (axum::http::header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}
