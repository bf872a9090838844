//! `vigil inject scan`: a deterministic port scan fed into the HTTP fleet API, for checking the
//! path from ingest to a T1046 alert on hosts where no live capture runs.
//!
//! The events have the shape the sensor gives live TCP observations (see
//! `vigil-sensor/src/normalise/network.rs`): an attempt on an open port is an inbound
//! `SYN_RECV` *Open*, one on a closed port is the kernel's `NO_SOCKET` reset, an inbound
//! *Refuse*. Only `metadata.log_name` differs (`inject`, not `ebpf`), so injected events can be
//! told apart in the store.

use std::net::IpAddr;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use vigil_ocsf::{
    ConnectionInfo, Device, Direction, Event, Metadata, NetworkActivity, NetworkActivityId,
    NetworkEndpoint, NetworkUnmapped, StatusId,
};

/// `vigil inject …`.
#[derive(Debug, Subcommand)]
pub enum InjectCommand {
    /// Inbound connection attempts from one source to many ports of one target, as the sensor
    /// reports a SYN or connect scan.
    Scan(ScanArgs),
}

/// Options of `vigil inject scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// The server's operator API, e.g. `http://127.0.0.1:8080`.
    #[arg(long, env = "VIGIL_SERVER_API")]
    server: String,
    /// The sensor the events come from. Without it, a new third-party sensor is registered
    /// (`POST /api/v1/endpoints`) and its id and token are printed.
    #[arg(long)]
    sensor: Option<String>,
    /// The sensor's bearer token.
    #[arg(long, env = "VIGIL_SENSOR_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// An admin's operator API token (`vgl_…`, from `vigil token create`), needed to register
    /// a new sensor when no `--sensor` is given.
    #[arg(long, env = "VIGIL_API_TOKEN", hide_env_values = true)]
    api_token: Option<String>,
    /// How many distinct ports to try.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..))]
    ports: u16,
    /// The scanner's address.
    #[arg(long, default_value = "198.51.100.77")]
    source: IpAddr,
    /// The scanned host's address.
    #[arg(long, default_value = "192.0.2.10")]
    target: IpAddr,
    /// The first port tried; the others follow it.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    first_port: u16,
    /// Ports among those tried that are open (answered by a listener, `SYN_RECV`); the
    /// others are closed (answered with a reset). Comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "22,80")]
    open: Vec<u16>,
    /// Milliseconds between two attempts (event times; nothing waits).
    #[arg(long, default_value_t = 5)]
    every_ms: u32,
    /// Events per `POST events` request (the API takes at most 5,000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=5000))]
    batch: u32,
}

/// Runs an inject subcommand.
pub fn run(command: InjectCommand) -> anyhow::Result<ExitCode> {
    match command {
        InjectCommand::Scan(args) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(scan(args))
        }
    }
}

/// What one injected scan looks like.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanPlan {
    /// The scanner.
    pub source: IpAddr,
    /// The scanned host.
    pub target: IpAddr,
    /// The ports tried, in order.
    pub ports: Vec<u16>,
    /// Which of them are open.
    pub open: Vec<u16>,
    /// Time of the first attempt, ms since the epoch.
    pub start_ms: i64,
    /// Spacing of the attempts.
    pub every_ms: u32,
}

impl ScanPlan {
    /// Time of the last attempt.
    pub fn end_ms(&self) -> i64 {
        let steps = i64::try_from(self.ports.len().saturating_sub(1)).unwrap_or(i64::MAX);
        self.start_ms + steps * i64::from(self.every_ms)
    }

    /// One event per port, in order. `device` is the sensor's host (the server overwrites
    /// `device.uid` with the authenticated sensor anyway).
    pub fn events(&self, device: &Device) -> anyhow::Result<Vec<Event>> {
        // A run id keeps two runs with equal times from being de-duplicated into one.
        let run = uuid::Uuid::now_v7().simple().to_string();
        self.ports
            .iter()
            .enumerate()
            .map(|(i, &port)| {
                let offset = i64::try_from(i).unwrap_or(i64::MAX) * i64::from(self.every_ms);
                let time = self.start_ms + offset;
                // Ephemeral source ports, as nmap varies them.
                let sport = 40_000 + u16::try_from(i % 20_000).unwrap_or(0);
                let mut record = attempt(
                    self.source,
                    sport,
                    self.target,
                    port,
                    self.open.contains(&port),
                    time,
                    device,
                );
                record.metadata.uid = format!("inject-{run}-{i}");
                Event::from_record(&record).context("cannot encode an injected event")
            })
            .collect()
    }
}

