//! Operator authentication over HTTP: who is calling (an API token in `Authorization: Bearer`,
//! or the console's session cookie), whether their role suffices for the route, CSRF for
//! cookie-authenticated writes, and `/api/v1/auth/…` (login, logout, me).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::header::{AUTHORIZATION, COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::routes::Access;
use super::{ApiError, ApiState};
use crate::auth::{AuthConfig, LoginLimiter, TOKEN_PREFIX, verify_password};
use crate::pki::{constant_time_eq, hash_secret, random_secret};
use crate::store::{AuditEntry, NewOperatorSession, OperatorRole};

/// The console's session cookie.
pub const SESSION_COOKIE: &str = "vigil_session";
/// The header cookie-authenticated writes carry the session's CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a live feed ticket stays valid.
pub const TICKET_TTL: Duration = Duration::from_secs(30);

/// Authentication state shared by the API handlers.
#[derive(Debug, Default)]
pub struct AuthState {
    /// Session settings.
    pub config: AuthConfig,
    /// Failed logins.
    pub limiter: LoginLimiter,
    /// One-time live feed tickets: hash → who and until when.
    tickets: Mutex<HashMap<String, (Principal, Instant)>>,
}

impl AuthState {
    /// Auth state with these session settings.
    pub fn new(config: AuthConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    /// A one-time ticket for the live feed, valid for [`TICKET_TTL`].
    pub fn issue_ticket(&self, who: &Principal) -> String {
        let ticket = random_secret();
        let now = Instant::now();
        let mut map = self.tickets.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|_, (_, until)| *until > now);
        map.insert(hash_secret(&ticket), (who.clone(), now + TICKET_TTL));
        ticket
    }

    /// Who a ticket was issued to; a ticket works once.
    fn redeem_ticket(&self, ticket: &str) -> Option<Principal> {
        let mut map = self.tickets.lock().unwrap_or_else(PoisonError::into_inner);
        let (who, until) = map.remove(&hash_secret(ticket))?;
        (until > Instant::now()).then_some(who)
    }
}

/// How a caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "via", rename_all = "lowercase")]
pub enum Via {
    /// The console's session cookie.
    Session {
        /// SHA-256 of the session id.
        #[serde(skip)]
        id_hash: String,
        /// The session's CSRF token.
        csrf_token: String,
        /// Absolute expiry (ms).
        expires_at: i64,
    },
    /// An API token.
    Token {
        /// The token's id.
        token_id: String,
        /// The token's name.
        token: String,
    },
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// User name.
    pub user: String,
    /// Effective role (a token's is capped at its user's).
    pub role: OperatorRole,
    /// How they authenticated.
    #[serde(flatten)]
    pub via: Via,
}

impl Principal {
    /// How the audit log and the command queue name the caller: `user:<name>` for a console
    /// session, `token:<name>` for an API token.
    pub fn actor(&self) -> String {
        match &self.via {
            Via::Session { .. } => format!("user:{}", self.user),
            Via::Token { token, .. } => format!("token:{token}"),
        }
    }

    /// Whether the caller may act as (or on behalf of) `user`: it is them, or an admin.
    pub fn may_manage(&self, user: &str) -> bool {
        self.user == user || self.role == OperatorRole::Admin
    }
}

/// The caller's address, when the server knows it (not in `oneshot` tests).
#[derive(Debug, Clone, Copy)]
pub struct SourceAddr(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for SourceAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

impl std::fmt::Display for SourceAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(ip) => write!(f, "{ip}"),
            None => f.write_str("unknown"),
        }
    }
}

fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn query_param<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Who is calling, if anyone: a bearer API token, else the session cookie, else (where
/// `tickets` allows) a live feed ticket.
pub async fn authenticate(
    st: &ApiState,
    headers: &HeaderMap,
    query: Option<&str>,
    tickets: bool,
) -> Result<Option<Principal>, ApiError> {
    let now = vigil_ocsf::now_ms();
    if let Some(value) = headers.get(AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| t.starts_with(TOKEN_PREFIX))
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "the Authorization header must be `Bearer vgl_…` (an API token)",
                )
            })?;
        let (token, _user) = st
            .store
            .identify_api_token(&hash_secret(token), now)
            .await?
            .ok_or_else(|| ApiError::unauthorized("unknown or revoked API token"))?;
        return Ok(Some(Principal {
            user: token.user,
            role: token.role,
            via: Via::Token {
                token_id: token.id,
                token: token.name,
            },
        }));
    }
    if let Some(id) = cookie(headers, SESSION_COOKIE) {
        let idle = i64::try_from(st.auth.config.session_idle.as_millis()).unwrap_or(i64::MAX);
        let session = st
            .store
            .session(&hash_secret(id), idle, now)
            .await?
            .ok_or_else(|| ApiError::unauthorized("the session ended; log in again"))?;
        return Ok(Some(Principal {
            user: session.user.name,
            role: session.user.role,
            via: Via::Session {
                id_hash: session.id_hash,
                csrf_token: session.csrf_token,
                expires_at: session.expires_at,
            },
        }));
    }
    if tickets && let Some(ticket) = query_param(query, "ticket") {
        return st
            .auth
            .redeem_ticket(ticket)
            .map(Some)
            .ok_or_else(|| ApiError::unauthorized("unknown, used or expired live feed ticket"));
    }
    Ok(None)
}

