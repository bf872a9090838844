//! Exec, fork and exit observations → OCSF Process Activity `Launch` / `Terminate`.

use vigil_ocsf::{
    Device, Event, EventError, ExitStatus, File, Fingerprint, LaunchType, Metadata, Process,
    ProcessActivity, ProcessActivityId, Session,
};

use crate::SourceKind;
use crate::enrich::{Enrichment, basename, procfs::Ids};

/// What a source saw of the process an event is about. Fields it could not learn are `None`.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct TaskFacts {
    /// Process id (tgid).
    pub(crate) pid: u32,
    /// The thread that acted.
    pub(crate) tid: Option<u32>,
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
    /// Login uid, when set.
    pub(crate) auid: Option<u32>,
    /// Audit session id, when set.
    pub(crate) sessionid: Option<u32>,
    /// Controlling terminal (`pts/0`).
    pub(crate) tty: Option<String>,
    /// `comm` (at most 15 bytes).
    pub(crate) comm: String,
}

/// One exec.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ExecObservation {
    /// When the exec happened, ms since the epoch.
    pub(crate) time_ms: i64,
    /// The process, after the exec.
    pub(crate) task: TaskFacts,
    /// Absolute executable path.
    pub(crate) exe: Option<String>,
    /// Command line, arguments joined with spaces.
    pub(crate) cmd_line: Option<String>,
    /// The same arguments, each whole (the auditd view's `a0`…`aN`).
    pub(crate) argv: Vec<String>,
}

/// One new process (a fork that created a thread group, not a thread).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ForkObservation {
    /// When, ms since the epoch.
    pub(crate) time_ms: i64,
    /// The child; it runs its parent's image until it execs.
    pub(crate) task: TaskFacts,
}

/// One process ending (its last thread exited).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ExitObservation {
    /// When, ms since the epoch.
    pub(crate) time_ms: i64,
    /// The process; `tid` is its last thread.
    pub(crate) task: TaskFacts,
    /// What `wait(2)` reports.
    pub(crate) status: ExitStatus,
}

/// `process.uid`: `<pid>-<start ticks>`, stable across sources and unique across pid reuse.
pub(crate) fn process_uid(pid: u32, start_ticks: u64) -> String {
    format!("{pid}-{start_ticks}")
}

/// `process.name`: the executable's base name, else `comm`.
pub(crate) fn image_name(exe: Option<&str>, comm: &str) -> String {
    match exe {
        Some(exe) if !exe.is_empty() => {
            basename(exe.strip_suffix(" (deleted)").unwrap_or(exe)).to_owned()
        }
        _ => comm.to_owned(),
    }
}

/// The OCSF process for `task` running `exe`/`cmd_line`, with what enrichment found.
fn process(
    task: &TaskFacts,
    name: String,
    exe: Option<&str>,
    cmd_line: Option<String>,
    enrichment: Enrichment,
) -> Process {
    let session = (task.sessionid.is_some() || task.tty.is_some()).then(|| Session {
        uid: task.sessionid.map(|id| id.to_string()),
        terminal: task.tty.clone(),
    });
    Process {
        pid: task.pid,
        tid: task.tid,
        uid: task.start_ticks.map(|t| process_uid(task.pid, t)),
        name,
        cmd_line,
        file: exe.map(|path| File {
            hashes: enrichment
                .exe_sha256
                .clone()
                .map(Fingerprint::sha256)
                .into_iter()
                .collect(),
            ..File::regular(path)
        }),
        user: enrichment.user,
        created_time: task.created_ms,
        parent_process: enrichment.parent.map(Box::new),
        ancestry: enrichment.ancestry,
        session,
        auid: task.auid,
        euid: task.ids.map(|ids| ids.euid),
        egid: task.ids.map(|ids| ids.egid),
        ..Default::default()
    }
}

fn activity(
    id: ProcessActivityId,
    time_ms: i64,
    process: Process,
    device: &Device,
    source: SourceKind,
) -> ProcessActivity {
    ProcessActivity::new(
        id,
        time_ms,
        Metadata::vigil(source.as_str()),
        device.clone(),
        process,
    )
}

/// An exec: `Launch` with launch type Exec.
pub(crate) fn launch_event(
    obs: &ExecObservation,
    enrichment: Enrichment,
    device: &Device,
    source: SourceKind,
) -> Result<Event, EventError> {
    let name = image_name(obs.exe.as_deref(), &obs.task.comm);
    let process = process(
        &obs.task,
        name,
        obs.exe.as_deref(),
        obs.cmd_line.clone(),
        enrichment,
    );
    let record = activity(
        ProcessActivityId::Launch,
        obs.time_ms,
        process,
        device,
        source,
    )
    .with_launch_type(LaunchType::Exec)
    .with_argv(obs.argv.clone());
    Event::from_record(&record)
}

/// A fork: `Launch` with launch type Fork; the child is described by the image it inherited
/// (from enrichment), else by `comm`.
pub(crate) fn fork_event(
    obs: &ForkObservation,
    mut enrichment: Enrichment,
    device: &Device,
    source: SourceKind,
) -> Result<Event, EventError> {
    let process = image_process(&obs.task, &mut enrichment);
    let record = activity(
        ProcessActivityId::Launch,
        obs.time_ms,
        process,
        device,
        source,
    )
    .with_launch_type(LaunchType::Fork);
    Event::from_record(&record)
}

/// An exit: `Terminate` with the exit code, the signal, and `process.terminated_time`.
pub(crate) fn exit_event(
    obs: &ExitObservation,
    mut enrichment: Enrichment,
    device: &Device,
    source: SourceKind,
) -> Result<Event, EventError> {
    let mut process = image_process(&obs.task, &mut enrichment);
    process.terminated_time = Some(obs.time_ms);
    let record = activity(
        ProcessActivityId::Terminate,
        obs.time_ms,
        process,
        device,
        source,
    )
    .with_exit_status(obs.status);
    Event::from_record(&record)
}

fn image_process(task: &TaskFacts, enrichment: &mut Enrichment) -> Process {
    let image = enrichment.image.take();
    let exe = image.as_ref().and_then(|i| i.exe.clone());
    let name = image
        .as_ref()
        .map(|i| i.name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| task.comm.clone());
    let cmd_line = image.and_then(|i| i.cmd_line);
    process(
        task,
        name,
        exe.as_deref(),
        cmd_line,
        std::mem::take(enrichment),
    )
}

#[cfg(test)]
#[path = "process_tests.rs"]
mod tests;
