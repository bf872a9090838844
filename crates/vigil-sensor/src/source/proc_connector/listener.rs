//! The capture thread: receives proc connector events and reads `/proc` for each exec.

use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;

use super::message::{ProcEvent, parse_datagram};
use super::socket::ProcConnectorSocket;
use crate::clock::{self, Clocks};
use crate::enrich::procfs;
use crate::normalise::ExecObservation;
use crate::source::{Emitter, Flow, Wake, wait_readable};

/// Tolerance when checking that a process started before its own exec event, for the 10 ms
/// tick resolution of `/proc/<pid>/stat`.
const START_SLACK_MS: i64 = 20;

/// Runs until stop is raised, the sink closes, or the socket fails.
pub(crate) fn run(socket: ProcConnectorSocket, mut emitter: Emitter) {
    let hz = emitter.hz();
    let mut buf = vec![0u8; 64 * 1024];
    let mut overruns: u64 = 0;
    loop {
        match wait_readable(Some(socket.as_fd()), emitter.stop(), -1) {
            Ok(Wake::Ready | Wake::Timeout) => {}
            Ok(Wake::Stop) => return,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => {
                tracing::error!(%error, "Polling the proc connector failed; capture stops");
                return;
            }
        }
        let clocks = Clocks::now();
        loop {
            let n = match socket.recv(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    // The kernel dropped an unknown number of events; count the overrun once, and
                    // warn once per sensor: a fork storm would otherwise flood the log too.
                    overruns += 1;
                    emitter.stats().dropped.fetch_add(1, Ordering::Relaxed);
                    if overruns == 1 {
                        tracing::warn!("Proc connector overrun (ENOBUFS): exec events were lost");
                    } else {
                        tracing::debug!(overruns, "Proc connector overrun (ENOBUFS)");
                    }
                    continue;
                }
                Err(error) => {
                    tracing::error!(%error, "Reading the proc connector failed; capture stops");
                    return;
                }
            };
            for event in parse_datagram(&buf[..n]) {
                if let ProcEvent::Exec {
                    tgid, timestamp_ns, ..
                } = event
                {
                    let obs = observe(tgid, clocks.mono_ns_to_ms(timestamp_ns), clocks, hz);
                    if emitter.emit(&obs, clocks) == Flow::Stop {
                        return;
                    }
                }
            }
            if emitter.stop().is_raised() {
                return;
            }
        }
    }
}

/// Reads what `/proc/<pid>` still shows. If the pid now belongs to a process that started
/// after the exec, nothing read from it is used.
fn observe(pid: u32, time_ms: i64, clocks: Clocks, hz: u64) -> ExecObservation {
    let mut obs = ExecObservation {
        time_ms,
        pid,
        ..Default::default()
    };
    let Some(stat) = procfs::read_stat(pid) else {
        return obs;
    };
    let created_ms = clocks.boot_ns_to_ms(clock::ticks_to_boot_ns(stat.start_ticks, hz));
    if created_ms > time_ms + START_SLACK_MS {
        return obs;
    }
    obs.ppid = Some(stat.ppid);
    obs.start_ticks = Some(stat.start_ticks);
    obs.created_ms = Some(created_ms);
    obs.comm = stat.comm;
    obs.ids = procfs::read_ids(pid);
    obs.exe = procfs::read_exe(pid);
    obs.cmd_line = procfs::read_cmdline(pid).map(|(line, _)| line);
    obs
}
