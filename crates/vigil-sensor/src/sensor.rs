//! [`Sensor`]: picks an exec source, starts its capture thread, and reports on it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use aya::maps::{Array, MapData};
use tokio::sync::mpsc::Sender;
use vigil_ocsf::Event;

use crate::source::{CaptureThread, Emitter, SourceStats, StopSignal, ebpf_exec, proc_connector};
use crate::{Capability, SensorConfig, SensorError, SourceKind, SourceMode};

/// A running exec capture. Dropping it (or [`Sensor::stop`]) stops the capture thread and
/// detaches the eBPF program.
pub struct Sensor {
    kind: SourceKind,
    detail: Option<String>,
    thread: CaptureThread,
    kernel_drops: Option<Array<MapData, u64>>,
}

impl std::fmt::Debug for Sensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sensor")
            .field("kind", &self.kind)
            .field("detail", &self.detail)
            .finish_non_exhaustive()
    }
}

impl Sensor {
    /// Starts capture; events go to `sink`.
    ///
    /// Returns once the source is attached: every exec after this call is captured. Blocks for
    /// the eBPF load (about 0.1 s), so call it before entering async code or from
    /// `spawn_blocking`. The capture thread waits when `sink` is full (the kernel side then
    /// counts drops) and stops when its receiver is dropped.
    pub fn start(config: SensorConfig, sink: Sender<Event>) -> Result<Sensor, SensorError> {
        match config.mode {
            SourceMode::Ebpf => start_ebpf(&config, sink),
            SourceMode::ProcConnector => start_proc_connector(
                &config,
                sink,
                Some("eBPF not requested (mode proc_connector)".to_owned()),
            ),
            SourceMode::Auto => match start_ebpf(&config, sink.clone()) {
                Ok(sensor) => Ok(sensor),
                Err(ebpf) => {
                    tracing::warn!(
                        error = %ebpf,
                        "Falling back to the proc connector: eBPF exec capture is unavailable"
                    );
                    let detail = Some(format!("eBPF unavailable: {ebpf}"));
                    start_proc_connector(&config, sink, detail).map_err(|proc_connector| {
                        SensorError::NoSource {
                            ebpf: Box::new(ebpf),
                            proc_connector: Box::new(proc_connector),
                        }
                    })
                }
            },
        }
    }

    /// The exec source that is running.
    pub fn exec_source(&self) -> SourceKind {
        self.kind
    }

    /// What the sensor observes and through which source, and whether it is live right now.
    pub fn capabilities(&self) -> Vec<Capability> {
        vec![Capability {
            name: "process".to_owned(),
            source: self.kind.to_string(),
            live: self.thread.stats().live.load(Ordering::SeqCst),
            detail: self.detail.clone(),
        }]
    }

    /// Exec records lost so far: ring buffer full in the kernel, netlink overruns (each counts
    /// once, however many events it lost), and records user space could not parse.
    pub fn dropped(&self) -> u64 {
        let kernel = self
            .kernel_drops
            .as_ref()
            .and_then(|drops| drops.get(&0, 0).ok())
            .unwrap_or(0);
        kernel + self.thread.stats().dropped.load(Ordering::Relaxed)
    }

    /// Stops the capture thread and detaches the program; the same happens on drop.
    pub fn stop(mut self) {
        self.thread.shutdown();
    }
}

fn start_ebpf(config: &SensorConfig, sink: Sender<Event>) -> Result<Sensor, SensorError> {
    let loaded = ebpf_exec::load_and_attach()?;
    tracing::info!(
        load_ms = loaded.load_time.as_secs_f64() * 1000.0,
        hook = "tp_btf/sched_process_exec",
        "Attached the eBPF exec capture"
    );
    let ebpf_exec::LoadedExec {
        ebpf,
        events,
        drops,
        ..
    } = loaded;
    let (stop, stats, emitter) = plumbing(SourceKind::Ebpf, config, sink)?;
    let thread = CaptureThread::spawn("vigil-ebpf-exec", stop, stats, move || {
        ebpf_exec::run(ebpf, events, emitter);
    })
    .map_err(|source| thread_error(SourceKind::Ebpf, source))?;
    Ok(Sensor {
        kind: SourceKind::Ebpf,
        detail: None,
        thread,
        kernel_drops: Some(drops),
    })
}

fn start_proc_connector(
    config: &SensorConfig,
    sink: Sender<Event>,
    detail: Option<String>,
) -> Result<Sensor, SensorError> {
    let (stop, stats, emitter) = plumbing(SourceKind::ProcConnector, config, sink)?;
    let socket = proc_connector::ProcConnectorSocket::open(&stop)?;
    let thread = CaptureThread::spawn("vigil-proc-conn", stop, stats, move || {
        proc_connector::run(socket, emitter);
    })
    .map_err(|source| thread_error(SourceKind::ProcConnector, source))?;
    Ok(Sensor {
        kind: SourceKind::ProcConnector,
        detail,
        thread,
        kernel_drops: None,
    })
}

type Plumbing = (Arc<StopSignal>, Arc<SourceStats>, Emitter);

fn plumbing(
    kind: SourceKind,
    config: &SensorConfig,
    sink: Sender<Event>,
) -> Result<Plumbing, SensorError> {
    let stop = Arc::new(StopSignal::new().map_err(|source| thread_error(kind, source))?);
    let stats = Arc::new(SourceStats::default());
    let emitter = Emitter::new(
        kind,
        config.device.clone(),
        sink,
        Arc::clone(&stats),
        Arc::clone(&stop),
    );
    Ok((stop, stats, emitter))
}

fn thread_error(kind: SourceKind, source: std::io::Error) -> SensorError {
    SensorError::Thread {
        source_kind: kind.as_str(),
        source,
    }
}
