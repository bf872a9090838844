//! Phase 2: network connections from `/proc/net/{tcp,tcp6,udp,udp6}`, each joined to the
//! process holding the socket (its inode in a `/proc/[pid]/fd` link).

use std::collections::HashSet;

use serde::Serialize;
use vigil_sensor::procnet::{parse_table, socket_owners};

use super::{MAX_CONNECTIONS, PhaseResult};

/// One socket.
#[derive(Debug, Clone, Serialize)]
pub struct Connection {
    /// `tcp` or `udp`.
    pub protocol: &'static str,
    /// Local address.
    pub local_ip: String,
    /// Local port.
    pub local_port: u16,
    /// Remote address (`0.0.0.0` / `::` when none).
    pub remote_ip: String,
    /// Remote port.
    pub remote_port: u16,
    /// TCP state name (`LISTEN`, `ESTABLISHED`, …); for UDP, `UNCONN` or `ESTABLISHED`.
    pub state: &'static str,
    /// Socket owner uid.
    pub uid: u32,
    /// Socket inode.
    pub inode: u64,
    /// The process holding it, when found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// That process's command name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

fn tcp_state(s: u8) -> &'static str {
    match s {
        1 => "ESTABLISHED",
        2 => "SYN_SENT",
        3 => "SYN_RECV",
        4 => "FIN_WAIT1",
        5 => "FIN_WAIT2",
        6 => "TIME_WAIT",
        7 => "CLOSE",
        8 => "CLOSE_WAIT",
        9 => "LAST_ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        12 => "NEW_SYN_RECV",
        _ => "UNKNOWN",
    }
}

pub(crate) fn collect() -> PhaseResult<Connection> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut truncated = false;
    for (file, protocol) in [
        ("/proc/net/tcp", "tcp"),
        ("/proc/net/tcp6", "tcp"),
        ("/proc/net/udp", "udp"),
        ("/proc/net/udp6", "udp"),
    ] {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                errors.push(format!("{file}: {e}"));
                continue;
            }
        };
        for e in parse_table(&text) {
            if out.len() >= MAX_CONNECTIONS {
                truncated = true;
                break;
            }
            let state = match (protocol, e.state) {
                ("udp", 1) => "ESTABLISHED",
                ("udp", _) => "UNCONN",
                (_, s) => tcp_state(s),
            };
            out.push(Connection {
                protocol,
                local_ip: e.local.ip().to_string(),
                local_port: e.local.port(),
                remote_ip: e.remote.ip().to_string(),
                remote_port: e.remote.port(),
                state,
                uid: e.uid,
                inode: e.inode,
                pid: None,
                command: None,
            });
        }
    }
    let inodes: HashSet<u64> = out.iter().map(|c| c.inode).filter(|&i| i != 0).collect();
    let owners = socket_owners(&inodes);
    for c in &mut out {
        if let Some(o) = owners.get(&c.inode) {
            c.pid = Some(o.pid);
            c.command = Some(o.comm.clone());
        }
    }
    if errors.len() == 4 {
        return Err((out, errors.join("; ")));
    }
    Ok((out, truncated))
}
