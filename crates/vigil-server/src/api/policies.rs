//! `/api/v1/policies…` (rules with their responses, pushed to agents) and `/api/v1/audit`.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiState, limit};
use crate::store::{AuditQuery, PolicyInput};

pub(super) async fn list(State(st): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let items = st.store.policies().await?;
    Ok(Json(json!({ "items": items })))
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
    body: Result<Json<PolicyInput>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(input) = body?;
    st.responder
        .validate_policy(&input)
        .map_err(ApiError::bad_request)?;
    let p = st.store.create_policy(&input, vigil_ocsf::now_ms()).await?;
    st.responder.policies_changed();
    tracing::info!(policy = %p.spec.name, id = %p.id, "Policy created");
    Ok((StatusCode::CREATED, Json(json!(p))))
}

pub(super) async fn replace(
    State(st): State<ApiState>,
    Path(id): Path<String>,
    body: Result<Json<PolicyInput>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(input) = body?;
    st.responder
        .validate_policy(&input)
        .map_err(ApiError::bad_request)?;
    let p = st
        .store
        .update_policy(&id, &input, vigil_ocsf::now_ms())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no policy {id}")))?;
    st.responder.policies_changed();
    tracing::info!(policy = %p.spec.name, id = %p.id, revision = p.revision, "Policy changed");
    Ok(Json(json!(p)))
}

pub(super) async fn delete(
    State(st): State<ApiState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !st.store.delete_policy(&id).await? {
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
    let q = AuditQuery {
        before: p.before,
        target: p.target,
        limit: limit(p.limit)?,
    };
    let items = st.store.audit_log(&q).await?;
    Ok(Json(json!({ "items": items })))
}
