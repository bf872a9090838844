//! `/api/v1/policies…` (rules with their responses, pushed to agents) and `/api/v1/audit`.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Principal;
use super::{ApiError, ApiState, limit, page};
use crate::store::{AuditQuery, PolicyInput};

/// `GET /api/v1/policies` parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListParams {
    /// Only enabled (`true`) or disabled (`false`) policies.
    enabled: Option<bool>,
    /// Only policies assigned to this tag (`*` included).
    tag: Option<String>,
    /// The `next` of the previous page (a policy name).
    cursor: Option<String>,
    /// At most this many (default 100, max 1000).
    limit: Option<u32>,
}

/// Policies by name.
pub(super) async fn list(
    State(st): State<ApiState>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(p) = params?;
    let limit = limit(p.limit)?;
    let items: Vec<_> = st
        .store
        .policies()
        .await?
        .into_iter()
        .filter(|x| p.cursor.as_ref().is_none_or(|c| x.spec.name > *c))
        .filter(|x| p.enabled.is_none_or(|e| x.spec.enabled == e))
        .filter(|x| p.tag.as_ref().is_none_or(|t| x.spec.tags.contains(t)))
        .take(
            usize::try_from(limit)
                .unwrap_or(usize::MAX)
                .saturating_add(1),
        )
        .collect();
    Ok(page(items, limit, |x| x.spec.name.clone()))
}

pub(super) async fn one(
    State(st): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let p = st
        .store
        .policies()
        .await?
        .into_iter()
        .find(|p| p.id == id)
        .ok_or_else(|| ApiError::not_found(format!("no policy {id}")))?;
    Ok(Json(json!(p)))
}

pub(super) async fn create(
    State(st): State<ApiState>,
    Extension(who): Extension<Principal>,
    body: Result<Json<PolicyInput>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(input) = body?;
    st.responder
        .validate_policy(&input)
        .map_err(ApiError::bad_request)?;
    let p = st
        .store
        .create_policy(&input, &who.actor(), vigil_ocsf::now_ms())
        .await?;
    st.responder.policies_changed();
    tracing::info!(policy = %p.spec.name, id = %p.id, "Policy created");
    Ok((StatusCode::CREATED, Json(json!(p))))
}

pub(super) async fn replace(
    State(st): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    body: Result<Json<PolicyInput>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(input) = body?;
    st.responder
        .validate_policy(&input)
        .map_err(ApiError::bad_request)?;
    let p = st
        .store
        .update_policy(&id, &input, &who.actor(), vigil_ocsf::now_ms())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no policy {id}")))?;
    st.responder.policies_changed();
    tracing::info!(policy = %p.spec.name, id = %p.id, revision = p.revision, "Policy changed");
    Ok(Json(json!(p)))
}

pub(super) async fn delete(
    State(st): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !st.store.delete_policy(&id, &who.actor()).await? {
        return Err(ApiError::not_found(format!("no policy {id}")));
    }
    st.responder.policies_changed();
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/audit` parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditParams {
    /// Only entries before this position (paging: pass the last `seq` seen).
    before: Option<i64>,
    /// The `next` of the previous page (the same as `before`).
    cursor: Option<i64>,
    /// Only entries about this target (`endpoint:<id>`, `policy:<id>`).
    target: Option<String>,
    /// At most this many (default 100, max 1000).
    limit: Option<u32>,
}

pub(super) async fn audit(
    State(st): State<ApiState>,
    params: Result<Query<AuditParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(p) = params?;
    let limit = limit(p.limit)?;
    let q = AuditQuery {
        before: p.cursor.or(p.before),
        target: p.target,
        limit: limit + 1,
    };
    let items = st.store.audit_log(&q).await?;
    Ok(page(items, limit, |e| e.seq.to_string()))
}
