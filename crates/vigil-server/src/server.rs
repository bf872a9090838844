//! Wiring the roles into one running server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};
use vigil_detect::{LoadReport, RuleSet};

use crate::api::{ApiState, AuthState, app};
use crate::auth::{AuthConfig, FirstAdmin};
use crate::bus::nats::{NatsBus, NatsConfig};
use crate::bus::{Bus, InProcessBus, Notice, Relay};
use crate::detect::DetectWorker;
use crate::fleet::{Enrollment, FleetService, Sessions};
use crate::ingest::Ingestor;
use crate::live::{LiveFeed, LiveStore};
use crate::pki::{self, FleetCa};
use crate::response::{Responder, ResponseConfig};
use crate::roles::{Role, Roles};
use crate::store::sqlite::SqliteStore;
use crate::store::{Store, StoreError};

/// What the embedded server needs to start.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Directory holding `server.db` (created if missing).
    pub data_dir: PathBuf,
    /// Operator API address.
    pub api_listen: SocketAddr,
    /// Fleet (agent gRPC) address.
    pub fleet_listen: SocketAddr,
    /// Sigma rule directories, loaded recursively.
    pub rule_dirs: Vec<PathBuf>,
    /// The enrollment secret; `None` keeps (or creates) `enroll.secret` in the data directory.
    pub enroll_secret: Option<String>,
    /// Names and addresses agents use to reach the fleet listener; they go into its TLS
    /// certificate. `localhost`, `127.0.0.1`, `::1` and the host name are always included.
    pub fleet_names: Vec<String>,
    /// Lifetime of agent client certificates (agents renew at two thirds of it).
    pub cert_validity: Duration,
    /// Response settings (external action backend, command expiry).
    pub response: ResponseConfig,
    /// The roles to run; all by default. Only `detect` can be left out (see [`Roles`]).
    pub roles: Roles,
    /// Operator sessions (cookie flags, expiry).
    pub auth: AuthConfig,
    /// The administrator created at start when no operator exists yet.
    pub first_admin: FirstAdminConfig,
    /// The per-endpoint behaviour baseline of the detection role; `None` turns it off.
    pub baseline: Option<vigil_detect::BaselineConfig>,
    /// The scale-out bus (NATS JetStream); `None` keeps the in-process bus.
    pub nats: Option<NatsConfig>,
    /// The scale-out store (a PostgreSQL URL); `None` keeps SQLite in the data directory.
    pub postgres: Option<String>,
}

/// The first administrator, created at start when the store has no operator.
#[derive(Debug, Clone)]
pub struct FirstAdminConfig {
    /// Login name (default `admin`).
    pub name: String,
    /// Password; `None` generates one, which [`Server::first_admin`] returns to be shown once.
    pub password: Option<String>,
}

impl Default for FirstAdminConfig {
    fn default() -> Self {
        Self {
            name: "admin".into(),
            password: None,
        }
    }
}

/// Default lifetime of agent client certificates.
pub const DEFAULT_CERT_VALIDITY: Duration = Duration::from_secs(7 * 24 * 3600);

