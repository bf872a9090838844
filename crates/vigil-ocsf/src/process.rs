//! Process Activity (class 1007).

use serde::{Deserialize, Serialize};

use crate::{Actor, Device, File, Metadata, User, class};

/// `process`: one process, possibly with its parent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Process {
    /// Process id.
    pub pid: u32,
    /// Thread id: the thread that acted (the one that exec'd, forked or exited last).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<u32>,
    /// Unique process id across pid reuse (`<pid>-<start time>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Process name (`comm`, or the executable's base name).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Full command line, arguments joined by spaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd_line: Option<String>,
    /// The executable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<File>,
    /// The user the process runs as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<User>,
    /// Working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
    /// Start time, milliseconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_time: Option<i64>,
    /// End time, milliseconds since the epoch (terminations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminated_time: Option<i64>,
    /// The parent process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_process: Option<Box<Process>>,
    /// The parent chain, direct parent first, then its parent, and so on (newest to oldest).
    /// OCSF recommends it on the top-level process only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ancestry: Vec<ProcessEntity>,
    /// The login session the process belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<Session>,
    /// Audit (login) user id: who logged in, whatever the process has become since
    /// (profile `linux/linux_users`). Absent when the process has no login uid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auid: Option<u32>,
    /// Effective user id (profile `linux/linux_users`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub euid: Option<u32>,
    /// Effective group id (profile `linux/linux_users`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egid: Option<u32>,
}

/// `process_entity`: a lighter process reference, used in [`Process::ancestry`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessEntity {
    /// Process id.
    pub pid: u32,
    /// Unique process id (`<pid>-<start time>`), as in [`Process::uid`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Process name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Full command line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd_line: Option<String>,
    /// Executable path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Start time, milliseconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_time: Option<i64>,
}

/// `session`: the login session of a process.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// Session id (on Linux the audit session id, `/proc/<pid>/sessionid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Controlling terminal, e.g. `pts/0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminal: Option<String>,
}

/// `activity_id` values of Process Activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ProcessActivityId {
    /// A process started (fork) or started running a new image (exec).
    Launch = 1,
    /// A process ended.
    Terminate = 2,
}

impl ProcessActivityId {
    /// The OCSF caption.
    pub fn name(self) -> &'static str {
        match self {
            Self::Launch => "Launch",
            Self::Terminate => "Terminate",
        }
    }
}

/// `launch_type_id` values: how a launched process came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum LaunchType {
    /// A new process running a new image in one step (`posix_spawn`-like).
    Spawn = 1,
    /// A copy of the parent (`fork`/`clone` of a new thread group).
    Fork = 2,
    /// The process replaced its image (`execve`).
    Exec = 3,
}

impl LaunchType {
    /// The OCSF caption.
    pub fn name(self) -> &'static str {
        match self {
            Self::Spawn => "Spawn",
            Self::Fork => "Fork",
            Self::Exec => "Exec",
        }
    }
}

/// How a process ended, as `wait(2)` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// It called `exit` with this code.
    Exited(i32),
    /// A signal killed it.
    Signaled {
        /// The signal number.
        signal: i32,
        /// Whether it dumped core.
        core_dumped: bool,
    },
}

impl ExitStatus {
    /// Decodes a `wait(2)` status word: `(code << 8) | signal`, `0x80` for a core dump.
    pub fn from_wait_status(status: i32) -> Self {
        let signal = status & 0x7f;
        if signal == 0 {
            Self::Exited((status >> 8) & 0xff)
        } else {
            Self::Signaled {
                signal,
                core_dumped: status & 0x80 != 0,
            }
        }
    }

    /// The `exit_code` reported: the code itself, or `128 + signal` for a signal death, as
    /// shells and container runtimes report it (the signal is also in `unmapped.signal`).
    pub fn exit_code(self) -> i32 {
        match self {
            Self::Exited(code) => code,
            Self::Signaled { signal, .. } => 128 + signal,
        }
    }
}

