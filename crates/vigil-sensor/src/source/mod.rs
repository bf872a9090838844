//! Capture sources, one folder each, and the plumbing they share: a capture thread with a stop
//! signal, and the [`Emitter`] that enriches, normalises and delivers each observation.
//!
//! - `ebpf`: process lifecycle and TCP from the kernel (one thread drains both ring buffers);
//! - `proc_connector`: process lifecycle from the netlink process connector (fallback);
//! - `proc_net`: TCP sockets by polling `/proc/net/tcp{,6}` (fallback), and the socket-inode →
//!   process join that also seeds the eBPF listener table;
//! - `fanotify`: file activity under the configured paths, from a filesystem-wide fanotify
//!   group reporting directory handles and names;
//! - `auth`: logins and authentications from the authentication log (files or the journal)
//!   and wtmp/btmp, and the log's lines;
//! - `dns`: DNS queries and responses over UDP from a packet socket filtered to port 53.

pub(crate) mod auth;
pub(crate) mod dns;
pub(crate) mod ebpf;
pub(crate) mod fanotify;
pub(crate) mod proc_connector;
pub(crate) mod proc_net;

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;

use tokio::sync::mpsc::{Sender, error::TrySendError};
use vigil_ocsf::{Device, Event};

use crate::SourceKind;
use crate::clock::Clocks;
use crate::enrich::{Enricher, SharedProcesses};
use crate::normalise::{
    Observation, auth_event, dns_event, exit_event, file_event, fork_event, launch_event,
    log_event, network_event,
};

/// How long a capture thread waits on a full sink before checking for stop again.
const FULL_SINK_RETRY_MS: i32 = 10;

/// Counters a capture thread shares with its [`crate::Sensor`].
#[derive(Debug, Default)]
pub(crate) struct SourceStats {
    /// Records lost in user space (unparsable records, socket overruns).
    pub(crate) dropped: AtomicU64,
    /// True while the capture thread runs.
    pub(crate) live: AtomicBool,
}

/// Tells a capture thread, blocked in `poll(2)`, to finish: an eventfd that becomes readable.
#[derive(Debug)]
pub(crate) struct StopSignal {
    fd: OwnedFd,
    raised: AtomicBool,
}

impl StopSignal {
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: eventfd takes no pointers; the result is checked before use.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh, valid descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(Self {
            fd,
            raised: AtomicBool::new(false),
        })
    }

    pub(crate) fn raise(&self) {
        self.raised.store(true, Ordering::SeqCst);
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to an eventfd we own. A failure (counter
        // overflow) still leaves the eventfd readable, which is all we need.
        let _ = unsafe {
            libc::write(
                self.fd.as_raw_fd(),
                (&raw const one).cast::<libc::c_void>(),
                size_of::<u64>(),
            )
        };
    }

    pub(crate) fn is_raised(&self) -> bool {
        self.raised.load(Ordering::SeqCst)
    }
}

/// What [`wait_readable`] saw.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// The watched descriptor has data.
    Ready,
    /// Stop was raised.
    Stop,
    /// The timeout passed.
    Timeout,
}

/// Blocks until `fd` is readable, stop is raised, or `timeout_ms` passes (-1: no timeout).
pub(crate) fn wait_readable(
    fd: Option<BorrowedFd<'_>>,
    stop: &StopSignal,
    timeout_ms: i32,
) -> io::Result<Wake> {
    wait_any(&[fd], stop, timeout_ms)
}

