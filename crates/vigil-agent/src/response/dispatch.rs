//! From a command (action name + JSON arguments) to a response action and its [`Outcome`].
//!
//! | action | arguments | what it does | `detail` on success |
//! |---|---|---|---|
//! | `isolate` | `{}` or `{"allow": ["ip", …]}` | isolates the host, keeping the responder's fleet servers and DNS servers (and `allow`) reachable | [`IsolationReport`](super::isolate::IsolationReport) |
//! | `release` | `{}` | removes Vigil's isolation table | `{"state": "none", "was_isolated": bool}` |
//! | `kill` | `{"pid": N, "tree": bool}` (`tree` defaults to false) | SIGKILL, children first for a tree, verified | [`KillReport`](super::process::KillReport) |
//! | `suspend` | `{"pid": N}` | SIGSTOP, verified stopped | [`SignalReport`](super::process::SignalReport) |
//! | `resume` | `{"pid": N}` | SIGCONT, verified running | [`SignalReport`](super::process::SignalReport) |
//! | `quarantine` | `{"path": "/abs/path"}` | moves the file into the vault | [`QuarantineEntry`](super::quarantine::QuarantineEntry) (its `id` restores it) |
//! | `restore` | `{"id": "uuid"}` | puts a quarantined file back | [`QuarantineEntry`](super::quarantine::QuarantineEntry) |
//! | `logoff` | `{"user": "name"}` | ends the user's sessions and processes | [`LogoffReport`](super::logoff::LogoffReport) |
//! | `deny_exec` | `{"sha256": "hex"}` or `{"path": "/abs/path"}` | denies execution | `{"rule": "sha256"/"path", "value": …}` |
//! | `allow_exec` | same as `deny_exec` | lifts that denial | `{"rule": …, "value": …}` |
//!
//! A failed outcome's `detail` is `{"error": "…"}` with a message saying what to do. Unknown
//! actions and bad arguments fail the same way; nothing here panics on input. A kill or logoff
//! whose verification found survivors fails, with the report (and its `survivors`) as detail plus
//! an `error`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::exec_deny::ExecGuard;
use super::isolate::{IsolateError, IsolationPlan, Isolator};
use super::quarantine::Vault;
use super::{logoff, process};

/// Every action [`Responder::execute`] knows.
pub const ACTIONS: &[&str] = &[
    "isolate",
    "release",
    "kill",
    "suspend",
    "resume",
    "quarantine",
    "restore",
    "logoff",
    "deny_exec",
    "allow_exec",
];

/// The result of one action, for the command's status on the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// Whether the action was carried out and verified.
    pub succeeded: bool,
    /// The action's report, or `{"error": "…"}`.
    pub detail: Value,
}

impl Outcome {
    fn ok(detail: impl Serialize) -> Self {
        match serde_json::to_value(detail) {
            Ok(detail) => Self {
                succeeded: true,
                detail,
            },
            Err(e) => Self::error(format!(
                "the action succeeded but its report cannot be encoded: {e}"
            )),
        }
    }

    /// A failed outcome with an error message.
    pub fn error(message: impl std::fmt::Display) -> Self {
        Self {
            succeeded: false,
            detail: json!({ "error": message.to_string() }),
        }
    }

    /// A verified-or-not report: fails with `error` added when `verified` is false.
    fn verified(report: impl Serialize, verified: bool, error: &str) -> Self {
        let mut out = Self::ok(report);
        if out.succeeded && !verified {
            out.succeeded = false;
            if let Value::Object(m) = &mut out.detail {
                m.insert("error".into(), Value::String(error.into()));
            }
        }
        out
    }
}

impl<T: Serialize, E: std::fmt::Display> From<Result<T, E>> for Outcome {
    fn from(r: Result<T, E>) -> Self {
        match r {
            Ok(v) => Self::ok(v),
            Err(e) => Self::error(e),
        }
    }
}

