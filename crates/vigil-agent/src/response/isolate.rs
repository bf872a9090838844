//! Host isolation with an nftables `inet` table of Vigil's own, [`TABLE`].
//!
//! The table has `input`, `output` and `forward` base chains with policy `drop`. What passes:
//!
//! * loopback traffic;
//! * traffic *to* the fleet servers (and [`IsolationPlan::also_allow`]) and its replies
//!   (`ct state established,related`); inbound connections the host did not open are dropped,
//!   even from those addresses;
//! * DNS (udp and tcp port 53) to [`IsolationPlan::dns_servers`] and its replies;
//! * IPv6 neighbour discovery, without which no IPv6 address on the link is reachable.
//!
//! Nothing is forwarded. Other tables are never touched: applying replaces Vigil's table in one
//! nft transaction (add, delete, add again, so it works whether the table exists or not), and
//! releasing deletes only it. The plan is kept in `<data_dir>/isolation.json` (0600) so that
//! [`restore_on_start`] isolates the host again after an agent restart.
//!
//! The ruleset is built with the `nftables` crate's typed JSON schema and given to `nft -j -f -`;
//! `nft` is run here rather than through the crate's helper so that its error text is captured
//! for the operator. The `nft` binary (Debian package `nftables`) is needed at run time.

use std::borrow::Cow;
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nftables::batch::Batch;
use nftables::expr::{
    CT, Expression, Meta, MetaKey, NamedExpression, Payload, PayloadField, SetItem,
};
use nftables::schema::{Chain, NfListObject, Rule, Table};
use nftables::stmt::{Match, Operator, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};
use serde::{Deserialize, Serialize};

use super::persist;

/// The name of Vigil's isolation table (family `inet`).
pub const TABLE: &str = "vigil_isolation";
/// The file in the data directory that holds the plan while the host is isolated.
pub const STATE_FILE: &str = "isolation.json";
/// Base chain priority: the standard filter priority, after conntrack has classified packets.
const PRIORITY: i32 = 0;

/// Why isolation could not be applied, released or read.
#[derive(Debug, thiserror::Error)]
pub enum IsolateError {
    /// No `nft` binary.
    #[error(
        "the `nft` program was not found in PATH, /usr/sbin or /sbin: install the nftables \
         package (apt-get install nftables) to enable host isolation"
    )]
    NftMissing,
    /// `nft` could not be started.
    #[error("could not run {}: {source}", program.display())]
    NftSpawn {
        /// The program.
        program: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// `nft` ran and refused.
    #[error("nft could not {action}: {stderr}")]
    NftFailed {
        /// What was attempted.
        action: &'static str,
        /// nft's error output.
        stderr: String,
    },
    /// `nft` printed something that is not the expected JSON.
    #[error("cannot understand nft's output while trying to {action}: {reason}")]
    NftOutput {
        /// What was attempted.
        action: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The plan would cut the agent off from its server.
    #[error(
        "refusing to isolate without a fleet server address: the agent would lose its own \
         connection and could not be released remotely"
    )]
    NoFleetServer,
    /// The plan file could not be written, read or removed.
    #[error("isolation state file {}: {source}", path.display())]
    State {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// What stays reachable while the host is isolated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IsolationPlan {
    /// Fleet server addresses (IPv4 or IPv6) the agent talks to. At least one is required.
    pub fleet_servers: Vec<IpAddr>,
    /// DNS servers reachable on udp/tcp port 53.
    #[serde(default)]
    pub dns_servers: Vec<IpAddr>,
    /// Other addresses kept reachable like the fleet servers (for example an analyst's host).
    #[serde(default)]
    pub also_allow: Vec<IpAddr>,
}

/// Vigil's table as read back from the kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableState {
    /// Base chains and their policies, e.g. `("input", "drop")`.
    pub chains: Vec<(String, String)>,
    /// How many rules the table holds.
    pub rules: usize,
}

/// Result of [`Isolator::apply`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IsolationReport {
    /// `"isolated"`.
    pub state: &'static str,
    /// The table's family and name.
    pub table: String,
    /// The plan applied.
    pub plan: IsolationPlan,
    /// The table as read back after applying.
    pub kernel: TableState,
}

