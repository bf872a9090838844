//! [`Sensor`]: picks a source for each kind of telemetry, starts the capture threads, and
//! reports on them.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use aya::maps::{Array, MapData};
use tokio::sync::mpsc::Sender;
use vigil_ocsf::Event;

use crate::enrich::SharedProcesses;
use crate::source::ebpf::{self, LoadedObject, Rings};
use crate::source::{
    CaptureThread, Emitter, SourceStats, StopSignal, auth, dns, fanotify, proc_connector, proc_net,
};
use crate::{Capability, SensorConfig, SensorError, SourceKind, SourceMode};

/// How one kind of telemetry is captured.
#[derive(Debug)]
struct Slot {
    kind: SourceKind,
    detail: Option<String>,
    /// Index into `Sensor::threads`; `None` when no source could start.
    thread: Option<usize>,
}

/// A running capture of process lifecycle (exec, fork, exit), TCP and file activity. Dropping it
/// (or [`Sensor::stop`]) stops the capture threads and detaches the eBPF programs.
pub struct Sensor {
    process: Slot,
    network: Slot,
    files: Slot,
    auth: Slot,
    dns: Slot,
    /// Why inbound connection attempts (the port-scan input) are not fully seen; `None` when
    /// they are (eBPF TCP with both `inet_sock_set_state` and `tcp_send_reset`).
    attempts_gap: Option<String>,
    threads: Vec<CaptureThread>,
    kernel_drops: Vec<Array<MapData, u64>>,
    /// What the capture threads know about the host's processes, shared.
    processes: SharedProcesses,
}

impl std::fmt::Debug for Sensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sensor")
            .field("process", &self.process)
            .field("network", &self.network)
            .field("files", &self.files)
            .field("auth", &self.auth)
            .field("dns", &self.dns)
            .finish_non_exhaustive()
    }
}

impl Sensor {
    /// Starts capture; events go to `sink`.
    ///
    /// Returns once the sources are attached and the processes already running are known (read
    /// from `/proc`, so their forks and exits are named): every exec, fork, exit and TCP
    /// transition after this call is captured. Blocks for the eBPF load (about 0.1–0.3 s), so call it before
    /// entering async code or from `spawn_blocking`. The capture threads wait when `sink` is
    /// full (the kernel side then counts drops) and stop when its receiver is dropped.
    ///
    /// Fails when no process source can start; a missing network or file source only shows in
    /// [`Sensor::capabilities`]. File activity capture starts after the process source, so the
    /// processes acting on files are named from what it has learned.
    pub fn start(config: SensorConfig, sink: Sender<Event>) -> Result<Sensor, SensorError> {
        let mut sensor = Sensor {
            process: Slot::none(SourceKind::Ebpf),
            network: Slot::none(SourceKind::Ebpf),
            files: Slot::none(SourceKind::Fanotify),
            auth: Slot::none(SourceKind::LogFile),
            dns: Slot::none(SourceKind::Packet),
            attempts_gap: Some("no TCP capture source is running".into()),
            threads: Vec::new(),
            kernel_drops: Vec::new(),
            processes: SharedProcesses::new(),
        };
        match config.mode {
            SourceMode::Ebpf => {
                let btf = ebpf::read_btf()?;
                let process = ebpf::load(&ebpf::PROCESS, &btf)?;
                let tcp = ebpf::load(&ebpf::TCP, &btf)?;
                sensor.start_ebpf(&config, &sink, Some(process), Some(tcp))?;
            }
            SourceMode::ProcConnector => {
                let why = "eBPF not requested (mode proc_connector)";
                sensor.start_proc_connector(&config, &sink, why)?;
                sensor.start_proc_net(&config, &sink, why);
            }
            SourceMode::Auto => {
                let (process, tcp) = match ebpf::read_btf() {
                    Ok(btf) => (
                        ebpf::load(&ebpf::PROCESS, &btf),
                        ebpf::load(&ebpf::TCP, &btf).map_err(|e| e.to_string()),
                    ),
                    Err(error) => {
                        let text = error.to_string();
                        (Err(error), Err(text))
                    }
                };
                let (process, process_error) = split(process);
                let (tcp, tcp_error) = split(tcp);
                if process.is_some() || tcp.is_some() {
                    sensor.start_ebpf(&config, &sink, process, tcp)?;
                }
                if let Some(ebpf) = process_error {
                    tracing::warn!(
                        error = %ebpf,
                        "Falling back to the proc connector: eBPF process capture is unavailable"
                    );
                    let why = format!("eBPF unavailable: {ebpf}");
                    sensor.start_proc_connector(&config, &sink, &why).map_err(
                        |proc_connector| SensorError::NoSource {
                            ebpf: Box::new(ebpf),
                            proc_connector: Box::new(proc_connector),
                        },
                    )?;
                }
                if let Some(error) = tcp_error {
                    tracing::warn!(
                        %error,
                        "Falling back to /proc/net/tcp polling: eBPF TCP capture is unavailable"
                    );
                    sensor.start_proc_net(&config, &sink, &format!("eBPF unavailable: {error}"));
                }
            }
        }
        sensor.start_files(&config, &sink);
        sensor.start_auth(&config, &sink);
        sensor.start_dns(&config, &sink);
        // Loading parsed the kernel's BTF (megabytes of short-lived allocations) and seeding read
        // all of /proc: hand the freed heap back instead of keeping it resident for the
        // sensor's lifetime.
        // SAFETY: malloc_trim only releases free memory of glibc's heap; no pointer is involved.
        unsafe { libc::malloc_trim(0) };
        Ok(sensor)
    }

