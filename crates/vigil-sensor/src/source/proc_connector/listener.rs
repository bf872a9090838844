//! The capture thread: receives proc connector events and reads `/proc` for what they lack.

use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;

use vigil_ocsf::ExitStatus;

use super::message::{ProcEvent, parse_datagram};
use super::socket::ProcConnectorSocket;
use crate::clock::{self, Clocks};
use crate::enrich::procfs;
use crate::normalise::{ExecObservation, ExitObservation, ForkObservation, Observation, TaskFacts};
use crate::source::{Emitter, Flow, Wake, wait_readable};

/// Tolerance when checking that a process started before its own event, for the 10 ms tick
/// resolution of `/proc/<pid>/stat`.
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
                        tracing::warn!(
                            "Proc connector overrun (ENOBUFS): process events were lost"
                        );
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
                let Some(obs) = observe(event, clocks, hz) else {
                    continue;
                };
                if emitter.emit(&obs, clocks) == Flow::Stop {
                    return;
                }
            }
            if emitter.stop().is_raised() {
                return;
            }
        }
    }
}

/// The observation an event stands for: execs, forks of new processes (not threads) and exits
/// of thread-group leaders. A leader that ends with `pthread_exit` while other threads go on is
/// reported as the process ending; the connector says no more.
fn observe(event: ProcEvent, clocks: Clocks, hz: u64) -> Option<Observation> {
    Some(match event {
        ProcEvent::Exec {
            tgid, timestamp_ns, ..
        } => {
            let time_ms = clocks.mono_ns_to_ms(timestamp_ns);
            let mut obs = ExecObservation {
                time_ms,
                task: task_facts(tgid, time_ms, clocks, hz),
                ..Default::default()
            };
            if obs.task.start_ticks.is_some() {
                obs.exe = procfs::read_exe(tgid);
                obs.cmd_line = procfs::read_cmdline(tgid).map(|(line, _)| line);
                obs.argv = procfs::read_argv(tgid);
            }
            Observation::Exec(obs)
        }
        ProcEvent::Fork {
            parent_tgid,
            child_pid,
            child_tgid,
            timestamp_ns,
        } if child_pid == child_tgid => {
            let time_ms = clocks.mono_ns_to_ms(timestamp_ns);
            let mut task = task_facts(child_tgid, time_ms, clocks, hz);
            task.ppid = Some(parent_tgid);
            Observation::Fork(ForkObservation { time_ms, task })
        }
        ProcEvent::Exit {
            pid,
            tgid,
            exit_code,
            parent_tgid,
            timestamp_ns,
        } if pid == tgid => {
            let time_ms = clocks.mono_ns_to_ms(timestamp_ns);
            let mut task = task_facts(tgid, time_ms, clocks, hz);
            task.ppid = Some(parent_tgid);
            Observation::Exit(ExitObservation {
                time_ms,
                task,
                status: ExitStatus::from_wait_status(i32::from_ne_bytes(exit_code.to_ne_bytes())),
            })
        }
        _ => return None,
    })
}

/// What `/proc/<pid>` still shows. If the pid now belongs to a process that started after the
/// event, nothing read from it is used.
fn task_facts(pid: u32, time_ms: i64, clocks: Clocks, hz: u64) -> TaskFacts {
    let mut task = TaskFacts {
        pid,
        tid: Some(pid),
        ..Default::default()
    };
    let Some(stat) = procfs::read_stat(pid) else {
        return task;
    };
    let created_ms = clocks.boot_ns_to_ms(clock::ticks_to_boot_ns(stat.start_ticks, hz));
    if created_ms > time_ms + START_SLACK_MS {
        return task;
    }
    task.ppid = Some(stat.ppid);
    task.start_ticks = Some(stat.start_ticks);
    task.created_ms = Some(created_ms);
    task.tty = procfs::tty_name(stat.tty_nr);
    task.comm = stat.comm;
    task.ids = procfs::read_ids(pid);
    task.auid = procfs::read_loginuid(pid);
    task.sessionid = procfs::read_sessionid(pid);
    task
}
