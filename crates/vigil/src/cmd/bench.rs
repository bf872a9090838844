//! `vigil bench fleet`: simulated agents speaking the real enrollment, mTLS and session
//! protocol against a `vigil server` child process, reporting what the server sustained.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use tokio::sync::Mutex;
use tokio_stream::wrappers::ReceiverStream;
use vigil_agent::identity::{self, AgentIdentity};
use vigil_proto::fleet::fleet_client::FleetClient;
use vigil_proto::fleet::{EventBatch, Hello, HostFacts};

use super::bench_events::{marker, synthetic};
use vigil_proto::{AgentMessage, ServerMessage, agent_message, server_message};

/// `vigil bench …`
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Simulate a fleet against a fresh `vigil server` (embedded default: SQLite).
    Fleet(FleetArgs),
    /// Drive exec and TCP storms at rising rates against the sensor and report what it
    /// captured, lost and cost (needs root).
    Sensor(super::bench_sensor::SensorArgs),
    /// The sensor side of `bench sensor` (started by it).
    #[command(hide = true)]
    SensorProbe(super::bench_sensor::ProbeArgs),
}

/// `vigil bench fleet` options.
#[derive(Debug, Args)]
pub struct FleetArgs {
    /// Simulated agents, each with its own certificate and session.
    #[arg(long, default_value_t = 100)]
    agents: usize,
    /// Target events per second across the fleet.
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// Seconds to sustain the rate.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Events per batch.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Rules the server evaluates (default: Vigil's own rules/).
    #[arg(long = "rules", value_name = "DIR")]
    rules: Vec<PathBuf>,
    /// Bench the scale-out deployment on this NATS (`nats://127.0.0.1:4222`) instead of the
    /// embedded default; needs --store too. The bench works under a bus prefix of its own and
    /// removes it at the end.
    #[arg(long, requires = "store")]
    bus: Option<String>,
    /// PostgreSQL server of the scale-out deployment (`postgres://postgres@127.0.0.1/postgres`):
    /// the bench makes a database of its own there and drops it at the end.
    #[arg(long, requires = "bus")]
    store: Option<String>,
    /// Fleet instances (`vigil server --roles fleet`) of the scale-out deployment.
    #[arg(long, default_value_t = 2)]
    fleet_instances: usize,
    /// Detection instances (`vigil server --roles detect`) of the scale-out deployment.
    #[arg(long, default_value_t = 2)]
    detect_instances: usize,
}

pub(super) const SECRET: &str = "bench-secret";
/// The rule the bench's marker events raise a finding of (a read of /etc/shadow by cat), one
/// marker per 100 batches: the event → finding latency.
const MARKER_RULE: &str = "6d3f1a52-8b0e-4c4e-9d1a-7a1f0e2b5c01";
/// How long a new session may wait for its policy.
const POLICY_WAIT: Duration = Duration::from_secs(60);
/// Enrollments in flight at once.
const ENROLL_CONCURRENCY: usize = 16;

/// Runs a bench subcommand.
pub fn run(cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BenchCommand::Fleet(args) => {
            let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            rt.block_on(fleet(args))
        }
        BenchCommand::Sensor(args) => super::bench_sensor::run(&args),
        BenchCommand::SensorProbe(args) => super::bench_sensor::probe(&args),
    }
}