    /// The process (exec, fork, exit) source that is running.
    pub fn exec_source(&self) -> SourceKind {
        self.process.kind
    }

    /// The TCP source, `None` when none could start (see [`Sensor::capabilities`] for why).
    pub fn network_source(&self) -> Option<SourceKind> {
        self.network.thread.map(|_| self.network.kind)
    }

    /// What the sensor observes and through which source, and whether it is live right now:
    /// one [`Capability`] per kind of telemetry, `process`, `network`, then
    /// `connection_attempts`: inbound attempts including refused and half-open ones, the input
    /// of port-scan (T1046) detection, live only when the eBPF TCP capture runs with both its
    /// tracepoints (its detail says what is missing otherwise), then `file` (fanotify; its detail
    /// names the watched paths, or why it is off), then `auth` (`logfile`, `journald` or `utmp`;
    /// its detail names what is read, or why it is off), then `dns` (`packet`: DNS over UDP
    /// port 53, or why it is off).
    pub fn capabilities(&self) -> Vec<Capability> {
        let live = |slot: &Slot| {
            slot.thread
                .and_then(|i| self.threads.get(i))
                .is_some_and(|t| t.stats().live.load(Ordering::SeqCst))
        };
        let mut caps: Vec<Capability> = [("process", &self.process), ("network", &self.network)]
            .into_iter()
            .map(|(name, slot)| Capability {
                name: name.to_owned(),
                source: slot.kind.to_string(),
                live: live(slot),
                detail: slot.detail.clone(),
            })
            .collect();
        caps.push(Capability {
            name: "connection_attempts".to_owned(),
            source: self.network.kind.to_string(),
            live: live(&self.network) && self.attempts_gap.is_none(),
            detail: Some(self.attempts_gap.clone().unwrap_or_else(|| {
                "inbound attempts, refused and half-open included (port-scan input)".to_owned()
            })),
        });
        caps.push(Capability {
            name: "file".to_owned(),
            source: self.files.kind.to_string(),
            live: live(&self.files),
            detail: self.files.detail.clone(),
        });
        caps.push(Capability {
            name: "auth".to_owned(),
            source: self.auth.kind.to_string(),
            live: live(&self.auth),
            detail: self.auth.detail.clone(),
        });
        caps.push(Capability {
            name: "dns".to_owned(),
            source: self.dns.kind.to_string(),
            live: live(&self.dns),
            detail: self.dns.detail.clone(),
        });
        caps
    }

    /// Records lost so far, all sources together: ring buffers full in the kernel, netlink
    /// and fanotify queue overruns (each counts once, however many events it lost), records
    /// user space could not parse, file events whose directory was removed before it could
    /// be named, login records or journal entries that could not be read, and packets the DNS
    /// socket dropped.
    pub fn dropped(&self) -> u64 {
        let kernel: u64 = self
            .kernel_drops
            .iter()
            .filter_map(|drops| drops.get(&0, 0).ok())
            .sum();
        let user: u64 = self
            .threads
            .iter()
            .map(|t| t.stats().dropped.load(Ordering::Relaxed))
            .sum();
        kernel + user
    }

    /// Stops the capture threads and detaches the programs; the same happens on drop.
    pub fn stop(mut self) {
        for thread in &mut self.threads {
            thread.shutdown();
        }
    }

