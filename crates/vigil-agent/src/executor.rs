//! The executor: carries out the server's commands (each id at most once) and the responses of
//! the endpoint's policy, and queues findings and results on the priority lane.

use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};

use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};
use vigil_ocsf::Event;
use vigil_ocsf::fieldmap::FieldMaps;
use vigil_proto::fleet::{self, Command, CommandResult, PolicyUpdate};

use crate::buffer::Buffer;
use crate::edge::{self, EdgePolicy, PolicyResponse};
use crate::link::Inbound;
use crate::response::Responder;
use crate::response::exec_deny::BlockedExec;

/// Runs commands and policy responses.
pub struct Executor {
    buffer: Arc<Buffer>,
    wake: Arc<Notify>,
    responder: Arc<Responder>,
    policy: RwLock<Arc<EdgePolicy>>,
    maps: FieldMaps,
    data_dir: PathBuf,
    device: vigil_ocsf::Device,
}

impl Executor {
    /// An executor over the agent's buffer, with the policy kept in `data_dir` (if any) in
    /// force from the start, so it applies before the server is reached.
    pub fn new(
        buffer: Arc<Buffer>,
        wake: Arc<Notify>,
        responder: Arc<Responder>,
        data_dir: PathBuf,
        device: vigil_ocsf::Device,
    ) -> Result<Self, String> {
        let maps = FieldMaps::builtin().map_err(|e| format!("the built-in field maps: {e}"))?;
        let policy = match edge::load(&data_dir) {
            Ok(Some(update)) => {
                let (policy, problems) = EdgePolicy::compile(&update, &maps);
                for problem in problems {
                    tracing::warn!(%problem, "A policy rule cannot be enforced");
                }
                tracing::info!(
                    version = policy.version(),
                    rules = policy.len(),
                    "Policy loaded from disk"
                );
                policy
            }
            Ok(None) => EdgePolicy::default(),
            Err(error) => {
                tracing::warn!(%error, "The stored policy cannot be read; waiting for the server's");
                EdgePolicy::default()
            }
        };
        Ok(Self {
            buffer,
            wake,
            responder,
            policy: RwLock::new(Arc::new(policy)),
            maps,
            data_dir,
            device,
        })
    }

