//! How the sensor is asked to run, and how it reports what it is doing.

use std::fmt;
use std::str::FromStr;

/// Which capture sources to use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SourceMode {
    /// Try eBPF for each kind of telemetry; where it cannot load or attach, warn once and fall
    /// back: processes to the proc connector, TCP to `/proc/net/tcp` polling.
    #[default]
    Auto,
    /// eBPF only; starting fails if the process or TCP programs cannot load.
    Ebpf,
    /// No eBPF: the netlink proc connector for processes, `/proc/net/tcp` polling for TCP.
    ProcConnector,
}

impl FromStr for SourceMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "ebpf" => Ok(Self::Ebpf),
            "proc_connector" => Ok(Self::ProcConnector),
            other => Err(format!(
                "unknown source mode `{other}` (expected auto, ebpf or proc_connector)"
            )),
        }
    }
}

/// A capture source that is actually running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceKind {
    /// The eBPF programs (`tp_btf` tracepoints).
    Ebpf,
    /// The netlink proc connector plus `/proc` reads (processes).
    ProcConnector,
    /// Polling `/proc/net/tcp{,6}` (TCP sockets).
    ProcNet,
}

impl SourceKind {
    /// The name used in `metadata.log_name` and in capabilities.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ebpf => "ebpf",
            Self::ProcConnector => "proc_connector",
            Self::ProcNet => "proc_net",
        }
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Settings for [`crate::Sensor::start`].
#[derive(Debug, Clone, Default)]
pub struct SensorConfig {
    /// Which sources to use.
    pub mode: SourceMode,
    /// The host, copied into every event's `device`.
    pub device: vigil_ocsf::Device,
}

/// One kind of telemetry the sensor observes, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capability {
    /// What is observed: `process` (exec, fork, exit), `network` (TCP) or
    /// `connection_attempts` (inbound TCP attempts, refused and half-open included).
    pub name: String,
    /// The source providing it (`ebpf`, `proc_connector` or `proc_net`).
    pub source: String,
    /// Whether its capture thread is running right now.
    pub live: bool,
    /// Anything an operator should know, e.g. why eBPF is off.
    pub detail: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_mode_parses_config_spellings() {
        assert_eq!("auto".parse(), Ok(SourceMode::Auto));
        assert_eq!("ebpf".parse(), Ok(SourceMode::Ebpf));
        assert_eq!("proc_connector".parse(), Ok(SourceMode::ProcConnector));
        assert!("kprobe".parse::<SourceMode>().is_err());
    }

    #[test]
    fn source_kind_displays_log_name() {
        assert_eq!(SourceKind::Ebpf.to_string(), "ebpf");
        assert_eq!(SourceKind::ProcConnector.to_string(), "proc_connector");
        assert_eq!(SourceKind::ProcNet.to_string(), "proc_net");
    }
}
