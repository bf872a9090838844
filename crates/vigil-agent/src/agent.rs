//! The agent: sensor → intake → durable buffer → fleet link.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vigil_ocsf::Event;
use vigil_proto::fleet::{Capability, Hello, HostFacts};
use vigil_sensor::{AuthConfig, DnsConfig, FileConfig, Sensor, SensorConfig, SourceMode};

use crate::buffer::{Buffer, BufferError};
use crate::executor::Executor;
use crate::host::{self, HostInfo};
use crate::link::{Link, LinkConfig, LinkStats};
use crate::response::exec_deny::{BlockedExec, ExecGuard, ExecGuardConfig};
use crate::response::{Responder, ResponderConfig};

mod yara_exec;

use yara_exec::{ExecScanner, load_yara_rules, start_exec_scanner};

/// Events the intake writes to the buffer per transaction.
const INTAKE_BATCH: usize = 512;
/// Depth of the channel between capture and intake.
const INTAKE_DEPTH: usize = 16_384;
/// Commands and policies waiting for the executor before the link stops reading.
const INBOX_DEPTH: usize = 64;

/// Everything the agent needs to run.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Where the buffer and the sensor id live.
    pub data_dir: PathBuf,
    /// Fleet server URL (`http://host:port`).
    pub server: String,
    /// Capture source; `None` runs without capture (events come only through [`Agent::intake`]).
    pub sensor: Option<SourceMode>,
    /// Which file activity the sensor reports (default: the paths in
    /// [`vigil_sensor::DEFAULT_WATCH_PATHS`]). The agent adds its data directory to the
    /// exclusions, so writing its own buffer is never reported.
    pub files: FileConfig,
    /// Where the sensor reads logins and authentications (default: the authentication log,
    /// or the journal when there is none, and wtmp/btmp).
    pub auth: AuthConfig,
    /// Whether the sensor reports DNS (default: yes).
    pub dns: DnsConfig,
    /// Events per batch sent to the server.
    pub batch_max: u32,
    /// Batches in flight.
    pub window: usize,
    /// Most events the buffer holds before evicting the oldest.
    pub buffer_max_events: u64,
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// How long shutdown waits for the buffer to drain.
    pub flush_timeout: Duration,
    /// The fleet CA certificate (PEM) to trust when enrolling.
    pub ca_pem: Option<String>,
    /// The enrollment secret, needed until the agent is enrolled.
    pub enroll_secret: Option<String>,
    /// DNS servers an isolated host may still reach (besides loopback and the fleet server).
    pub isolation_dns: Vec<std::net::IpAddr>,
    /// YARA rule files or folders (searched recursively for `*.yar`, `*.yara`). When any is
    /// named, the rules are compiled at start (an error stops the agent) and every executed
    /// file is scanned; empty: no YARA scanning.
    pub yara_rules: Vec<PathBuf>,
}

