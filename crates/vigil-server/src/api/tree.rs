//! `GET /api/v1/alerts/{uid}/tree`: the process tree around an alert within a time window —
//! the alert's process, its ancestors, its siblings and its descendants (three levels) — each
//! with its network and file activity, ready for the console to draw.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiState};
use crate::store::{EventQuery, StoreError};

/// Descendant levels followed.
const DEPTH: usize = 3;
/// Most processes in the tree.
const MAX_NODES: usize = 200;
/// Most activity events per process.
const MAX_ACTIVITY: u32 = 50;

/// `GET …/tree` parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TreeParams {
    /// Seconds before and after the alert (default 600, at most 86,400).
    window_s: Option<i64>,
}

struct Ctx<'a> {
    st: &'a ApiState,
    sensor: String,
    since: i64,
    until: i64,
}

impl Ctx<'_> {
    async fn events(
        &self,
        class: u32,
        field: &str,
        value: &str,
        limit: u32,
    ) -> Result<Vec<Value>, StoreError> {
        self.st
            .store
            .query_events(&EventQuery {
                class_uid: Some(class),
                since: Some(self.since),
                until: Some(self.until),
                sensor_id: Some(self.sensor.clone()),
                field: Some((field.to_owned(), value.to_owned())),
                limit,
                ..Default::default()
            })
            .await
    }

    /// A process with its network and file activity.
    async fn node(&self, process: &Value, time: Option<i64>) -> Result<Value, StoreError> {
        let pid = process["pid"].as_u64();
        let (network, files) = match pid {
            Some(pid) => (
                self.events(4001, "actor.process.pid", &pid.to_string(), MAX_ACTIVITY)
                    .await?,
                self.events(1001, "actor.process.pid", &pid.to_string(), MAX_ACTIVITY)
                    .await?,
            ),
            None => (Vec::new(), Vec::new()),
        };
        Ok(json!({
            "pid": pid,
            "uid": process["uid"],
            "name": process["name"],
            "path": process["file"]["path"],
            "cmd_line": process["cmd_line"],
            "user": process["user"]["name"],
            "time": time.or_else(|| process["created_time"].as_i64()),
            "network": network.iter().map(|e| json!({
                "time": e["time"], "activity": e["activity_name"],
                "src": e["src_endpoint"], "dst": e["dst_endpoint"],
            })).collect::<Vec<_>>(),
            "files": files.iter().map(|e| json!({
                "time": e["time"], "activity": e["activity_name"], "path": e["file"]["path"],
            })).collect::<Vec<_>>(),
            "children": [],
        }))
    }

    /// Launches whose parent is `pid` (a fork and its exec are one process: the exec wins).
    async fn children(&self, pid: u64) -> Result<Vec<Value>, StoreError> {
        let mut launches = self
            .events(1007, "process.parent_process.pid", &pid.to_string(), 200)
            .await?;
        launches.retain(|e| e["activity_id"] == 1);
        launches.sort_by_key(|e| (e["time"].as_i64(), e["launch_type_id"] == 3));
        let mut seen = BTreeSet::new();
        let mut out: Vec<Value> = Vec::new();
        for e in launches.into_iter().rev() {
            let key = e["process"]["uid"]
                .as_str()
                .map_or_else(|| e["process"]["pid"].to_string(), str::to_owned);
            if seen.insert(key) {
                out.push(e);
            }
        }
        out.reverse();
        Ok(out)
    }
}

/// Adds the children of `node` (and theirs, `depth` levels), while the tree has room.
fn grow<'a>(
    ctx: &'a Ctx<'a>,
    node: &'a mut Value,
    depth: usize,
    count: &'a mut usize,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StoreError>> + Send + 'a>> {
    Box::pin(async move {
        let Some(pid) = node["pid"].as_u64() else {
            return Ok(());
        };
        if depth == 0 {
            return Ok(());
        }
        let mut kids = Vec::new();
        for e in ctx.children(pid).await? {
            if *count >= MAX_NODES {
                break;
            }
            *count += 1;
            let mut child = ctx.node(&e["process"], e["time"].as_i64()).await?;
            grow(ctx, &mut child, depth - 1, count).await?;
            kids.push(child);
        }
        node["children"] = json!(kids);
        Ok(())
    })
}

pub(super) async fn tree(
    State(st): State<ApiState>,
    Path(uid): Path<String>,
    params: Result<Query<TreeParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(p) = params?;
    let window = p.window_s.unwrap_or(600);
    if !(1..=86_400).contains(&window) {
        return Err(ApiError::bad_request("window_s must be 1 to 86400"));
    }
    let alert = st
        .store
        .alert(&uid)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no alert {uid}")))?;
    let f = &alert.finding;
    let focus = f["evidences"]
        .as_array()
        .and_then(|ev| ev.iter().find_map(|e| e.get("process")).cloned())
        .ok_or_else(|| ApiError::not_found(format!("alert {uid} names no process")))?;
    let t = f["time"].as_i64().unwrap_or_default();
    let ctx = Ctx {
        st: &st,
        sensor: alert.sensor_id.clone(),
        since: t - window * 1000,
        until: t + window * 1000,
    };
    let mut root = ctx.node(&focus, None).await?;
    root["focus"] = json!(true);

    // Descendants, depth first, bounded.
    let mut count = 1usize;
    grow(&ctx, &mut root, DEPTH, &mut count).await?;

    let siblings = match focus["parent_process"]["pid"].as_u64() {
        Some(ppid) => {
            let mut out = Vec::new();
            for e in ctx.children(ppid).await? {
                if e["process"]["pid"] != focus["pid"] && out.len() < 50 {
                    out.push(ctx.node(&e["process"], e["time"].as_i64()).await?);
                }
            }
            out
        }
        None => Vec::new(),
    };
    let ancestors: Vec<Value> = focus["ancestry"].as_array().cloned().unwrap_or_else(|| {
        focus
            .get("parent_process")
            .map(|p| {
                vec![json!({ "pid": p["pid"], "name": p["name"],
                                  "cmd_line": p["cmd_line"], "path": p["file"]["path"] })]
            })
            .unwrap_or_default()
    });
    Ok(Json(json!({
        "alert": uid,
        "sensor_id": alert.sensor_id,
        "window": { "since": ctx.since, "until": ctx.until },
        "ancestors": ancestors,
        "process": root,
        "siblings": siblings,
    })))
}
