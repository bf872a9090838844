//! The Vigil host agent.
//!
//! This crate owns what runs on a monitored host around the sensor: the durable outbound
//! [`buffer`], the fleet [`link`] to the server, host facts, the [`Agent`] that wires capture
//! → buffer → link, and the [`response`] actions carried out on the host. Capture itself belongs
//! to `vigil-sensor`; detection to `vigil-detect`. With the `yara` cargo feature (on by
//! default), the `yara` module scans every executed file with YARA rules.

mod agent;
pub mod buffer;
pub mod cli;
pub mod edge;
pub mod executor;
pub mod host;
pub mod identity;
pub mod link;
pub mod query;
pub mod response;
pub mod triage;
#[cfg(feature = "yara")]
pub mod yara;

pub use agent::{Agent, AgentConfig, AgentError};
pub use vigil_sensor::{
    AuthConfig, DEFAULT_AUTH_LOGS, DEFAULT_WATCH_PATHS, DnsConfig, FileConfig, SourceMode,
};
