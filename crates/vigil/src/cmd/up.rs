//! `vigil up` (server + local agent) and `vigil server` (server only).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use tokio_util::sync::CancellationToken;
use vigil_agent::cli::{AuthActivityArgs, DnsActivityArgs, FileActivityArgs, YaraArgs};
use vigil_agent::{Agent, AgentConfig, AuthConfig, DnsConfig, FileConfig, SourceMode};
use vigil_detect::{LoadReport, RuleStatus};
use vigil_server::{Role, Roles, Server, ServerConfig};

/// Options shared by `vigil up` and `vigil server`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Where the server keeps its database (and `vigil up` its agent's buffer).
    #[arg(long, env = "VIGIL_DATA_DIR", default_value = "/var/lib/vigil")]
    data_dir: PathBuf,
    /// Operator API address.
    #[arg(long, env = "VIGIL_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Fleet address agents connect to. `vigil up` defaults to a free loopback port, enough
    /// for its local agent; set it to accept remote agents.
    #[arg(long, env = "VIGIL_FLEET_LISTEN")]
    fleet_listen: Option<SocketAddr>,
    /// Sigma rule folder, searched recursively; repeat for several. Default: Vigil's own
    /// `rules/` folder.
    #[arg(long = "rules", value_name = "DIR")]
    rules: Vec<PathBuf>,
    /// Enrollment secret agents present. Default: kept in `enroll.secret` in the data
    /// directory (created on first start, mode 0600).
    #[arg(long, env = "VIGIL_ENROLL_SECRET", hide_env_values = true)]
    enroll_secret: Option<String>,
    /// Extra host name or address agents use to reach the fleet listener (goes into its TLS
    /// certificate); repeatable.
    #[arg(long = "fleet-name", value_name = "NAME")]
    fleet_names: Vec<String>,
    /// Server roles to run, comma-separated. Leaving out `detect` stores events without
    /// scoring them; a later start with it scores them from where detection stopped.
    #[arg(long, env = "VIGIL_ROLES", default_value = "fleet,ingest,detect,api")]
    roles: Roles,
    /// External action backend: commands for endpoints whose sensor cannot carry them out are
    /// POSTed here (docs/RESPONSE.md). Empty: off, and such commands are refused (503).
    #[arg(long, env = "VIGIL_ACTION_WEBHOOK", default_value = "")]
    action_webhook: String,
    /// Seconds a command waits for its endpoint before it expires.
    #[arg(long, env = "VIGIL_COMMAND_TTL_SECS", default_value_t = 86_400, value_parser = clap::value_parser!(u64).range(1..))]
    command_ttl_secs: u64,
    /// Name of the first administrator, created when no operator exists. Its password comes
    /// from `VIGIL_ADMIN_PASSWORD`, or is generated and printed once.
    #[arg(long, env = "VIGIL_ADMIN_USER", default_value = "admin")]
    admin_user: String,
    /// Mark the console's session cookie `Secure` (when the API is reached over HTTPS).
    #[arg(long, env = "VIGIL_COOKIE_SECURE", value_parser = clap::builder::BoolishValueParser::new())]
    cookie_secure: bool,
    /// Hours each endpoint's behaviour baseline learns (process lineages, outbound
    /// destinations per executable) before it flags what is new or rare.
    #[arg(long, env = "VIGIL_BASELINE_LEARNING_HOURS", default_value_t = 168)]
    baseline_learning_hours: u64,
    /// Turn the behaviour baseline off.
    #[arg(long, env = "VIGIL_NO_BASELINE", value_parser = clap::builder::BoolishValueParser::new())]
    no_baseline: bool,
    /// The event bus: empty for the in-process bus of a single server, or a NATS URL
    /// (`nats://127.0.0.1:4222`, JetStream on) to run roles as several processes
    /// (docs/SCALE_OUT.md).
    #[arg(long, env = "VIGIL_BUS", default_value = "")]
    bus: String,
    /// Detection partitions on the NATS bus; every instance must use the same number.
    #[arg(long, env = "VIGIL_BUS_PARTITIONS", default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=1024))]
    bus_partitions: u16,
    /// Prefix of every subject, stream and bucket name on the NATS bus, so that several Vigil
    /// deployments can share one NATS.
    #[arg(long, env = "VIGIL_BUS_PREFIX", default_value = "vigil", value_parser = bus_prefix)]
    bus_prefix: String,
    /// The store: empty for SQLite in the data directory, or a PostgreSQL URL
    /// (`postgres://user@127.0.0.1:5432/vigil`).
    #[arg(long, env = "VIGIL_STORE", default_value = "", hide_env_values = true)]
    store: String,
    /// Minutes an unused console session lasts.
    #[arg(long, env = "VIGIL_SESSION_IDLE_MINS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    session_idle_mins: u64,
    /// Hours a console session lasts at most.
    #[arg(long, env = "VIGIL_SESSION_MAX_HOURS", default_value_t = 12, value_parser = clap::value_parser!(u64).range(1..))]
    session_max_hours: u64,
}

