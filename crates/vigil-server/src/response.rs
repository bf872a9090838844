//! Response commands and policies: what may be asked of which endpoint, who carries it out,
//! and which rules each agent evaluates itself.
//!
//! A command goes to the endpoint's own sensor when it reports the capability the action needs
//! (`response.<action>`), to the external action backend (a webhook) when one is configured and
//! the sensor cannot, and is refused otherwise: never simulated.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use vigil_detect::RuleSet;
use vigil_ocsf::fieldmap::FieldMaps;
use vigil_proto::fleet::{PolicyRule, PolicyUpdate};

use crate::fleet::Sessions;
use crate::store::{
    Command, Endpoint, NewCommand, POLICY_RESPONSES, Policy, PolicyInput, Store, StoreError,
};

/// Every action the command queue accepts, with the capability an endpoint must report to
/// carry it out.
pub const ACTIONS: &[(&str, &str)] = &[
    ("isolate", "response.isolate"),
    ("release", "response.isolate"),
    ("kill", "response.kill"),
    ("suspend", "response.suspend"),
    ("resume", "response.suspend"),
    ("quarantine", "response.quarantine"),
    ("restore", "response.quarantine"),
    ("logoff", "response.logoff"),
    ("deny_exec", "response.deny_exec"),
    ("allow_exec", "response.deny_exec"),
    ("triage", "triage"),
    ("query", "query"),
];

/// How long a command waits for its endpoint by default before it expires.
pub const DEFAULT_COMMAND_TTL: Duration = Duration::from_secs(24 * 3600);

/// Why a command was refused.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Bad action or arguments (HTTP 400).
    #[error("{0}")]
    Invalid(String),
    /// No such endpoint (HTTP 404).
    #[error("{0}")]
    UnknownEndpoint(String),
    /// The endpoint cannot carry it out and no backend can (HTTP 503).
    #[error("{0}")]
    CannotEnforce(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The external action backend: a webhook that receives commands for endpoints whose sensor
/// cannot carry them out.
#[derive(Debug, Clone)]
pub struct Webhook {
    url: String,
    client: reqwest::Client,
}

impl Webhook {
    /// A backend posting to `url` (`http://` or `https://`).
    pub fn new(url: &str) -> Result<Self, String> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "the action webhook must be an http:// or https:// URL, not {url:?}"
            ));
        }
        crate::pki::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("cannot build the webhook client: {e}"))?;
        Ok(Self {
            url: url.to_owned(),
            client,
        })
    }

    /// Posts the command; `Ok(result)` on a 2xx answer, `Err(result)` otherwise.
    async fn call(&self, cmd: &Command, endpoint: &Endpoint) -> Result<Value, Value> {
        let body = json!({
            "command": cmd,
            "endpoint": {
                "sensor_id": endpoint.facts.sensor_id,
                "uid": format!("edr:{}", endpoint.facts.sensor_id),
                "hostname": endpoint.facts.hostname,
            },
        });
        let response = self
            .client
            .post(&self.url)
            .json(&body)
            .send()
            .await
            .map_err(|e| json!({ "error": format!("the action webhook failed: {e}") }))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let answer = serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            Ok(json!({ "backend": "webhook", "status": status.as_u16(), "response": answer }))
        } else {
            Err(json!({
                "error": format!("the action webhook answered {status}"),
                "backend": "webhook", "status": status.as_u16(), "response": answer,
            }))
        }
    }
}

/// Response settings.
#[derive(Debug, Clone, Default)]
pub struct ResponseConfig {
    /// External action backend URL; `None` (the default) turns it off.
    pub action_webhook: Option<String>,
    /// How long a command may wait for delivery; `None` uses [`DEFAULT_COMMAND_TTL`].
    pub command_ttl: Option<Duration>,
}

