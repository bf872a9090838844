//! Wiring the roles into one running server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use vigil_detect::{LoadReport, RuleSet};

use crate::api::{ApiState, app};
use crate::bus::{Bus, InProcessBus};
use crate::detect::DetectWorker;
use crate::fleet::FleetService;
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
    /// The store could not be opened.
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
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
    api: TcpListener,
    api_addr: SocketAddr,
    fleet: TcpListener,
    fleet_addr: SocketAddr,
    store: Arc<SqliteStore>,
    rules: Arc<RuleSet>,
    report: LoadReport,
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
        let maps = vigil_ocsf::fieldmap::FieldMaps::builtin().map_err(|e| ServerError::Serve {
            role: "rule loader",
            message: e.to_string(),
        })?;
        let (rules, report) = RuleSet::load_dirs(&config.rule_dirs, &maps)?;
        let (api, api_addr) = bind("operator API", config.api_listen).await?;
        let (fleet, fleet_addr) = bind("fleet (agent) service", config.fleet_listen).await?;
        std::fs::create_dir_all(&config.data_dir).map_err(|source| ServerError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let store = Arc::new(SqliteStore::open(&config.data_dir).await?);
        Ok(Self {
            api,
            api_addr,
            fleet,
            fleet_addr,
            store,
            rules: Arc::new(rules),
            report,
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

    /// What loading the rules found.
    pub fn rule_report(&self) -> &LoadReport {
        &self.report
    }

    /// Runs every role until `shutdown` is cancelled, then stops them and closes the store.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ServerError> {
        let store: Arc<dyn Store> = self.store.clone();
        let bus: Arc<dyn Bus> = Arc::new(InProcessBus::new());

        let detect = DetectWorker::new(Arc::clone(&store), Arc::clone(&bus), self.rules);
        let detect = tokio::spawn(detect.run(shutdown.clone()));

        let fleet_svc =
            FleetService::new(Arc::clone(&store), Arc::clone(&bus), shutdown.clone()).into_server();
        let fleet_stop = shutdown.clone();
        let fleet = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(fleet_svc)
                .serve_with_incoming_shutdown(TcpListenerStream::new(self.fleet), async move {
                    fleet_stop.cancelled().await;
                }),
        );

        let api_stop = shutdown.clone();
        let api = tokio::spawn(
            axum::serve(self.api, app(ApiState { store }))
                .with_graceful_shutdown(async move { api_stop.cancelled().await })
                .into_future(),
        );

        let (fleet, api, detect) = tokio::join!(fleet, api, detect);
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

fn serve_err(role: &'static str, e: &dyn std::fmt::Display) -> ServerError {
    ServerError::Serve {
        role,
        message: e.to_string(),
    }
}