/// Options of `vigil up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Capture source of the local agent.
    #[arg(long, env = "VIGIL_SENSOR", value_enum, default_value_t = Source::Auto)]
    sensor: Source,
    /// File activity the local agent reports (the data directory is always excluded).
    #[command(flatten)]
    files: FileActivityArgs,
    /// Logins and authentications the local agent reports.
    #[command(flatten)]
    auth: AuthActivityArgs,
    /// DNS the local agent reports.
    #[command(flatten)]
    dns: DnsActivityArgs,
    /// YARA rules the local agent scans executed files with.
    #[command(flatten)]
    yara: YaraArgs,
}

/// Capture source choice on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Source {
    /// eBPF, falling back to the netlink process connector.
    Auto,
    /// eBPF only.
    Ebpf,
    /// Netlink process connector only.
    ProcConnector,
}

impl From<Source> for SourceMode {
    fn from(s: Source) -> Self {
        match s {
            Source::Auto => Self::Auto,
            Source::Ebpf => Self::Ebpf,
            Source::ProcConnector => Self::ProcConnector,
        }
    }
}

/// What the local agent of `vigil up` captures.
struct LocalCapture {
    mode: SourceMode,
    files: FileConfig,
    auth: AuthConfig,
    dns: DnsConfig,
    yara_rules: Vec<PathBuf>,
}

/// Default fleet address of `vigil server`.
const SERVER_FLEET_DEFAULT: &str = "127.0.0.1:8443";

/// `vigil up`.
pub fn up(args: UpArgs) -> anyhow::Result<ExitCode> {
    let fleet = args
        .server
        .fleet_listen
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    let capture = LocalCapture {
        mode: SourceMode::from(args.sensor),
        files: args.files.config(),
        auth: args.auth.config(),
        dns: args.dns.config(),
        yara_rules: args.yara.yara_rules,
    };
    runtime()?.block_on(run(args.server, fleet, Some(capture)))
}

/// `vigil server`.
pub fn server(args: ServerArgs) -> anyhow::Result<ExitCode> {
    let fleet = match args.fleet_listen {
        Some(addr) => addr,
        None => SERVER_FLEET_DEFAULT.parse()?,
    };
    runtime()?.block_on(run(args, fleet, None))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("cannot start the async runtime")
}

