//! Process records → observations: what the record says, plus `/proc/<pid>` reads only when an
//! executed name was relative.

use vigil_ocsf::ExitStatus;

use super::record::{ExecRecord, ExitRecord, ForkRecord, Record, Task};
use super::tcp::observe_tcp;
use crate::clock::{self, Clocks};
use crate::enrich::{join_argv, procfs, resolve_exec_path, split_argv};
use crate::normalise::{ExecObservation, ExitObservation, ForkObservation, Observation, TaskFacts};

/// The observation a record stands for; `None` for records that say nothing usable.
pub(crate) fn observe(record: &Record, clocks: Clocks, hz: u64) -> Option<Observation> {
    Some(match record {
        Record::Exec(r) => Observation::Exec(exec(r, clocks, hz)),
        Record::Fork(r) => Observation::Fork(fork(r, clocks, hz)),
        Record::Exit(r) => Observation::Exit(exit(r, clocks, hz)),
        Record::Tcp(r) => Observation::Tcp(observe_tcp(r, clocks, hz)?),
    })
}

fn task_facts(task: &Task, clocks: Clocks, hz: u64) -> TaskFacts {
    let known_start = |ns: u64| (ns != 0).then(|| clock::boot_ns_to_ticks(ns, hz));
    TaskFacts {
        pid: task.pid,
        tid: Some(task.tid),
        ppid: Some(task.ppid),
        start_ticks: known_start(task.start_boottime_ns),
        created_ms: (task.start_boottime_ns != 0)
            .then(|| clocks.boot_ns_to_ms(task.start_boottime_ns)),
        parent_start_ticks: known_start(task.parent_start_boottime_ns),
        ids: Some(procfs::Ids {
            uid: task.uid,
            euid: task.euid,
            gid: task.gid,
            egid: task.egid,
        }),
        auid: task.auid(),
        sessionid: task.sessionid(),
        tty: task.tty(),
        comm: task.comm(),
    }
}

fn exec(record: &ExecRecord, clocks: Clocks, hz: u64) -> ExecObservation {
    let pid = record.task.pid;
    let exe = record.filename().map(|filename| {
        if filename.starts_with('/') && !filename.starts_with("/dev/fd/") {
            filename
        } else {
            let exe = procfs::read_exe(pid);
            let cwd = procfs::read_cwd(pid);
            resolve_exec_path(&filename, exe.as_deref(), cwd.as_deref())
        }
    });
    let argv = join_argv(record.argv());
    if record.args_truncated() {
        tracing::trace!(pid, size = record.args_size, "Command line truncated");
    }
    ExecObservation {
        time_ms: clocks.boot_ns_to_ms(record.hdr.ktime_ns),
        task: task_facts(&record.task, clocks, hz),
        exe,
        cmd_line: (!argv.is_empty()).then_some(argv),
        argv: split_argv(record.argv()),
    }
}

fn fork(record: &ForkRecord, clocks: Clocks, hz: u64) -> ForkObservation {
    ForkObservation {
        time_ms: clocks.boot_ns_to_ms(record.hdr.ktime_ns),
        task: task_facts(&record.task, clocks, hz),
    }
}

fn exit(record: &ExitRecord, clocks: Clocks, hz: u64) -> ExitObservation {
    ExitObservation {
        time_ms: clocks.boot_ns_to_ms(record.hdr.ktime_ns),
        task: task_facts(&record.task, clocks, hz),
        status: ExitStatus::from_wait_status(record.exit_code),
    }
}
