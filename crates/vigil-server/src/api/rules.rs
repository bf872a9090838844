//! `GET /api/v1/rules`: every rule the server saw at start, with what became of it (as
//! `vigil rules check` reports it), its ATT&CK mapping and the policies that push it to agents.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::{Value, json};
use vigil_detect::{LoadReport, RuleSet, RuleStatus};
use vigil_ocsf::Attack;

use super::{ApiError, ApiState};

/// One rule as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RuleView {
    /// Sigma id (absent when the rule could not be read far enough).
    pub id: Option<String>,
    /// Title.
    pub title: Option<String>,
    /// `loaded`, `not_applicable`, `unsupported`, `malformed`.
    pub status: &'static str,
    /// Why it is not loaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `detection` or `correlation`.
    pub kind: &'static str,
    /// The Sigma logsource.
    pub logsource: String,
    /// Severity name, for loaded rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<&'static str>,
    /// Tags as written.
    pub tags: Vec<String>,
    /// ATT&CK mappings.
    pub attacks: Vec<Attack>,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The file it came from.
    pub path: String,
}

/// The rules loaded at start, in the order their files were read.
#[derive(Debug, Default)]
pub struct RuleCatalog {
    rules: Vec<RuleView>,
}

impl RuleCatalog {
    /// The catalog of a rule set and the report of loading it.
    pub fn new(set: &RuleSet, report: &LoadReport) -> Self {
        let rules = report
            .rules
            .iter()
            .map(|r| {
                let (status, reason) = match &r.status {
                    RuleStatus::Loaded => ("loaded", None),
                    RuleStatus::NotApplicable(w) => ("not_applicable", Some(w.clone())),
                    RuleStatus::Unsupported(w) => ("unsupported", Some(w.clone())),
                    RuleStatus::Malformed(w) => ("malformed", Some(w.clone())),
                };
                let mut view = RuleView {
                    id: r.id.clone(),
                    title: r.title.clone(),
                    status,
                    reason,
                    kind: "detection",
                    logsource: r.logsource.clone(),
                    level: None,
                    tags: Vec::new(),
                    attacks: Vec::new(),
                    description: None,
                    path: r.path.display().to_string(),
                };
                let id = r.id.as_deref();
                if let Some(rule) = set.rules().iter().find(|x| Some(x.id.as_str()) == id) {
                    view.level = Some(rule.level.name());
                    view.tags.clone_from(&rule.tags);
                    view.attacks.clone_from(&rule.attacks);
                    view.description.clone_from(&rule.description);
                } else if let Some(c) = set
                    .correlations()
                    .iter()
                    .find(|c| Some(c.id.as_str()) == id)
                {
                    view.kind = "correlation";
                    view.level = Some(c.level.name());
                    view.tags.clone_from(&c.tags);
                    view.attacks.clone_from(&c.attacks);
                    view.description.clone_from(&c.description);
                }
                view
            })
            .collect();
        Self { rules }
    }
}

pub(super) async fn list(State(st): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let policies = st.store.policies().await?;
    let items: Vec<Value> = st
        .catalog
        .rules
        .iter()
        .map(|r| {
            let used_by: Vec<Value> = policies
                .iter()
                .flat_map(|p| {
                    p.spec
                        .rules
                        .iter()
                        .filter(|pr| pr.rule_id.is_some() && pr.rule_id == r.id)
                        .map(move |pr| {
                            json!({ "policy_id": p.id, "policy": p.spec.name,
                                    "response": pr.response, "enabled": p.spec.enabled })
                        })
                })
                .collect();
            let mut v = json!(r);
            v["policies"] = json!(used_by);
            v["enabled"] = json!(r.id.as_deref().is_none_or(|id| st.switches.enabled(id)));
            v
        })
        .collect();
    let count = |s: &str| st.catalog.rules.iter().filter(|r| r.status == s).count();
    Ok(Json(json!({
        "items": items,
        "counts": {
            "loaded": count("loaded"), "not_applicable": count("not_applicable"),
            "unsupported": count("unsupported"), "malformed": count("malformed"),
        },
    })))
}

/// `PUT /api/v1/rules/{id}` body.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SwitchBody {
    enabled: bool,
}

/// Switches a loaded rule on or off: off, it raises no finding on the server and is left out
/// of the policies pushed to agents.
pub(super) async fn switch(
    State(st): State<ApiState>,
    axum::Extension(who): axum::Extension<super::auth::Principal>,
    axum::extract::Path(id): axum::extract::Path<String>,
    body: Result<Json<SwitchBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(b) = body?;
    let known = st
        .catalog
        .rules
        .iter()
        .any(|r| r.status == "loaded" && r.id.as_deref() == Some(id.as_str()));
    if !known {
        return Err(ApiError::not_found(format!("no loaded rule has id {id}")));
    }
    st.store
        .switch_rule(&id, b.enabled, &who.actor(), vigil_ocsf::now_ms())
        .await?;
    st.switches.set(&id, b.enabled);
    st.responder.policies_changed();
    tracing::info!(rule = %id, enabled = b.enabled, "Rule switched");
    Ok(Json(json!({ "id": id, "enabled": b.enabled })))
}

/// An empty catalog, for states built without a server.
pub fn empty() -> Arc<RuleCatalog> {
    Arc::new(RuleCatalog::default())
}
