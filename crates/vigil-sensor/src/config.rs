//! How the sensor is asked to run, and how it reports what it is doing.

use std::fmt;
use std::path::PathBuf;
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
    /// A filesystem-wide fanotify group (file activity).
    Fanotify,
    /// Log files followed by path (login and authentication lines).
    LogFile,
    /// The systemd journal, through `journalctl` (login and authentication lines).
    Journald,
    /// Login records in wtmp and btmp.
    Utmp,
    /// A packet socket (DNS over UDP).
    Packet,
}

impl SourceKind {
    /// The name used in `metadata.log_name` and in capabilities.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ebpf => "ebpf",
            Self::ProcConnector => "proc_connector",
            Self::ProcNet => "proc_net",
            Self::Fanotify => "fanotify",
            Self::LogFile => "logfile",
            Self::Journald => "journald",
            Self::Utmp => "utmp",
            Self::Packet => "packet",
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
    /// Which file activity to report (fanotify, whatever `mode` is).
    pub files: FileConfig,
    /// Where logins and authentications are read from (whatever `mode` is).
    pub auth: AuthConfig,
    /// Whether DNS queries and responses are captured (a packet socket, whatever `mode` is).
    pub dns: DnsConfig,
}

/// DNS capture: queries and responses over UDP port 53 on every interface of the sensor's
/// network namespace, from a packet socket with a kernel-side port filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsConfig {
    /// Report DNS activity at all. Default: `true`.
    pub enabled: bool,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self { enabled: true }
    }
}

impl DnsConfig {
    /// No DNS capture (the `dns` capability then says so).
    pub fn disabled() -> Self {
        Self { enabled: false }
    }
}

/// Where file activity is watched by default: system configuration, the binaries on `PATH`,
/// home directories, the world-writable scratch directory, cron spools and systemd units.
pub const DEFAULT_WATCH_PATHS: &[&str] = &[
    "/etc",
    "/usr/bin",
    "/usr/sbin",
    "/usr/local/bin",
    "/root",
    "/home",
    "/tmp",
    "/var/spool/cron",
    "/etc/systemd",
];

/// Which file activity the sensor reports: creations, writes (reported when the file is closed),
/// deletions, renames and mode/owner changes of entries at or under `paths`, except those at or
/// under `exclude`.
///
/// Paths are matched as prefixes of whole components (`/etc` covers `/etc/passwd`, not
/// `/etcetera`), after resolving symbolic links in them (`/bin` is watched as `/usr/bin` on a
/// merged-`/usr` system). A path that does not exist yet is watched from the time it appears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileConfig {
    /// Report file activity at all. Default: `true`.
    pub enabled: bool,
    /// Absolute paths whose activity is reported. Default: [`DEFAULT_WATCH_PATHS`].
    pub paths: Vec<PathBuf>,
    /// Absolute paths whose activity is never reported, even under a watched path. Default:
    /// none. The agent adds its own data directory (and `vigil up` the server's); activity of
    /// the sensor's own process is never reported either.
    pub exclude: Vec<PathBuf>,
}

impl Default for FileConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            paths: DEFAULT_WATCH_PATHS.iter().map(PathBuf::from).collect(),
            exclude: Vec::new(),
        }
    }
}

impl FileConfig {
    /// No file activity capture (the `file` capability then says so).
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    /// Watches exactly `paths`, excluding nothing.
    pub fn watching(paths: impl IntoIterator<Item = impl Into<PathBuf>>) -> Self {
        Self {
            enabled: true,
            paths: paths.into_iter().map(Into::into).collect(),
            exclude: Vec::new(),
        }
    }
}

/// The logs read for logins and authentications by default: Debian's and RHEL's.
pub const DEFAULT_AUTH_LOGS: &[&str] = &["/var/log/auth.log", "/var/log/secure"];
/// The login records (sessions started and ended) read by default.
pub const DEFAULT_WTMP: &str = "/var/log/wtmp";
/// The failed-login records read by default.
pub const DEFAULT_BTMP: &str = "/var/log/btmp";

