//! `/api/v1/users…` (admins manage operators; everyone changes their own password) and
//! `/api/v1/tokens…` (API tokens for automation: own ones, or anyone's for an admin).

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{Principal, Via};
use super::{ApiError, ApiState, limit, page};
use crate::auth::{generate_password, hash_password, new_token, valid_name, verify_password};
use crate::store::{NameQuery, NewApiToken, NewUser, OperatorRole};

/// List parameters of users and tokens.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NameParams {
    /// Only this role.
    role: Option<OperatorRole>,
    /// Only tokens of this user (tokens only).
    user: Option<String>,
    /// The `next` of the previous page.
    cursor: Option<String>,
    /// At most this many (default 100, max 1000).
    limit: Option<u32>,
}

async fn hash(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
        .map_err(|e| ApiError::bad_request(e.to_string()))
}

fn check_name(what: &str, name: &str) -> Result<(), ApiError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "{what} {name:?}: use 1 to 64 letters, digits, '.', '_', '-' or '@'"
        )))
    }
}

pub(super) async fn list(
    State(st): State<ApiState>,
    params: Result<Query<NameParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(p) = params?;
    if p.user.is_some() {
        return Err(ApiError::bad_request("`user` filters tokens, not users"));
    }
    let limit = limit(p.limit)?;
    let q = NameQuery {
        after: p.cursor,
        role: p.role,
        user: None,
        limit: limit + 1,
    };
    let users = st.store.users(&q).await?;
    Ok(page(users, limit, |u| u.name.clone()))
}

/// `POST /api/v1/users` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UserBody {
    name: String,
    role: OperatorRole,
    /// Omitted: a password is generated and returned once.
    password: Option<String>,
}

pub(super) async fn create(
    State(st): State<ApiState>,
    Extension(who): Extension<Principal>,
    body: Result<Json<UserBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(b) = body?;
    check_name("user name", &b.name)?;
    let generated = b.password.is_none().then(generate_password);
    let password = b.password.or_else(|| generated.clone()).unwrap_or_default();
    let user = NewUser {
        name: b.name,
        role: b.role,
        password_hash: hash(password).await?,
    };
    let created = st
        .store
        .create_user(&user, &who.actor(), vigil_ocsf::now_ms())
        .await?;
    tracing::info!(user = %created.name, role = %created.role, by = %who.actor(), "Operator created");
    let mut v = json!(created);
    if let Some(p) = generated {
        v["password"] = json!(p);
    }
    Ok((StatusCode::CREATED, Json(v)))
}

pub(super) async fn remove(
    State(st): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !st
        .store
        .delete_user(&name, &who.actor(), vigil_ocsf::now_ms())
        .await?
    {
        return Err(ApiError::not_found(format!("no user {name}")));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `PATCH /api/v1/users/{name}` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UserPatch {
    role: OperatorRole,
}

pub(super) async fn update(
    State(st): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
    body: Result<Json<UserPatch>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(b) = body?;
    let user = st
        .store
        .set_role(&name, b.role, &who.actor(), vigil_ocsf::now_ms())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no user {name}")))?;
    tracing::info!(user = %user.name, role = %user.role, by = %who.actor(), "Operator role set");
    Ok(Json(json!(user)))
}

/// `POST /api/v1/users/{name}/password` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PasswordBody {
    /// The new password; omitted: one is generated and returned once.
    password: Option<String>,
    /// Required when changing one's own password.
    current_password: Option<String>,
}

pub(super) async fn password(
    State(st): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
    body: Result<Json<PasswordBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(b) = body?;
    if !who.may_manage(&name) {
        return Err(ApiError::forbidden(
            "only an admin sets another user's password",
        ));
    }
    if who.user == name {
        let current = b.current_password.unwrap_or_default();
        let (_, stored) = st
            .store
            .user_credentials(&name)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no user {name}")))?;
        let ok = tokio::task::spawn_blocking(move || verify_password(&current, &stored))
            .await
            .unwrap_or(false);
        if !ok {
            return Err(ApiError::forbidden(
                "changing your own password needs the current one in current_password",
            ));
        }
    }
    let generated = b.password.is_none().then(generate_password);
    let password = b.password.or_else(|| generated.clone()).unwrap_or_default();
    let hashed = hash(password).await?;
    if !st
        .store
        .set_password(&name, &hashed, &who.actor(), vigil_ocsf::now_ms())
        .await?
    {
        return Err(ApiError::not_found(format!("no user {name}")));
    }
    let mut v = json!({ "name": name, "sessions_ended": true });
    if let Some(p) = generated {
        v["password"] = json!(p);
    }
    Ok(Json(v))
}

pub(super) async fn tokens(
    State(st): State<ApiState>,
    Extension(who): Extension<Principal>,
    params: Result<Query<NameParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(p) = params?;
    let user = match (p.user, who.role) {
        (Some(u), _) if who.may_manage(&u) => Some(u),
        (Some(_), _) => {
            return Err(ApiError::forbidden(
                "only an admin lists another user's tokens",
            ));
        }
        (None, OperatorRole::Admin) => None,
        (None, _) => Some(who.user.clone()),
    };
    let limit = limit(p.limit)?;
    let q = NameQuery {
        after: p.cursor,
        role: p.role,
        user,
        limit: limit + 1,
    };
    let items = st.store.api_tokens(&q).await?;
    Ok(page(items, limit, |t| t.name.clone()))
}

/// `POST /api/v1/tokens` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TokenBody {
    /// Unique name.
    name: String,
    /// Whose; default: the caller. Another user's needs an admin.
    user: Option<String>,
    /// The role it carries; default: the user's. Never above the user's.
    role: Option<OperatorRole>,
}

pub(super) async fn create_token(
    State(st): State<ApiState>,
    Extension(who): Extension<Principal>,
    body: Result<Json<TokenBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(b) = body?;
    check_name("token name", &b.name)?;
    if matches!(who.via, Via::Token { .. }) && who.role != OperatorRole::Admin {
        return Err(ApiError::forbidden(
            "tokens are created from a console session (or by an admin): a token cannot mint \
             further tokens",
        ));
    }
    let user_name = b.user.unwrap_or_else(|| who.user.clone());
    if !who.may_manage(&user_name) {
        return Err(ApiError::forbidden(
            "only an admin creates tokens for another user",
        ));
    }
    let (user, _) = st
        .store
        .user_credentials(&user_name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no user {user_name}")))?;
    let role = b.role.unwrap_or(user.role);
    if role > user.role {
        return Err(ApiError::bad_request(format!(
            "a token carries its user's role ({}) or a lower one, not {role}",
            user.role
        )));
    }
    let secret = new_token();
    let token = NewApiToken {
        name: b.name,
        user: user.name,
        role,
        token_hash: crate::pki::hash_secret(&secret),
    };
    let created = st
        .store
        .create_api_token(&token, &who.actor(), vigil_ocsf::now_ms())
        .await?;
    tracing::info!(token = %created.name, user = %created.user, role = %created.role, by = %who.actor(), "API token created");
    let mut v = json!(created);
    v["token"] = json!(secret);
    Ok((StatusCode::CREATED, Json(v)))
}

pub(super) async fn revoke_token(
    State(st): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let token = st
        .store
        .api_token(&id)
        .await?
        .filter(|t| who.may_manage(&t.user))
        .ok_or_else(|| ApiError::not_found(format!("no token {id} of yours")))?;
    st.store
        .revoke_api_token(&token.id, &who.actor(), vigil_ocsf::now_ms())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