/// Queues commands and computes policies; shared by the operator API and the fleet service.
#[derive(Clone)]
pub struct Responder {
    store: Arc<dyn Store>,
    sessions: Sessions,
    rules: Arc<RuleSet>,
    maps: Arc<FieldMaps>,
    webhook: Option<Webhook>,
    ttl: Duration,
    switches: crate::switches::RuleSwitches,
}

impl Responder {
    /// The same responder, leaving switched-off rules out of the policies it pushes.
    pub fn with_switches(mut self, switches: crate::switches::RuleSwitches) -> Self {
        self.switches = switches;
        self
    }

    /// A responder over the store, live sessions and loaded rules.
    pub fn new(
        store: Arc<dyn Store>,
        sessions: Sessions,
        rules: Arc<RuleSet>,
        maps: Arc<FieldMaps>,
        cfg: &ResponseConfig,
    ) -> Result<Self, String> {
        let webhook = cfg
            .action_webhook
            .as_deref()
            .filter(|u| !u.trim().is_empty())
            .map(Webhook::new)
            .transpose()?;
        Ok(Self {
            store,
            sessions,
            rules,
            maps,
            webhook,
            ttl: cfg.command_ttl.unwrap_or(DEFAULT_COMMAND_TTL),
            switches: crate::switches::RuleSwitches::default(),
        })
    }

    /// Validates and queues a command for an endpoint (`<id>` or `edr:<id>`), then wakes its
    /// live session (or calls the webhook).
    pub async fn queue(
        &self,
        endpoint: &str,
        action: &str,
        args: Value,
        reason: &str,
        requested_by: &str,
    ) -> Result<Command, CommandError> {
        let Some(&(_, capability)) = ACTIONS.iter().find(|(a, _)| *a == action) else {
            let names: Vec<_> = ACTIONS.iter().map(|(a, _)| *a).collect();
            return Err(CommandError::Invalid(format!(
                "unknown action {action:?}; one of {names:?}"
            )));
        };
        let id = endpoint.strip_prefix("edr:").unwrap_or(endpoint);
        let ep = self
            .store
            .endpoints()
            .await?
            .into_iter()
            .find(|e| e.facts.sensor_id == id)
            .ok_or_else(|| CommandError::UnknownEndpoint(format!("no endpoint {id}")))?;
        validate_args(action, &args).map_err(CommandError::Invalid)?;
        let own = ep.facts.capabilities.iter().find(|c| c.name == capability);
        let backend = match (own, &self.webhook) {
            (Some(c), _) if c.live => "agent",
            (_, Some(_)) => "webhook",
            (own, None) => {
                let why = match own {
                    Some(c) => format!(
                        "its sensor reports {capability} as off ({})",
                        c.detail.as_deref().unwrap_or("no reason given")
                    ),
                    None => format!("its sensor does not report the {capability} capability"),
                };
                return Err(CommandError::CannotEnforce(format!(
                    "endpoint {id} cannot carry out {action}: {why}, and no external action \
                     backend is configured (response.action_webhook)"
                )));
            }
        };
        let cmd = NewCommand {
            sensor_id: id.to_owned(),
            action: action.to_owned(),
            args,
            requested_by: requested_by.to_owned(),
            reason: reason.to_owned(),
            ttl_ms: Some(i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX)),
            backend: backend.to_owned(),
        };
        let queued = self
            .store
            .enqueue_command(&cmd, vigil_ocsf::now_ms())
            .await?;
        match (backend, &self.webhook) {
            ("webhook", Some(hook)) => {
                let (store, hook, cmd) = (Arc::clone(&self.store), hook.clone(), queued.clone());
                tokio::spawn(async move { run_webhook(store, hook, cmd, ep).await });
            }
            _ => {
                self.sessions.wake_commands(id);
            }
        }
        Ok(queued)
    }

    /// Checks a policy against the loaded rules; the message says what to fix.
    pub fn validate_policy(&self, p: &PolicyInput) -> Result<(), String> {
        if p.name.trim().is_empty() || p.name.len() > 200 {
            return Err("name must be 1 to 200 characters".into());
        }
        for (i, r) in p.rules.iter().enumerate() {
            if !POLICY_RESPONSES.contains(&r.response.as_str()) {
                return Err(format!(
                    "rules[{i}]: response {:?} is not one of {POLICY_RESPONSES:?}",
                    r.response
                ));
            }
            match (&r.rule_id, &r.sigma) {
                (Some(id), None) => {
                    if !self.rules.rules().iter().any(|x| &x.id == id) {
                        return Err(format!("rules[{i}]: no loaded rule has id {id:?}"));
                    }
                }
                (None, Some(text)) => {
                    let (rules, reports) = RuleSet::from_yaml_str(
                        &with_placeholders(text, &self.rules),
                        std::path::Path::new("policy.yml"),
                        &self.maps,
                    );
                    // A rule compiled for several views of its logsource is one rule.
                    let rules = RuleSet::new(rules);
                    if rules.len() != 1 {
                        let why = reports
                            .iter()
                            .find_map(|r| r.status.reason().map(str::to_owned))
                            .unwrap_or_else(|| format!("it holds {} rules", rules.len()));
                        return Err(format!(
                            "rules[{i}]: the Sigma text must compile to exactly one rule: {why}"
                        ));
                    }
                }
                _ => {
                    return Err(format!("rules[{i}]: give exactly one of rule_id and sigma"));
                }
            }
        }
        Ok(())
    }

    /// Tells every live session that policies changed.
    pub fn policies_changed(&self) {
        self.sessions.wake_policies();
    }

    /// The effective policy of an endpoint: the rules of every enabled policy assigned to it.
    pub async fn effective_policy(&self, sensor_id: &str) -> Result<PolicyUpdate, StoreError> {
        let tags = self.store.controls(sensor_id).await?.tags;
        let policies = self.store.policies().await?;
        Ok(effective(
            &policies,
            sensor_id,
            &tags,
            &self.rules,
            &self.switches,
        ))
    }
}