impl AgentConfig {
    /// Defaults for the given data directory and server.
    pub fn new(data_dir: PathBuf, server: String) -> Self {
        Self {
            data_dir,
            server,
            sensor: Some(SourceMode::Auto),
            files: FileConfig::default(),
            auth: AuthConfig::default(),
            dns: DnsConfig::default(),
            batch_max: 500,
            window: 4,
            buffer_max_events: 1_000_000,
            heartbeat: Duration::from_secs(30),
            flush_timeout: Duration::from_secs(10),
            ca_pem: None,
            enroll_secret: None,
            isolation_dns: Vec::new(),
            yara_rules: Vec::new(),
        }
    }
}

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The data directory or the sensor id file is unusable.
    #[error("agent data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The buffer could not be opened.
    #[error(transparent)]
    Buffer(#[from] BufferError),
    /// No capture source could start.
    #[error("no capture source could start: {0}")]
    Sensor(#[from] vigil_sensor::SensorError),
    /// The server URL is not usable.
    #[error("invalid fleet server URL {0:?}: expected https://host:port")]
    ServerUrl(String),
    /// The response actions could not be set up.
    #[error("response actions: {0}")]
    Response(String),
    /// The YARA rules could not be loaded, or scanning could not start.
    #[error("YARA rules: {0}")]
    Yara(String),
}

/// A running agent.
pub struct Agent {
    sensor_id: String,
    buffer: Arc<Buffer>,
    intake: mpsc::Sender<Event>,
    sensor: Arc<Mutex<Option<Sensor>>>,
    capabilities: Vec<Capability>,
    link_stats: Arc<LinkStats>,
    stop_intake: CancellationToken,
    stop_link: CancellationToken,
    intake_task: JoinHandle<()>,
    link_task: JoinHandle<()>,
    executor_task: JoinHandle<()>,
    executor: Arc<Executor>,
    exec_scanner: Option<Arc<ExecScanner>>,
}

impl Agent {
    /// Opens the buffer, starts capture and the fleet link.
    pub async fn start(cfg: AgentConfig) -> Result<Self, AgentError> {
        if !cfg.server.starts_with("https://") {
            return Err(AgentError::ServerUrl(cfg.server));
        }
        let dir_err = |source| AgentError::DataDir {
            path: cfg.data_dir.clone(),
            source,
        };
        std::fs::create_dir_all(&cfg.data_dir).map_err(dir_err)?;
        // The id events carry until the server has confirmed one; the server stamps the
        // authenticated id on every event it accepts.
        let sensor_id = match crate::identity::AgentIdentity::load(&cfg.data_dir) {
            Ok(Some(id)) => id.sensor_id,
            _ => host::sensor_id(&cfg.data_dir).map_err(dir_err)?,
        };
        let yara_rules = load_yara_rules(&cfg.yara_rules).await?;
        let host = HostInfo::read();
        let buffer = Arc::new(Buffer::open(&cfg.data_dir, cfg.buffer_max_events).await?);
        let (intake, rx) = mpsc::channel(INTAKE_DEPTH);

        let (sensor, capabilities) = match cfg.sensor {
            Some(mode) => {
                let mut files = cfg.files.clone();
                files.exclude.push(cfg.data_dir.clone());
                let sensor_cfg = SensorConfig {
                    mode,
                    device: device(&sensor_id, &host),
                    files,
                    auth: cfg.auth.clone(),
                    dns: cfg.dns,
                };
                let tx = intake.clone();
                let sensor = tokio::task::spawn_blocking(move || Sensor::start(sensor_cfg, tx))
                    .await
                    .map_err(|e| AgentError::DataDir {
                        path: cfg.data_dir.clone(),
                        source: std::io::Error::other(e),
                    })??;
                tracing::info!(source = %sensor.exec_source(), "Process capture live");
                let caps = sensor.capabilities().into_iter().map(capability).collect();
                (Some(sensor), caps)
            }
            None => (None, Vec::new()),
        };

        let wake = Arc::new(Notify::new());
        let fleet_addrs = fleet_addresses(&cfg.server).await;
        let responder = Arc::new(Responder::new(ResponderConfig {
            data_dir: cfg.data_dir.clone(),
            fleet_servers: fleet_addrs,
            dns_servers: cfg.isolation_dns.clone(),
        }));
        restore_isolation(&responder).await;
        let blocked = start_exec_guard(&responder, &cfg.data_dir);
        let executor = Arc::new(
            Executor::new(
                Arc::clone(&buffer),
                Arc::clone(&wake),
                Arc::clone(&responder),
                cfg.data_dir.clone(),
                device(&sensor_id, &host),
            )
            .map_err(AgentError::Response)?,
        );
        let (inbox, inbox_rx) = mpsc::channel(INBOX_DEPTH);
        let executor_task = tokio::spawn(Arc::clone(&executor).run(inbox_rx));
        let mut capabilities = capabilities;
        capabilities.push(Capability {
            name: "query".into(),
            source: "agent".into(),
            live: true,
            detail: "read-only SQL over live host tables (see the query module)".into(),
        });
        capabilities.push(Capability {
            name: "triage".into(),
            source: "agent".into(),
            live: true,
            detail: "read-only triage package: processes, connections, persistence, recent files"
                .into(),
        });
        capabilities.extend(
            responder
                .capabilities()
                .into_iter()
                .map(|(name, live, detail)| Capability {
                    name: format!("response.{name}"),
                    source: "agent".into(),
                    live,
                    detail,
                }),
        );

        let exec_scanner = match yara_rules {
            Some(rules) => {
                let (scanner, capability) =
                    start_exec_scanner(rules, &cfg.yara_rules, &buffer, &wake)?;
                capabilities.push(capability);
                Some(scanner)
            }
            None => None,
        };
        if let Some(blocked) = blocked {
            tokio::spawn(Arc::clone(&executor).report_blocked_execs(blocked, intake.clone()));
        }
        let intake_lost = Arc::new(AtomicU64::new(0));
        let stop_intake = CancellationToken::new();
        let intake_task = tokio::spawn(run_intake(
            rx,
            Arc::clone(&buffer),
            Arc::clone(&wake),
            Arc::clone(&intake_lost),
            Some(Arc::clone(&executor)),
            exec_scanner.clone(),
            stop_intake.clone(),
        ));

        let hello = Hello {
            sensor_id: sensor_id.clone(),
            host: Some(HostFacts {
                hostname: host.hostname.clone(),
                os_name: host.os_name.clone(),
                kernel_release: host.kernel_release.clone(),
                agent_version: env!("CARGO_PKG_VERSION").into(),
                machine_id: host.machine_id.clone(),
            }),
            capabilities: capabilities.clone(),
        };
        let link_cfg = LinkConfig {
            server: cfg.server.clone(),
            batch_max: cfg.batch_max,
            window: cfg.window.max(1),
            heartbeat: cfg.heartbeat,
            flush_timeout: cfg.flush_timeout,
            data_dir: cfg.data_dir.clone(),
            ca_pem: cfg.ca_pem.clone(),
            enroll_secret: cfg.enroll_secret.clone(),
        };
        let sensor = Arc::new(Mutex::new(sensor));
        let sensor_ref = Arc::clone(&sensor);
        let dropped: crate::link::DroppedFn = Arc::new(move || {
            let kernel = sensor_ref
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
                .map_or(0, Sensor::dropped);
            intake_lost.load(Ordering::Relaxed) + kernel
        });
        let isolation_of = Arc::clone(&responder);
        let isolation: crate::link::IsolationFn =
            Arc::new(move || isolation_of.isolation_state().to_owned());
        let link = Link::new(
            link_cfg,
            Arc::clone(&buffer),
            hello,
            wake,
            dropped,
            isolation,
            inbox,
        );
        let link_stats = link.stats();
        let stop_link = CancellationToken::new();
        let link_task = tokio::spawn(link.run(stop_link.clone()));

        Ok(Self {
            sensor_id,
            buffer,
            intake,
            sensor,
            capabilities,
            link_stats,
            stop_intake,
            stop_link,
            intake_task,
            link_task,
            executor_task,
            executor,
            exec_scanner,
        })
    }

    /// The policy the agent enforces.
    pub fn policy(&self) -> Arc<crate::edge::EdgePolicy> {
        self.executor.policy()
    }

    /// This agent's sensor id.
    pub fn sensor_id(&self) -> &str {
        &self.sensor_id
    }

    /// Where captured events enter the agent; other producers (relays, tests) may use it too.
    pub fn intake(&self) -> mpsc::Sender<Event> {
        self.intake.clone()
    }

    /// Live capabilities.
    pub fn capabilities(&self) -> &[Capability] {
        &self.capabilities
    }

    /// Events waiting for the server's ack.
    pub fn buffered(&self) -> u64 {
        self.buffer.len()
    }

    /// Link counters.
    pub fn link_stats(&self) -> &LinkStats {
        &self.link_stats
    }

    /// Counters of the YARA scanning of executed files, when it runs.
    #[cfg(feature = "yara")]
    pub fn yara_counts(&self) -> Option<crate::yara::ExecScanCounts> {
        self.exec_scanner.as_ref().map(|s| s.counts())
    }

    /// Stops capture, writes what was captured to the buffer, flushes the buffer to the server
    /// (bounded by the flush timeout) and closes it. Nothing captured is lost: what could not be
    /// sent stays on disk for the next start.
    pub async fn shutdown(self) {
        let sensor = self
            .sensor
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(sensor) = sensor {
            let _ = tokio::task::spawn_blocking(move || sensor.stop()).await;
        }
        drop(self.intake);
        self.stop_intake.cancel();
        let _ = self.intake_task.await;
        if let Some(scanner) = self.exec_scanner {
            // What is queued is scanned, and its findings queued, before the last flush.
            let _ = tokio::task::spawn_blocking(move || scanner.stop()).await;
        }
        self.stop_link.cancel();
        let _ = self.link_task.await;
        // The link held the executor's inbox; with the link gone the executor finishes.
        let _ = self.executor_task.await;
        self.buffer.close().await;
    }
}

/// Re-applies the isolation an earlier run left in force (the host stays isolated across an
/// agent restart).
async fn restore_isolation(responder: &Arc<Responder>) {
    let r = Arc::clone(responder);
    match tokio::task::spawn_blocking(move || r.restore_on_start()).await {
        Ok(Ok(Some(plan))) => {
            tracing::warn!(
                ?plan,
                "The host was isolated before the agent restarted: isolation re-applied"
            );
        }
        Ok(Ok(None)) => {}
        Ok(Err(error)) => {
            tracing::error!(%error, "The host was isolated before the agent restarted, and re-applying it failed");
        }
        Err(error) => tracing::error!(%error, "Restoring isolation did not complete"),
    }
}

/// Starts the fanotify exec guard that `deny_exec` needs; without it (not root, no fanotify
/// permission events) the capability is reported off and the rest of the agent runs.
fn start_exec_guard(
    responder: &Responder,
    data_dir: &std::path::Path,
) -> Option<mpsc::Receiver<BlockedExec>> {
    let cfg = ExecGuardConfig {
        data_dir: data_dir.to_owned(),
        hash_filesystems: None,
    };
    match ExecGuard::start(cfg) {
        Ok((guard, blocked)) => {
            responder.set_exec_guard(Some(guard));
            Some(blocked)
        }
        Err(error) => {
            tracing::warn!(%error, "Execution denial is unavailable");
            None
        }
    }
}

/// The fleet server's addresses, which isolation keeps reachable.
async fn fleet_addresses(server: &str) -> Vec<std::net::IpAddr> {
    let authority = server
        .strip_prefix("https://")
        .unwrap_or(server)
        .split('/')
        .next()
        .unwrap_or_default();
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_owned()
    } else {
        format!("{authority}:443")
    };
    match tokio::net::lookup_host(with_port.as_str()).await {
        Ok(addrs) => {
            let mut ips: Vec<_> = addrs.map(|a| a.ip()).collect();
            ips.sort();
            ips.dedup();
            ips
        }
        Err(error) => {
            tracing::warn!(%error, server, "Cannot resolve the fleet server; isolation would cut it off");
            Vec::new()
        }
    }
}

