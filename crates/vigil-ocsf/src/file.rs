//! File System Activity (class 1001).

use serde::{Deserialize, Serialize};

use crate::{Actor, Device, File, Metadata, class};

/// `activity_id` values of File System Activity, with their OCSF captions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FileActivityId {
    /// The activity is unknown.
    Unknown = 0,
    /// A file or folder was created.
    Create = 1,
    /// A file was read.
    Read = 2,
    /// A file's content was changed.
    Update = 3,
    /// A file or folder was deleted.
    Delete = 4,
    /// A file or folder was renamed or moved (`file` the old name, `file_result` the new).
    Rename = 5,
    /// Attributes changed: permissions, owner, times.
    SetAttributes = 6,
    /// Security attributes (ACLs, labels) changed.
    SetSecurity = 7,
    /// Attributes were read.
    GetAttributes = 8,
    /// Security attributes were read.
    GetSecurity = 9,
    /// A file was encrypted.
    Encrypt = 10,
    /// A file was decrypted.
    Decrypt = 11,
    /// A file system was mounted.
    Mount = 12,
    /// A file system was unmounted.
    Unmount = 13,
    /// A file was opened.
    Open = 14,
    /// Another activity, named in `activity_name`.
    Other = 99,
}

impl FileActivityId {
    /// The OCSF caption.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unknown => "Unknown",
            Self::Create => "Create",
            Self::Read => "Read",
            Self::Update => "Update",
            Self::Delete => "Delete",
            Self::Rename => "Rename",
            Self::SetAttributes => "Set Attributes",
            Self::SetSecurity => "Set Security",
            Self::GetAttributes => "Get Attributes",
            Self::GetSecurity => "Get Security",
            Self::Encrypt => "Encrypt",
            Self::Decrypt => "Decrypt",
            Self::Mount => "Mount",
            Self::Unmount => "Unmount",
            Self::Open => "Open",
            Self::Other => "Other",
        }
    }
}

/// `unmapped`: what Vigil reports on a File System Activity that OCSF has no attribute for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileUnmapped {
    /// Permission bits of the file after the activity, in octal (`0644`, `4755` with setuid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// The group owning the file after the activity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
}

/// A File System Activity event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileActivity {
    /// Activity ([`FileActivityId`]).
    pub activity_id: u8,
    /// Activity caption.
    pub activity_name: String,
    /// Always 1 (System Activity).
    pub category_uid: u8,
    /// Always 1001.
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
    /// The process (and user) that acted on the file.
    pub actor: Actor,
    /// The file acted on; for a rename, its old name.
    pub file: File,
    /// The file as the activity left it: for a rename, its new name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_result: Option<File>,
    /// Source-specific attributes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unmapped: Option<FileUnmapped>,
}

impl FileActivity {
    /// A new event of the given activity on `file` by `actor`.
    pub fn new(
        activity: FileActivityId,
        time: i64,
        metadata: Metadata,
        device: Device,
        actor: Actor,
        file: File,
    ) -> Self {
        Self {
            activity_id: activity as u8,
            activity_name: activity.name().into(),
            category_uid: 1,
            class_uid: class::FILE_ACTIVITY,
            type_uid: class::FILE_ACTIVITY * 100 + activity as u32,
            severity_id: 1,
            time,
            metadata,
            device,
            actor,
            file,
            file_result: None,
            unmapped: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Event, Process, User};

    #[test]
    fn rename_serialises_old_and_new_names() {
        let actor = Actor {
            process: Some(Process {
                pid: 42,
                name: "mv".into(),
                file: Some(File::regular("/usr/bin/mv")),
                ..Default::default()
            }),
            user: Some(User {
                name: Some("root".into()),
                uid: "0".into(),
                type_id: 3,
            }),
        };
        let mut fa = FileActivity::new(
            FileActivityId::Rename,
            11,
            Metadata::vigil("test"),
            Device::default(),
            actor,
            File::at("/tmp/a", 1),
        );
        fa.file_result = Some(File::at("/etc/cron.d/a", 1));
        let ev = Event::from_record(&fa).unwrap();
        let s = |p: &str| ev.get(p).and_then(|v| v.as_str()).map(str::to_owned);
        let n = |p: &str| ev.get(p).and_then(|v| v.as_u64());
        assert_eq!(ev.class_uid, 1001);
        assert_eq!(n("type_uid"), Some(100105));
        assert_eq!(n("category_uid"), Some(1));
        assert_eq!(s("activity_name").as_deref(), Some("Rename"));
        assert_eq!(s("file.path").as_deref(), Some("/tmp/a"));
        assert_eq!(s("file.name").as_deref(), Some("a"));
        assert_eq!(s("file.parent_folder").as_deref(), Some("/tmp"));
        assert_eq!(s("file_result.path").as_deref(), Some("/etc/cron.d/a"));
        assert_eq!(s("actor.process.file.path").as_deref(), Some("/usr/bin/mv"));
        assert!(ev.get("unmapped").is_none());
        assert!(ev.get("file.owner").is_none(), "unknown facts are left out");
    }

    #[test]
    fn captions_match_the_schema_enum() {
        let ids = [
            (FileActivityId::Unknown, 0, "Unknown"),
            (FileActivityId::Create, 1, "Create"),
            (FileActivityId::Read, 2, "Read"),
            (FileActivityId::Update, 3, "Update"),
            (FileActivityId::Delete, 4, "Delete"),
            (FileActivityId::Rename, 5, "Rename"),
            (FileActivityId::SetAttributes, 6, "Set Attributes"),
            (FileActivityId::SetSecurity, 7, "Set Security"),
            (FileActivityId::GetAttributes, 8, "Get Attributes"),
            (FileActivityId::GetSecurity, 9, "Get Security"),
            (FileActivityId::Encrypt, 10, "Encrypt"),
            (FileActivityId::Decrypt, 11, "Decrypt"),
            (FileActivityId::Mount, 12, "Mount"),
            (FileActivityId::Unmount, 13, "Unmount"),
            (FileActivityId::Open, 14, "Open"),
            (FileActivityId::Other, 99, "Other"),
        ];
        for (id, value, name) in ids {
            assert_eq!((id as u8, id.name()), (value, name));
        }
    }

    #[test]
    fn parent_folder_of_paths() {
        assert_eq!(
            File::at("/etc/passwd", 1).parent_folder.as_deref(),
            Some("/etc")
        );
        assert_eq!(File::at("/etc", 2).parent_folder.as_deref(), Some("/"));
        assert_eq!(File::at("/", 2).parent_folder, None);
        assert_eq!(File::at("/etc", 2).type_id, 2);
    }
}