    fn start_ebpf(
        &mut self,
        config: &SensorConfig,
        sink: &Sender<Event>,
        process: Option<LoadedObject>,
        tcp: Option<LoadedObject>,
    ) -> Result<(), SensorError> {
        let mut objects = Vec::new();
        let mut rings = Rings {
            process: None,
            tcp: None,
        };
        let index = self.threads.len();
        if let Some(loaded) = process {
            tracing::info!(
                load_ms = loaded.load_time.as_secs_f64() * 1000.0,
                "Attached the eBPF process capture (exec, fork, exit)"
            );
            self.process = Slot::running(SourceKind::Ebpf, joined(&loaded.degraded), index);
            self.kernel_drops.push(loaded.drops);
            rings.process = Some(loaded.events);
            objects.push(loaded.ebpf);
        }
        if let Some(mut loaded) = tcp {
            seed_listeners(&mut loaded);
            tracing::info!(
                load_ms = loaded.load_time.as_secs_f64() * 1000.0,
                "Attached the eBPF TCP capture"
            );
            self.network = Slot::running(SourceKind::Ebpf, joined(&loaded.degraded), index);
            self.attempts_gap = joined(&loaded.degraded).map(|why| {
                tracing::warn!(
                    %why,
                    "Inbound connection attempts are only partly seen: port scans may go undetected"
                );
                format!(
                    "{why}; SYNs to closed ports are not seen, so half-open and connect scans \
                     are invisible to port-scan (T1046) detection"
                )
            });
            self.kernel_drops.push(loaded.drops);
            rings.tcp = Some(loaded.events);
            objects.push(loaded.ebpf);
        }
        let (stop, stats, mut emitter) = self.plumbing(SourceKind::Ebpf, config, sink)?;
        if rings.process.is_some() {
            emitter.seed_processes();
        }
        let thread = CaptureThread::spawn("vigil-ebpf", stop, stats, move || {
            ebpf::run(objects, rings, emitter);
        })
        .map_err(|source| thread_error(SourceKind::Ebpf, source))?;
        self.threads.push(thread);
        Ok(())
    }

    fn start_proc_connector(
        &mut self,
        config: &SensorConfig,
        sink: &Sender<Event>,
        why: &str,
    ) -> Result<(), SensorError> {
        let (stop, stats, mut emitter) = self.plumbing(SourceKind::ProcConnector, config, sink)?;
        let socket = proc_connector::ProcConnectorSocket::open(&stop)?;
        emitter.seed_processes();
        let thread = CaptureThread::spawn("vigil-proc-conn", stop, stats, move || {
            proc_connector::run(socket, emitter);
        })
        .map_err(|source| thread_error(SourceKind::ProcConnector, source))?;
        self.process = Slot::running(
            SourceKind::ProcConnector,
            Some(why.to_owned()),
            self.threads.len(),
        );
        self.threads.push(thread);
        Ok(())
    }

    /// Starts TCP polling; a failure leaves the network capability down, with why.
    fn start_proc_net(&mut self, config: &SensorConfig, sink: &Sender<Event>, why: &str) {
        let detail = format!("{why}; {}", proc_net::DETAIL);
        self.attempts_gap = Some(format!(
            "{why}; /proc/net/tcp polling cannot see connection attempts (refused or \
             half-open), so port scans (T1046) go undetected"
        ));
        let started = proc_net::Snapshot::read()
            .map_err(|e| format!("cannot read /proc/net/tcp: {e}"))
            .and_then(|baseline| {
                let (stop, stats, emitter) = self
                    .plumbing(SourceKind::ProcNet, config, sink)
                    .map_err(|e| e.to_string())?;
                CaptureThread::spawn("vigil-proc-net", stop, stats, move || {
                    proc_net::run(baseline, emitter);
                })
                .map_err(|e| thread_error(SourceKind::ProcNet, e).to_string())
            });
        self.network = match started {
            Ok(thread) => {
                self.threads.push(thread);
                Slot::running(SourceKind::ProcNet, Some(detail), self.threads.len() - 1)
            }
            Err(error) => {
                tracing::error!(%error, "No TCP capture source could start");
                Slot {
                    kind: SourceKind::ProcNet,
                    detail: Some(format!("{why}; {error}")),
                    thread: None,
                }
            }
        };
    }

    /// Starts file activity capture; a failure leaves the file capability down, with why.
    fn start_files(&mut self, config: &SensorConfig, sink: &Sender<Event>) {
        if !config.files.enabled {
            self.files.detail = Some("disabled by configuration".to_owned());
            return;
        }
        let started = fanotify::FileWatch::open(&config.files).and_then(|watch| {
            let detail = watch.detail.clone();
            let (stop, stats, emitter) = self.plumbing(SourceKind::Fanotify, config, sink)?;
            CaptureThread::spawn("vigil-fanotify", stop, stats, move || {
                fanotify::run(watch, emitter);
            })
            .map(|thread| (thread, detail))
            .map_err(|e| thread_error(SourceKind::Fanotify, e))
        });
        self.files = match started {
            Ok((thread, detail)) => {
                tracing::info!(%detail, "File activity capture live");
                self.threads.push(thread);
                Slot::running(SourceKind::Fanotify, Some(detail), self.threads.len() - 1)
            }
            Err(error) => {
                tracing::warn!(%error, "File activity capture is unavailable");
                Slot {
                    kind: SourceKind::Fanotify,
                    detail: Some(error.to_string()),
                    thread: None,
                }
            }
        };
    }

