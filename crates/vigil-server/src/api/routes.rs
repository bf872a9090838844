//! The route table: every route of the operator API with who may call it. [`super::app`]
//! builds the router from it and nothing else, so the table is the API: the OpenAPI test and
//! the role test walk it.

use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter, on};

use super::{
    ApiState, alerts, auth, edr, endpoints, hunt, live, openapi, policies, queries, rules, tree,
    users,
};
use crate::store::OperatorRole;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (health, the OpenAPI document, login).
    Public,
    /// A third-party sensor with its own bearer token (the HTTP fleet API checks it itself;
    /// operator credentials play no part).
    Sensor,
    /// An operator with at least this role.
    Role(OperatorRole),
    /// The live feed: a viewer, who may also authenticate with a one-time ticket
    /// (`?ticket=`), since browsers cannot set headers on a WebSocket.
    Live,
}

impl Access {
    /// The lowest role that may call the route, when operators authenticate for it.
    pub fn role(self) -> Option<OperatorRole> {
        match self {
            Self::Public | Self::Sensor => None,
            Self::Role(r) => Some(r),
            Self::Live => Some(OperatorRole::Viewer),
        }
    }
}

/// One route.
pub struct Route {
    /// HTTP method.
    pub method: Method,
    /// Path in axum's syntax (`/api/v1/endpoints/{id}`), as the OpenAPI document names it.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// The handler.
    pub handler: MethodRouter<ApiState>,
}

