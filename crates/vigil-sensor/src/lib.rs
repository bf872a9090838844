//! Vigil's kernel capture.
//!
//! This crate owns everything between the kernel and an OCSF event: the eBPF programs (C, CO-RE,
//! in `bpf/`, compiled by `build.rs` and loaded with aya), the netlink proc connector fallback,
//! enrichment from `/proc` and the user database with bounded caches, and normalisation into
//! [`vigil_ocsf`] events. It hands events to the caller through a channel and reports which
//! sources are live as [`Capability`]s. It must not buffer, ship, store or judge events (that is
//! the agent's and the detectors' job) and it depends on no crate above `vigil-ocsf`.
//!
//! Today it captures process executions: [`Sensor::start`] tries the `tp_btf/sched_process_exec`
//! eBPF program and, in [`SourceMode::Auto`], falls back to the proc connector when eBPF cannot
//! load.
#![warn(missing_docs)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

mod clock;
mod config;
mod enrich;
mod error;
mod normalise;
mod sensor;
mod source;

pub use config::{Capability, SensorConfig, SourceKind, SourceMode};
pub use error::SensorError;
pub use sensor::Sensor;
pub use vigil_ocsf;
