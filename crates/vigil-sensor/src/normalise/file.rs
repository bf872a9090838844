//! File observations → OCSF File System Activity.
//!
//! | what the source saw                       | activity           | `file`     | `file_result` |
//! |-------------------------------------------|--------------------|------------|---------------|
//! | an entry was created (file, dir, link, …) | 1 Create           | the entry  |               |
//! | a file open for writing was closed        | 3 Update           | the file   |               |
//! | an entry was removed                      | 4 Delete           | the entry  |               |
//! | an entry was renamed or moved             | 5 Rename           | old name   | new name      |
//! | mode, owner or times changed              | 6 Set Attributes   | the entry  |               |
//!
//! `file` carries what `lstat` found right after the event (type, owner, size, modification
//! time; mode and group in `unmapped`) when the entry still exists.

use vigil_ocsf::{
    Actor, Device, Event, EventError, File, FileActivity, FileActivityId, FileUnmapped, Metadata,
    User,
};

use crate::SourceKind;

/// What happened to a file system entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FileChange {
    /// It was created.
    Create,
    /// It was closed after being written.
    Update,
    /// It was removed.
    Delete,
    /// It was renamed; `to` is its new path, `None` when the source saw only the old name. (An
    /// entry seen only under its new name is reported with that name as both.)
    Rename { to: Option<String> },
    /// Its mode, owner or times changed.
    Attributes,
}

impl FileChange {
    fn activity(&self) -> FileActivityId {
        match self {
            Self::Create => FileActivityId::Create,
            Self::Update => FileActivityId::Update,
            Self::Delete => FileActivityId::Delete,
            Self::Rename { .. } => FileActivityId::Rename,
            Self::Attributes => FileActivityId::SetAttributes,
        }
    }
}

/// What `lstat` said about an entry right after the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileFacts {
    /// `st_mode`: type and permission bits.
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) size: u64,
    /// Last content modification, ms since the epoch.
    pub(crate) mtime_ms: i64,
}

impl FileFacts {
    /// `lstat(path)`, or `None` when it is gone (or unreadable).
    pub(crate) fn of(path: &str) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::symlink_metadata(path).ok()?;
        Some(Self {
            mode: meta.mode(),
            uid: meta.uid(),
            gid: meta.gid(),
            size: meta.size(),
            mtime_ms: meta
                .mtime()
                .saturating_mul(1000)
                .saturating_add(meta.mtime_nsec() / 1_000_000),
        })
    }

    /// OCSF `file.type_id` for the type bits of `mode`.
    pub(crate) fn type_id(self) -> u8 {
        match self.mode & libc::S_IFMT {
            libc::S_IFREG => 1,
            libc::S_IFDIR => 2,
            libc::S_IFCHR => 3,
            libc::S_IFBLK => 4,
            libc::S_IFSOCK => 5,
            libc::S_IFIFO => 6,
            libc::S_IFLNK => 7,
            _ => 0,
        }
    }
}

/// One change to one file system entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileObservation {
    /// When the source read it, ms since the epoch (fanotify events carry no time).
    pub(crate) time_ms: i64,
    /// The process that made the change.
    pub(crate) pid: u32,
    pub(crate) change: FileChange,
    /// The entry's absolute path; for a rename, its old path.
    pub(crate) path: String,
    /// Whether the entry is a directory.
    pub(crate) is_dir: bool,
    /// The entry as it is now (for a rename, under its new name); `None` when it is gone.
    pub(crate) facts: Option<FileFacts>,
}