/// Where the sensor reads logins and authentications (OCSF Authentication), and the log lines
/// it reports as they are (OCSF Base Event, for Sigma's keyword rules on system logs).
///
/// Lines come from the log files when any of `logs` exists at start, else from the systemd
/// journal when `journal` is set and journald runs (facilities `auth` and `authpriv`, the lines
/// rsyslog would write to those files), else from the log files once they appear. Never from
/// both, so a line rsyslog forwards from the journal to a file is read once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// Capture logins and authentications at all. Default: `true`.
    pub enabled: bool,
    /// Absolute paths of syslog files to follow. Default: [`DEFAULT_AUTH_LOGS`].
    pub logs: Vec<PathBuf>,
    /// Read the journal when none of `logs` exists at start and journald runs. Default: `true`.
    pub journal: bool,
    /// The wtmp file (sessions started and ended); `None` reads none. Default: [`DEFAULT_WTMP`].
    pub wtmp: Option<PathBuf>,
    /// The btmp file (failed logins); `None` reads none. Default: [`DEFAULT_BTMP`].
    pub btmp: Option<PathBuf>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            logs: DEFAULT_AUTH_LOGS.iter().map(PathBuf::from).collect(),
            journal: true,
            wtmp: Some(PathBuf::from(DEFAULT_WTMP)),
            btmp: Some(PathBuf::from(DEFAULT_BTMP)),
        }
    }
}

impl AuthConfig {
    /// No login capture (the `auth` capability then says so).
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    /// Exactly these sources: the log files `logs` (no journal) and the given login records.
    pub fn reading(
        logs: impl IntoIterator<Item = impl Into<PathBuf>>,
        wtmp: Option<PathBuf>,
        btmp: Option<PathBuf>,
    ) -> Self {
        Self {
            enabled: true,
            logs: logs.into_iter().map(Into::into).collect(),
            journal: false,
            wtmp,
            btmp,
        }
    }
}

/// One kind of telemetry the sensor observes, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capability {
    /// What is observed: `process` (exec, fork, exit), `network` (TCP),
    /// `connection_attempts` (inbound TCP attempts, refused and half-open included), `file`
    /// (file activity under the watched paths) or `auth` (logins, authentications and the
    /// authentication log's lines).
    pub name: String,
    /// The source providing it (`ebpf`, `proc_connector`, `proc_net`, `fanotify`, or for
    /// `auth` `logfile`, `journald` or `utmp`).
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
        assert_eq!(SourceKind::Fanotify.to_string(), "fanotify");
        assert_eq!(SourceKind::LogFile.to_string(), "logfile");
        assert_eq!(SourceKind::Journald.to_string(), "journald");
        assert_eq!(SourceKind::Utmp.to_string(), "utmp");
    }

    #[test]
    fn auth_config_defaults_read_the_documented_logs() {
        let auth = AuthConfig::default();
        assert!(auth.enabled && auth.journal);
        assert_eq!(
            auth.logs,
            [
                PathBuf::from("/var/log/auth.log"),
                PathBuf::from("/var/log/secure")
            ]
        );
        assert_eq!(
            auth.wtmp.as_deref(),
            Some(std::path::Path::new("/var/log/wtmp"))
        );
        assert_eq!(
            auth.btmp.as_deref(),
            Some(std::path::Path::new("/var/log/btmp"))
        );
        assert!(!AuthConfig::disabled().enabled);
        let only = AuthConfig::reading(["/tmp/x.log"], None, None);
        assert!(!only.journal && only.wtmp.is_none());
    }

    #[test]
    fn file_config_defaults_watch_the_documented_paths() {
        let files = FileConfig::default();
        assert!(files.enabled);
        assert_eq!(files.paths.len(), DEFAULT_WATCH_PATHS.len());
        assert!(files.paths.contains(&PathBuf::from("/var/spool/cron")));
        assert!(files.exclude.is_empty());
        assert!(!FileConfig::disabled().enabled);
        assert_eq!(
            FileConfig::watching(["/srv"]).paths,
            [PathBuf::from("/srv")]
        );
    }
}