/// What a [`Responder`] needs to know about its agent.
#[derive(Debug, Clone, Default)]
pub struct ResponderConfig {
    /// The agent's data directory (isolation plan, deny list, quarantine vault).
    pub data_dir: PathBuf,
    /// Fleet server addresses that isolation keeps reachable.
    pub fleet_servers: Vec<IpAddr>,
    /// DNS servers that isolation keeps reachable (port 53); may be empty.
    pub dns_servers: Vec<IpAddr>,
}

#[derive(Debug)]
struct Inner {
    config: ResponderConfig,
    isolator: Isolator,
    guard: RwLock<Option<Arc<ExecGuard>>>,
}

/// Carries out response actions on this host. Cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct Responder {
    inner: Arc<Inner>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IsolateArgs {
    #[serde(default)]
    allow: Vec<IpAddr>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KillArgs {
    pid: i32,
    #[serde(default)]
    tree: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PidArgs {
    pid: i32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PathArgs {
    path: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdArgs {
    id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserArgs {
    user: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecRuleArgs {
    #[serde(default)]
    sha256: Option<String>,
    #[serde(default)]
    path: Option<PathBuf>,
}

/// Parses `args` (null counts as `{}`), or says what was expected.
fn parse<T: DeserializeOwned>(action: &str, args: &Value, expected: &str) -> Result<T, Outcome> {
    let args = if args.is_null() { &json!({}) } else { args };
    T::deserialize(args).map_err(|e| {
        Outcome::error(format!(
            "bad arguments for {action}: {e}; expected {expected}"
        ))
    })
}

impl Responder {
    /// A responder without an exec guard (see [`with_exec_guard`](Self::with_exec_guard)).
    pub fn new(config: ResponderConfig) -> Self {
        let isolator = Isolator::new(&config.data_dir);
        Self {
            inner: Arc::new(Inner {
                config,
                isolator,
                guard: RwLock::new(None),
            }),
        }
    }

    /// Gives the responder an exec guard for `deny_exec` / `allow_exec`.
    pub fn with_exec_guard(self, guard: ExecGuard) -> Self {
        self.set_exec_guard(Some(guard));
        self
    }

    /// Replaces (or, with `None`, removes and stops) the exec guard.
    pub fn set_exec_guard(&self, guard: Option<ExecGuard>) {
        let mut slot = self.inner.guard.write().unwrap_or_else(|p| p.into_inner());
        *slot = guard.map(Arc::new);
    }

    /// The exec guard, if one is running.
    pub fn exec_guard(&self) -> Option<Arc<ExecGuard>> {
        self.inner
            .guard
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The isolator (for start-up restore and state queries).
    pub fn isolator(&self) -> &Isolator {
        &self.inner.isolator
    }

    /// Re-applies isolation saved before an agent restart; call once at start.
    pub fn restore_on_start(&self) -> Result<Option<IsolationPlan>, IsolateError> {
        self.inner.isolator.restore_on_start()
    }

    /// Carries out `action` with `args` (see the module documentation for the table). Blocking
    /// work runs on tokio's blocking pool.
    pub async fn execute(&self, action: &str, args: &Value) -> Outcome {
        let this = self.clone();
        let owned_action = action.to_owned();
        let args = args.clone();
        match tokio::task::spawn_blocking(move || this.execute_blocking(&owned_action, &args)).await
        {
            Ok(outcome) => outcome,
            Err(e) => Outcome::error(format!("the {action} action did not complete: {e}")),
        }
    }

    /// [`execute`](Self::execute) on the calling thread.
    pub fn execute_blocking(&self, action: &str, args: &Value) -> Outcome {
        match self.run(action, args) {
            Ok(o) | Err(o) => o,
        }
    }

    fn run(&self, action: &str, args: &Value) -> Result<Outcome, Outcome> {
        Ok(match action {
            "isolate" => {
                let a: IsolateArgs = parse(action, args, r#"{} or {"allow": ["ip", ...]}"#)?;
                let c = &self.inner.config;
                let plan = IsolationPlan {
                    fleet_servers: c.fleet_servers.clone(),
                    dns_servers: c.dns_servers.clone(),
                    also_allow: a.allow,
                };
                self.inner.isolator.apply(&plan).into()
            }
            "release" => {
                let _: Empty = parse(action, args, "{}")?;
                self.inner
                    .isolator
                    .release()
                    .map(|was| json!({ "state": "none", "was_isolated": was }))
                    .into()
            }
            "kill" => {
                let a: KillArgs = parse(action, args, r#"{"pid": N, "tree": bool}"#)?;
                match process::kill(a.pid, a.tree) {
                    Ok(r) => {
                        let v = r.verified;
                        Outcome::verified(r, v, "some processes survived SIGKILL (see survivors)")
                    }
                    Err(e) => Outcome::error(e),
                }
            }
            "suspend" => {
                let a: PidArgs = parse(action, args, r#"{"pid": N}"#)?;
                process::suspend(a.pid).into()
            }
            "resume" => {
                let a: PidArgs = parse(action, args, r#"{"pid": N}"#)?;
                process::resume(a.pid).into()
            }
            "quarantine" => {
                let a: PathArgs = parse(action, args, r#"{"path": "/absolute/path"}"#)?;
                Vault::open(&self.inner.config.data_dir)
                    .and_then(|v| v.quarantine(&a.path))
                    .into()
            }
            "restore" => {
                let a: IdArgs = parse(action, args, r#"{"id": "quarantine id"}"#)?;
                Vault::open(&self.inner.config.data_dir)
                    .and_then(|v| v.restore(&a.id))
                    .into()
            }
            "logoff" => {
                let a: UserArgs = parse(action, args, r#"{"user": "name"}"#)?;
                match logoff::logoff(&a.user) {
                    Ok(r) => {
                        let v = r.verified;
                        Outcome::verified(
                            r,
                            v,
                            "some of the user's processes survived (see survivors)",
                        )
                    }
                    Err(e) => Outcome::error(e),
                }
            }
            "deny_exec" | "allow_exec" => self.exec_rule(action, args)?,
            other => Outcome::error(format!(
                "unknown action {other:?}; known actions: {}",
                ACTIONS.join(", ")
            )),
        })
    }

    fn exec_rule(&self, action: &str, args: &Value) -> Result<Outcome, Outcome> {
        const EXPECTED: &str = r#"{"sha256": "64 hex digits"} or {"path": "/absolute/path"}"#;
        let a: ExecRuleArgs = parse(action, args, EXPECTED)?;
        let Some(guard) = self.exec_guard() else {
            return Err(Outcome::error(
                "exec denial is not running on this agent (fanotify permission events \
                 unavailable or the exec guard was not started); see the agent's capabilities",
            ));
        };
        let deny = action == "deny_exec";
        let res = match (a.sha256, a.path) {
            (Some(h), None) => if deny {
                guard.deny_sha256(&h)
            } else {
                guard.allow_sha256(&h)
            }
            .map(|v| json!({ "rule": "sha256", "value": v })),
            (None, Some(p)) => if deny {
                guard.deny_path(&p)
            } else {
                guard.allow_path(&p)
            }
            .map(|v| json!({ "rule": "path", "value": v })),
            _ => {
                return Err(Outcome::error(format!(
                    "bad arguments for {action}: give exactly one of sha256 and path; expected {EXPECTED}"
                )));
            }
        };
        Ok(res.into())
    }

    /// Which actions this host can enforce: `(action, available, detail)` for each of
    /// [`ACTIONS`]. Probes the system (the `nft` binary, fanotify permission events, root).
    pub fn capabilities(&self) -> Vec<(String, bool, String)> {
        let root = nix::unistd::geteuid().is_root();
        let need_root = |what: &str| -> (bool, String) {
            if root {
                (true, what.to_owned())
            } else {
                (false, "the agent is not running as root".to_owned())
            }
        };
        let nft = match super::isolate::nft_binary() {
            Ok(p) if root => (true, format!("nftables via {}", p.display())),
            Ok(_) => (false, "the agent is not running as root".to_owned()),
            Err(e) => (false, e.to_string()),
        };
        let exec = if self.exec_guard().is_some() {
            (true, "fanotify exec guard running".to_owned())
        } else {
            match ExecGuard::probe(&self.inner.config.data_dir) {
                Ok(()) => (
                    false,
                    "the kernel supports fanotify permission events but the exec guard is not running"
                        .to_owned(),
                ),
                Err(e) => (false, e.to_string()),
            }
        };
        let logoff_detail = if logoff::logind_available() {
            "loginctl terminate-user, then signals"
        } else {
            "signals to the user's processes (systemd-logind not running)"
        };
        ACTIONS
            .iter()
            .map(|&a| {
                let (ok, detail) = match a {
                    "isolate" | "release" => nft.clone(),
                    "kill" | "suspend" | "resume" => need_root("signals, verified from /proc"),
                    "quarantine" | "restore" => need_root("root-only vault in the data directory"),
                    "logoff" => need_root(logoff_detail),
                    _ => exec.clone(),
                };
                (a.to_owned(), ok, detail)
            })
            .collect()
    }

    /// `"isolated"` when Vigil's table is in the kernel, `"none"` when not, `"unknown"` when the
    /// ruleset cannot be read (no `nft`, not root). Runs `nft`: blocking, a few ms.
    pub fn isolation_state(&self) -> &'static str {
        match self.inner.isolator.is_applied() {
            Ok(true) => "isolated",
            Ok(false) => "none",
            Err(error) => {
                tracing::debug!(%error, "Cannot read the isolation state");
                "unknown"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn responder() -> (tempfile::TempDir, Responder) {
        let dir = tempfile::tempdir().unwrap();
        let r = Responder::new(ResponderConfig {
            data_dir: dir.path().to_owned(),
            ..Default::default()
        });
        (dir, r)
    }

    fn error_of(o: &Outcome) -> &str {
        assert!(!o.succeeded, "{o:?}");
        o.detail["error"].as_str().unwrap()
    }

    #[test]
    fn unknown_action_and_bad_args_fail_cleanly() {
        let (_d, r) = responder();
        let o = r.execute_blocking("reboot", &json!({}));
        assert!(error_of(&o).contains("unknown action \"reboot\""));
        let o = r.execute_blocking("kill", &json!({"pid": "x"}));
        assert!(error_of(&o).contains("bad arguments for kill"), "{o:?}");
        let o = r.execute_blocking("kill", &json!({"pid": 5, "signal": 9}));
        assert!(error_of(&o).contains("unknown field"), "{o:?}");
        let o = r.execute_blocking("kill", &json!([1, 2]));
        assert!(error_of(&o).contains("bad arguments"), "{o:?}");
        let o = r.execute_blocking("kill", &json!({"pid": 1}));
        assert!(error_of(&o).contains("pid 1"), "{o:?}");
        let o = r.execute_blocking("release", &json!({"x": 1}));
        assert!(error_of(&o).contains("bad arguments for release"), "{o:?}");
        let o = r.execute_blocking("quarantine", &Value::Null);
        assert!(error_of(&o).contains("missing field `path`"), "{o:?}");
    }

    #[test]
    fn isolate_without_fleet_server_is_refused() {
        let (_d, r) = responder();
        let o = r.execute_blocking("isolate", &json!({}));
        assert!(error_of(&o).contains("without a fleet server"), "{o:?}");
    }

    #[test]
    fn exec_rules_without_guard_say_so() {
        let (_d, r) = responder();
        let o = r.execute_blocking("deny_exec", &json!({"sha256": "a".repeat(64)}));
        assert!(error_of(&o).contains("exec denial is not running"), "{o:?}");
    }

    #[test]
    fn capabilities_cover_every_action() {
        let (_d, r) = responder();
        let caps = r.capabilities();
        let names: Vec<&str> = caps.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(names, ACTIONS);
        assert!(caps.iter().all(|c| !c.2.is_empty()));
    }

    #[tokio::test]
    async fn execute_runs_off_the_runtime() {
        let (_d, r) = responder();
        let o = r.execute("suspend", &json!({"pid": 0})).await;
        assert!(error_of(&o).contains("not a process id"), "{o:?}");
    }
}