/// Name of the policy Vigil ships.
pub const DEFAULT_POLICY: &str = "default";

/// Creates the shipped policy on a store that has no policy at all: Vigil's own rules (those
/// under a `rules/linux` folder whose file names start with `vigil_proc_`), alert only, for
/// every endpoint. An operator may change or delete it; it is not created again.
pub async fn ensure_default_policy(store: &dyn Store, rules: &RuleSet) -> Result<(), StoreError> {
    if !store.policies().await?.is_empty() {
        return Ok(());
    }
    let mut ids: Vec<_> = rules
        .rules()
        .iter()
        .filter(|r| {
            r.standalone
                && r.path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("vigil_proc_"))
        })
        .map(|r| crate::store::PolicyRuleSpec {
            rule_id: Some(r.id.clone()),
            sigma: None,
            response: "alert".into(),
        })
        .collect();
    // A rule with several views is listed once.
    ids.dedup_by(|a, b| a.rule_id == b.rule_id);
    let input = PolicyInput {
        name: DEFAULT_POLICY.into(),
        description: "Shipped with Vigil: Vigil's process rules, evaluated on every agent, \
                      alert only."
            .into(),
        rules: ids,
        endpoints: Vec::new(),
        tags: vec!["*".into()],
        enabled: true,
    };
    store
        .create_policy(&input, "system", vigil_ocsf::now_ms())
        .await?;
    Ok(())
}

/// Queues-then-calls: the webhook's answer completes the command.
async fn run_webhook(store: Arc<dyn Store>, hook: Webhook, cmd: Command, ep: Endpoint) {
    let (ok, result) = match hook.call(&cmd, &ep).await {
        Ok(v) => (true, v),
        Err(v) => (false, v),
    };
    if let Err(error) = store
        .complete_command(&cmd.sensor_id, &cmd.id, ok, &result, vigil_ocsf::now_ms())
        .await
    {
        tracing::error!(%error, command = %cmd.id, "Cannot record the action webhook's answer");
    }
}

