//! The capture thread: drains the exec ring buffer and turns records into observations.

use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;

use aya::Ebpf;
use aya::maps::{MapData, RingBuf};

use super::record::{ExecRecord, parse_record};
use crate::clock::{self, Clocks};
use crate::enrich::{join_argv, procfs, resolve_exec_path};
use crate::normalise::ExecObservation;
use crate::source::{Emitter, Flow, Wake, wait_readable};

/// Runs until stop is raised or the sink closes. `ebpf` is held so the program stays attached
/// exactly as long as someone drains it.
pub(crate) fn run(ebpf: Ebpf, mut events: RingBuf<MapData>, mut emitter: Emitter) {
    let _attached = ebpf;
    let hz = emitter.hz();
    loop {
        match wait_readable(Some(events.as_fd()), emitter.stop(), -1) {
            Ok(Wake::Ready | Wake::Timeout) => {}
            Ok(Wake::Stop) => return,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => {
                tracing::error!(%error, "Polling the exec ring buffer failed; eBPF capture stops");
                return;
            }
        }
        let clocks = Clocks::now();
        while let Some(item) = events.next() {
            let parsed = parse_record(&item);
            drop(item);
            match parsed {
                Ok(record) => {
                    let obs = observe(&record, clocks, hz);
                    if emitter.emit(&obs, clocks) == Flow::Stop {
                        return;
                    }
                }
                Err(error) => {
                    emitter.stats().dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%error, "Skipped a malformed exec record");
                }
            }
            if emitter.stop().is_raised() {
                return;
            }
        }
    }
}

/// What the record says, plus `/proc/<pid>` reads only when the executed name was relative.
fn observe(record: &ExecRecord, clocks: Clocks, hz: u64) -> ExecObservation {
    let exe = record.filename().map(|filename| {
        if filename.starts_with('/') && !filename.starts_with("/dev/fd/") {
            filename
        } else {
            let exe = procfs::read_exe(record.pid);
            let cwd = procfs::read_cwd(record.pid);
            resolve_exec_path(&filename, exe.as_deref(), cwd.as_deref())
        }
    });
    let argv = join_argv(record.argv());
    if record.args_truncated() {
        tracing::trace!(
            pid = record.pid,
            size = record.args_size,
            "Command line truncated"
        );
    }
    let known_start = |ns: u64| (ns != 0).then(|| clock::boot_ns_to_ticks(ns, hz));
    ExecObservation {
        time_ms: clocks.boot_ns_to_ms(record.ktime_ns),
        pid: record.pid,
        ppid: Some(record.ppid),
        start_ticks: known_start(record.start_boottime_ns),
        created_ms: (record.start_boottime_ns != 0)
            .then(|| clocks.boot_ns_to_ms(record.start_boottime_ns)),
        parent_start_ticks: known_start(record.parent_start_boottime_ns),
        ids: Some(procfs::Ids {
            uid: record.uid,
            euid: record.euid,
            gid: record.gid,
            egid: record.egid,
        }),
        comm: record.comm(),
        exe,
        cmd_line: (!argv.is_empty()).then_some(argv),
    }
}
