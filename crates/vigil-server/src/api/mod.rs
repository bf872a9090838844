//! The operator API: REST + JSON under `/api/v1`.
//!
//! Lists answer `{ "items": [...], "next": "<cursor>" }`, newest first (or by name), with
//! `next` present only when more items exist (pass it back as `cursor`); every error answers
//! the shape of [`ApiError`]. [`app`] builds the router from the table in [`routes`], where
//! every route declares who may call it; tests drive it without a socket. docs/API.md
//! describes it for operators, `openapi.json` for tools.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::fleet::Sessions;
use crate::ingest::Ingestor;
use crate::live::LiveFeed;
use crate::store::{EventQuery, FindingQuery, Store};

pub mod auth;
#[cfg(test)]
mod auth_tests;
mod edr;
mod endpoints;
mod error;
mod live;
#[cfg(test)]
mod live_tests;
pub mod openapi;
mod policies;
#[cfg(test)]
mod response_tests;
pub mod routes;
#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;
mod users;

pub use auth::{AuthState, Principal};
pub use endpoints::view as endpoint_view;
pub use error::ApiError;

/// Items a list returns when `limit` is not given.
pub const DEFAULT_LIMIT: u32 = 100;
/// The most items a list returns.
pub const MAX_LIMIT: u32 = 1000;

/// What the API handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Live agent sessions (to end one on revocation).
    pub sessions: Sessions,
    /// The group-commit writer (events arriving over HTTP take the same path as gRPC ones).
    pub ingest: Ingestor,
    /// Queues commands and resolves policies.
    pub responder: crate::response::Responder,
    /// Operator sessions, login limits, live feed tickets.
    pub auth: Arc<AuthState>,
    /// The operators' live feed.
    pub live: LiveFeed,
}

impl ApiState {
    /// A state over a fresh in-process bus and the repository's own rules, for tests. The
    /// store is wrapped in a [`crate::live::LiveStore`] as the server wraps it.
    #[cfg(test)]
    pub(crate) fn for_tests(
        store: Arc<dyn Store>,
        response: &crate::response::ResponseConfig,
    ) -> Self {
        let live = LiveFeed::default();
        let store: Arc<dyn Store> = Arc::new(crate::live::LiveStore::new(store, live.clone()));
        let sessions = Sessions::default();
        let maps = Arc::new(vigil_ocsf::fieldmap::FieldMaps::builtin().unwrap());
        let dir = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../rules"));
        let (rules, _) = vigil_detect::RuleSet::load_dirs(&[dir], &maps).unwrap();
        let responder = crate::response::Responder::new(
            Arc::clone(&store),
            sessions.clone(),
            Arc::new(rules),
            maps,
            response,
        )
        .unwrap();
        Self {
            ingest: Ingestor::start(
                Arc::clone(&store),
                Arc::new(crate::bus::InProcessBus::new()),
            ),
            store,
            sessions,
            responder,
            auth: Arc::default(),
            live,
        }
    }
}

/// The operator API router: every route of [`routes::routes`] behind its access guard.
pub fn app(state: ApiState) -> Router {
    let mut router = Router::new();
    for r in routes::routes() {
        let guard = axum::middleware::from_fn_with_state((state.clone(), r.access), auth::guard);
        router = router.route(r.path, r.handler.layer(guard));
    }
    router
        .layer(axum::extract::DefaultBodyLimit::max(edr::MAX_BODY_BYTES))
        .fallback(not_found)
        .with_state(state)
}

/// A list answer: at most `limit` of `items` (fetched with one extra to know whether more
/// exist) and, when more exist, `next`: the cursor of the last item shown.
pub(crate) fn page<T: Serialize>(
    items: Vec<T>,
    limit: u32,
    cursor: impl Fn(&T) -> String,
) -> Json<Value> {
    let (items, next) = paginate(items, limit, cursor);
    list_body(&items, next)
}

/// The first `limit` items and, when there were more, the cursor of the last one kept.
pub(crate) fn paginate<T>(
    mut items: Vec<T>,
    limit: u32,
    cursor: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let more = items.len() > limit;
    items.truncate(limit);
    let next = if more { items.last().map(cursor) } else { None };
    (items, next)
}

/// `{ "items": …, "next": … }`, `next` only when given.
pub(crate) fn list_body(items: &impl Serialize, next: Option<String>) -> Json<Value> {
    let mut body = json!({ "items": items });
    if let Some(n) = next {
        body["next"] = json!(n);
    }
    Json(body)
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route; the API lives under /api/v1")
}

pub(crate) fn limit(requested: Option<u32>) -> Result<u32, ApiError> {
    match requested {
        None => Ok(DEFAULT_LIMIT),
        Some(0) => Err(ApiError::bad_request("limit must be at least 1")),
        Some(n) => Ok(n.min(MAX_LIMIT)),
    }
}

/// `GET /api/v1/events` parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventParams {
    /// Only this OCSF class.
    class_uid: Option<u32>,
    /// Only events at or after this time (ms since the epoch).
    since: Option<i64>,
    /// Only this endpoint.
    sensor_id: Option<String>,
    /// At most this many (default 100, max 1000).
    limit: Option<u32>,
}

async fn events(
    State(st): State<ApiState>,
    params: Result<Query<EventParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(p) = params?;
    let q = EventQuery {
        class_uid: p.class_uid,
        since: p.since,
        sensor_id: p.sensor_id,
        limit: limit(p.limit)?,
    };
    let items = st.store.query_events(&q).await?;
    Ok(Json(json!({ "items": items })))
}

/// `GET /api/v1/alerts` parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertParams {
    /// Only alerts raised at or after this time (ms since the epoch).
    since: Option<i64>,
    /// Only alerts of at least this severity: a name (`low`, `medium`, `high`, `critical`,
    /// `informational`) or an OCSF severity id (1 to 5).
    severity: Option<String>,
    /// Only alerts of this rule (its id).
    rule_id: Option<String>,
    /// Only alerts of this endpoint (`edr:` prefix allowed).
    sensor_id: Option<String>,
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

async fn alerts(
    State(st): State<ApiState>,
    params: Result<Query<AlertParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(p) = params?;
    let limit = limit(p.limit)?;
    let q = FindingQuery {
        since: p.since,
        before: p.cursor.as_deref().map(position_cursor).transpose()?,
        min_severity: p.severity.as_deref().map(severity_id).transpose()?,
        rule_id: p.rule_id,
        sensor_id: p
            .sensor_id
            .map(|s| s.strip_prefix("edr:").map(str::to_owned).unwrap_or(s)),
        limit: limit + 1,
    };
    let rows = st.store.query_findings(&q).await?;
    let (rows, next) = paginate(rows, limit, |r| format!("{}.{}", r.time, r.seq));
    let items: Vec<Value> = rows.into_iter().map(|r| r.body).collect();
    Ok(list_body(&items, next))
}
