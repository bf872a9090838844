//! Vigil's kernel capture.
//!
//! This crate owns everything between the kernel and an OCSF event: the eBPF programs (C, CO-RE,
//! in `bpf/`, compiled by `build.rs` and loaded with aya), the proc connector and `/proc` fallbacks,
//! enrichment from `/proc` and the user database with bounded caches, and normalisation into
//! [`vigil_ocsf`] events. It hands events to the caller through a channel and reports which
//! sources are live as [`Capability`]s. It must not buffer, ship, store or judge events (that is
//! the agent's and the detectors' job) and it depends on no crate above `vigil-ocsf`.
//!
//! It captures the process lifecycle (exec, fork, exit → OCSF Process Activity), TCP
//! activity (listen, connect attempts, established, accepted, refused, failed and closed
//! connections, and resets for closed ports → OCSF Network Activity) and file activity under
//! configured paths (create, write, delete, rename, mode and owner changes → OCSF File System
//! Activity, from fanotify), and logins and authentications (sshd, sudo, su, login, PAM lines of
//! the authentication log or the journal, wtmp/btmp records → OCSF Authentication, and every
//! line read as an OCSF Base Event). [`Sensor::start`] loads the eBPF programs (`tp_btf` tracepoints)
//! and, in [`SourceMode::Auto`], falls back per kind where they cannot load: to the proc
//! connector for processes and to `/proc/net/tcp` polling for TCP.
#![warn(missing_docs)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

mod clock;
mod config;
mod enrich;
mod error;
mod normalise;
mod sensor;
mod source;

pub use config::{
    AuthConfig, Capability, DEFAULT_AUTH_LOGS, DEFAULT_BTMP, DEFAULT_WATCH_PATHS, DEFAULT_WTMP,
    DnsConfig, FileConfig, SensorConfig, SourceKind, SourceMode,
};
pub use error::SensorError;
pub use sensor::Sensor;
pub use vigil_ocsf;

/// The kernel's socket tables (`/proc/net/{tcp,tcp6,udp,udp6}`) and the processes holding each
/// socket, for other readers of live host state (the triage package).
pub mod procnet {
    pub use crate::source::proc_net::{SocketEntry, SocketOwner, parse_table, socket_owners};
}
