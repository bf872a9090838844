//! Edge detection: the rules of the endpoint's policy, evaluated on the agent itself, each
//! with the response it runs when it matches, offline too.
//!
//! The policy arrives from the server ([`PolicyUpdate`]) and is kept in `policy.json` in the
//! data directory, so an agent that restarts without its server still enforces it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vigil_detect::{Rule, RuleSet};
use vigil_ocsf::Event;
use vigil_ocsf::fieldmap::FieldMaps;
use vigil_proto::fleet::{PolicyRule, PolicyUpdate};

/// File the last policy is kept in.
const POLICY_FILE: &str = "policy.json";

/// The policy as kept on disk.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct StoredPolicy {
    version: String,
    rules: Vec<StoredRule>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StoredRule {
    rule_id: String,
    sigma_yaml: String,
    response: String,
    policy_id: String,
}

/// What a policy asks for when one of its rules matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyResponse {
    /// `alert`, `kill`, `suspend`, `isolate`, `quarantine`.
    pub action: String,
    /// The policy that asked for it.
    pub policy_id: String,
}

/// A compiled policy.
#[derive(Debug)]
pub struct EdgePolicy {
    version: String,
    rules: RuleSet,
    responses: HashMap<String, Vec<PolicyResponse>>,
}

impl Default for EdgePolicy {
    fn default() -> Self {
        Self {
            version: String::new(),
            rules: RuleSet::new(Vec::new()),
            responses: HashMap::new(),
        }
    }
}

impl EdgePolicy {
    /// Compiles a policy. A rule that does not compile is left out and named in the returned
    /// problems (the server validated it, so this means the agent's engine is older).
    pub fn compile(update: &PolicyUpdate, maps: &FieldMaps) -> (Self, Vec<String>) {
        let mut rules: Vec<Rule> = Vec::new();
        let mut responses: HashMap<String, Vec<PolicyResponse>> = HashMap::new();
        let mut problems = Vec::new();
        for (i, pr) in update.rules.iter().enumerate() {
            let name = PathBuf::from(format!("policy-{}-{i}.yml", pr.policy_id));
            let (compiled, reports) = RuleSet::from_yaml_str(&pr.sigma_yaml, &name, maps);
            let picked = compiled
                .into_iter()
                .find(|r| pr.rule_id.is_empty() || r.id == pr.rule_id);
            let Some(rule) = picked else {
                let why = reports
                    .iter()
                    .find_map(|r| r.status.reason().map(str::to_owned))
                    .unwrap_or_else(|| format!("no rule with id {:?} in its text", pr.rule_id));
                problems.push(format!("policy rule {:?}: {why}", pr.rule_id));
                continue;
            };
            let response = PolicyResponse {
                action: pr.response.clone(),
                policy_id: pr.policy_id.clone(),
            };
            let known = responses.entry(rule.id.clone()).or_default();
            if known.is_empty() {
                rules.push(rule);
            }
            if !known.contains(&response) {
                known.push(response);
            }
        }
        let policy = Self {
            version: update.version.clone(),
            rules: RuleSet::new(rules),
            responses,
        };
        (policy, problems)
    }

    /// The policy version (empty when none was ever received).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Rules in force.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether no rule is in force.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Every rule that matches the event, with the responses it carries.
    pub fn evaluate<'a>(
        &'a self,
        event: &Event,
    ) -> impl Iterator<Item = (&'a Rule, &'a [PolicyResponse])> + 'a {
        let matched: Vec<&Rule> = self.rules.matches(event).collect();
        matched.into_iter().map(|rule| {
            let responses = self.responses.get(&rule.id).map_or(&[][..], Vec::as_slice);
            (rule, responses)
        })
    }
}

/// Keeps the policy in the data directory (0600), replacing the previous one atomically.
pub fn save(data_dir: &Path, update: &PolicyUpdate) -> std::io::Result<()> {
    let stored = StoredPolicy {
        version: update.version.clone(),
        rules: update
            .rules
            .iter()
            .map(|r| StoredRule {
                rule_id: r.rule_id.clone(),
                sigma_yaml: r.sigma_yaml.clone(),
                response: r.response.clone(),
                policy_id: r.policy_id.clone(),
            })
            .collect(),
    };
    let json = serde_json::to_vec_pretty(&stored).map_err(std::io::Error::other)?;
    crate::identity::write_private(&data_dir.join(POLICY_FILE), &json)
}

/// The policy kept in the data directory, if any.
pub fn load(data_dir: &Path) -> std::io::Result<Option<PolicyUpdate>> {
    let bytes = match std::fs::read(data_dir.join(POLICY_FILE)) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let stored: StoredPolicy = serde_json::from_slice(&bytes).map_err(std::io::Error::other)?;
    Ok(Some(PolicyUpdate {
        version: stored.version,
        rules: stored
            .rules
            .into_iter()
            .map(|r| PolicyRule {
                rule_id: r.rule_id,
                sigma_yaml: r.sigma_yaml,
                response: r.response,
                policy_id: r.policy_id,
            })
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const RULE: &str = "
title: Marker
id: 11111111-2222-3333-4444-555555555555
logsource: {category: process_creation, product: linux}
detection: {sel: {Image|endswith: /vigil-marker}, condition: sel}
level: high
";

    fn update(response: &str) -> PolicyUpdate {
        PolicyUpdate {
            version: "v1".into(),
            rules: vec![PolicyRule {
                rule_id: "11111111-2222-3333-4444-555555555555".into(),
                sigma_yaml: RULE.into(),
                response: response.into(),
                policy_id: "p1".into(),
            }],
        }
    }

    #[test]
    fn compiles_evaluates_and_survives_a_restart() {
        let maps = FieldMaps::builtin().unwrap();
        let (policy, problems) = EdgePolicy::compile(&update("kill"), &maps);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(policy.len(), 1);
        let hit = Event::from_value(json!({"class_uid": 1007, "activity_id": 1, "time": 1,
            "process": {"pid": 42, "file": {"path": "/tmp/vigil-marker"}}}))
        .unwrap();
        let miss = Event::from_value(json!({"class_uid": 1007, "activity_id": 1, "time": 1,
            "process": {"pid": 43, "file": {"path": "/usr/bin/true"}}}))
        .unwrap();
        let hits: Vec<_> = policy.evaluate(&hit).collect();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].1[0].action, "kill");
        assert_eq!(policy.evaluate(&miss).count(), 0);

        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_none());
        save(dir.path(), &update("kill")).unwrap();
        assert_eq!(load(dir.path()).unwrap().unwrap(), update("kill"));
    }

    #[test]
    fn a_rule_that_does_not_compile_is_named() {
        let maps = FieldMaps::builtin().unwrap();
        let mut bad = update("alert");
        bad.rules[0].sigma_yaml = "title: x\ndetection: {}".into();
        let (policy, problems) = EdgePolicy::compile(&bad, &maps);
        assert!(policy.is_empty());
        assert_eq!(problems.len(), 1, "{problems:?}");
    }
}
