//! Stored types of the response half: command history, the audit log and policies.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One state a command went through.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommandTransition {
    /// `queued`, `delivered`, `redelivered`, `succeeded`, `failed`, `expired`.
    pub state: String,
    /// When (ms since the epoch).
    pub time: i64,
    /// What came with it (the result of a completion, the backend's answer…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<Value>,
}

/// An entry to append to the audit log.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// Who: `operator`, `policy:<id>`, `endpoint:<sensor id>`, `system`.
    pub actor: String,
    /// What: `command.queued`, `command.succeeded`, `policy.created`, `endpoint.revoked`, …
    pub action: String,
    /// On what: `endpoint:<id>`, `command:<id>`, `policy:<id>`.
    pub target: String,
    /// Everything else worth keeping (a JSON object).
    pub detail: Value,
}

/// An audit log entry as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord {
    /// Position in the log.
    pub seq: i64,
    /// When (ms since the epoch).
    pub time: i64,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// On what.
    pub target: String,
    /// Details.
    pub detail: Value,
}

/// Filter for reading the audit log (newest first).
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only entries older than this position (for paging).
    pub before: Option<i64>,
    /// Only entries about this target.
    pub target: Option<String>,
    /// At most this many.
    pub limit: u32,
}

/// Responses a policy rule can carry, run on the agent when the rule matches.
pub const POLICY_RESPONSES: &[&str] = &["alert", "kill", "suspend", "isolate", "quarantine"];

/// One rule of a policy and its response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRuleSpec {
    /// A rule the server has loaded, by its Sigma id (exclusive with `sigma`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<String>,
    /// A rule written into the policy, as Sigma YAML (exclusive with `rule_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigma: Option<String>,
    /// One of [`POLICY_RESPONSES`].
    pub response: String,
}

/// What an operator sets when creating or replacing a policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyInput {
    /// Unique name.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// The rules and their responses.
    pub rules: Vec<PolicyRuleSpec>,
    /// Endpoints it applies to, by sensor id (`edr:` prefix allowed).
    #[serde(default)]
    pub endpoints: Vec<String>,
    /// Endpoint tags it applies to; `*` applies it to every endpoint.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Disabled policies are kept but pushed to no one.
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// A stored policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Policy {
    /// Policy id.
    pub id: String,
    /// The operator's definition.
    #[serde(flatten)]
    pub spec: PolicyInput,
    /// Increases on every change.
    pub revision: i64,
    /// Created (ms).
    pub created_at: i64,
    /// Last changed (ms).
    pub updated_at: i64,
}

impl Policy {
    /// Whether the policy applies to an endpoint with this id and these tags.
    pub fn applies_to(&self, sensor_id: &str, tags: &[String]) -> bool {
        self.spec.enabled
            && (self
                .spec
                .endpoints
                .iter()
                .any(|e| e.strip_prefix("edr:").unwrap_or(e) == sensor_id)
                || self.spec.tags.iter().any(|t| t == "*" || tags.contains(t)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(endpoints: &[&str], tags: &[&str], enabled: bool) -> Policy {
        Policy {
            id: "p".into(),
            spec: PolicyInput {
                name: "p".into(),
                description: String::new(),
                rules: vec![],
                endpoints: endpoints.iter().map(|s| (*s).to_owned()).collect(),
                tags: tags.iter().map(|s| (*s).to_owned()).collect(),
                enabled,
            },
            revision: 1,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn assignment_by_id_tag_or_star() {
        let tags = vec!["prod".to_owned()];
        assert!(policy(&["edr:s1"], &[], true).applies_to("s1", &[]));
        assert!(policy(&[], &["prod"], true).applies_to("s2", &tags));
        assert!(!policy(&[], &["dev"], true).applies_to("s2", &tags));
        assert!(policy(&[], &["*"], true).applies_to("anything", &[]));
        assert!(!policy(&[], &["*"], false).applies_to("anything", &[]));
    }
}