/// The File System Activity event for `obs`. `actor` is the acting process as enrichment
/// found it, `owner` the user owning the entry (from `obs.facts`).
pub(crate) fn file_event(
    obs: &FileObservation,
    actor: Actor,
    owner: Option<User>,
    device: &Device,
    source: SourceKind,
) -> Result<Event, EventError> {
    let type_id = match obs.facts {
        Some(facts) => facts.type_id(),
        None if obs.is_dir => 2,
        None => 0,
    };
    let described = |path: &str| {
        let mut file = File::at(path, type_id);
        if let Some(facts) = obs.facts {
            file.owner = owner.clone();
            file.modified_time = Some(facts.mtime_ms);
            file.size = (type_id == 1).then_some(facts.size);
        }
        file
    };
    let (file, file_result) = match &obs.change {
        // The facts are the renamed entry's, under its new name.
        FileChange::Rename { to: Some(to) } => (File::at(&obs.path, type_id), Some(described(to))),
        FileChange::Rename { to: None } => (File::at(&obs.path, type_id), None),
        _ => (described(&obs.path), None),
    };
    let mut record = FileActivity::new(
        obs.change.activity(),
        obs.time_ms,
        Metadata::vigil(source.as_str()),
        device.clone(),
        actor,
        file,
    );
    record.file_result = file_result;
    record.unmapped = obs.facts.map(|facts| FileUnmapped {
        mode: Some(format!("{:04o}", facts.mode & 0o7777)),
        gid: Some(facts.gid),
    });
    Event::from_record(&record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_ocsf::Process;

    fn s(ev: &Event, path: &str) -> Option<String> {
        ev.get(path).and_then(|v| v.as_str()).map(str::to_owned)
    }

    fn n(ev: &Event, path: &str) -> Option<u64> {
        ev.get(path).and_then(|v| v.as_u64())
    }

    fn actor() -> Actor {
        Actor {
            process: Some(Process {
                pid: 31,
                name: "sh".into(),
                ..Default::default()
            }),
            user: None,
        }
    }

    fn root() -> User {
        User {
            name: Some("root".into()),
            uid: "0".into(),
            type_id: 2,
        }
    }

    const FACTS: FileFacts = FileFacts {
        mode: libc::S_IFREG | 0o4755,
        uid: 0,
        gid: 27,
        size: 12,
        mtime_ms: 1_700_000_000_123,
    };

    fn obs(change: FileChange, facts: Option<FileFacts>) -> FileObservation {
        FileObservation {
            time_ms: 9,
            pid: 31,
            change,
            path: "/etc/cron.d/job".into(),
            is_dir: false,
            facts,
        }
    }

    #[test]
    fn update_describes_the_file_as_it_is_now() {
        let ev = file_event(
            &obs(FileChange::Update, Some(FACTS)),
            actor(),
            Some(root()),
            &Device::default(),
            SourceKind::Fanotify,
        )
        .unwrap_or_else(|e| panic!("event: {e}"));
        assert_eq!(ev.class_uid, 1001);
        assert_eq!(n(&ev, "activity_id"), Some(3));
        assert_eq!(n(&ev, "type_uid"), Some(100103));
        assert_eq!(s(&ev, "metadata.log_name").as_deref(), Some("fanotify"));
        assert_eq!(s(&ev, "file.path").as_deref(), Some("/etc/cron.d/job"));
        assert_eq!(s(&ev, "file.name").as_deref(), Some("job"));
        assert_eq!(s(&ev, "file.parent_folder").as_deref(), Some("/etc/cron.d"));
        assert_eq!(n(&ev, "file.type_id"), Some(1));
        assert_eq!(n(&ev, "file.size"), Some(12));
        assert_eq!(s(&ev, "file.owner.name").as_deref(), Some("root"));
        assert_eq!(s(&ev, "unmapped.mode").as_deref(), Some("4755"));
        assert_eq!(n(&ev, "unmapped.gid"), Some(27));
        assert_eq!(n(&ev, "actor.process.pid"), Some(31));
        assert!(ev.get("file_result").is_none());
    }

    #[test]
    fn rename_puts_the_new_name_in_file_result() {
        let mut o = obs(
            FileChange::Rename {
                to: Some("/etc/cron.d/job2".into()),
            },
            Some(FACTS),
        );
        o.path = "/tmp/job".into();
        let ev = file_event(&o, actor(), None, &Device::default(), SourceKind::Fanotify)
            .unwrap_or_else(|e| panic!("event: {e}"));
        assert_eq!(n(&ev, "activity_id"), Some(5));
        assert_eq!(s(&ev, "activity_name").as_deref(), Some("Rename"));
        assert_eq!(s(&ev, "file.path").as_deref(), Some("/tmp/job"));
        assert_eq!(
            s(&ev, "file_result.path").as_deref(),
            Some("/etc/cron.d/job2")
        );
        assert_eq!(n(&ev, "file_result.size"), Some(12));
        assert!(ev.get("file.size").is_none(), "facts describe the new name");
    }

    #[test]
    fn deleted_entry_has_no_facts_and_a_directory_is_a_folder() {
        let mut o = obs(FileChange::Delete, None);
        o.is_dir = true;
        let ev = file_event(&o, actor(), None, &Device::default(), SourceKind::Fanotify)
            .unwrap_or_else(|e| panic!("event: {e}"));
        assert_eq!(n(&ev, "activity_id"), Some(4));
        assert_eq!(n(&ev, "file.type_id"), Some(2));
        assert!(ev.get("unmapped").is_none());
        assert!(ev.get("file.owner").is_none());
        o.is_dir = false;
        let ev = file_event(&o, actor(), None, &Device::default(), SourceKind::Fanotify)
            .unwrap_or_else(|e| panic!("event: {e}"));
        assert_eq!(
            n(&ev, "file.type_id"),
            Some(0),
            "a deleted non-directory: unknown"
        );
    }

    #[test]
    fn attribute_change_is_set_attributes_and_facts_name_symlinks() {
        let link = FileFacts {
            mode: libc::S_IFLNK | 0o777,
            ..FACTS
        };
        assert_eq!(link.type_id(), 7);
        let ev = file_event(
            &obs(FileChange::Attributes, Some(link)),
            actor(),
            None,
            &Device::default(),
            SourceKind::Fanotify,
        )
        .unwrap_or_else(|e| panic!("event: {e}"));
        assert_eq!(n(&ev, "activity_id"), Some(6));
        assert_eq!(s(&ev, "activity_name").as_deref(), Some("Set Attributes"));
        assert!(
            ev.get("file.size").is_none(),
            "sizes only for regular files"
        );
    }

    #[test]
    fn facts_of_a_real_file() {
        let facts = FileFacts::of("/proc/self/exe").map(FileFacts::type_id);
        assert_eq!(facts, Some(7));
        assert_eq!(FileFacts::of("/").map(FileFacts::type_id), Some(2));
        assert!(FileFacts::of("/nonexistent/vigil").is_none());
    }
}
