//! Process Activity (class 1007).

use serde::{Deserialize, Serialize};

use crate::{Actor, Device, File, Metadata, User, class};

/// `process`: one process, possibly with its parent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Process {
    /// Process id.
    pub pid: u32,
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
    /// The parent process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_process: Option<Box<Process>>,
    /// Effective user id (profile `linux/linux_users`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub euid: Option<u32>,
    /// Effective group id (profile `linux/linux_users`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egid: Option<u32>,
}

/// `activity_id` values of Process Activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ProcessActivityId {
    /// A process started (exec).
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
    /// Launch type (2 = Exec) for launches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_type_id: Option<u8>,
    /// Exit code for terminations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

impl ProcessActivity {
    /// A new event of the given activity; `actor` is derived from the process's parent and user.
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
            launch_type_id: (activity == ProcessActivityId::Launch).then_some(2),
            exit_code: None,
        }
    }
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
        assert_eq!(
            ev.get("actor.process.file.path").and_then(|v| v.as_str()),
            Some("/usr/bin/bash")
        );
        assert_eq!(
            ev.get("process.file.name").and_then(|v| v.as_str()),
            Some("id")
        );
    }
}