/// Blocks until one of `fds` is readable, stop is raised, or `timeout_ms` passes (-1: no
/// timeout). `None` entries are ignored.
pub(crate) fn wait_any(
    fds: &[Option<BorrowedFd<'_>>],
    stop: &StopSignal,
    timeout_ms: i32,
) -> io::Result<Wake> {
    let pollfd = |fd: i32| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let mut polled = vec![pollfd(stop.fd.as_raw_fd())];
    polled.extend(
        fds.iter()
            .map(|fd| pollfd(fd.map_or(-1, |fd| fd.as_raw_fd()))),
    );
    let count = libc::nfds_t::try_from(polled.len()).unwrap_or(1);
    // SAFETY: `polled` is a live array of `count` pollfd; negative fds are ignored by poll(2).
    let n = unsafe { libc::poll(polled.as_mut_ptr(), count, timeout_ms) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if stop.is_raised() || polled[0].revents != 0 {
        Ok(Wake::Stop)
    } else if polled[1..].iter().any(|p| p.revents != 0) {
        Ok(Wake::Ready)
    } else {
        Ok(Wake::Timeout)
    }
}

/// Whether a capture loop should go on.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    Stop,
}

/// Enriches, normalises and delivers observations from one source.
pub(crate) struct Emitter {
    source: SourceKind,
    device: Device,
    sink: Sender<Event>,
    enricher: Enricher,
    stats: Arc<SourceStats>,
    stop: Arc<StopSignal>,
}

impl Emitter {
    pub(crate) fn new(
        source: SourceKind,
        device: Device,
        sink: Sender<Event>,
        stats: Arc<SourceStats>,
        stop: Arc<StopSignal>,
        processes: SharedProcesses,
    ) -> Self {
        Self {
            source,
            device,
            sink,
            enricher: Enricher::new(processes),
            stats,
            stop,
        }
    }

    pub(crate) fn hz(&self) -> u64 {
        self.enricher.hz()
    }

    /// Learns the processes already running (see [`Enricher::seed_from_proc`]); called before
    /// the capture thread starts, so records queued meanwhile find them.
    pub(crate) fn seed_processes(&mut self) {
        let seeded = self.enricher.seed_from_proc();
        tracing::debug!(seeded, source = %self.source, "Seeded the process cache from /proc");
    }

    pub(crate) fn stats(&self) -> &SourceStats {
        &self.stats
    }

    pub(crate) fn stop(&self) -> &StopSignal {
        &self.stop
    }

    /// Turns one observation into an event and hands it to the sink. A full sink is waited on
    /// (the kernel side then counts drops); a closed sink or a stop ends the loop.
    pub(crate) fn emit(&mut self, obs: &Observation, clocks: Clocks) -> Flow {
        let (device, source) = (&self.device, self.source);
        let normalised = match obs {
            Observation::Exec(o) => {
                launch_event(o, self.enricher.exec(o, clocks), device, source).map(Some)
            }
            Observation::Fork(o) => {
                fork_event(o, self.enricher.fork(o, clocks), device, source).map(Some)
            }
            Observation::Exit(o) => {
                exit_event(o, self.enricher.exit(o, clocks), device, source).map(Some)
            }
            Observation::Tcp(o) => {
                let actor = o
                    .owner
                    .as_ref()
                    .map(|owner| self.enricher.owner(owner, clocks));
                network_event(o, actor, device, source)
            }
            Observation::File(o) => {
                let actor = self.enricher.file_actor(o.pid, clocks);
                let owner = o.facts.map(|facts| self.enricher.user(facts.uid));
                file_event(o, actor, owner, device, source).map(Some)
            }
            Observation::Auth(o) => {
                let user = self.enricher.account(&o.facts.user);
                let actor_user = o
                    .facts
                    .actor_user
                    .as_ref()
                    .map(|a| self.enricher.account(a));
                auth_event(o, user, actor_user, device).map(Some)
            }
            Observation::Log(o) => log_event(o, device).map(Some),
            Observation::Dns(o) => {
                let actor = o
                    .owner
                    .as_ref()
                    .map(|owner| self.enricher.owner(owner, clocks));
                dns_event(o, actor, device).map(Some)
            }
        };
        let mut event = match normalised {
            Ok(Some(event)) => event,
            Ok(None) => return Flow::Continue,
            Err(error) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%error, pid = obs.pid(), "Dropped an observation that did not normalise");
                return Flow::Continue;
            }
        };
        loop {
            match self.sink.try_send(event) {
                Ok(()) => return Flow::Continue,
                Err(TrySendError::Closed(_)) => {
                    tracing::debug!(source = %self.source, "Event receiver gone, stopping");
                    return Flow::Stop;
                }
                Err(TrySendError::Full(back)) => {
                    event = back;
                    if let Ok(Wake::Stop) = wait_readable(None, &self.stop, FULL_SINK_RETRY_MS) {
                        return Flow::Stop;
                    }
                }
            }
        }
    }
}

/// A running capture thread; raising stop and joining happen on [`CaptureThread::shutdown`] or
/// drop.
#[derive(Debug)]
pub(crate) struct CaptureThread {
    stop: Arc<StopSignal>,
    stats: Arc<SourceStats>,
    handle: Option<JoinHandle<()>>,
}

impl CaptureThread {
    /// Starts `body` on a thread named `name`; `stats.live` is true until it returns.
    pub(crate) fn spawn(
        name: &str,
        stop: Arc<StopSignal>,
        stats: Arc<SourceStats>,
        body: impl FnOnce() + Send + 'static,
    ) -> io::Result<Self> {
        stats.live.store(true, Ordering::SeqCst);
        let thread_stats = Arc::clone(&stats);
        let spawned = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let _live = LiveGuard(thread_stats);
                body();
            });
        match spawned {
            Ok(handle) => Ok(Self {
                stop,
                stats,
                handle: Some(handle),
            }),
            Err(error) => {
                stats.live.store(false, Ordering::SeqCst);
                Err(error)
            }
        }
    }

    pub(crate) fn stats(&self) -> &SourceStats {
        &self.stats
    }

    pub(crate) fn shutdown(&mut self) {
        self.stop.raise();
        if let Some(handle) = self.handle.take()
            && handle.join().is_err()
        {
            tracing::error!("A capture thread panicked");
        }
    }
}

impl Drop for CaptureThread {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Clears `live` when the capture thread ends, also by panic.
struct LiveGuard(Arc<SourceStats>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.live.store(false, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_signal_wakes_poll() -> io::Result<()> {
        let stop = StopSignal::new()?;
        assert_eq!(wait_readable(None, &stop, 0)?, Wake::Timeout);
        stop.raise();
        assert_eq!(wait_readable(None, &stop, -1)?, Wake::Stop);
        Ok(())
    }

    #[test]
    fn capture_thread_reports_live_until_it_ends() -> io::Result<()> {
        let stop = Arc::new(StopSignal::new()?);
        let stats = Arc::new(SourceStats::default());
        let body_stop = Arc::clone(&stop);
        let mut thread = CaptureThread::spawn("test", stop, Arc::clone(&stats), move || {
            let _ = wait_readable(None, &body_stop, -1);
        })?;
        assert!(stats.live.load(Ordering::SeqCst));
        thread.shutdown();
        assert!(!thread.stats().live.load(Ordering::SeqCst));
        Ok(())
    }
}