/// Applies and releases isolation, keeping the plan in the agent's data directory.
#[derive(Debug, Clone)]
pub struct Isolator {
    data_dir: PathBuf,
}

impl Isolator {
    /// An isolator keeping its state in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
        }
    }

    /// The plan file, `<data_dir>/isolation.json`.
    pub fn state_file(&self) -> PathBuf {
        self.data_dir.join(STATE_FILE)
    }

    /// Isolates the host: saves the plan, then replaces Vigil's table atomically (applying twice
    /// is the same as applying once). Reads the table back to confirm.
    pub fn apply(&self, plan: &IsolationPlan) -> Result<IsolationReport, IsolateError> {
        if plan.fleet_servers.is_empty() {
            return Err(IsolateError::NoFleetServer);
        }
        let nft = nft_binary()?;
        let path = self.state_file();
        let state_err = |source| IsolateError::State {
            path: path.clone(),
            source,
        };
        let previous: Option<IsolationPlan> = persist::read_json(&path).unwrap_or(None);
        persist::write_json(&path, plan).map_err(state_err)?;
        if let Err(e) = run_nft(
            &nft,
            &["-j", "-f", "-"],
            Some(&ruleset(plan)),
            "apply the isolation table",
        ) {
            // Keep the file in step with the kernel: the old plan (if any) is still in force.
            let _ = match &previous {
                Some(p) => persist::write_json(&path, p),
                None => persist::remove_if_exists(&path),
            };
            return Err(e);
        }
        let confirm = |reason: String| IsolateError::NftOutput {
            action: "confirm the isolation table",
            reason,
        };
        let kernel = read_table(&nft)?.ok_or_else(|| {
            confirm(format!(
                "table inet {TABLE} is missing right after it was applied"
            ))
        })?;
        if kernel.chains.len() != 3 || kernel.chains.iter().any(|(_, p)| p != "drop") {
            return Err(confirm(format!(
                "table inet {TABLE} does not have the three drop-policy chains: {:?}",
                kernel.chains
            )));
        }
        Ok(IsolationReport {
            state: "isolated",
            table: format!("inet {TABLE}"),
            plan: plan.clone(),
            kernel,
        })
    }

    /// Lifts isolation: deletes Vigil's table (and nothing else), then the plan file. Returns
    /// whether the table was there.
    pub fn release(&self) -> Result<bool, IsolateError> {
        let nft = nft_binary()?;
        let was = table_present(&nft)?;
        // `add` then `delete` in one transaction: deletes the table whether or not it exists.
        let mut batch = Batch::new();
        batch.add(NfListObject::Table(table()));
        batch.delete(NfListObject::Table(table()));
        run_nft(
            &nft,
            &["-j", "-f", "-"],
            Some(&to_json(batch)),
            "delete the isolation table",
        )?;
        let path = self.state_file();
        persist::remove_if_exists(&path).map_err(|source| IsolateError::State { path, source })?;
        Ok(was)
    }

    /// Whether Vigil's table is in the kernel now (read from the kernel, not from the file).
    pub fn is_applied(&self) -> Result<bool, IsolateError> {
        table_present(&nft_binary()?)
    }

    /// The table as the kernel has it, `None` when absent.
    pub fn kernel_state(&self) -> Result<Option<TableState>, IsolateError> {
        read_table(&nft_binary()?)
    }

    /// The saved plan, if the host was isolated by this agent.
    pub fn saved_plan(&self) -> Result<Option<IsolationPlan>, IsolateError> {
        let path = self.state_file();
        persist::read_json(&path).map_err(|source| IsolateError::State { path, source })
    }

    /// Re-applies the saved plan, if any (see [`restore_on_start`]).
    pub fn restore_on_start(&self) -> Result<Option<IsolationPlan>, IsolateError> {
        match self.saved_plan()? {
            Some(plan) => {
                self.apply(&plan)?;
                Ok(Some(plan))
            }
            None => Ok(None),
        }
    }
}

