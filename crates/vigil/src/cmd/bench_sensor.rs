//! `vigil bench sensor`: how much the sensor captures, loses and costs under exec and TCP
//! storms at rising rates, and at a steady 500 events/s.
//!
//! The sensor runs alone in a child process (`vigil bench sensor-probe`, hidden), as in the
//! agent but counting events instead of buffering them, so its CPU time and peak RSS are its
//! own. This process drives the load: execs of `/bin/true` with a marker argument, spawned at a
//! paced rate by a few threads, and loopback TCP connections (connect, accept, close, the
//! client first) from distinct 127.0.x.y source addresses (no port runs out) to a listener on a
//! port of its own. After each step it waits until the probe has counted every event it expects
//! or its counts stop moving, and reads the sensor's drop counter (ring buffers, sockets): a
//! step is lossless when every expected event arrived and nothing was dropped.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};
use vigil_ocsf::Event;
use vigil_sensor::{AuthConfig, DnsConfig, FileConfig, Sensor, SensorConfig, SourceMode};

/// `vigil bench sensor` options.
#[derive(Debug, Args)]
pub struct SensorArgs {
    /// Exec rates to drive, per second, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "500,1000,2000,4000,8000")]
    exec_rates: Vec<u64>,
    /// TCP connection rates to drive, per second, comma-separated (each loopback connection is
    /// about ten TCP state transitions, six of them reported).
    #[arg(long, value_delimiter = ',', default_value = "500,1000,2000,3000,4000")]
    tcp_rates: Vec<u64>,
    /// Seconds per step.
    #[arg(long, default_value_t = 5)]
    duration: u64,
    /// Seconds of the steady 500 events/s step (0: skip it).
    #[arg(long, default_value_t = 20)]
    steady: u64,
}

/// `vigil bench sensor-probe` options (run by `vigil bench sensor`).
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Exec command lines containing this are counted.
    #[arg(long)]
    marker: String,
    /// TCP events with this port at either end are counted.
    #[arg(long)]
    port: u16,
}

/// What the probe has counted so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    launches: u64,
    tcp: u64,
    events: u64,
    dropped: u64,
}

impl Counts {
    fn from_json(v: &Value) -> Self {
        let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
        Self {
            launches: n("launches"),
            tcp: n("tcp"),
            events: n("events"),
            dropped: n("dropped"),
        }
    }

    fn minus(self, before: Self) -> Self {
        Self {
            launches: self.launches - before.launches,
            tcp: self.tcp - before.tcp,
            events: self.events - before.events,
            dropped: self.dropped - before.dropped,
        }
    }
}