fn device(sensor_id: &str, host: &HostInfo) -> vigil_ocsf::Device {
    vigil_ocsf::Device {
        type_id: 0,
        hostname: host.hostname.clone(),
        uid: sensor_id.to_owned(),
        os: vigil_ocsf::Os {
            name: "Linux".into(),
            type_id: 200,
            kernel_release: Some(host.kernel_release.clone()),
        },
    }
}

fn capability(c: vigil_sensor::Capability) -> Capability {
    Capability {
        name: c.name,
        source: c.source,
        live: c.live,
        detail: c.detail.unwrap_or_default(),
    }
}

/// Moves events from the capture channel into the buffer in transactions of up to
/// [`INTAKE_BATCH`]. On `stop`, closes the channel and drains what is already in it.
async fn run_intake(
    mut rx: mpsc::Receiver<Event>,
    buffer: Arc<Buffer>,
    wake: Arc<Notify>,
    lost: Arc<AtomicU64>,
    executor: Option<Arc<Executor>>,
    exec_scanner: Option<Arc<ExecScanner>>,
    stop: CancellationToken,
) {
    let mut batch = Vec::with_capacity(INTAKE_BATCH);
    loop {
        let first = tokio::select! {
            ev = rx.recv() => ev,
            () = stop.cancelled() => {
                rx.close();
                rx.recv().await
            }
        };
        let Some(first) = first else { return };
        batch.push(first);
        while batch.len() < INTAKE_BATCH {
            match rx.try_recv() {
                Ok(ev) => batch.push(ev),
                Err(_) => break,
            }
        }
        if let Some(executor) = &executor {
            batch.iter().for_each(|ev| executor.observe(ev));
        }
        if let Some(scanner) = &exec_scanner {
            batch.iter().for_each(|ev| scanner.observe(ev));
        }
        if let Err(error) = push_with_retry(&buffer, &batch).await {
            lost.fetch_add(batch.len() as u64, Ordering::Relaxed);
            tracing::error!(%error, lost = batch.len(), "Could not write events to the agent buffer");
        }
        batch.clear();
        wake.notify_one();
    }
}

async fn push_with_retry(buffer: &Buffer, batch: &[Event]) -> Result<(), BufferError> {
    let mut delay = Duration::from_millis(50);
    for _ in 0..4 {
        match buffer.push(batch).await {
            Ok(()) => return Ok(()),
            Err(error) => {
                tracing::warn!(%error, "Agent buffer write failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
    }
    buffer.push(batch).await
}