/// Enforces a route's [`Access`]: 401 without credentials, 403 for a role too low or a
/// cookie-authenticated write without the session's CSRF token. The [`Principal`] goes into
/// the request's extensions for the handler.
pub async fn guard(
    State((st, access)): State<(ApiState, Access)>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(required) = access.role() else {
        return next.run(req).await;
    };
    let principal = match authenticate(
        &st,
        req.headers(),
        req.uri().query(),
        access == Access::Live,
    )
    .await
    {
        Ok(Some(p)) => p,
        Ok(None) => {
            return ApiError::unauthorized(
                "log in (POST /api/v1/auth/login) or send `Authorization: Bearer <API token>`",
            )
            .into_response();
        }
        Err(e) => return e.into_response(),
    };
    if principal.role < required {
        return ApiError::forbidden(format!(
            "this needs the {required} role; {} has {}",
            principal.user, principal.role
        ))
        .into_response();
    }
    if let Via::Session { csrf_token, .. } = &principal.via
        && !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
    {
        let sent = req
            .headers()
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !constant_time_eq(sent, csrf_token) {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf_failed",
                "a cookie-authenticated write must carry the session's CSRF token in \
                 X-CSRF-Token (returned at login and by GET /api/v1/auth/me)",
            )
            .into_response();
        }
    }
    req.extensions_mut().insert(principal);
    next.run(req).await
}

/// `POST /api/v1/auth/login` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LoginBody {
    username: String,
    password: String,
}

fn set_cookie(config: &AuthConfig, value: &str, max_age_s: u64) -> HeaderValue {
    let secure = if config.cookie_secure { "; Secure" } else { "" };
    let c = format!(
        "{SESSION_COOKIE}={value}; Path=/api; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}"
    );
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static(""))
}

async fn audit(st: &ApiState, actor: String, action: &str, user: &str, detail: Value) {
    let entry = AuditEntry {
        actor,
        action: action.into(),
        target: format!("user:{user}"),
        detail,
    };
    if let Err(error) = st.store.audit(&entry, vigil_ocsf::now_ms()).await {
        tracing::error!(%error, action, "Cannot write a login to the audit log");
    }
}

pub(super) async fn login(
    State(st): State<ApiState>,
    source: SourceAddr,
    body: Result<Json<LoginBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(b) = body?;
    if b.username.len() > 256 {
        return Err(ApiError::bad_request("user name too long"));
    }
    let limiter = &st.auth.limiter;
    if let Err(lock) = limiter.check(&b.username, source.0, Instant::now()) {
        return Err(ApiError::too_many(
            "too many failed logins; try again later",
            lock.retry_after.as_secs_f64().ceil() as u64,
        ));
    }
    let stored = st.store.user_credentials(&b.username).await?;
    let hash = stored
        .as_ref()
        .map_or_else(|| crate::auth::dummy_hash().to_owned(), |(_, h)| h.clone());
    let password = b.password;
    let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .unwrap_or(false);
    let user = match stored {
        Some((user, _)) if ok => user,
        _ => {
            let lock = limiter.failed(&b.username, source.0, Instant::now());
            let mut detail = json!({ "source": source.to_string() });
            if let Some(l) = lock {
                detail["locked_for_s"] = json!(l.retry_after.as_secs());
            }
            audit(
                &st,
                "anonymous".into(),
                "auth.login_failed",
                &b.username,
                detail,
            )
            .await;
            tracing::warn!(user = %b.username, source = %source, "Failed operator login");
            return Err(ApiError::unauthorized("wrong user name or password"));
        }
    };
    limiter.succeeded(&user.name);
    let id = random_secret();
    let csrf_token = random_secret();
    let now = vigil_ocsf::now_ms();
    let absolute = st.auth.config.session_absolute;
    let expires_at = now + i64::try_from(absolute.as_millis()).unwrap_or(i64::MAX / 2);
    st.store
        .create_session(
            &NewOperatorSession {
                id_hash: hash_secret(&id),
                user: user.name.clone(),
                csrf_token: csrf_token.clone(),
                expires_at,
            },
            now,
        )
        .await?;
    audit(
        &st,
        format!("user:{}", user.name),
        "auth.login",
        &user.name,
        json!({ "source": source.to_string() }),
    )
    .await;
    tracing::info!(user = %user.name, source = %source, "Operator logged in");
    let body = json!({
        "user": user.name,
        "role": user.role,
        "csrf_token": csrf_token,
        "expires_at": expires_at,
        "idle_timeout_s": st.auth.config.session_idle.as_secs(),
    });
    let mut res = Json(body).into_response();
    res.headers_mut().insert(
        SET_COOKIE,
        set_cookie(&st.auth.config, &id, absolute.as_secs()),
    );
    Ok(res)
}

pub(super) async fn logout(
    State(st): State<ApiState>,
    axum::Extension(who): axum::Extension<Principal>,
    source: SourceAddr,
) -> Result<Response, ApiError> {
    let mut res = StatusCode::NO_CONTENT.into_response();
    if let Via::Session { id_hash, .. } = &who.via {
        st.store.delete_session(id_hash).await?;
        audit(
            &st,
            who.actor(),
            "auth.logout",
            &who.user,
            json!({ "source": source.to_string() }),
        )
        .await;
        res.headers_mut()
            .insert(SET_COOKIE, set_cookie(&st.auth.config, "", 0));
    }
    Ok(res)
}

pub(super) async fn me(axum::Extension(who): axum::Extension<Principal>) -> Json<Value> {
    Json(json!(who))
}
