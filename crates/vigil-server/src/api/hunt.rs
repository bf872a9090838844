//! `GET /api/v1/hunt`: stored events across the fleet by executable hash, file name or path,
//! IP address, domain, user, command-line substring and time range, answered from the hunting
//! index; with the endpoints they were seen on.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiState, limit};
use crate::store::HuntQuery;

/// `GET /api/v1/hunt` parameters; at least one criterion besides the time range.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HuntParams {
    /// SHA-256 of an executable or file.
    hash: Option<String>,
    /// File or process name (exact, any case).
    name: Option<String>,
    /// File path (exact, any case).
    path: Option<String>,
    /// Source or destination IP address.
    ip: Option<String>,
    /// DNS name asked.
    domain: Option<String>,
    /// User name.
    user: Option<String>,
    /// Command-line substring (3 characters or more).
    cmdline: Option<String>,
    /// Only events at or after this time (ms).
    since: Option<i64>,
    /// Only events before this time (ms).
    until: Option<i64>,
    /// At most this many events (default 100, max 1000).
    limit: Option<u32>,
}

pub(super) async fn hunt(
    State(st): State<ApiState>,
    params: Result<Query<HuntParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(p) = params?;
    let mut terms = Vec::new();
    for (kind, value, lower) in [
        ("hash", &p.hash, true),
        ("name", &p.name, true),
        ("path", &p.path, true),
        ("ip", &p.ip, false),
        ("domain", &p.domain, true),
        ("user", &p.user, true),
    ] {
        if let Some(v) = value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            terms.push((
                kind.to_owned(),
                if lower {
                    v.to_lowercase()
                } else {
                    v.to_owned()
                },
            ));
        }
    }
    let cmd_line = p.cmdline.filter(|c| !c.is_empty());
    if let Some(c) = &cmd_line
        && c.chars().count() < 3
    {
        return Err(ApiError::bad_request(
            "cmdline needs at least 3 characters (the index is of trigrams)",
        ));
    }
    if terms.is_empty() && cmd_line.is_none() {
        return Err(ApiError::bad_request(
            "give at least one of hash, name, path, ip, domain, user, cmdline",
        ));
    }
    let q = HuntQuery {
        terms,
        cmd_line,
        since: p.since,
        until: p.until,
        limit: limit(p.limit)?,
    };
    let started = std::time::Instant::now();
    let found = st.store.hunt(&q).await?;
    let mut by_endpoint: BTreeMap<&str, usize> = BTreeMap::new();
    for (sensor, _) in &found {
        *by_endpoint.entry(sensor.as_str()).or_default() += 1;
    }
    let endpoints: Vec<Value> = by_endpoint
        .iter()
        .map(|(s, n)| json!({ "sensor_id": s, "uid": format!("edr:{s}"), "events": n }))
        .collect();
    let events: Vec<&Value> = found.iter().map(|(_, e)| e).collect();
    Ok(Json(json!({
        "endpoints": endpoints,
        "items": events,
        "took_ms": u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })))
}