/// One inbound attempt from `src:sport` to `dst:dport`, as the sensor reports it: a
/// `SYN_RECV` transition when the port is open, a `NO_SOCKET` reset when it is closed.
fn attempt(
    src: IpAddr,
    sport: u16,
    dst: IpAddr,
    dport: u16,
    open: bool,
    time: i64,
    device: &Device,
) -> NetworkActivity {
    let v6 = |ip: IpAddr| ip.is_ipv6().to_string();
    let mut info = ConnectionInfo::tcp(Direction::Inbound, if dst.is_ipv6() { 6 } else { 4 });
    let activity = if open {
        NetworkActivityId::Open
    } else {
        info.tcp_flags = Some(0x02);
        NetworkActivityId::Refuse
    };
    let mut record = NetworkActivity::new(
        activity,
        time,
        Metadata::vigil("inject"),
        device.clone(),
        info,
    );
    if open {
        record.status_detail = Some("inbound connection attempt (handshake completing)".into());
    } else {
        record = record.with_status(StatusId::Failure);
        record.status_code = Some("NO_SOCKET".into());
        record.status_detail = Some("SYN to a closed port answered with RST".into());
    }
    let endpoint = |ip: IpAddr, port: u16| NetworkEndpoint {
        ip: Some(ip.to_string()),
        port: Some(port),
        hostname: None,
    };
    record.src_endpoint = Some(endpoint(src, sport));
    record.dst_endpoint = Some(endpoint(dst, dport));
    record.is_src_dst_assignment_known = Some(true);
    record.unmapped = Some(NetworkUnmapped {
        initiated: Some("false".into()),
        source_is_ipv6: Some(v6(src)),
        destination_is_ipv6: Some(v6(dst)),
        tcp_state: open.then(|| "SYN_RECV".into()),
        tcp_old_state: open.then(|| "LISTEN".into()),
        tcp_reset_reason: (!open).then(|| "NO_SOCKET".into()),
        netns: None,
    });
    record
}

/// Where the sensor's events go and how it authenticates.
struct SensorAuth {
    id: String,
    token: String,
}

async fn scan(args: ScanArgs) -> anyhow::Result<ExitCode> {
    let base = api_base(&args.server)?;
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .context("cannot build the HTTP client")?;
    let auth = match (&args.sensor, &args.token) {
        (Some(id), Some(token)) => SensorAuth {
            id: id.strip_prefix("edr:").unwrap_or(id).to_owned(),
            token: token.clone(),
        },
        (Some(id), None) => bail!(
            "no token for sensor {id}: pass --token or set VIGIL_SENSOR_TOKEN (the token \
             `POST /api/v1/endpoints` returned, or the agent's identity.json)"
        ),
        (None, Some(_)) => bail!("--token needs --sensor: which sensor is it the token of?"),
        (None, None) => register(&client, &base, args.api_token.as_deref()).await?,
    };
    let last = u32::from(args.first_port) + u32::from(args.ports) - 1;
    if last > u32::from(u16::MAX) {
        bail!(
            "--first-port {} with --ports {} runs past port 65535",
            args.first_port,
            args.ports
        );
    }
    let ports: Vec<u16> = (args.first_port..=u16::try_from(last).unwrap_or(u16::MAX)).collect();
    let open: Vec<u16> = args
        .open
        .iter()
        .copied()
        .filter(|p| ports.contains(p))
        .collect();
    let span_ms = i64::from(args.every_ms) * i64::from(args.ports - 1);
    let plan = ScanPlan {
        source: args.source,
        target: args.target,
        ports,
        open,
        // Ending now, so the events are as fresh as a live scan's.
        start_ms: vigil_ocsf::now_ms() - span_ms,
        every_ms: args.every_ms,
    };
    let device = Device {
        uid: auth.id.clone(),
        ..Device::default()
    };
    let events = plan.events(&device)?;
    println!(
        "inject: {} inbound connection attempts from {} to {}, ports {}-{} ({} distinct, {} open), \
         over {} ms, as sensor {}",
        events.len(),
        plan.source,
        plan.target,
        args.first_port,
        last,
        plan.ports.len(),
        plan.open.len(),
        plan.end_ms() - plan.start_ms,
        auth.id
    );
    let url = format!("{base}/api/v1/edr/{}/events", auth.id);
    let (mut stored, mut duplicates) = (0u64, 0u64);
    for chunk in events.chunks(usize::try_from(args.batch).unwrap_or(50)) {
        let body: Vec<&Value> = chunk.iter().map(|e| &e.data).collect();
        let res = client
            .post(&url)
            .bearer_auth(&auth.token)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("cannot reach the server at {base}"))?;
        let status = res.status();
        let answer: Value = res.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("{}", refusal(status, &answer, &auth.id));
        }
        println!("POST {url}: {} events -> {status} {answer}", chunk.len());
        stored += answer["stored"].as_u64().unwrap_or(0);
        duplicates += answer["duplicates"].as_u64().unwrap_or(0);
    }
    println!(
        "inject: done: {stored} stored, {duplicates} duplicates; alerts: {base}/api/v1/alerts"
    );
    Ok(ExitCode::SUCCESS)
}