/// Runs the probe: starts the sensor, counts, and answers `report` lines on stdin with one
/// JSON line on stdout, until stdin closes.
pub fn probe(args: &ProbeArgs) -> anyhow::Result<ExitCode> {
    let (sink, mut events) = tokio::sync::mpsc::channel::<Event>(4096);
    let sensor = vigil_sensor_start(sink)?;
    let launches = Arc::new(AtomicU64::new(0));
    let tcp = Arc::new(AtomicU64::new(0));
    let total = Arc::new(AtomicU64::new(0));
    let counter = {
        let (launches, tcp, total) = (launches.clone(), tcp.clone(), total.clone());
        let marker = args.marker.clone();
        let port = u64::from(args.port);
        std::thread::Builder::new()
            .name("probe-count".into())
            .spawn(move || {
                while let Some(event) = events.blocking_recv() {
                    total.fetch_add(1, Ordering::Relaxed);
                    match event.class_uid {
                        1007 if event.get("activity_id").and_then(Value::as_u64) == Some(1) => {
                            let line = event.get("process.cmd_line").and_then(Value::as_str);
                            if line.is_some_and(|l| l.contains(&marker)) {
                                launches.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        4001 => {
                            let at = |p: &str| event.get(p).and_then(Value::as_u64);
                            if at("src_endpoint.port") == Some(port)
                                || at("dst_endpoint.port") == Some(port)
                            {
                                tcp.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        _ => {}
                    }
                }
            })?
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready")?;
    out.flush()?;
    for line in std::io::stdin().lock().lines() {
        if line? != "report" {
            continue;
        }
        let report = json!({
            "launches": launches.load(Ordering::Relaxed),
            "tcp": tcp.load(Ordering::Relaxed),
            "events": total.load(Ordering::Relaxed),
            "dropped": sensor.dropped(),
        });
        writeln!(out, "{report}")?;
        out.flush()?;
    }
    sensor.stop();
    let _ = counter.join();
    Ok(ExitCode::SUCCESS)
}

fn vigil_sensor_start(sink: tokio::sync::mpsc::Sender<Event>) -> anyhow::Result<Sensor> {
    let config = SensorConfig {
        mode: SourceMode::Auto,
        files: FileConfig::disabled(),
        auth: AuthConfig::disabled(),
        dns: DnsConfig::disabled(),
        ..Default::default()
    };
    Sensor::start(config, sink).context("the sensor did not start")
}

/// The probe child, killed on drop.
struct Probe {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Probe {
    fn start(marker: &str, port: u16) -> anyhow::Result<Self> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["bench", "sensor-probe", "--marker", marker])
            .args(["--port", &port.to_string()])
            .env("RUST_LOG", "error")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start the probe")?;
        let stdin = child.stdin.take().context("probe stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("probe stdout")?);
        let mut probe = Self {
            child,
            stdin,
            stdout,
        };
        let mut line = String::new();
        probe.stdout.read_line(&mut line)?;
        if line.trim() != "ready" {
            bail!("the probe did not start (it said {line:?}); the sensor needs root");
        }
        Ok(probe)
    }

    fn counts(&mut self) -> anyhow::Result<Counts> {
        writeln!(self.stdin, "report")?;
        self.stdin.flush()?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        let value: Value = serde_json::from_str(&line).context("probe report")?;
        Ok(Counts::from_json(&value))
    }

    /// Waits until `done` holds or the counts stop moving for a second.
    fn settle(&mut self, done: impl Fn(&Counts) -> bool) -> anyhow::Result<Counts> {
        let mut last = self.counts()?;
        let mut still_since = Instant::now();
        loop {
            if done(&last) || still_since.elapsed() > Duration::from_secs(1) {
                return Ok(last);
            }
            std::thread::sleep(Duration::from_millis(50));
            let now = self.counts()?;
            if now != last {
                still_since = Instant::now();
            }
            last = now;
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time so far of the probe's sensor threads (named `vigil-…`: the capture threads),
/// seconds. The probe's main thread (start-up) and its counting thread (the agent's share) are
/// left out.
fn cpu_seconds(pid: u32) -> f64 {
    let mut ticks = 0;
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if comm.starts_with("vigil-") {
                ticks += super::bench::stat_cpu_ticks(&task.path().join("stat")).unwrap_or(0);
            }
        }
    }
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    ticks as f64 / hz as f64
}

/// `VmRSS` and `RssAnon` of a process now, bytes.
fn rss_now(pid: u32) -> (u64, u64) {
    let bytes = |key| super::bench::proc_status_bytes(pid, key).unwrap_or(0);
    (bytes("VmRSS:"), bytes("RssAnon:"))
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// One measured step.
struct Step {
    generated: u64,
    elapsed: f64,
    captured: Counts,
    cpu: f64,
}

impl Step {
    fn print(&self, what: &str, unit: &str, expected: u64, got: u64, probe: u32) {
        let rate = self.generated as f64 / self.elapsed;
        let lost = expected.saturating_sub(got);
        println!(
            "{what}: {rate:>7.0} {unit}/s driven | {} generated, {got}/{expected} events captured, \
             {lost} missing, {} dropped | sensor threads cpu {:.1}% of one core | probe peak rss {:.1} MiB",
            self.generated,
            self.captured.dropped,
            self.cpu / self.elapsed * 100.0,
            mib(super::bench::proc_hwm_bytes(probe).unwrap_or(0)),
        );
    }
}

/// Runs `work` on `threads` threads, each doing its share of `rate` per second for `secs`;
/// returns how many were done and how long it took.
fn paced(
    rate: u64,
    secs: u64,
    threads: u64,
    work: impl Fn(u64) -> anyhow::Result<()> + Sync,
) -> anyhow::Result<(u64, f64)> {
    let total = rate * secs;
    let next = AtomicU64::new(0);
    let failed = AtomicBool::new(false);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total || failed.load(Ordering::Relaxed) {
                        return;
                    }
                    // Item i is due at i / rate seconds.
                    let due = Duration::from_secs_f64(i as f64 / rate as f64);
                    if let Some(wait) = due.checked_sub(start.elapsed()) {
                        std::thread::sleep(wait);
                    }
                    if let Err(error) = work(i) {
                        eprintln!("bench: {error:#}");
                        failed.store(true, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    if failed.load(Ordering::Relaxed) {
        bail!("the load generator failed (above)");
    }
    Ok((
        total.min(next.load(Ordering::Relaxed)),
        start.elapsed().as_secs_f64(),
    ))
}

/// Spawns `/bin/true <marker>-<i>` and reaps it.
fn exec_one(marker: &str, i: u64) -> anyhow::Result<()> {
    let status = Command::new("/bin/true")
        .arg(format!("{marker}-{i}"))
        .stdin(Stdio::null())
        .status()
        .context("cannot run /bin/true")?;
    if !status.success() {
        bail!("/bin/true failed: {status}");
    }
    Ok(())
}

/// One loopback connection from 127.1.x.y (by `i`) to `server`, closed by the client.
fn connect_one(server: SocketAddr, i: u64) -> anyhow::Result<()> {
    let host = 1 + (i % 60_000);
    let source = Ipv4Addr::new(127, 1, (host / 250) as u8, (1 + host % 250) as u8);
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&SocketAddr::new(source.into(), 0).into())?;
    socket
        .connect(&server.into())
        .with_context(|| format!("connect from {source}"))?;
    drop(TcpStream::from(socket));
    Ok(())
}

/// `vigil bench sensor`.
pub fn run(args: &SensorArgs) -> anyhow::Result<ExitCode> {
    if args.duration == 0 {
        bail!("--duration must be at least 1");
    }
    if !nix::unistd::geteuid().is_root() {
        bail!("the sensor needs root (eBPF, packet and fanotify sockets): run as root");
    }
    let marker = format!("vigil-bench-{}", std::process::id());
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let server = listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let acceptor = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                // Accepted and closed at once; the client closes its end too.
                drop(stream);
            }
        })
    };
    let mut probe = Probe::start(&marker, server.port())?;
    let pid = probe.pid();
    println!(
        "vigil bench sensor: probe pid {pid}, {} s per step, marker {marker}",
        args.duration
    );
    std::thread::sleep(Duration::from_millis(500));
    let idle = probe.counts()?;
    let (rss, anon) = rss_now(pid);
    println!(
        "idle: probe rss {:.1} MiB ({:.1} MiB anonymous, the rest the mapped binary), peak {:.1} MiB \
         (start-up), {} events seen while starting",
        mib(rss),
        mib(anon),
        mib(super::bench::proc_hwm_bytes(pid).unwrap_or(0)),
        idle.events
    );

    for &rate in &args.exec_rates {
        let before = probe.counts()?;
        let cpu_before = cpu_seconds(pid);
        let (generated, elapsed) = paced(rate, args.duration, 4, |i| {
            exec_one(&format!("{marker}-x{rate}"), i)
        })?;
        let after = probe.settle(|c| c.launches - before.launches >= generated)?;
        let step = Step {
            generated,
            elapsed,
            captured: after.minus(before),
            cpu: cpu_seconds(pid) - cpu_before,
        };
        step.print("exec", "exec", generated, step.captured.launches, pid);
    }

    // Events per connection, measured where nothing is lost: the first TCP step's rate, slow.
    let before = probe.counts()?;
    let (calibration, _) = paced(100, 1, 2, |i| connect_one(server, i))?;
    let after = probe.settle(|c| c.tcp - before.tcp >= calibration * 6)?;
    let per_connection = (after.tcp - before.tcp) / calibration.max(1);
    println!(
        "tcp: {per_connection} events per loopback connection (calibrated on {calibration} connections, {} dropped)",
        after.dropped - before.dropped
    );
    let mut offset = calibration;
    for &rate in &args.tcp_rates {
        let before = probe.counts()?;
        let cpu_before = cpu_seconds(pid);
        let base = offset;
        let (generated, elapsed) =
            paced(rate, args.duration, 4, |i| connect_one(server, base + i))?;
        offset += generated;
        let expected = generated * per_connection;
        let after = probe.settle(|c| c.tcp - before.tcp >= expected)?;
        let step = Step {
            generated,
            elapsed,
            captured: after.minus(before),
            cpu: cpu_seconds(pid) - cpu_before,
        };
        step.print("tcp ", "conn", expected, step.captured.tcp, pid);
    }

    if args.steady > 0 {
        // Each exec is three events (fork, exec, exit): 167 execs/s is about 500 events/s.
        let before = probe.counts()?;
        let cpu_before = cpu_seconds(pid);
        let (generated, elapsed) = paced(167, args.steady, 1, |i| {
            exec_one(&format!("{marker}-steady"), i)
        })?;
        let after = probe.settle(|c| c.launches - before.launches >= generated)?;
        let cpu = cpu_seconds(pid) - cpu_before;
        let got = after.minus(before);
        let (rss, anon) = rss_now(pid);
        println!(
            "steady: {:.0} events/s for {:.0} s ({} execs, {}/{} launches captured, {} dropped) | \
             sensor threads cpu {:.2}% of one core | probe rss {:.1} MiB ({:.1} MiB anonymous)",
            got.events as f64 / elapsed,
            elapsed,
            generated,
            got.launches,
            generated,
            got.dropped,
            cpu / elapsed * 100.0,
            mib(rss),
            mib(anon),
        );
    }
    stop.store(true, Ordering::Relaxed);
    let _ = TcpStream::connect(server);
    let _ = acceptor.join();
    Ok(ExitCode::SUCCESS)
}
