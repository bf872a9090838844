//! The operator API: REST + JSON under `/api/v1`.
//!
//! Lists answer `{ "items": [...], "next": "<cursor>" }`, newest first (or by name), with
//! `next` present only when more items exist (pass it back as `cursor`); every error answers
//! the shape of [`ApiError`]. [`app`] builds the router from the table in [`routes`], where
//! every route declares who may call it; tests drive it without a socket. docs/API.md
//! describes it for operators, `openapi.json` for tools.

use std::sync::Arc;

use axum::{Json, Router};
use serde::Serialize;
use serde_json::{Value, json};

use crate::fleet::Sessions;
use crate::ingest::Ingestor;
use crate::live::LiveFeed;
use crate::store::Store;

mod alerts;
#[cfg(test)]
mod alerts_tests;
pub mod auth;
#[cfg(test)]
mod auth_tests;
pub mod console;
mod edr;
mod endpoints;
mod error;
mod hunt;
#[cfg(test)]
mod hunt_tests;
mod live;
#[cfg(test)]
mod live_tests;
pub mod openapi;
mod policies;
mod queries;
#[cfg(test)]
mod response_tests;
pub mod routes;
pub mod rules;
#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;
mod tree;
mod users;
#[cfg(test)]
mod users_tests;

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
    /// The rules loaded at start and what became of each.
    pub catalog: Arc<rules::RuleCatalog>,
    /// Rules switched off by operators.
    pub switches: crate::switches::RuleSwitches,
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
            catalog: rules::empty(),
            switches: Default::default(),
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
        .fallback(console::serve)
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

/// What this server offers beyond the core API, so clients (the console) use only what exists.
pub const FEATURES: &[&str] = &["auth", "live"];

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION"), "features": FEATURES }))
}

pub(crate) fn limit(requested: Option<u32>) -> Result<u32, ApiError> {
    match requested {
        None => Ok(DEFAULT_LIMIT),
        Some(0) => Err(ApiError::bad_request("limit must be at least 1")),
        Some(n) => Ok(n.min(MAX_LIMIT)),
    }
}