/// `unmapped`: what Vigil reports on a Process Activity that OCSF has no attribute for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessUnmapped {
    /// The signal that killed the process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// Its name (`SIGKILL`), when it is a standard signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal_name: Option<String>,
    /// Whether the process dumped core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub core_dumped: Option<bool>,
    /// An exec's argument vector, each argument whole (`process.cmd_line` joins them with
    /// spaces, which loses where one ends). Sigma's auditd `a0`…`aN` read it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub argv: Vec<String>,
    /// Set when nothing is known of who launched or ended the process (neither parent nor
    /// user: a process the fallback source saw only after it was gone). OCSF requires an
    /// `actor`; this event's is empty, and says so here.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub actor_unknown: bool,
}

/// A Process Activity event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessActivity {
    /// Activity (1 Launch, 2 Terminate).
    pub activity_id: u8,
    /// Activity caption.
    pub activity_name: String,
    /// Always 1 (System Activity).
    pub category_uid: u8,
    /// Always 1007.
    pub class_uid: u32,
    /// `class_uid * 100 + activity_id`.
    pub type_uid: u32,
    /// Severity (1 = Informational).
    pub severity_id: u8,
    /// Event time, milliseconds since the epoch.
    pub time: i64,
    /// Record metadata.
    pub metadata: Metadata,
    /// The host.
    pub device: Device,
    /// The parent that performed the launch.
    pub actor: Actor,
    /// The process launched or terminated.
    pub process: Process,
    /// Launch type ([`LaunchType`]) for launches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_type_id: Option<u8>,
    /// Launch type caption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_type: Option<String>,
    /// Exit code for terminations (see [`ExitStatus::exit_code`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Source-specific attributes (the killing signal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unmapped: Option<ProcessUnmapped>,
}

impl ProcessActivity {
    /// A new event of the given activity; `actor` is derived from the process's parent and user.
    /// A launch is an exec ([`LaunchType::Exec`]) unless changed with
    /// [`ProcessActivity::with_launch_type`].
    pub fn new(
        activity: ProcessActivityId,
        time: i64,
        metadata: Metadata,
        device: Device,
        process: Process,
    ) -> Self {
        let actor = Actor {
            process: process.parent_process.as_deref().cloned(),
            user: process.user.clone(),
        };
        let actor_unknown = actor.process.is_none() && actor.user.is_none();
        let launch = (activity == ProcessActivityId::Launch).then_some(LaunchType::Exec);
        Self {
            activity_id: activity as u8,
            activity_name: activity.name().into(),
            category_uid: 1,
            class_uid: class::PROCESS_ACTIVITY,
            type_uid: class::PROCESS_ACTIVITY * 100 + activity as u32,
            severity_id: 1,
            time,
            metadata,
            device,
            actor,
            process,
            launch_type_id: launch.map(|l| l as u8),
            launch_type: launch.map(|l| l.name().into()),
            exit_code: None,
            unmapped: (actor_unknown).then(|| ProcessUnmapped {
                actor_unknown,
                ..Default::default()
            }),
        }
    }

    /// Sets how a launched process came to be.
    pub fn with_launch_type(mut self, launch: LaunchType) -> Self {
        self.launch_type_id = Some(launch as u8);
        self.launch_type = Some(launch.name().into());
        self
    }

    /// Keeps an exec's argument vector in `unmapped.argv` (nothing when it is empty).
    pub fn with_argv(mut self, argv: Vec<String>) -> Self {
        if !argv.is_empty() {
            self.unmapped.get_or_insert_with(Default::default).argv = argv;
        }
        self
    }

    /// Sets the exit code, and for a signal death the signal in `unmapped`.
    pub fn with_exit_status(mut self, status: ExitStatus) -> Self {
        self.exit_code = Some(status.exit_code());
        if let ExitStatus::Signaled {
            signal,
            core_dumped,
        } = status
        {
            let unmapped = self.unmapped.get_or_insert_with(Default::default);
            unmapped.signal = Some(signal);
            unmapped.signal_name = signal_name(signal).map(str::to_owned);
            unmapped.core_dumped = Some(core_dumped);
        }
        self
    }
}