/// The rules of every policy that applies, resolved to Sigma text the agent compiles itself.
fn effective(
    policies: &[Policy],
    sensor_id: &str,
    tags: &[String],
    rules: &RuleSet,
    switches: &crate::switches::RuleSwitches,
) -> PolicyUpdate {
    let mut out = Vec::new();
    for p in policies.iter().filter(|p| p.applies_to(sensor_id, tags)) {
        for r in &p.spec.rules {
            if r.rule_id.as_deref().is_some_and(|id| !switches.enabled(id)) {
                continue;
            }
            let resolved = match (&r.rule_id, &r.sigma) {
                (Some(id), _) => rules
                    .rules()
                    .iter()
                    .find(|x| &x.id == id)
                    .and_then(|x| read_rule_file(&x.path).map(|text| (id.clone(), text))),
                (None, Some(text)) => Some((String::new(), text.clone())),
                (None, None) => None,
            }
            .map(|(id, text)| (id, with_placeholders(&text, rules).into_owned()));
            let Some((rule_id, sigma_yaml)) = resolved else {
                tracing::warn!(policy = %p.spec.name, "A policy rule is no longer loaded; skipped");
                continue;
            };
            out.push(PolicyRule {
                rule_id,
                sigma_yaml,
                response: r.response.clone(),
                policy_id: p.id.clone(),
            });
        }
    }
    let mut digest = Sha256::new();
    for r in &out {
        for part in [&r.rule_id, &r.sigma_yaml, &r.response, &r.policy_id] {
            digest.update(part.len().to_le_bytes());
            digest.update(part.as_bytes());
        }
    }
    PolicyUpdate {
        version: hex::encode(&digest.finalize()[..12]),
        rules: out,
    }
}

/// The rule text an agent compiles: a rule that uses `expand` takes the server's placeholders
/// along, so the agent expands it alike.
fn with_placeholders<'t>(text: &'t str, rules: &RuleSet) -> std::borrow::Cow<'t, str> {
    match rules.placeholders_yaml() {
        Some(doc) if text.to_ascii_lowercase().contains("|expand") => {
            format!("{text}\n---\n{doc}").into()
        }
        _ => text.into(),
    }
}

fn read_rule_file(path: &PathBuf) -> Option<String> {
    std::fs::read_to_string(path)
        .map_err(
            |error| tracing::warn!(%error, path = %path.display(), "Cannot read a policy rule"),
        )
        .ok()
}

