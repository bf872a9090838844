//! A source's observation of one exec → an OCSF Process Activity `Launch` event.

use vigil_ocsf::{
    Device, Event, EventError, File, Metadata, Process, ProcessActivity, ProcessActivityId,
};

use crate::SourceKind;
use crate::enrich::{Enrichment, basename, procfs::Ids};

/// What a source saw of one exec, before enrichment. Fields a source could not learn are `None`.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ExecObservation {
    /// When the exec happened, ms since the epoch.
    pub(crate) time_ms: i64,
    /// Process id (tgid).
    pub(crate) pid: u32,
    /// Parent process id (`real_parent->tgid`).
    pub(crate) ppid: Option<u32>,
    /// Process start in clock ticks since boot (`/proc/<pid>/stat` field 22).
    pub(crate) start_ticks: Option<u64>,
    /// Process start, ms since the epoch.
    pub(crate) created_ms: Option<i64>,
    /// The parent's start in clock ticks since boot, to tell it from a reused pid.
    pub(crate) parent_start_ticks: Option<u64>,
    /// Real and effective user and group ids.
    pub(crate) ids: Option<Ids>,
    /// `comm` (at most 15 bytes).
    pub(crate) comm: String,
    /// Absolute executable path.
    pub(crate) exe: Option<String>,
    /// Command line, arguments joined with spaces.
    pub(crate) cmd_line: Option<String>,
}

/// `process.uid`: `<pid>-<start ticks>`, stable across sources and unique across pid reuse.
pub(crate) fn process_uid(pid: u32, start_ticks: u64) -> String {
    format!("{pid}-{start_ticks}")
}

/// `process.name`: the executable's base name, else `comm`.
pub(crate) fn process_name(obs: &ExecObservation) -> String {
    match obs.exe.as_deref() {
        Some(exe) if !exe.is_empty() => {
            basename(exe.strip_suffix(" (deleted)").unwrap_or(exe)).to_owned()
        }
        _ => obs.comm.clone(),
    }
}

/// The OCSF Process Activity record for an exec.
pub(crate) fn launch(
    obs: &ExecObservation,
    enrichment: Enrichment,
    device: &Device,
    source: SourceKind,
) -> ProcessActivity {
    let process = Process {
        pid: obs.pid,
        uid: obs.start_ticks.map(|t| process_uid(obs.pid, t)),
        name: process_name(obs),
        cmd_line: obs.cmd_line.clone(),
        file: obs.exe.as_deref().map(File::regular),
        user: enrichment.user,
        working_directory: None,
        created_time: obs.created_ms,
        parent_process: enrichment.parent.map(Box::new),
        euid: obs.ids.map(|ids| ids.euid),
        egid: obs.ids.map(|ids| ids.egid),
    };
    ProcessActivity::new(
        ProcessActivityId::Launch,
        obs.time_ms,
        Metadata::vigil(source.as_str()),
        device.clone(),
        process,
    )
}

/// [`launch`] wrapped in the generic event envelope.
pub(crate) fn launch_event(
    obs: &ExecObservation,
    enrichment: Enrichment,
    device: &Device,
    source: SourceKind,
) -> Result<Event, EventError> {
    Event::from_record(&launch(obs, enrichment, device, source))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observation() -> ExecObservation {
        ExecObservation {
            time_ms: 1_700_000_000_123,
            pid: 4400,
            ppid: Some(4321),
            start_ticks: Some(98_765),
            created_ms: Some(1_700_000_000_100),
            parent_start_ticks: Some(12_345),
            ids: Some(Ids {
                uid: 1000,
                euid: 0,
                gid: 1000,
                egid: 0,
            }),
            comm: "curl".into(),
            exe: Some("/usr/bin/curl".into()),
            cmd_line: Some("curl -s http://x".into()),
        }
    }

    #[test]
    fn launch_event_carries_process_parent_and_source() {
        let enrichment = Enrichment {
            user: Some(vigil_ocsf::User {
                name: Some("alice".into()),
                uid: "1000".into(),
                type_id: 1,
            }),
            parent: Some(Process {
                pid: 4321,
                name: "bash".into(),
                cmd_line: Some("-bash".into()),
                file: Some(File::regular("/usr/bin/bash")),
                ..Default::default()
            }),
        };
        let ev = launch_event(
            &observation(),
            enrichment,
            &Device::default(),
            SourceKind::Ebpf,
        )
        .unwrap_or_else(|e| panic!("event: {e}"));
        let s = |path: &str| ev.get(path).and_then(|v| v.as_str()).map(str::to_owned);
        let n = |path: &str| ev.get(path).and_then(|v| v.as_u64());
        assert_eq!(ev.class_uid, 1007);
        assert_eq!(ev.time, 1_700_000_000_123);
        assert_eq!(n("activity_id"), Some(1));
        assert_eq!(s("metadata.log_name").as_deref(), Some("ebpf"));
        assert_eq!(s("process.uid").as_deref(), Some("4400-98765"));
        assert_eq!(s("process.name").as_deref(), Some("curl"));
        assert_eq!(s("process.file.path").as_deref(), Some("/usr/bin/curl"));
        assert_eq!(s("process.user.name").as_deref(), Some("alice"));
        assert_eq!(n("process.euid"), Some(0));
        assert_eq!(
            s("process.parent_process.cmd_line").as_deref(),
            Some("-bash")
        );
        assert_eq!(
            s("actor.process.file.path").as_deref(),
            Some("/usr/bin/bash")
        );
    }

    #[test]
    fn name_falls_back_to_comm_and_strips_deleted() {
        let mut obs = observation();
        obs.exe = Some("/tmp/x (deleted)".into());
        assert_eq!(process_name(&obs), "x");
        obs.exe = None;
        assert_eq!(process_name(&obs), "curl");
    }
}
