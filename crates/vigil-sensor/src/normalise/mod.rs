//! Observations → OCSF events: Process Activity 1007 (`process`), Network Activity 4001
//! (`network`), File System Activity 1001 (`file`), Authentication 3002 and log lines as Base
//! Events (`auth`), DNS Activity 4003 (`dns`). Sources say what they saw as an
//! [`Observation`]; enrichment adds what the sensor knows about the processes involved; this
//! module only shapes the result.

mod auth;
mod dns;
mod file;
mod network;
mod process;

pub(crate) use auth::{
    Account, AuthFacts, AuthKind, AuthObservation, LogRecord, Peer, auth_event, log_event,
};
pub(crate) use dns::{DnsObservation, Header as DnsHeader, dns_event};
pub(crate) use file::{FileChange, FileFacts, FileObservation, file_event};

pub(crate) use network::{OwnerFacts, TcpChange, TcpObservation, TcpState, network_event};
pub(crate) use process::{
    ExecObservation, ExitObservation, ForkObservation, TaskFacts, exit_event, fork_event,
    image_name, launch_event, process_uid,
};

/// One thing a source saw.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Observation {
    /// A process ran a new image.
    Exec(ExecObservation),
    /// A new process was forked.
    Fork(ForkObservation),
    /// A process ended.
    Exit(ExitObservation),
    /// A TCP socket changed.
    Tcp(TcpObservation),
    /// A file system entry changed.
    File(FileObservation),
    /// A login, logoff or account switch was logged or recorded.
    Auth(Box<AuthObservation>),
    /// A line of a watched log.
    Log(LogRecord),
    /// A DNS message over UDP.
    Dns(Box<DnsObservation>),
}

impl Observation {
    /// The process id the observation is about (the owner for TCP, when known; the actor for
    /// files; the logging process for log lines).
    pub(crate) fn pid(&self) -> Option<u32> {
        match self {
            Self::Exec(o) => Some(o.task.pid),
            Self::Fork(o) => Some(o.task.pid),
            Self::Exit(o) => Some(o.task.pid),
            Self::Tcp(o) => o.owner.as_ref().map(|owner| owner.pid),
            Self::File(o) => Some(o.pid),
            Self::Auth(o) => o.line.as_ref().and_then(|l| l.pid).or(o.facts.pid),
            Self::Log(o) => o.pid,
            Self::Dns(o) => o.owner.as_ref().map(|owner| owner.pid),
        }
    }
}