/// Checks the arguments an action needs; the message says what is wrong.
fn validate_args(action: &str, args: &Value) -> Result<(), String> {
    let obj = args.as_object().ok_or("args must be a JSON object")?;
    let pid = || match obj.get("pid").and_then(Value::as_i64) {
        Some(p) if p > 1 => Ok(()),
        Some(p) => Err(format!("pid {p} is not a process that may be acted on")),
        None => Err(format!("{action} needs \"pid\": a process id (integer)")),
    };
    let text = |key: &str| match obj.get(key).and_then(Value::as_str) {
        Some(v) if !v.is_empty() => Ok(v.to_owned()),
        _ => Err(format!("{action} needs {key:?} (a non-empty string)")),
    };
    match action {
        "kill" | "suspend" | "resume" => pid(),
        "quarantine" => {
            let path = text("path")?;
            if path.starts_with('/') {
                Ok(())
            } else {
                Err(format!("path {path:?} must be absolute"))
            }
        }
        "restore" => text("id").map(drop),
        "query" => {
            let sql = text("sql")?;
            if sql.len() > 16 * 1024 {
                return Err("sql is longer than 16 KiB".into());
            }
            match obj.get("timeout_s") {
                None => Ok(()),
                Some(t) if t.as_u64().is_some_and(|t| (1..=60).contains(&t)) => Ok(()),
                Some(t) => Err(format!("timeout_s {t} must be 1 to 60 seconds")),
            }
        }
        "logoff" => text("user").map(drop),
        "deny_exec" | "allow_exec" => {
            match (
                obj.get("sha256").and_then(Value::as_str),
                obj.get("path").and_then(Value::as_str),
            ) {
                (Some(h), None) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    Ok(())
                }
                (Some(h), None) => Err(format!("sha256 {h:?} must be 64 hex digits")),
                (None, Some(p)) if p.starts_with('/') => Ok(()),
                (None, Some(p)) => Err(format!("path {p:?} must be absolute")),
                _ => Err(format!(
                    "{action} needs exactly one of \"sha256\" and \"path\""
                )),
            }
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argument_checks_say_what_is_wrong() {
        assert!(validate_args("kill", &json!({"pid": 1234})).is_ok());
        assert!(
            validate_args("kill", &json!({"pid": 1}))
                .unwrap_err()
                .contains("pid 1")
        );
        assert!(
            validate_args("kill", &json!({}))
                .unwrap_err()
                .contains("needs \"pid\"")
        );
        assert!(
            validate_args("quarantine", &json!({"path": "x"}))
                .unwrap_err()
                .contains("absolute")
        );
        assert!(validate_args("deny_exec", &json!({"sha256": "ab"})).is_err());
        assert!(validate_args("deny_exec", &json!({"sha256": "a".repeat(64)})).is_ok());
        assert!(
            validate_args(
                "deny_exec",
                &json!({"sha256": "a".repeat(64), "path": "/x"})
            )
            .is_err()
        );
        assert!(validate_args("isolate", &json!([])).is_err());
        assert!(validate_args("isolate", &json!({})).is_ok());
    }

    #[test]
    fn a_rule_that_uses_expand_reaches_the_agent_with_its_placeholders() {
        let rule = "title: Admin shell\nid: exp-1\n\
                    logsource: {category: process_creation, product: linux}\n\
                    detection: {sel: {User|expand: '%admins%'}, condition: sel}\n";
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("rule.yml"), rule).unwrap();
        std::fs::write(dir.path().join("site.yml"), "placeholders: {admins: [ops]}").unwrap();
        let maps = vigil_ocsf::fieldmap::FieldMaps::builtin().unwrap();
        let (rules, _) = RuleSet::load_dirs(&[dir.path().to_owned()], &maps).unwrap();
        let spec = |rule_id: Option<&str>, sigma: Option<&str>| crate::store::PolicyRuleSpec {
            rule_id: rule_id.map(str::to_owned),
            sigma: sigma.map(str::to_owned),
            response: "alert".into(),
        };
        let policy = Policy {
            id: "p".into(),
            spec: PolicyInput {
                name: "p".into(),
                description: String::new(),
                rules: vec![spec(Some("exp-1"), None), spec(None, Some(rule))],
                endpoints: Vec::new(),
                tags: vec!["*".into()],
                enabled: true,
            },
            revision: 1,
            created_at: 0,
            updated_at: 0,
        };
        let switches = crate::switches::RuleSwitches::new(Vec::new());
        let update = effective(&[policy], "s1", &[], &rules, &switches);
        assert_eq!(update.rules.len(), 2);
        let event = vigil_ocsf::Event::from_value(json!({"class_uid": 1007, "activity_id": 1,
            "time": 1, "process": {"user": {"name": "ops"}, "file": {"path": "/bin/sh"}}}))
        .unwrap();
        for pr in &update.rules {
            // What the agent does with it.
            let (compiled, reports) =
                RuleSet::from_yaml_str(&pr.sigma_yaml, std::path::Path::new("p.yml"), &maps);
            assert_eq!(compiled.len(), 1, "{reports:?}");
            assert_eq!(RuleSet::new(compiled).matches(&event).count(), 1);
        }
    }
}