/// `http://host:port` without a trailing slash, checked.
fn api_base(server: &str) -> anyhow::Result<String> {
    let url = reqwest::Url::parse(server).with_context(|| {
        format!("--server {server:?} is not a URL; expected e.g. http://127.0.0.1:8080")
    })?;
    match url.scheme() {
        "http" => {}
        "https" => bail!(
            "--server {server}: this build speaks plain HTTP to the operator API only; use \
             its http:// address"
        ),
        other => bail!("--server {server}: unsupported scheme {other:?}; expected http://"),
    }
    if url.host_str().is_none() {
        bail!("--server {server}: no host");
    }
    Ok(server.trim_end_matches('/').to_owned())
}

/// Registers a new third-party sensor and prints its id and token.
async fn register(
    client: &reqwest::Client,
    base: &str,
    api_token: Option<&str>,
) -> anyhow::Result<SensorAuth> {
    let Some(api_token) = api_token else {
        bail!(
            "registering a sensor needs an admin's API token: pass --api-token or set \
             VIGIL_API_TOKEN (`vigil token create NAME --user ADMIN`), or pass --sensor and \
             --token of a sensor registered earlier"
        );
    };
    let res = client
        .post(format!("{base}/api/v1/endpoints"))
        .bearer_auth(api_token)
        .json(&json!({"hostname": "vigil-inject", "os_name": "injected"}))
        .send()
        .await
        .with_context(|| format!("cannot reach the server at {base}"))?;
    let status = res.status();
    let answer: Value = res.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!(
            "registering a sensor failed: {status}: {}",
            error_message(&answer)
        );
    }
    let (Some(id), Some(token)) = (answer["sensor_id"].as_str(), answer["token"].as_str()) else {
        bail!("the server's answer to the registration has no sensor_id or token: {answer}");
    };
    println!(
        "inject: no --sensor given: registered a new third-party sensor {id}; its token \
         (shown once): {token}"
    );
    Ok(SensorAuth {
        id: id.to_owned(),
        token: token.to_owned(),
    })
}

/// Why the server refused a batch, in words an operator can act on.
fn refusal(status: reqwest::StatusCode, answer: &Value, sensor: &str) -> String {
    let message = error_message(answer);
    match status.as_u16() {
        401 => format!(
            "the server refused the token (401 Unauthorized: {message}); check --token / \
             VIGIL_SENSOR_TOKEN for sensor {sensor}"
        ),
        403 => format!("the server refused sensor {sensor} (403 Forbidden: {message})"),
        404 => format!(
            "the server does not know this route or sensor {sensor} (404: {message}); is \
             --server the operator API address?"
        ),
        _ => format!("the server refused the events: {status}: {message}"),
    }
}

fn error_message(answer: &Value) -> String {
    answer["error"]["message"]
        .as_str()
        .map_or_else(|| answer.to_string(), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> ScanPlan {
        ScanPlan {
            source: "198.51.100.77".parse().unwrap_or_else(|_| unreachable!()),
            target: "192.0.2.10".parse().unwrap_or_else(|_| unreachable!()),
            ports: (20..=25).collect(),
            open: vec![22],
            start_ms: 1_000,
            every_ms: 5,
        }
    }

    #[test]
    fn events_are_inbound_attempts_the_port_scan_rule_counts() {
        let events = plan()
            .events(&Device::default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(events.len(), 6);
        assert_eq!(plan().end_ms(), 1_025);
        for (event, port) in events.iter().zip(20u16..) {
            let get = |path: &str| event.get(path).cloned().unwrap_or(Value::Null);
            assert_eq!(event.class_uid, 4001);
            assert_eq!(get("src_endpoint.ip"), "198.51.100.77");
            assert_eq!(get("dst_endpoint.ip"), "192.0.2.10");
            assert_eq!(get("dst_endpoint.port"), port);
            assert_eq!(get("connection_info.direction_id"), 1);
            assert_eq!(get("unmapped.initiated"), "false");
            assert_eq!(get("metadata.log_name"), "inject");
            if port == 22 {
                assert_eq!(get("activity_id"), 1);
                assert_eq!(get("unmapped.tcp_state"), "SYN_RECV");
            } else {
                assert_eq!(get("activity_id"), 5);
                assert_eq!(get("unmapped.tcp_reset_reason"), "NO_SOCKET");
                assert_eq!(get("connection_info.tcp_flags"), 2);
            }
        }
        let mut uids: Vec<_> = events.iter().map(|e| e.uid.clone()).collect();
        uids.dedup();
        assert_eq!(uids.len(), 6, "every event has its own id");
    }

    #[test]
    fn server_urls_are_checked() {
        assert_eq!(
            api_base("http://127.0.0.1:8080/").ok().as_deref(),
            Some("http://127.0.0.1:8080")
        );
        for bad in ["127.0.0.1:8080", "https://h:1", "ftp://h", "not a url"] {
            assert!(api_base(bad).is_err(), "{bad}");
        }
    }
}