fn route<H, T>(method: Method, path: &'static str, access: Access, handler: H) -> Route
where
    H: Handler<T, ApiState>,
    T: 'static,
{
    // The methods below are all standard ones, which MethodFilter covers.
    let filter = MethodFilter::try_from(method.clone()).unwrap_or(MethodFilter::GET);
    Route {
        method,
        path,
        access,
        handler: on(filter, handler),
    }
}

/// Every route of the API.
pub fn routes() -> Vec<Route> {
    use Access::{Live, Public, Role, Sensor};
    use OperatorRole::{Admin, Analyst, Viewer};
    let (get, post, put, delete) = (Method::GET, Method::POST, Method::PUT, Method::DELETE);
    let patch = Method::PATCH;
    vec![
        route(get.clone(), "/api/v1/health", Public, super::health),
        route(
            get.clone(),
            "/api/v1/openapi.json",
            Public,
            openapi::document,
        ),
        // Operators and their credentials.
        route(post.clone(), "/api/v1/auth/login", Public, auth::login),
        route(
            post.clone(),
            "/api/v1/auth/logout",
            Role(Viewer),
            auth::logout,
        ),
        route(get.clone(), "/api/v1/auth/me", Role(Viewer), auth::me),
        route(get.clone(), "/api/v1/users", Role(Admin), users::list),
        route(post.clone(), "/api/v1/users", Role(Admin), users::create),
        route(
            patch.clone(),
            "/api/v1/users/{name}",
            Role(Admin),
            users::update,
        ),
        route(
            delete.clone(),
            "/api/v1/users/{name}",
            Role(Admin),
            users::remove,
        ),
        // Own password with the current one; an admin sets anyone's.
        route(
            post.clone(),
            "/api/v1/users/{name}/password",
            Role(Viewer),
            users::password,
        ),
        // Own tokens; an admin manages anyone's.
        route(get.clone(), "/api/v1/tokens", Role(Viewer), users::tokens),
        route(
            post.clone(),
            "/api/v1/tokens",
            Role(Viewer),
            users::create_token,
        ),
        route(
            delete.clone(),
            "/api/v1/tokens/{id}",
            Role(Viewer),
            users::revoke_token,
        ),
        // The live feed.
        route(get.clone(), "/api/v1/live", Live, live::feed),
        route(
            post.clone(),
            "/api/v1/live/ticket",
            Role(Viewer),
            live::ticket,
        ),
        // The fleet.
        route(
            get.clone(),
            "/api/v1/endpoints",
            Role(Viewer),
            endpoints::list,
        ),
        route(
            post.clone(),
            "/api/v1/endpoints",
            Role(Admin),
            endpoints::register,
        ),
        route(
            get.clone(),
            "/api/v1/endpoints/{id}",
            Role(Viewer),
            endpoints::one,
        ),
        route(
            get.clone(),
            "/api/v1/endpoints/{id}/heartbeats",
            Role(Viewer),
            endpoints::heartbeats,
        ),
        route(
            post.clone(),
            "/api/v1/endpoints/{id}/revoke",
            Role(Admin),
            endpoints::revoke,
        ),
        route(
            post.clone(),
            "/api/v1/endpoints/{id}/reinstate",
            Role(Admin),
            endpoints::reinstate,
        ),
        route(
            get.clone(),
            "/api/v1/endpoints/{id}/risk",
            Role(Viewer),
            endpoints::risk,
        ),
        route(
            get.clone(),
            "/api/v1/endpoints/{id}/risk/history",
            Role(Viewer),
            endpoints::risk_history,
        ),
        route(
            get.clone(),
            "/api/v1/endpoints/{id}/triage",
            Role(Viewer),
            endpoints::triage_list,
        ),
        route(
            get.clone(),
            "/api/v1/endpoints/{id}/triage/{package}",
            Role(Viewer),
            endpoints::triage_download,
        ),
        route(
            get.clone(),
            "/api/v1/endpoints/{id}/commands",
            Role(Viewer),
            endpoints::commands,
        ),
        route(
            post.clone(),
            "/api/v1/endpoints/{id}/commands",
            Role(Analyst),
            endpoints::queue_command,
        ),
        route(
            get.clone(),
            "/api/v1/endpoints/{id}/commands/{command}",
            Role(Viewer),
            endpoints::command,
        ),
        route(
            put.clone(),
            "/api/v1/endpoints/{id}/tags",
            Role(Analyst),
            endpoints::set_tags,
        ),
        // Policies and the audit log.
        route(
            get.clone(),
            "/api/v1/policies",
            Role(Viewer),
            policies::list,
        ),
        route(
            post.clone(),
            "/api/v1/policies",
            Role(Admin),
            policies::create,
        ),
        route(
            get.clone(),
            "/api/v1/policies/{id}",
            Role(Viewer),
            policies::one,
        ),
        route(
            put.clone(),
            "/api/v1/policies/{id}",
            Role(Admin),
            policies::replace,
        ),
        route(
            delete.clone(),
            "/api/v1/policies/{id}",
            Role(Admin),
            policies::delete,
        ),
        route(get.clone(), "/api/v1/audit", Role(Admin), policies::audit),
        // Telemetry.
        route(get.clone(), "/api/v1/events", Role(Viewer), alerts::events),
        route(get.clone(), "/api/v1/alerts", Role(Viewer), alerts::list),
        route(
            get.clone(),
            "/api/v1/alerts/{uid}",
            Role(Viewer),
            alerts::one,
        ),
        route(
            get.clone(),
            "/api/v1/alerts/{uid}/tree",
            Role(Viewer),
            tree::tree,
        ),
        route(
            Method::PATCH,
            "/api/v1/alerts/{uid}",
            Role(Analyst),
            alerts::update,
        ),
        route(
            post.clone(),
            "/api/v1/alerts/{uid}/comments",
            Role(Analyst),
            alerts::comment,
        ),
        // Hunting over stored events.
        route(get.clone(), "/api/v1/hunt", Role(Viewer), hunt::hunt),
        // Live queries across the fleet.
        route(get.clone(), "/api/v1/queries", Role(Viewer), queries::list),
        route(
            post.clone(),
            "/api/v1/queries",
            Role(Analyst),
            queries::create,
        ),
        route(
            get.clone(),
            "/api/v1/queries/{id}",
            Role(Viewer),
            queries::one,
        ),
        // Detection content.
        route(get.clone(), "/api/v1/rules", Role(Viewer), rules::list),
        route(
            put.clone(),
            "/api/v1/rules/{id}",
            Role(Admin),
            rules::switch,
        ),
        // The HTTP fleet API (per-sensor tokens).
        route(
            post.clone(),
            "/api/v1/edr/{sensor}/heartbeat",
            Sensor,
            edr::heartbeat,
        ),
        route(
            post.clone(),
            "/api/v1/edr/{sensor}/events",
            Sensor,
            edr::events,
        ),
        route(
            get.clone(),
            "/api/v1/edr/{sensor}/pending-commands",
            Sensor,
            edr::pending_commands,
        ),
        route(
            post,
            "/api/v1/edr/{sensor}/commands/{id}/result",
            Sensor,
            edr::command_result,
        ),
        route(get, "/api/v1/edr/{sensor}/risk", Sensor, edr::risk),
    ]
}
