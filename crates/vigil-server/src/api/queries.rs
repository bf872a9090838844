//! `/api/v1/queries…`: a live query asked of a selection of the fleet (by endpoint ids or
//! tags), answered per host: the rows, the host's error, or that it did not answer in time.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Principal;
use super::{ApiError, ApiState};
use crate::response::CommandError;
use crate::store::{LiveQuery, QueryTarget};

/// Seconds a host gets beyond the query's own timeout to answer (delivery, upload).
const GRACE_S: u64 = 20;

/// `POST /api/v1/queries` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct QueryBody {
    sql: String,
    #[serde(default)]
    endpoints: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
    timeout_s: Option<u64>,
    max_rows: Option<u64>,
}

pub(super) async fn create(
    State(st): State<ApiState>,
    Extension(who): Extension<Principal>,
    body: Result<Json<QueryBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(b) = body?;
    if b.endpoints.is_empty() && b.tags.is_empty() {
        return Err(ApiError::bad_request(
            "name the hosts: endpoints (ids) and/or tags (\"*\" for every endpoint)",
        ));
    }
    let timeout_s = b.timeout_s.unwrap_or(10);
    if !(1..=60).contains(&timeout_s) {
        return Err(ApiError::bad_request("timeout_s must be 1 to 60 seconds"));
    }
    let wanted: Vec<String> = b
        .endpoints
        .iter()
        .map(|e| e.strip_prefix("edr:").unwrap_or(e).to_owned())
        .collect();
    let all = st.store.endpoints().await?;
    let unknown: Vec<&String> = wanted
        .iter()
        .filter(|w| !all.iter().any(|e| &e.facts.sensor_id == *w))
        .collect();
    if !unknown.is_empty() {
        return Err(ApiError::not_found(format!("no endpoint {unknown:?}")));
    }
    let chosen: Vec<_> = all
        .iter()
        .filter(|e| {
            wanted.contains(&e.facts.sensor_id)
                || b.tags
                    .iter()
                    .any(|t| t == "*" || e.controls.tags.contains(t))
        })
        .collect();
    let id = uuid::Uuid::now_v7().to_string();
    let mut args = json!({ "sql": b.sql, "timeout_s": timeout_s, "query_id": id });
    if let Some(m) = b.max_rows {
        args["max_rows"] = json!(m);
    }
    let mut targets = Vec::with_capacity(chosen.len());
    for ep in chosen {
        let sensor = ep.facts.sensor_id.clone();
        match st
            .responder
            .queue(&sensor, "query", args.clone(), "live query", &who.actor())
            .await
        {
            Ok(cmd) => targets.push(QueryTarget {
                sensor_id: sensor,
                command_id: Some(cmd.id),
                refused: None,
            }),
            Err(CommandError::CannotEnforce(why) | CommandError::UnknownEndpoint(why)) => {
                targets.push(QueryTarget {
                    sensor_id: sensor,
                    command_id: None,
                    refused: Some(why),
                });
            }
            Err(CommandError::Invalid(why)) => return Err(ApiError::bad_request(why)),
            Err(CommandError::Store(e)) => return Err(e.into()),
        }
    }
    let now = vigil_ocsf::now_ms();
    let q = LiveQuery {
        id,
        sql: b.sql,
        requested_by: who.actor(),
        created_at: now,
        deadline: now + i64::try_from((timeout_s + GRACE_S) * 1000).unwrap_or(i64::MAX),
        targets,
    };
    st.store.create_live_query(&q).await?;
    Ok((StatusCode::CREATED, Json(json!(q))))
}

/// The query with each host's answer so far.
pub(super) async fn one(
    State(st): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let q = st
        .store
        .live_query(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no query {id}")))?;
    let now = vigil_ocsf::now_ms();
    let mut hosts = Vec::with_capacity(q.targets.len());
    let (mut answered, mut failed, mut pending, mut late) = (0, 0, 0, 0);
    for t in &q.targets {
        let mut h = json!({ "sensor_id": t.sensor_id });
        match (&t.command_id, &t.refused) {
            (_, Some(why)) => {
                failed += 1;
                h["state"] = json!("refused");
                h["error"] = json!(why);
            }
            (Some(cid), None) => match st.store.command(&t.sensor_id, cid).await? {
                Some((cmd, _)) => match cmd.state.as_str() {
                    "succeeded" => {
                        answered += 1;
                        h["state"] = json!("answered");
                        h["result"] = cmd.result.unwrap_or(Value::Null);
                    }
                    "failed" | "expired" => {
                        failed += 1;
                        h["state"] = json!("failed");
                        h["error"] = cmd
                            .result
                            .as_ref()
                            .and_then(|r| r.get("error").cloned())
                            .unwrap_or(json!(cmd.state));
                    }
                    _ if now > q.deadline => {
                        late += 1;
                        h["state"] = json!("no_answer_in_time");
                    }
                    _ => {
                        pending += 1;
                        h["state"] = json!("pending");
                    }
                },
                None => {
                    failed += 1;
                    h["state"] = json!("failed");
                    h["error"] = json!("the command is gone");
                }
            },
            (None, None) => {
                failed += 1;
                h["state"] = json!("failed");
            }
        }
        hosts.push(h);
    }
    Ok(Json(json!({
        "id": q.id, "sql": q.sql, "requested_by": q.requested_by,
        "created_at": q.created_at, "deadline": q.deadline,
        "summary": { "answered": answered, "failed": failed, "pending": pending,
                     "no_answer_in_time": late },
        "hosts": hosts,
    })))
}

pub(super) async fn list(State(st): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let items = st.store.live_queries(super::MAX_LIMIT).await?;
    Ok(Json(json!({ "items": items })))
}
