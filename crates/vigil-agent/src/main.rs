//! `vigil-agent`: the host agent binary.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use vigil_agent::cli::{AuthActivityArgs, DnsActivityArgs, FileActivityArgs, YaraArgs};
use vigil_agent::{Agent, AgentConfig, SourceMode};

/// Vigil host agent: captures process activity and streams it to the fleet server.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Fleet server URL.
    #[arg(long, env = "VIGIL_SERVER", default_value = "https://127.0.0.1:8443")]
    server: String,
    /// The fleet CA certificate to trust when enrolling (the server's `fleet-ca.crt`).
    #[arg(long, env = "VIGIL_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// The enrollment secret (the server's `enroll.secret`); needed only until enrolled.
    #[arg(long, env = "VIGIL_ENROLL_SECRET", hide_env_values = true)]
    enroll_secret: Option<String>,
    /// Where the buffer and the sensor id are kept.
    #[arg(
        long,
        env = "VIGIL_AGENT_DATA_DIR",
        default_value = "/var/lib/vigil-agent"
    )]
    data_dir: PathBuf,
    /// Capture source.
    #[arg(long, env = "VIGIL_SENSOR", value_enum, default_value_t = Source::Auto)]
    sensor: Source,
    /// Seconds between heartbeats.
    #[arg(long, env = "VIGIL_HEARTBEAT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    heartbeat_secs: u64,
    /// DNS servers an isolated host may still query (comma-separated addresses).
    #[arg(long, env = "VIGIL_ISOLATION_DNS", value_delimiter = ',')]
    isolation_dns: Vec<std::net::IpAddr>,
    #[command(flatten)]
    files: FileActivityArgs,
    #[command(flatten)]
    auth: AuthActivityArgs,
    #[command(flatten)]
    dns: DnsActivityArgs,
    #[command(flatten)]
    yara: YaraArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Source {
    /// eBPF, falling back to the netlink process connector.
    Auto,
    /// eBPF only.
    Ebpf,
    /// Netlink process connector only.
    ProcConnector,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,aya=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vigil-agent: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vigil-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut cfg = AgentConfig::new(args.data_dir, args.server);
    if let Some(path) = &args.ca_cert {
        let pem = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!("cannot read the CA certificate {}: {e}", path.display())
        })?;
        cfg.ca_pem = Some(pem);
    }
    cfg.enroll_secret = args.enroll_secret;
    cfg.heartbeat = std::time::Duration::from_secs(args.heartbeat_secs);
    cfg.isolation_dns = args.isolation_dns;
    cfg.files = args.files.config();
    cfg.auth = args.auth.config();
    cfg.dns = args.dns.config();
    cfg.yara_rules = args.yara.yara_rules;
    cfg.sensor = Some(match args.sensor {
        Source::Auto => SourceMode::Auto,
        Source::Ebpf => SourceMode::Ebpf,
        Source::ProcConnector => SourceMode::ProcConnector,
    });
    let agent = Agent::start(cfg).await?;
    tracing::info!(
        sensor_id = agent.sensor_id(),
        "Agent running; Ctrl-C to stop"
    );
    wait_for_signal().await?;
    tracing::info!("Stopping: flushing the buffer");
    agent.shutdown().await;
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}