/// The name of a standard Linux signal (x86/arm numbering).
pub fn signal_name(signal: i32) -> Option<&'static str> {
    const NAMES: [&str; 31] = [
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    let index = usize::try_from(signal.checked_sub(1)?).ok()?;
    NAMES.get(index).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Event;

    #[test]
    fn launch_serialises_with_actor_from_parent() {
        let parent = Process {
            pid: 1,
            name: "bash".into(),
            cmd_line: Some("-bash".into()),
            file: Some(File::regular("/usr/bin/bash")),
            ..Default::default()
        };
        let child = Process {
            pid: 2,
            name: "id".into(),
            cmd_line: Some("id -u".into()),
            file: Some(File::regular("/usr/bin/id")),
            parent_process: Some(Box::new(parent)),
            ..Default::default()
        };
        let pa = ProcessActivity::new(
            ProcessActivityId::Launch,
            7,
            Metadata::vigil("test"),
            Device::default(),
            child,
        );
        let ev = Event::from_record(&pa).unwrap();
        assert_eq!(ev.class_uid, 1007);
        assert_eq!(ev.get("type_uid").and_then(|v| v.as_u64()), Some(100701));
        assert_eq!(ev.get("launch_type_id").and_then(|v| v.as_u64()), Some(3));
        assert_eq!(ev.get("launch_type").and_then(|v| v.as_str()), Some("Exec"));
        assert_eq!(
            ev.get("actor.process.file.path").and_then(|v| v.as_str()),
            Some("/usr/bin/bash")
        );
        assert_eq!(
            ev.get("process.file.name").and_then(|v| v.as_str()),
            Some("id")
        );
        assert!(
            ev.get("process.ancestry").is_none(),
            "empty lists are left out"
        );
    }

    #[test]
    fn fork_launch_type_is_fork() {
        let pa = ProcessActivity::new(
            ProcessActivityId::Launch,
            7,
            Metadata::vigil("test"),
            Device::default(),
            Process::default(),
        )
        .with_launch_type(LaunchType::Fork);
        assert_eq!(pa.launch_type_id, Some(2));
        assert_eq!(pa.launch_type.as_deref(), Some("Fork"));
    }

    #[test]
    fn wait_status_decodes_codes_and_signals() {
        assert_eq!(ExitStatus::from_wait_status(3 << 8), ExitStatus::Exited(3));
        assert_eq!(ExitStatus::from_wait_status(0), ExitStatus::Exited(0));
        let killed = ExitStatus::from_wait_status(9);
        assert_eq!(
            killed,
            ExitStatus::Signaled {
                signal: 9,
                core_dumped: false
            }
        );
        assert_eq!(killed.exit_code(), 137);
        assert_eq!(
            ExitStatus::from_wait_status(0x80 | 11),
            ExitStatus::Signaled {
                signal: 11,
                core_dumped: true
            }
        );
    }

    #[test]
    fn terminate_carries_exit_code_and_signal() {
        let pa = ProcessActivity::new(
            ProcessActivityId::Terminate,
            7,
            Metadata::vigil("test"),
            Device::default(),
            Process::default(),
        )
        .with_exit_status(ExitStatus::from_wait_status(15));
        let ev = Event::from_record(&pa).unwrap();
        assert_eq!(ev.get("type_uid").and_then(|v| v.as_u64()), Some(100702));
        assert!(ev.get("launch_type_id").is_none());
        assert_eq!(ev.get("exit_code").and_then(|v| v.as_i64()), Some(143));
        assert_eq!(
            ev.get("unmapped.signal_name").and_then(|v| v.as_str()),
            Some("SIGTERM")
        );
        assert_eq!(signal_name(0), None);
        assert_eq!(signal_name(31), Some("SIGSYS"));
        assert_eq!(signal_name(64), None);
    }
}