    /// Starts login capture; a failure leaves the auth capability down, with why.
    fn start_auth(&mut self, config: &SensorConfig, sink: &Sender<Event>) {
        if !config.auth.enabled {
            self.auth.detail = Some("disabled by configuration".to_owned());
            return;
        }
        let started = auth::AuthWatch::open(&config.auth).and_then(|watch| {
            let (kind, detail) = (watch.kind, watch.detail.clone());
            let (stop, stats, emitter) = self.plumbing(kind, config, sink)?;
            CaptureThread::spawn("vigil-auth", stop, stats, move || {
                auth::run(watch, emitter);
            })
            .map(|thread| (thread, kind, detail))
            .map_err(|e| thread_error(kind, e))
        });
        self.auth = match started {
            Ok((thread, kind, detail)) => {
                tracing::info!(%detail, "Login capture live");
                self.threads.push(thread);
                Slot::running(kind, Some(detail), self.threads.len() - 1)
            }
            Err(error) => {
                tracing::warn!(%error, "Login capture is unavailable");
                Slot {
                    kind: SourceKind::LogFile,
                    detail: Some(error.to_string()),
                    thread: None,
                }
            }
        };
    }

    /// Starts DNS capture; a failure leaves the dns capability down, with why.
    fn start_dns(&mut self, config: &SensorConfig, sink: &Sender<Event>) {
        if !config.dns.enabled {
            self.dns.detail = Some("disabled by configuration".to_owned());
            return;
        }
        let started = dns::DnsWatch::open().and_then(|watch| {
            let detail = watch.detail.clone();
            let (stop, stats, emitter) = self.plumbing(SourceKind::Packet, config, sink)?;
            CaptureThread::spawn("vigil-dns", stop, stats, move || {
                dns::run(watch, emitter);
            })
            .map(|thread| (thread, detail))
            .map_err(|e| thread_error(SourceKind::Packet, e))
        });
        self.dns = match started {
            Ok((thread, detail)) => {
                tracing::info!(%detail, "DNS capture live");
                self.threads.push(thread);
                Slot::running(SourceKind::Packet, Some(detail), self.threads.len() - 1)
            }
            Err(error) => {
                tracing::warn!(%error, "DNS capture is unavailable");
                Slot {
                    kind: SourceKind::Packet,
                    detail: Some(error.to_string()),
                    thread: None,
                }
            }
        };
    }

    fn plumbing(
        &self,
        kind: SourceKind,
        config: &SensorConfig,
        sink: &Sender<Event>,
    ) -> Result<Plumbing, SensorError> {
        let stop = Arc::new(StopSignal::new().map_err(|source| thread_error(kind, source))?);
        let stats = Arc::new(SourceStats::default());
        let emitter = Emitter::new(
            kind,
            config.device.clone(),
            sink.clone(),
            Arc::clone(&stats),
            Arc::clone(&stop),
            self.processes.clone(),
        );
        Ok((stop, stats, emitter))
    }
}

impl Slot {
    fn none(kind: SourceKind) -> Self {
        Self {
            kind,
            detail: None,
            thread: None,
        }
    }

    fn running(kind: SourceKind, detail: Option<String>, thread: usize) -> Self {
        Self {
            kind,
            detail,
            thread: Some(thread),
        }
    }
}

fn split<T, E>(result: Result<T, E>) -> (Option<T>, Option<E>) {
    match result {
        Ok(value) => (Some(value), None),
        Err(error) => (None, Some(error)),
    }
}

fn joined(notes: &[String]) -> Option<String> {
    (!notes.is_empty()).then(|| notes.join("; "))
}

/// Listening sockets that predate the TCP program get their owners from `/proc`, so inbound
/// connections to them are attributed too.
fn seed_listeners(tcp: &mut LoadedObject) {
    let Some(netns) = proc_net::own_netns() else {
        return;
    };
    let listeners = proc_net::listening_sockets();
    match ebpf::seed_listeners(tcp, netns, &listeners) {
        Ok(seeded) => tracing::debug!(seeded, "Seeded the eBPF listener table from /proc"),
        Err(error) => tracing::warn!(%error, "Cannot seed the eBPF listener table"),
    }
}

type Plumbing = (Arc<StopSignal>, Arc<SourceStats>, Emitter);

fn thread_error(kind: SourceKind, source: std::io::Error) -> SensorError {
    SensorError::Thread {
        source_kind: kind.as_str(),
        source,
    }
}