async fn fleet(args: FleetArgs) -> anyhow::Result<ExitCode> {
    if args.agents == 0 || args.rate == 0 || args.duration == 0 || args.batch == 0 {
        bail!("--agents, --rate, --duration and --batch must be at least 1");
    }
    let rules = if args.rules.is_empty() {
        vec![PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../rules"
        ))]
    } else {
        args.rules.clone()
    };
    let deployment = match (&args.bus, &args.store) {
        (Some(bus), Some(store)) => {
            eprintln!(
                "bench: starting {} fleet and {} detection instances on {bus} and PostgreSQL…",
                args.fleet_instances, args.detect_instances
            );
            super::bench_deploy::Deployment::scale_out(
                &rules,
                &super::bench_deploy::ScaleOut {
                    bus: bus.clone(),
                    store: store.clone(),
                    fleet_instances: args.fleet_instances,
                    detect_instances: args.detect_instances,
                },
            )
            .await?
        }
        _ => super::bench_deploy::Deployment::embedded(&rules)?,
    };
    let ca = deployment.ca()?;
    let dir = deployment.dir.path().to_owned();
    eprintln!("bench: enrolling {} agents…", args.agents);
    let t = Instant::now();
    // A few enrollments in flight at once: each is a key, a CSR and a signature, and the
    // server's enrollment transactions share their fsyncs.
    let mut pending = tokio::task::JoinSet::new();
    let mut ids = Vec::with_capacity(args.agents);
    for i in 0..args.agents {
        if pending.len() >= ENROLL_CONCURRENCY
            && let Some(done) = pending.join_next().await
        {
            ids.push(done.context("an enrollment task panicked")??);
        }
        let adir = dir.join(format!("agent-{i}"));
        std::fs::create_dir_all(&adir)?;
        let host = HostFacts {
            hostname: format!("sim-{i}"),
            ..Default::default()
        };
        let url = deployment.fleet_urls[i % deployment.fleet_urls.len()].clone();
        let ca = ca.clone();
        pending.spawn(async move { identity::enroll(&url, &adir, &ca, SECRET, host, "").await });
    }
    while let Some(done) = pending.join_next().await {
        ids.push(done.context("an enrollment task panicked")??);
    }
    eprintln!(
        "bench: enrolled in {:.1} s; streaming {} events/s for {} s…",
        t.elapsed().as_secs_f64(),
        args.rate,
        args.duration
    );

    // Every session is opened (TLS handshake, Hello, Welcome) before the clock starts: the
    // figures are the sustained rate of a connected fleet, not a reconnection storm, which is
    // reported on its own.
    let latencies = Arc::new(Mutex::new(Vec::<(u64, Duration)>::new()));
    let per_agent = args.rate as f64 / args.agents as f64;
    let connected = Arc::new(tokio::sync::Barrier::new(args.agents + 1));
    let (go, started) = tokio::sync::watch::channel(None::<Instant>);
    let t = Instant::now();
    let mut tasks = Vec::new();
    for (i, id) in ids.into_iter().enumerate() {
        let url = deployment.fleet_urls[i % deployment.fleet_urls.len()].clone();
        let lat = Arc::clone(&latencies);
        let plan = Plan {
            rate: per_agent,
            batch: args.batch,
            duration: Duration::from_secs(args.duration),
        };
        let (connected, started) = (Arc::clone(&connected), started.clone());
        tasks.push(tokio::spawn(async move {
            let session = open_session(i, &url, &id).await;
            connected.wait().await;
            let session = session?;
            let start = started
                .clone()
                .wait_for(Option::is_some)
                .await
                .ok()
                .and_then(|s| *s)
                .context("the bench stopped before streaming")?;
            stream(i, &id, session, plan, start, lat).await
        }));
    }
    connected.wait().await;
    let opened = t.elapsed().as_secs_f64();
    eprintln!(
        "bench: {} sessions open (policy received) in {opened:.1} s; streaming…",
        args.agents
    );
    let pids: Vec<(String, u32)> = deployment
        .children
        .iter()
        .map(|c| (c.name.clone(), c.child.id()))
        .collect();
    let cpu_before: Vec<u64> = pids
        .iter()
        .map(|(_, p)| proc_cpu_ticks(*p).unwrap_or(0))
        .collect();
    let own = std::process::id();
    let own_before = proc_cpu_ticks(own).unwrap_or(0);
    // The services the scale-out deployment leans on, read (never touched) by process name.
    let services = ["nats-server", "postgres"];
    let services_before: Vec<u64> = services.iter().map(|n| named_cpu_ticks(n)).collect();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let start = Instant::now();
    go.send_replace(Some(start));
    let mut sent = 0u64;
    let mut acked = 0u64;
    for t in tasks {
        let (s, a) = t.await.context("a simulated agent panicked")??;
        sent += s;
        acked += a;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu_after: Vec<u64> = pids
        .iter()
        .map(|(_, p)| proc_cpu_ticks(*p).unwrap_or(0))
        .collect();
    let own_after = proc_cpu_ticks(own).unwrap_or(0);
    let services_after: Vec<u64> = services.iter().map(|n| named_cpu_ticks(n)).collect();
    let streamed = Instant::now();
    let (stored, scored) = deployment.wait_scored(sent).await?;
    let lag = streamed.elapsed().as_secs_f64();
    let total = start.elapsed().as_secs_f64();
    let indexed = deployment.wait_indexed().await?;
    let index_lag = streamed.elapsed().as_secs_f64();
    let timed = latencies.lock().await.clone();
    let mut lat: Vec<Duration> = timed.iter().map(|(_, d)| *d).collect();
    lat.sort();
    let pct = |p: f64| percentile(&lat, p);
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    let cpu: Vec<f64> = cpu_after
        .iter()
        .zip(&cpu_before)
        .map(|(a, b)| a.saturating_sub(*b) as f64 / ticks / elapsed * 100.0)
        .collect();
    let client_cpu = (own_after.saturating_sub(own_before)) as f64 / ticks / elapsed * 100.0;
    let rss: Vec<u64> = pids
        .iter()
        .map(|(_, p)| proc_hwm_bytes(*p).unwrap_or(0))
        .collect();
    let mut findings = deployment.finding_latencies(MARKER_RULE).await?;
    findings.sort();
    println!(
        "agents {} | target {} ev/s for {} s | batch {} | sessions opened (policy received) in {opened:.1} s before streaming",
        args.agents, args.rate, args.duration, args.batch
    );
    println!(
        "sent {sent} | acked {acked} ({:.0} ev/s) | stored {stored} | scored {scored} (all scored after {total:.1} s: detection finished {lag:.1} s after the last ack)",
        acked as f64 / elapsed
    );
    if indexed {
        println!("hunting index: caught up {index_lag:.1} s after the last ack");
    } else {
        println!("hunting index: still behind {index_lag:.0} s after the last ack");
    }
    println!(
        "ack latency p50 {:.1} ms | p99 {:.1} ms | max {:.1} ms",
        ms(pct(0.50)),
        ms(pct(0.99)),
        ms(lat.last().copied().unwrap_or_default())
    );
    println!(
        "ack latency p99 by second of the run: {} ms",
        p99_by_second(&timed)
    );
    let fpct = |p: f64| percentile(&findings, p);
    println!(
        "event → finding latency p50 {:.1} ms | p99 {:.1} ms ({} marker findings)",
        ms(fpct(0.50)),
        ms(fpct(0.99)),
        findings.len()
    );
    for (((name, _), cpu), rss) in pids.iter().zip(&cpu).zip(&rss) {
        println!(
            "{name}: cpu {cpu:.0}% of one core while streaming | peak rss {:.0} MiB",
            *rss as f64 / (1024.0 * 1024.0)
        );
    }
    println!(
        "servers together: cpu {:.0}% | bench client cpu {client_cpu:.0}%",
        cpu.iter().sum::<f64>()
    );
    if args.bus.is_some() {
        let shares: Vec<String> = services
            .iter()
            .zip(services_after.iter().zip(&services_before))
            .map(|(n, (a, b))| {
                format!(
                    "{n} {:.0}%",
                    a.saturating_sub(*b) as f64 / ticks / elapsed * 100.0
                )
            })
            .collect();
        println!(
            "services (every process of that name): cpu {}",
            shares.join(" | ")
        );
    }
    println!(
        "machine: {} cores, load average at start {}",
        std::thread::available_parallelism().map_or(0, usize::from),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    deployment.remove().await;
    Ok(ExitCode::SUCCESS)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// What one simulated agent sends.
#[derive(Clone, Copy)]
struct Plan {
    /// Events per second.
    rate: f64,
    /// Events per batch.
    batch: usize,
    /// How long to send.
    duration: Duration,
}

/// An open session: where to send, what comes back.
struct Session {
    tx: tokio::sync::mpsc::Sender<AgentMessage>,
    inbound: tonic::Streaming<ServerMessage>,
}

/// The `p` quantile of sorted durations (zero for none).
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

/// The 99th percentile of the acknowledgements of the batches sent in each second of the run,
/// in ms, one figure per second: a stall shows where it happened (a fleet connecting at the
/// start, or a pause of the server later).
fn p99_by_second(timed: &[(u64, Duration)]) -> String {
    let mut by_second: std::collections::BTreeMap<u64, Vec<Duration>> = Default::default();
    for (second, d) in timed {
        by_second.entry(*second).or_default().push(*d);
    }
    by_second
        .into_values()
        .map(|mut v| {
            v.sort();
            format!("{:.0}", ms(percentile(&v, 0.99)))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Opens one simulated agent's session: mTLS, Hello, Welcome.
async fn open_session(n: usize, url: &str, id: &AgentIdentity) -> anyhow::Result<Session> {
    let channel = identity::endpoint(url, id.client_tls())?
        .connect()
        .await
        .with_context(|| format!("agent {n}: cannot connect"))?;
    let mut client = FleetClient::new(channel);
    let (tx, rx) = tokio::sync::mpsc::channel::<AgentMessage>(64);
    let hello = Hello {
        sensor_id: id.sensor_id.clone(),
        ..Default::default()
    };
    tx.send(AgentMessage {
        msg: Some(agent_message::Msg::Hello(hello)),
    })
    .await?;
    let mut inbound = client.session(ReceiverStream::new(rx)).await?.into_inner();
    inbound.message().await?; // Welcome
    // The server sends the endpoint's policy first: the session is open once it has arrived,
    // so streaming starts on a fleet that has connected, not in the middle of its connecting.
    let policy = tokio::time::timeout(POLICY_WAIT, async {
        loop {
            match inbound.message().await? {
                Some(ServerMessage {
                    msg: Some(server_message::Msg::Policy(_)),
                }) => return Ok(()),
                Some(_) => {}
                None => bail!("agent {n}: the server closed the session before its policy"),
            }
        }
    })
    .await;
    match policy {
        Ok(received) => received?,
        Err(_) => bail!("agent {n}: no policy within {} s", POLICY_WAIT.as_secs()),
    }
    Ok(Session { tx, inbound })
}

/// Sends batches at the agent's share of the rate from `start` for the plan's duration, and
/// waits for the last acknowledgement.
async fn stream(
    n: usize,
    id: &AgentIdentity,
    session: Session,
    plan: Plan,
    start: Instant,
    latencies: Arc<Mutex<Vec<(u64, Duration)>>>,
) -> anyhow::Result<(u64, u64)> {
    let Session { tx, mut inbound } = session;
    let Plan {
        rate,
        batch,
        duration,
    } = plan;
    let deadline = start + duration;
    let scattered = std::env::var_os("VIGIL_BENCH_SCATTERED_IDS").is_some_and(|v| v == "1");
    let interval = Duration::from_secs_f64(batch as f64 / rate.max(0.001));
    let mut next = start + interval.mul_f64(n as f64 % 97.0 / 97.0);
    let mut sent_at = std::collections::VecDeque::new();
    let (mut sent, mut acked, mut seq) = (0u64, 0u64, 0u64);
    let mut local = Vec::new();
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(next.min(deadline).into()), if Instant::now() < deadline => {
                if next < deadline {
                    seq += 1;
                    let events = (0..batch)
                        .map(|k| {
                            if k == 0 && (seq + n as u64).is_multiple_of(100) {
                                marker(&id.sensor_id, seq)
                            } else {
                                synthetic(&id.sensor_id, seq, k, scattered)
                            }
                        })
                        .collect();
                    let msg = agent_message::Msg::Events(EventBatch { seq, events });
                    tx.send(AgentMessage { msg: Some(msg) }).await?;
                    sent_at.push_back(Instant::now());
                    sent += batch as u64;
                    next += interval;
                }
            }
            msg = inbound.message() => match msg? {
                Some(ServerMessage { msg: Some(server_message::Msg::Ack(a)) }) => {
                    if let Some(t) = sent_at.pop_front() {
                        local.push((t.duration_since(start).as_secs(), t.elapsed()));
                    }
                    acked += u64::from(a.stored + a.duplicates);
                    if Instant::now() >= deadline && sent_at.is_empty() { break; }
                }
                Some(_) => {}
                None => bail!("agent {n}: the server closed the session"),
            },
        }
        if Instant::now() >= deadline && sent_at.is_empty() {
            break;
        }
    }
    latencies.lock().await.extend(local);
    Ok((sent, acked))
}

/// Waits until detection has scored everything stored; returns (stored, scored).
///
/// Polls only what is cheap on a large log (the newest `seq` and the cursor); the counts, which
/// walk the whole table, are taken once at the end.
pub(super) async fn wait_scored_sqlite(dir: &Path, sent: u64) -> anyhow::Result<(u64, u64)> {
    use std::str::FromStr;
    let opts =
        sqlx::sqlite::SqliteConnectOptions::from_str("sqlite://")?.filename(dir.join("server.db"));
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await?;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let max: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM events")
            .fetch_one(&pool)
            .await?;
        let cursor: Option<i64> =
            sqlx::query_scalar("SELECT seq FROM cursors WHERE name = 'detect'")
                .fetch_optional(&pool)
                .await?;
        let done = sent == 0 || (cursor.is_some() && cursor >= max);
        if done || Instant::now() > deadline {
            let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events")
                .fetch_one(&pool)
                .await?;
            let scored = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM events WHERE seq <= ?")
                .bind(cursor.unwrap_or(0))
                .fetch_one(&pool)
                .await?;
            pool.close().await;
            return Ok((
                u64::try_from(stored).unwrap_or(0),
                u64::try_from(scored).unwrap_or(0),
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// CPU ticks of every process whose name is `name`.
fn named_cpu_ticks(name: &str) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim_end() == name)
        })
        .filter_map(proc_cpu_ticks)
        .sum()
}

/// utime + stime, in clock ticks, of a process (`/proc/<pid>/stat`) or a thread
/// (`/proc/<pid>/task/<tid>/stat`).
pub(super) fn stat_cpu_ticks(stat_path: &Path) -> Option<u64> {
    let stat = std::fs::read_to_string(stat_path).ok()?;
    let f: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

pub(super) fn proc_cpu_ticks(pid: u32) -> Option<u64> {
    stat_cpu_ticks(Path::new(&format!("/proc/{pid}/stat")))
}

/// A `kB` line of `/proc/<pid>/status` (`VmHWM:`, `VmRSS:`, `RssAnon:`), in bytes.
pub(super) fn proc_status_bytes(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

pub(super) fn proc_hwm_bytes(pid: u32) -> Option<u64> {
    proc_status_bytes(pid, "VmHWM:")
}