async fn run(
    args: ServerArgs,
    fleet_listen: SocketAddr,
    local_agent: Option<LocalCapture>,
) -> anyhow::Result<ExitCode> {
    // Registered before anything starts, so a signal during start-up is not lost.
    let mut signals = Signals::new()?;
    let rule_dirs = if args.rules.is_empty() {
        vec![default_rules_dir()?]
    } else {
        args.rules
    };
    let mut config = ServerConfig::new(
        args.data_dir.clone(),
        args.listen,
        fleet_listen,
        rule_dirs.clone(),
    );
    config.enroll_secret = args.enroll_secret;
    config.fleet_names = args.fleet_names;
    config.roles = args.roles;
    config.nats = match args.bus.trim() {
        "" => None,
        url if url.starts_with("nats://") || url.starts_with("tls://") => {
            let mut nats = vigil_server::bus::nats::NatsConfig::new(url);
            nats.partitions = args.bus_partitions;
            nats.prefix = args.bus_prefix;
            Some(nats)
        }
        other => anyhow::bail!("--bus {other:?}: expected empty (in-process) or a nats:// URL"),
    };
    config.postgres = match args.store.trim() {
        "" => None,
        url if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Some(url.to_owned())
        }
        _ => anyhow::bail!(
            "--store: expected empty (SQLite in the data directory) or a postgres:// URL"
        ),
    };
    config.response = vigil_server::response::ResponseConfig {
        action_webhook: Some(args.action_webhook).filter(|u| !u.trim().is_empty()),
        command_ttl: Some(Duration::from_secs(args.command_ttl_secs)),
    };
    config.auth = vigil_server::auth::AuthConfig {
        cookie_secure: args.cookie_secure,
        session_idle: Duration::from_secs(args.session_idle_mins * 60),
        session_absolute: Duration::from_secs(args.session_max_hours * 3600),
    };
    config.baseline = (!args.no_baseline).then(|| vigil_detect::BaselineConfig {
        learning_ms: i64::try_from(args.baseline_learning_hours.saturating_mul(3_600_000))
            .unwrap_or(i64::MAX),
        ..vigil_detect::BaselineConfig::default()
    });
    // From the environment only: a password on the command line shows in `ps`.
    config.first_admin = vigil_server::FirstAdminConfig {
        name: args.admin_user,
        password: std::env::var("VIGIL_ADMIN_PASSWORD")
            .ok()
            .filter(|p| !p.is_empty()),
    };
    let server = Server::bind(&config).await?;
    print_rules_summary(server.rule_report(), &rule_dirs);
    match server.first_admin() {
        Some(a) => match &a.generated_password {
            Some(p) => println!(
                "admin: created the first administrator {:?} with password {p} (shown once; \
                 change it with `vigil user passwd {}`)",
                a.name, a.name
            ),
            None => println!(
                "admin: created the first administrator {:?} with the password from \
                 VIGIL_ADMIN_PASSWORD",
                a.name
            ),
        },
        None if config.first_admin.password.is_some() => {
            println!("admin: operators exist already; VIGIL_ADMIN_PASSWORD is not used")
        }
        None => {}
    }
    let api = server.api_addr();
    let fleet = server.fleet_addr();
    let ca_path = &server.ca_path().to_owned();
    let secret = server.enroll_secret().to_owned();
    let secret_note = match server.secret_path() {
        Some(p) => format!("enrollment secret in {}", p.display()),
        None => "enrollment secret from the configuration".to_owned(),
    };

    let shutdown = CancellationToken::new();
    let mut server_task = tokio::spawn(server.run(shutdown.clone()));

    let agent = match local_agent {
        Some(capture) => {
            let mut cfg = AgentConfig::new(args.data_dir.join("agent"), fleet_url(fleet));
            cfg.sensor = Some(capture.mode);
            // The server writes its store here, in this very process: never report it.
            cfg.files = capture.files;
            cfg.files.exclude.push(args.data_dir.clone());
            cfg.auth = capture.auth;
            cfg.dns = capture.dns;
            cfg.yara_rules = capture.yara_rules;
            cfg.heartbeat = Duration::from_secs(10);
            cfg.ca_pem = Some(
                std::fs::read_to_string(ca_path)
                    .with_context(|| format!("cannot read {}", ca_path.display()))?,
            );
            cfg.enroll_secret = Some(secret.clone());
            match Agent::start(cfg).await {
                Ok(agent) => Some(agent),
                Err(error) => {
                    shutdown.cancel();
                    let _ = server_task.await;
                    return Err(
                        anyhow::Error::new(error).context("the local agent could not start")
                    );
                }
            }
        }
        None => None,
    };

    if config.roles.has(Role::Fleet) {
        println!(
            "fleet: agents connect to {} (CA {}, {secret_note})",
            fleet_url(fleet),
            ca_path.display()
        );
    }
    if let Some(nats) = &config.nats {
        println!(
            "bus: NATS JetStream at {} (prefix {}, {} detection partitions); store: {}",
            nats.url,
            nats.prefix,
            nats.partitions,
            if config.postgres.is_some() {
                "PostgreSQL"
            } else {
                "SQLite"
            }
        );
    }
    if let Some(nats) = config
        .nats
        .as_ref()
        .filter(|_| config.roles.has(Role::Detect))
    {
        println!(
            "detect: claiming detection partitions on the bus as {}",
            nats.instance
        );
    }
    if let Some(agent) = &agent {
        let sources: Vec<_> = agent
            .capabilities()
            .iter()
            .filter(|c| c.live)
            .map(|c| format!("{} via {}", c.name, c.source))
            .collect();
        println!(
            "agent: sensor {} ({})",
            agent.sensor_id(),
            sources.join(", ")
        );
    }
    if config.roles.has(Role::Api) {
        println!("API listening on http://{api}");
        println!(
            "  try: curl -s -H \"Authorization: Bearer $(vigil token create cli --user ADMIN \
             --data-dir DIR)\" http://{api}/api/v1/alerts (docs/API.md)"
        );
    }
    if agent.is_some() {
        println!("Ctrl-C stops (the local agent flushes its buffer first).");
    } else {
        println!("Ctrl-C stops.");
    }

    tokio::select! {
        () = signals.recv() => {}
        res = &mut server_task => {
            // The server only stops by itself on an error: report it.
            if let Some(agent) = agent {
                agent.shutdown().await;
            }
            res.context("the server task panicked")??;
            anyhow::bail!("the server stopped unexpectedly");
        }
    }
    eprintln!("vigil: stopping");
    if let Some(agent) = agent {
        agent.shutdown().await;
    }
    shutdown.cancel();
    server_task
        .await
        .context("the server task panicked")?
        .context("the server stopped with an error")?;
    Ok(ExitCode::SUCCESS)
}