    /// Handles what the link receives until the link is gone.
    pub async fn run(self: Arc<Self>, mut inbox: mpsc::Receiver<Inbound>) {
        while let Some(item) = inbox.recv().await {
            match item {
                Inbound::Command(c) => self.on_command(c).await,
                Inbound::Policy(p) => self.on_policy(&p),
            }
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<EdgePolicy> {
        Arc::clone(&self.policy.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn on_policy(&self, update: &PolicyUpdate) {
        if update.version == self.policy().version() {
            return;
        }
        let (policy, problems) = EdgePolicy::compile(update, &self.maps);
        for problem in problems {
            tracing::warn!(%problem, "A policy rule cannot be enforced");
        }
        if let Err(error) = edge::save(&self.data_dir, update) {
            tracing::warn!(%error, "Cannot keep the policy on disk; it applies until restart");
        }
        tracing::info!(
            version = policy.version(),
            rules = policy.len(),
            "Policy in force"
        );
        *self.policy.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(policy);
    }

    /// Runs a command unless it already ran (then its recorded result is sent again).
    async fn on_command(&self, c: Command) {
        match self.buffer.executed(&c.id).await {
            Ok(Some(done)) => {
                tracing::info!(command = %c.id, "Command already carried out; resending its result");
                if let Err(error) = self.buffer.resend_result(&done).await {
                    tracing::error!(%error, command = %c.id, "Cannot queue a command result");
                }
                self.wake.notify_one();
                return;
            }
            Ok(None) => {}
            Err(error) => {
                // Not knowing whether it ran, do not run it: the server redelivers it.
                tracing::error!(%error, command = %c.id, "Cannot read the executed-commands ledger");
                return;
            }
        }
        let args: Value = serde_json::from_slice(&c.args_json).unwrap_or_else(|_| json!({}));
        tracing::info!(command = %c.id, action = %c.action, %args, "Executing command");
        let outcome = match c.action.as_str() {
            "triage" => triage_outcome().await,
            "query" => query_outcome(&args).await,
            _ => self.responder.execute(&c.action, &args).await,
        };
        tracing::info!(command = %c.id, action = %c.action, succeeded = outcome.succeeded, detail = %outcome.detail, "Command done");
        let result = CommandResult {
            id: c.id.clone(),
            succeeded: outcome.succeeded,
            result_json: serde_json::to_vec(&outcome.detail).unwrap_or_default(),
            time: vigil_ocsf::now_ms(),
            ..CommandResult::default()
        };
        if let Err(error) = self.buffer.record_result(&result).await {
            tracing::error!(%error, command = %c.id, "Cannot record a command result");
        }
        self.wake.notify_one();
    }

    /// Evaluates the policy on a captured event; each match becomes a finding, and its
    /// responses run at once (in the background, so capture never waits).
    pub fn observe(self: &Arc<Self>, event: &Event) {
        let policy = self.policy();
        if policy.is_empty() {
            return;
        }
        for (rule, responses) in policy.evaluate(event) {
            let now = vigil_ocsf::now_ms();
            let mut finding = vigil_detect::finding_for(rule, event, now);
            finding.finding_info.uid = vigil_detect::finding_uid(&rule.id, &event.uid);
            let actions: Vec<(PolicyResponse, Result<Value, String>)> = responses
                .iter()
                .filter(|r| r.action != "alert")
                .map(|r| (r.clone(), action_args(&r.action, event)))
                .collect();
            tracing::info!(rule = %rule.title, event = %event.uid, responses = actions.len(), "Policy rule matched");
            let this = Arc::clone(self);
            tokio::spawn(async move {
                let mut done = Vec::new();
                for (response, args) in actions {
                    let outcome = match &args {
                        Ok(args) => this.responder.execute(&response.action, args).await,
                        Err(why) => crate::response::Outcome {
                            succeeded: false,
                            detail: json!({ "error": why }),
                        },
                    };
                    let args = args.unwrap_or(Value::Null);
                    tracing::info!(action = %response.action, succeeded = outcome.succeeded, detail = %outcome.detail, "Policy response");
                    done.push(json!({
                        "action": response.action, "args": args, "policy_id": response.policy_id,
                        "succeeded": outcome.succeeded, "detail": outcome.detail,
                        "time": vigil_ocsf::now_ms(),
                    }));
                }
                if !done.is_empty() {
                    finding.unmapped = Some(json!({ "response": done }));
                }
                let wire = fleet::Event {
                    uid: finding.finding_info.uid.clone(),
                    class_uid: finding.class_uid,
                    time: finding.time,
                    ocsf_json: serde_json::to_vec(&finding).unwrap_or_default(),
                };
                if let Err(error) = this.buffer.push_finding(&wire).await {
                    tracing::error!(%error, "Cannot queue a finding");
                }
                this.wake.notify_one();
            });
        }
    }
}

impl Executor {
    /// Turns every exec the guard denied into a Process Activity event (a failed launch, into
    /// the intake like any captured event) and a finding on the priority lane.
    pub async fn report_blocked_execs(
        self: Arc<Self>,
        mut blocked: mpsc::Receiver<BlockedExec>,
        intake: mpsc::Sender<Event>,
    ) {
        while let Some(b) = blocked.recv().await {
            tracing::warn!(path = %b.path.display(), pid = b.pid, rule = %b.rule, "Execution denied");
            let event = match blocked_exec_event(&b, &self.device) {
                Ok(ev) => ev,
                Err(error) => {
                    tracing::error!(%error, "Cannot describe a denied execution");
                    continue;
                }
            };
            let info = vigil_ocsf::FindingInfo {
                uid: vigil_detect::finding_uid("vigil-exec-deny", &event.uid),
                title: format!("Execution denied: {}", b.path.display()),
                desc: Some(format!(
                    "The agent denied pid {} ({}) the execution of {} under the deny rule {}.",
                    b.pid,
                    b.comm,
                    b.path.display(),
                    b.rule
                )),
                analytic: vigil_ocsf::Analytic {
                    uid: "vigil-exec-deny".into(),
                    name: "Execution denied by an operator rule".into(),
                    type_id: 1,
                    category: "response".into(),
                },
                types: vec!["response".into()],
                related_events: vec![vigil_ocsf::RelatedEvent {
                    uid: event.uid.clone(),
                }],
                related_events_count: Some(1),
                ..Default::default()
            };
            let mut finding =
                vigil_ocsf::DetectionFinding::new(b.time_ms, vigil_ocsf::Severity::High, info);
            finding.device = Some(self.device.clone());
            finding.evidences.push(vigil_ocsf::Evidence {
                process: event.get("process").cloned(),
                actor: event.get("actor").cloned(),
                ..Default::default()
            });
            finding.unmapped = Some(json!({ "response": [{
                "action": "deny_exec", "rule": b.rule, "succeeded": true, "time": b.time_ms,
            }]}));
            let wire = fleet::Event {
                uid: finding.finding_info.uid.clone(),
                class_uid: finding.class_uid,
                time: finding.time,
                ocsf_json: serde_json::to_vec(&finding).unwrap_or_default(),
            };
            if let Err(error) = self.buffer.push_finding(&wire).await {
                tracing::error!(%error, "Cannot queue a finding");
            }
            self.wake.notify_one();
            if intake.send(event).await.is_err() {
                return;
            }
        }
    }
}

/// Collects a triage package (read-only, off the async threads); the package is the result.
async fn triage_outcome() -> crate::response::Outcome {
    let opts = crate::triage::TriageOptions::default();
    match tokio::task::spawn_blocking(move || crate::triage::collect(&opts)).await {
        Ok(pkg) => match serde_json::to_value(&pkg) {
            Ok(detail) => crate::response::Outcome {
                succeeded: true,
                detail,
            },
            Err(e) => {
                crate::response::Outcome::error(format!("the package cannot be encoded: {e}"))
            }
        },
        Err(e) => crate::response::Outcome::error(format!("triage did not complete: {e}")),
    }
}

/// Answers a live query: `{"sql": "...", "timeout_s": N, "max_rows": N}`.
async fn query_outcome(args: &Value) -> crate::response::Outcome {
    let Some(sql) = args.get("sql").and_then(Value::as_str) else {
        return crate::response::Outcome::error("a query needs \"sql\": the SELECT to run");
    };
    let timeout = args
        .get("timeout_s")
        .and_then(Value::as_u64)
        .map_or(crate::query::DEFAULT_TIMEOUT, |s| {
            std::time::Duration::from_secs(s.clamp(1, 60))
        });
    let max_rows =
        args.get("max_rows")
            .and_then(Value::as_u64)
            .map_or(crate::query::MAX_ROWS, |n| {
                usize::try_from(n)
                    .unwrap_or(usize::MAX)
                    .clamp(1, crate::query::MAX_ROWS)
            });
    match crate::query::run(sql, timeout, max_rows).await {
        Ok(r) => match serde_json::to_value(&r) {
            Ok(detail) => crate::response::Outcome {
                succeeded: true,
                detail,
            },
            Err(e) => crate::response::Outcome::error(e),
        },
        Err(e) => crate::response::Outcome::error(e),
    }
}

/// A denied exec as OCSF Process Activity: a launch that failed.
fn blocked_exec_event(b: &BlockedExec, device: &vigil_ocsf::Device) -> Result<Event, String> {
    let path = b.path.display().to_string();
    let name = b
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut file = json!({ "path": path, "name": name });
    if !b.sha256.is_empty() {
        file["hashes"] = json!([{ "algorithm_id": 3, "algorithm": "SHA-256", "value": b.sha256 }]);
    }
    let mut actor = json!({ "process": { "pid": b.pid, "name": b.comm } });
    if let Some(uid) = b.uid {
        actor["user"] = json!({ "uid": uid.to_string() });
    }
    Event::from_value(json!({
        "class_uid": 1007, "category_uid": 1, "activity_id": 1, "activity_name": "Launch",
        "type_uid": 100_701, "severity_id": 1, "time": b.time_ms,
        "status_id": 2, "status": "Failure",
        "status_detail": format!("execution denied by Vigil ({})", b.rule),
        "metadata": {
            "uid": uuid::Uuid::now_v7().to_string(),
            "version": "1.8.0",
            "product": { "name": "Vigil", "vendor_name": "Vigil", "feature": { "name": "exec_guard" } },
        },
        "device": device,
        "process": { "pid": b.pid, "name": name, "file": file },
        "actor": actor,
    }))
    .map_err(|e| e.to_string())
}

/// The arguments of a policy response for the event that triggered it, or why the event
/// does not name what the response acts on.
fn action_args(action: &str, event: &Event) -> Result<Value, String> {
    let pid = || {
        event
            .get("process.pid")
            .and_then(Value::as_i64)
            .ok_or_else(|| format!("the event names no process.pid to {action}"))
    };
    match action {
        "kill" => pid().map(|pid| json!({ "pid": pid, "tree": true })),
        "suspend" => pid().map(|pid| json!({ "pid": pid })),
        "isolate" => Ok(json!({})),
        // A renamed file is quarantined under its new name.
        "quarantine" => event
            .get("file_result.path")
            .or_else(|| event.get("file.path"))
            .or_else(|| event.get("process.file.path"))
            .and_then(Value::as_str)
            .map(|path| json!({ "path": path }))
            .ok_or_else(|| "the event names no file to quarantine".to_owned()),
        other => Err(format!("{other:?} is not a policy response")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::PriorityItem;
    use crate::response::ResponderConfig;

    #[test]
    fn quarantine_takes_the_new_name_of_a_renamed_file() {
        let event = |json: Value| Event::from_value(json).unwrap();
        let renamed = event(json!({"class_uid": 1001, "time": 1, "activity_id": 5,
            "file": {"path": "/tmp/x"}, "file_result": {"path": "/etc/cron.d/x"}}));
        assert_eq!(
            action_args("quarantine", &renamed),
            Ok(json!({"path": "/etc/cron.d/x"}))
        );
        let created = event(json!({"class_uid": 1001, "time": 1, "file": {"path": "/tmp/y"}}));
        assert_eq!(
            action_args("quarantine", &created),
            Ok(json!({"path": "/tmp/y"}))
        );
    }

    #[tokio::test]
    async fn a_redelivered_command_is_not_run_again_and_its_result_is_resent() {
        let data = tempfile::tempdir().unwrap();
        let work = tempfile::tempdir().unwrap();
        let buffer = Arc::new(Buffer::open(data.path(), 100).await.unwrap());
        let responder = Arc::new(Responder::new(ResponderConfig {
            data_dir: data.path().to_owned(),
            ..Default::default()
        }));
        let exec = Executor::new(
            Arc::clone(&buffer),
            Arc::new(Notify::new()),
            responder,
            data.path().to_owned(),
            vigil_ocsf::Device::default(),
        )
        .unwrap();
        let file = work.path().join("evil");
        std::fs::write(&file, b"x").unwrap();
        let cmd = Command {
            id: "c-1".into(),
            action: "quarantine".into(),
            args_json: serde_json::to_vec(&json!({ "path": file })).unwrap(),
            created_at: 0,
        };
        exec.on_command(cmd.clone()).await;
        assert!(!file.exists());
        // Running it again would fail (the file is gone): the recorded success is resent.
        exec.on_command(cmd).await;
        let queued = buffer.read_priority_after(0, 10).await.unwrap();
        let results: Vec<_> = queued
            .iter()
            .map(|(_, item)| match item {
                PriorityItem::Result(r) => (r.id.as_str(), r.succeeded),
                PriorityItem::Finding(_) => panic!("no finding expected"),
            })
            .collect();
        assert_eq!(results, [("c-1", true), ("c-1", true)]);
    }
}