impl ServerConfig {
    /// A configuration with defaults for everything but the addresses, data and rules.
    pub fn new(
        data_dir: PathBuf,
        api_listen: SocketAddr,
        fleet_listen: SocketAddr,
        rule_dirs: Vec<PathBuf>,
    ) -> Self {
        Self {
            data_dir,
            api_listen,
            fleet_listen,
            rule_dirs,
            enroll_secret: None,
            fleet_names: Vec::new(),
            cert_validity: DEFAULT_CERT_VALIDITY,
            response: ResponseConfig::default(),
            roles: Roles::all(),
            auth: AuthConfig::default(),
            first_admin: FirstAdminConfig::default(),
            baseline: Some(vigil_detect::BaselineConfig::default()),
            nats: None,
            postgres: None,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A rules directory is missing or unreadable.
    #[error(transparent)]
    Rules(#[from] vigil_detect::LoadError),
    /// A listener could not be bound (port in use, no permission, bad address).
    #[error("cannot listen for the {role} on {addr}: {source}")]
    Bind {
        /// Which listener.
        role: &'static str,
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The data directory could not be created.
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The fleet CA or the server certificate could not be loaded or created.
    #[error("fleet PKI: {0}")]
    Pki(#[from] crate::pki::PkiError),
    /// TLS could not be configured.
    #[error("fleet TLS configuration: {0}")]
    Tls(String),
    /// The event bus could not be reached or set up.
    #[error("event bus: {0}")]
    Bus(String),
    /// The store could not be opened.
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    /// The first administrator could not be created.
    #[error("cannot create the first administrator: {0}")]
    FirstAdmin(#[from] crate::auth::FirstAdminError),
    /// A setting is invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// The roles asked for leave out one the in-process bus cannot do without.
    #[error(
        "on the in-process bus the server cannot run without the {missing} role(s) (asked for {asked}); split roles across processes with --bus nats://…"
    )]
    Roles {
        /// The roles left out that cannot be.
        missing: String,
        /// The roles asked for.
        asked: String,
    },
    /// A role stopped with an error while running.
    #[error("the {role} stopped: {message}")]
    Serve {
        /// Which role.
        role: &'static str,
        /// What happened.
        message: String,
    },
}

/// A server with everything acquired (rules, listeners, store) and nothing running yet, so a
/// start-up failure leaves nothing half-started.
pub struct Server {
    api: Option<TcpListener>,
    api_addr: SocketAddr,
    fleet: Option<TcpListener>,
    fleet_addr: SocketAddr,
    store: Backend,
    bus: Arc<dyn Bus>,
    nats: Option<Arc<NatsBus>>,
    rules: Arc<RuleSet>,
    maps: Arc<vigil_ocsf::fieldmap::FieldMaps>,
    catalog: Arc<crate::api::rules::RuleCatalog>,
    response: ResponseConfig,
    report: LoadReport,
    roles: Roles,
    enrollment: Arc<Enrollment>,
    tls: ServerTlsConfig,
    ca_path: PathBuf,
    secret_path: Option<PathBuf>,
    enroll_secret: String,
    auth: AuthConfig,
    first_admin: Option<FirstAdmin>,
    baseline: Option<vigil_detect::BaselineConfig>,
}

/// The store implementation in use, kept to close it cleanly at the end.
enum Backend {
    Sqlite(Arc<SqliteStore>),
    Postgres(Arc<crate::store::postgres::PgStore>),
}

impl Backend {
    async fn open(config: &ServerConfig) -> Result<Self, ServerError> {
        Ok(match &config.postgres {
            Some(url) => {
                Self::Postgres(Arc::new(crate::store::postgres::PgStore::open(url).await?))
            }
            None => Self::Sqlite(Arc::new(SqliteStore::open(&config.data_dir).await?)),
        })
    }

    fn as_dyn(&self) -> Arc<dyn Store> {
        match self {
            Self::Sqlite(s) => s.clone(),
            Self::Postgres(s) => s.clone(),
        }
    }

    async fn close(&self) {
        match self {
            Self::Sqlite(s) => s.close().await,
            Self::Postgres(s) => s.close().await,
        }
    }
}

async fn bind(
    role: &'static str,
    addr: SocketAddr,
) -> Result<(TcpListener, SocketAddr), ServerError> {
    let err = |source| ServerError::Bind { role, addr, source };
    let listener = TcpListener::bind(addr).await.map_err(err)?;
    let local = listener.local_addr().map_err(err)?;
    Ok((listener, local))
}

impl Server {
    /// Loads the rules, binds both listeners and opens the store, in that order.
    pub async fn bind(config: &ServerConfig) -> Result<Self, ServerError> {
        if let Some(url) = config.response.action_webhook.as_deref()
            && !url.trim().is_empty()
        {
            crate::response::Webhook::new(url).map_err(ServerError::Config)?;
        }
        let gaps = config.roles.unsupported_gaps();
        if !gaps.is_empty() && config.nats.is_none() {
            let missing: Vec<_> = gaps.iter().map(|r| r.as_str()).collect();
            return Err(ServerError::Roles {
                missing: missing.join(", "),
                asked: config.roles.to_string(),
            });
        }
        let maps = vigil_ocsf::fieldmap::FieldMaps::builtin().map_err(|e| ServerError::Serve {
            role: "rule loader",
            message: e.to_string(),
        })?;
        let (rules, report) = RuleSet::load_dirs(&config.rule_dirs, &maps)?;
        let (api, api_addr) = if config.roles.has(Role::Api) {
            let (l, a) = bind("operator API", config.api_listen).await?;
            (Some(l), a)
        } else {
            (None, config.api_listen)
        };
        let (fleet, fleet_addr) = if config.roles.has(Role::Fleet) {
            let (l, a) = bind("fleet (agent) service", config.fleet_listen).await?;
            (Some(l), a)
        } else {
            (None, config.fleet_listen)
        };
        std::fs::create_dir_all(&config.data_dir).map_err(|source| ServerError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let ca = FleetCa::load_or_create(&config.data_dir)?;
        let identity = ca.server_identity(&config.data_dir, &fleet_names(config))?;
        let tls = ServerTlsConfig::new()
            .identity(Identity::from_pem(&identity.cert_pem, &identity.key_pem))
            .client_ca_root(Certificate::from_pem(ca.cert_pem()))
            .client_auth_optional(true);
        let enroll_secret =
            pki::enrollment_secret(&config.data_dir, config.enroll_secret.as_deref())?;
        let enrollment = Arc::new(Enrollment {
            ca: Arc::new(ca),
            secret_hash: pki::hash_secret(&enroll_secret),
            cert_validity: config.cert_validity,
        });
        let store = Backend::open(config).await?;
        let (bus, nats): (Arc<dyn Bus>, _) = match &config.nats {
            Some(cfg) => {
                let nats = NatsBus::connect(cfg.clone())
                    .await
                    .map_err(|e| ServerError::Bus(e.to_string()))?;
                (nats.clone(), Some(nats))
            }
            None => (Arc::new(InProcessBus::new()), None),
        };
        let store_dyn = store.as_dyn();
        let rules = Arc::new(rules);
        let catalog = Arc::new(crate::api::rules::RuleCatalog::new(&rules, &report));
        crate::response::ensure_default_policy(&*store_dyn, &rules).await?;
        let first_admin = crate::auth::ensure_first_admin(
            &*store_dyn,
            &config.first_admin.name,
            config.first_admin.password.as_deref(),
        )
        .await?;
        if let Some(a) = &first_admin {
            tracing::info!(user = %a.name, "Created the first administrator");
        }
        Ok(Self {
            auth: config.auth.clone(),
            first_admin,
            baseline: config.baseline,
            enrollment,
            tls,
            ca_path: config.data_dir.join("fleet-ca.crt"),
            secret_path: config
                .enroll_secret
                .is_none()
                .then(|| config.data_dir.join("enroll.secret")),
            enroll_secret,
            api,
            api_addr,
            fleet,
            fleet_addr,
            store,
            bus,
            nats,
            rules,
            maps: Arc::new(maps),
            catalog,
            response: config.response.clone(),
            report,
            roles: config.roles.clone(),
        })
    }

    /// Where the operator API listens.
    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// Where agents connect.
    pub fn fleet_addr(&self) -> SocketAddr {
        self.fleet_addr
    }

    /// The fleet CA certificate agents must trust.
    pub fn ca_path(&self) -> &std::path::Path {
        &self.ca_path
    }

    /// Where the enrollment secret is kept, when it was not given in the configuration.
    pub fn secret_path(&self) -> Option<&std::path::Path> {
        self.secret_path.as_deref()
    }

    /// The enrollment secret (for the embedded local agent).
    pub fn enroll_secret(&self) -> &str {
        &self.enroll_secret
    }

    /// The administrator this start created (there was no operator before), with its
    /// password when it was generated; `None` when operators existed.
    pub fn first_admin(&self) -> Option<&FirstAdmin> {
        self.first_admin.as_ref()
    }

    /// What loading the rules found.
    pub fn rule_report(&self) -> &LoadReport {
        &self.report
    }

    /// Runs every role until `shutdown` is cancelled, then stops them and closes the store.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ServerError> {
        // On the scale-out bus, what operators change here reaches the other instances.
        let relay = Relay::new(Arc::clone(&self.bus));
        // Every role writes through the live store, so the operators' feed hears of each
        // committed alert and command change whoever made it.
        let live = LiveFeed::default().with_relay(relay.clone());
        let store: Arc<dyn Store> = Arc::new(LiveStore::new(self.store.as_dyn(), live.clone()));
        let bus = Arc::clone(&self.bus);

        let sessions = Sessions::default().with_relay(relay.clone());
        let switches =
            crate::switches::RuleSwitches::new(store.rules_off().await?).with_relay(relay);
        let notices = tokio::spawn(apply_notices(
            Arc::clone(&bus),
            sessions.clone(),
            switches.clone(),
            live.clone(),
            shutdown.clone(),
        ));
        let responder = Responder::new(
            Arc::clone(&store),
            sessions.clone(),
            Arc::clone(&self.rules),
            self.maps,
            &self.response,
        )
        .map_err(ServerError::Config)?;
        let responder = responder.with_switches(switches.clone());
        // Without the detect role, events are stored (and, at scale, kept on the bus) and
        // wait for a server that has it.
        let detect = if !self.roles.has(Role::Detect) {
            tracing::warn!("Detection is off (no detect role): events are stored, not scored");
            tokio::spawn(async {})
        } else if let Some(nats) = &self.nats {
            let worker = crate::detect::stream::StreamDetector::new(
                Arc::clone(nats),
                Arc::clone(&store),
                self.rules,
                switches.clone(),
                self.baseline,
            );
            tokio::spawn(worker.run(shutdown.clone()))
        } else {
            let mut worker = DetectWorker::with_switches(
                Arc::clone(&store),
                Arc::clone(&bus),
                self.rules,
                switches.clone(),
            );
            if let Some(cfg) = self.baseline {
                worker = worker.with_baseline(cfg);
            }
            tokio::spawn(worker.run(shutdown.clone()))
        };

        // The hunting index follows the event log on its own cursor (ingest role).
        let hunt = if self.roles.has(Role::Ingest) {
            tokio::spawn(
                crate::hunt::HuntIndexer::new(Arc::clone(&store), Arc::clone(&bus))
                    .run(shutdown.clone()),
            )
        } else {
            tokio::spawn(async {})
        };
        // The fleet service and the HTTP fleet API write what they receive through their own
        // process's ingest path.
        let ingest = Ingestor::start(Arc::clone(&store), Arc::clone(&bus));
        let fleet = match self.fleet {
            Some(listener) => {
                let fleet_svc = FleetService::new(
                    Arc::clone(&store),
                    self.enrollment,
                    sessions.clone(),
                    ingest.clone(),
                    responder.clone(),
                    shutdown.clone(),
                )
                .into_server();
                let fleet_stop = shutdown.clone();
                let mut builder = tonic::transport::Server::builder()
                    .tls_config(self.tls)
                    .map_err(|e| ServerError::Tls(e.to_string()))?;
                tokio::spawn(builder.add_service(fleet_svc).serve_with_incoming_shutdown(
                    TcpListenerStream::new(listener),
                    async move {
                        fleet_stop.cancelled().await;
                    },
                ))
            }
            None => tokio::spawn(async { Ok(()) }),
        };

        let (api, watcher) = match self.api {
            Some(listener) => {
                let watcher = tokio::spawn(live.clone().watch_endpoints(
                    Arc::clone(&store),
                    sessions.clone(),
                    shutdown.clone(),
                ));
                let api_stop = shutdown.clone();
                let api = tokio::spawn(
                    axum::serve(
                        listener,
                        app(ApiState {
                            store,
                            sessions,
                            ingest,
                            responder,
                            catalog: self.catalog,
                            switches,
                            auth: Arc::new(AuthState::new(self.auth)),
                            live,
                        })
                        .into_make_service_with_connect_info::<SocketAddr>(),
                    )
                    .with_graceful_shutdown(async move { api_stop.cancelled().await })
                    .into_future(),
                );
                (api, watcher)
            }
            None => (tokio::spawn(async { Ok(()) }), tokio::spawn(async {})),
        };

        let (fleet, api, detect, _, _, _) =
            tokio::join!(fleet, api, detect, watcher, hunt, notices);
        self.store.close().await;
        fleet
            .map_err(|e| serve_err("fleet service", &e))?
            .map_err(|e| serve_err("fleet service", &e))?;
        api.map_err(|e| serve_err("operator API", &e))?
            .map_err(|e| serve_err("operator API", &e))?;
        detect.map_err(|e| serve_err("detection worker", &e))?;
        Ok(())
    }
}

/// Applies what the other server instances announce, until `shutdown`.
async fn apply_notices(
    bus: Arc<dyn Bus>,
    sessions: Sessions,
    switches: crate::switches::RuleSwitches,
    live: LiveFeed,
    shutdown: CancellationToken,
) {
    let Some(mut rx) = bus.notices() else {
        return;
    };
    loop {
        let notice = tokio::select! {
            () = shutdown.cancelled() => return,
            n = rx.recv() => n,
        };
        match notice {
            Ok(Notice::Commands { sensor_id }) => {
                sessions.wake_commands_local(&sensor_id);
            }
            Ok(Notice::EndSession { sensor_id }) => {
                sessions.end_local(&sensor_id);
            }
            Ok(Notice::Policies) => sessions.wake_policies_local(),
            Ok(Notice::RuleSwitch { rule_id, enabled }) => switches.apply(&rule_id, enabled),
            Ok(Notice::Live { text }) => live.deliver(&text),
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "Fell behind the other instances' notices");
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

fn serve_err(role: &'static str, e: &dyn std::fmt::Display) -> ServerError {
    ServerError::Serve {
        role,
        message: e.to_string(),
    }
}

/// The names in the fleet listener's certificate.
fn fleet_names(config: &ServerConfig) -> Vec<String> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        names.push(host.trim().to_owned());
    }
    let ip = config.fleet_listen.ip();
    if !ip.is_unspecified() {
        names.push(ip.to_string());
    }
    names.extend(config.fleet_names.iter().cloned());
    names.retain(|n| !n.is_empty());
    names.sort();
    names.dedup();
    names
}
