//! OCSF 1.8.0 types for Vigil.
//!
//! This crate owns the shape of everything Vigil records: the typed OCSF classes the sensor
//! produces (Process Activity 1007, File System Activity 1001, Network Activity 4001,
//! Authentication 3002, DNS Activity 4003, and log lines as Base Events), the
//! Detection Finding 2004 the detectors emit, the generic [`Event`] envelope that carries any
//! class across the wire and into the store, and the data-driven map from Sigma field names to
//! OCSF attribute paths ([`fieldmap`]).
//!
//! It must stay at the bottom of the dependency graph: no async runtime, no database, no network
//! and no eBPF crate may ever be added here.
#![deny(missing_docs)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

mod auth;
mod dns;
mod event;
pub mod fieldmap;
mod file;
mod finding;
pub mod flat;
mod log;
mod network;
mod objects;
mod process;
mod raw;
#[cfg(feature = "schema")]
pub mod schema;

pub use auth::{
    AccountSwitchType, AuthActivityId, AuthProtocol, AuthUnmapped, Authentication, LogonType,
    Service,
};
pub use dns::{DnsActivity, DnsActivityId, DnsAnswer, DnsQuery, DnsUnmapped, rcode_name};
pub use event::{Event, EventError, class, step};
pub use file::{FileActivity, FileActivityId, FileUnmapped};
pub use finding::{
    Analytic, Attack, DetectionFinding, Evidence, FindingInfo, Observable, RelatedEvent, Severity,
    Tactic, Technique,
};
pub use log::{LOG_LINE_ACTIVITY, LogLine, LogLineUnmapped, SyslogHeader};
pub use network::{
    ConnectionInfo, Direction, NetworkActivity, NetworkActivityId, NetworkEndpoint,
    NetworkUnmapped, StatusId,
};
pub use objects::{Actor, Device, File, Fingerprint, Metadata, Os, Product, User};
pub use process::{
    ExitStatus, LaunchType, Process, ProcessActivity, ProcessActivityId, ProcessEntity,
    ProcessUnmapped, Session, signal_name,
};
pub use raw::RawEvent;

/// The OCSF schema version every Vigil event declares in `metadata.version`.
pub const OCSF_VERSION: &str = "1.8.0";

/// Milliseconds since the Unix epoch, the unit of every OCSF `timestamp_t`.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
