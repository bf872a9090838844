//! The operator API: REST + JSON under `/api/v1`.
//!
//! Lists answer `{ "items": [...] }`, newest first; every error answers the shape of
//! [`ApiError`]. [`app`] builds the router so tests can drive it without a socket.

use std::sync::Arc;

use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::fleet::Sessions;
use crate::ingest::Ingestor;
use crate::store::Store;

mod alerts;
#[cfg(test)]
mod alerts_tests;
pub mod console;
mod edr;
mod endpoints;
mod error;
mod policies;
#[cfg(test)]
mod response_tests;
pub mod rules;
#[cfg(test)]
mod tests;

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
    /// The rules loaded at start and what became of each.
    pub catalog: Arc<rules::RuleCatalog>,
    /// Rules switched off by operators.
    pub switches: crate::switches::RuleSwitches,
}

impl ApiState {
    /// A state over a fresh in-process bus and the repository's own rules, for tests.
    #[cfg(test)]
    pub(crate) fn for_tests(
        store: Arc<dyn Store>,
        response: &crate::response::ResponseConfig,
    ) -> Self {
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
            catalog: rules::empty(),
            switches: Default::default(),
        }
    }
}

/// The operator API router.
pub fn app(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/health", get(health))
        .route(
            "/api/v1/endpoints",
            get(endpoints::list).post(endpoints::register),
        )
        .route("/api/v1/endpoints/{id}", get(endpoints::one))
        .route(
            "/api/v1/endpoints/{id}/heartbeats",
            get(endpoints::heartbeats),
        )
        .route("/api/v1/endpoints/{id}/revoke", post(endpoints::revoke))
        .route(
            "/api/v1/endpoints/{id}/reinstate",
            post(endpoints::reinstate),
        )
        .route("/api/v1/endpoints/{id}/risk", get(endpoints::risk))
        .route(
            "/api/v1/endpoints/{id}/risk/history",
            get(endpoints::risk_history),
        )
        .route(
            "/api/v1/endpoints/{id}/commands",
            get(endpoints::commands).post(endpoints::queue_command),
        )
        .route(
            "/api/v1/endpoints/{id}/commands/{command}",
            get(endpoints::command),
        )
        .route("/api/v1/endpoints/{id}/tags", put(endpoints::set_tags))
        .route("/api/v1/endpoints/{id}/triage", get(endpoints::triage_list))
        .route(
            "/api/v1/endpoints/{id}/triage/{package}",
            get(endpoints::triage_download),
        )
        .route(
            "/api/v1/policies",
            get(policies::list).post(policies::create),
        )
        .route(
            "/api/v1/policies/{id}",
            get(policies::one)
                .put(policies::replace)
                .delete(policies::delete),
        )
        .route("/api/v1/audit", get(policies::audit))
        .route("/api/v1/edr/{sensor}/heartbeat", post(edr::heartbeat))
        .route("/api/v1/edr/{sensor}/events", post(edr::events))
        .route(
            "/api/v1/edr/{sensor}/pending-commands",
            get(edr::pending_commands),
        )
        .route(
            "/api/v1/edr/{sensor}/commands/{id}/result",
            post(edr::command_result),
        )
        .route("/api/v1/edr/{sensor}/risk", get(edr::risk))
        .layer(axum::extract::DefaultBodyLimit::max(edr::MAX_BODY_BYTES))
        .route("/api/v1/events", get(alerts::events))
        .route("/api/v1/alerts", get(alerts::list))
        .route(
            "/api/v1/alerts/{uid}",
            get(alerts::one).patch(alerts::update),
        )
        .route("/api/v1/alerts/{uid}/comments", post(alerts::comment))
        .route("/api/v1/rules", get(rules::list))
        .route("/api/v1/rules/{id}", put(rules::switch))
        .fallback(console::serve)
        .with_state(state)
}

/// What this server offers beyond the core API, so clients (the console) use only what exists.
pub const FEATURES: &[&str] = &[];

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