/// Called at agent start: when `<data_dir>/isolation.json` exists the host was isolated when the
/// agent stopped, so the plan is applied again. Returns the plan re-applied, if any. A plan file
/// that cannot be read is an error (the host is not silently released).
pub fn restore_on_start(data_dir: &Path) -> Result<Option<IsolationPlan>, IsolateError> {
    Isolator::new(data_dir).restore_on_start()
}

/// Finds the `nft` binary: PATH first, then /usr/sbin and /sbin (often missing from PATH).
pub fn nft_binary() -> Result<PathBuf, IsolateError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    find_nft(
        std::env::split_paths(&path).chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")]),
    )
}

fn find_nft(dirs: impl IntoIterator<Item = PathBuf>) -> Result<PathBuf, IsolateError> {
    dirs.into_iter()
        .map(|d| d.join("nft"))
        .find(|p| p.is_file())
        .ok_or(IsolateError::NftMissing)
}

/// The nft JSON that installs Vigil's table for `plan`, replacing any previous one.
pub fn ruleset(plan: &IsolationPlan) -> String {
    let mut batch = Batch::new();
    batch.add(NfListObject::Table(table()));
    batch.delete(NfListObject::Table(table()));
    batch.add(NfListObject::Table(table()));
    for (name, hook) in [
        ("input", NfHook::Input),
        ("output", NfHook::Output),
        ("forward", NfHook::Forward),
    ] {
        batch.add(NfListObject::Chain(Chain {
            family: NfFamily::INet,
            table: TABLE.into(),
            name: name.into(),
            _type: Some(NfChainType::Filter),
            hook: Some(hook),
            prio: Some(PRIORITY),
            policy: Some(NfChainPolicy::Drop),
            ..Chain::default()
        }));
    }
    for (chain, stmts) in rules(plan) {
        batch.add(NfListObject::Rule(Rule {
            family: NfFamily::INet,
            table: TABLE.into(),
            chain: chain.into(),
            expr: stmts.into(),
            comment: Some("vigil isolation".into()),
            ..Rule::default()
        }));
    }
    to_json(batch)
}

fn table() -> Table<'static> {
    Table {
        family: NfFamily::INet,
        name: TABLE.into(),
        handle: None,
    }
}

fn to_json(batch: Batch<'_>) -> String {
    // Serialising these plain structs cannot fail; fall back to an empty batch rather than panic.
    serde_json::to_string(&batch.to_nftables()).unwrap_or_else(|_| r#"{"nftables":[]}"#.into())
}

/// The rules of each chain, in order.
fn rules(plan: &IsolationPlan) -> Vec<(&'static str, Vec<Statement<'static>>)> {
    let accept = || Statement::Accept(None);
    let mut out = vec![
        ("input", vec![meta_eq(MetaKey::Iifname, "lo"), accept()]),
        ("output", vec![meta_eq(MetaKey::Oifname, "lo"), accept()]),
    ];
    for chain in ["input", "output"] {
        out.push((
            chain,
            vec![
                payload_in(
                    "icmpv6",
                    "type",
                    &[
                        "nd-neighbor-solicit",
                        "nd-neighbor-advert",
                        "nd-router-solicit",
                        "nd-router-advert",
                    ],
                ),
                accept(),
            ],
        ));
    }
    let mut peers: Vec<IpAddr> = plan.fleet_servers.clone();
    peers.extend(&plan.also_allow);
    peers.dedup();
    for ip in &peers {
        out.push(("output", vec![addr_eq(*ip, "daddr"), accept()]));
        out.push((
            "input",
            vec![addr_eq(*ip, "saddr"), ct_established(), accept()],
        ));
    }
    for ip in &plan.dns_servers {
        for proto in ["udp", "tcp"] {
            out.push((
                "output",
                vec![addr_eq(*ip, "daddr"), port_eq(proto, "dport", 53), accept()],
            ));
            out.push((
                "input",
                vec![
                    addr_eq(*ip, "saddr"),
                    port_eq(proto, "sport", 53),
                    ct_established(),
                    accept(),
                ],
            ));
        }
    }
    out
}

fn matches(
    left: Expression<'static>,
    right: Expression<'static>,
    op: Operator,
) -> Statement<'static> {
    Statement::Match(Match { left, right, op })
}