fn fleet_url(addr: SocketAddr) -> String {
    let addr = if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    };
    format!("https://{addr}")
}

/// Vigil's own `rules/` folder: next to the working directory, else in the source tree the
/// binary was built from.
fn default_rules_dir() -> anyhow::Result<PathBuf> {
    let candidates = [
        PathBuf::from("rules"),
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../rules")),
    ];
    candidates
        .iter()
        .find(|p| p.is_dir())
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("no rules folder found (looked for ./rules and the source tree's rules/); pass --rules DIR"))
}

fn print_rules_summary(report: &LoadReport, dirs: &[PathBuf]) {
    for r in report.problems() {
        match &r.status {
            RuleStatus::Malformed(why) => {
                println!("rules: skipped {}: malformed: {why}", r.path.display())
            }
            RuleStatus::Unsupported(why) => {
                println!("rules: skipped {}: unsupported: {why}", r.path.display())
            }
            RuleStatus::NotApplicable(_) | RuleStatus::Loaded => {}
        }
    }
    let c = report.counts();
    let dirs: Vec<_> = dirs.iter().map(|d| d.display().to_string()).collect();
    println!(
        "rules: {} loaded, {} skipped, {} not applicable (from {}; `vigil rules check` lists why)",
        c.loaded,
        c.malformed + c.unsupported,
        c.not_applicable,
        dirs.join(", ")
    );
}

/// SIGINT and SIGTERM, watched from creation on.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            int: signal(SignalKind::interrupt()).context("cannot watch SIGINT")?,
            term: signal(SignalKind::terminate()).context("cannot watch SIGTERM")?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
    }
}

/// A bus prefix: one subject token, usable in stream names.
fn bus_prefix(s: &str) -> Result<String, String> {
    if !s.is_empty() && s.len() <= 32 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(s.to_owned())
    } else {
        Err("letters, digits and _ only, 1 to 32 of them".to_owned())
    }
}