fn meta_eq(key: MetaKey, value: &'static str) -> Statement<'static> {
    matches(
        Expression::Named(NamedExpression::Meta(Meta { key })),
        Expression::String(value.into()),
        Operator::EQ,
    )
}

fn field(protocol: &'static str, field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: protocol.into(),
            field: field.into(),
        },
    )))
}

fn addr_eq(ip: IpAddr, which: &'static str) -> Statement<'static> {
    let proto = if ip.is_ipv4() { "ip" } else { "ip6" };
    matches(
        field(proto, which),
        Expression::String(Cow::Owned(ip.to_string())),
        Operator::EQ,
    )
}

fn port_eq(proto: &'static str, which: &'static str, port: u32) -> Statement<'static> {
    matches(field(proto, which), Expression::Number(port), Operator::EQ)
}

fn payload_in(
    proto: &'static str,
    name: &'static str,
    values: &[&'static str],
) -> Statement<'static> {
    let set = values
        .iter()
        .map(|v| SetItem::Element(Expression::String((*v).into())))
        .collect();
    matches(
        field(proto, name),
        Expression::Named(NamedExpression::Set(set)),
        Operator::EQ,
    )
}

fn ct_established() -> Statement<'static> {
    matches(
        Expression::Named(NamedExpression::CT(CT {
            key: "state".into(),
            family: None,
            dir: None,
        })),
        Expression::List(vec![
            Expression::String("established".into()),
            Expression::String("related".into()),
        ]),
        Operator::IN,
    )
}

/// Runs nft with `args`, feeding `stdin`; returns stdout, or nft's stderr as the error.
fn run_nft(
    nft: &Path,
    args: &[&str],
    stdin: Option<&str>,
    action: &'static str,
) -> Result<String, IsolateError> {
    let spawn_err = |source| IsolateError::NftSpawn {
        program: nft.to_owned(),
        source,
    };
    let mut child = Command::new(nft)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_err)?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).map_err(spawn_err)?;
    }
    let out = child.wait_with_output().map_err(spawn_err)?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        return Err(IsolateError::NftFailed {
            action,
            stderr: if stderr.is_empty() {
                format!("exited with {}", out.status)
            } else {
                stderr
            },
        });
    }
    String::from_utf8(out.stdout).map_err(|e| IsolateError::NftOutput {
        action,
        reason: e.to_string(),
    })
}

/// The `nftables` array of nft's JSON output.
fn objects(text: &str, action: &'static str) -> Result<Vec<serde_json::Value>, IsolateError> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| IsolateError::NftOutput {
        action,
        reason: e.to_string(),
    })?;
    match v.get("nftables").and_then(|a| a.as_array()) {
        Some(a) => Ok(a.clone()),
        None => Err(IsolateError::NftOutput {
            action,
            reason: "no `nftables` array".into(),
        }),
    }
}

fn table_present(nft: &Path) -> Result<bool, IsolateError> {
    const ACTION: &str = "list the nftables tables";
    let text = run_nft(nft, &["-j", "list", "tables"], None, ACTION)?;
    Ok(objects(&text, ACTION)?.iter().any(|o| {
        o.get("table").is_some_and(|t| {
            t.get("family").and_then(|f| f.as_str()) == Some("inet")
                && t.get("name").and_then(|n| n.as_str()) == Some(TABLE)
        })
    }))
}

fn read_table(nft: &Path) -> Result<Option<TableState>, IsolateError> {
    const ACTION: &str = "read the isolation table";
    if !table_present(nft)? {
        return Ok(None);
    }
    let text = run_nft(nft, &["-j", "list", "table", "inet", TABLE], None, ACTION)?;
    let mut state = TableState {
        chains: Vec::new(),
        rules: 0,
    };
    for o in objects(&text, ACTION)? {
        if let Some(c) = o.get("chain") {
            let s = |k: &str| c.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
            state.chains.push((s("name"), s("policy")));
        } else if o.get("rule").is_some() {
            state.rules += 1;
        }
    }
    Ok(Some(state))
}

#[cfg(test)]
mod tests;
