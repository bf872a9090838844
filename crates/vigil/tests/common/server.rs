//! A server running in the test process on its own runtime, for tests that drive it from
//! blocking code (the `vigil` binary, blocking HTTP).

use std::path::Path;

use tokio_util::sync::CancellationToken;
use vigil_server::{Roles, Server, ServerConfig};

/// A running in-process server; [`InProcess::stop`] (or drop) shuts it down.
pub struct InProcess {
    /// `http://127.0.0.1:<port>`.
    pub api: String,
    stop: CancellationToken,
    runtime: Option<tokio::runtime::Runtime>,
    task: Option<tokio::task::JoinHandle<Result<(), vigil_server::ServerError>>>,
}

impl InProcess {
    /// Starts a server on loopback over `data_dir`, with Vigil's rules and `roles`.
    pub fn start(data_dir: &Path, roles: Roles) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let rules = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../rules"));
        let mut cfg = ServerConfig::new(
            data_dir.to_owned(),
            "127.0.0.1:0".parse().expect("addr"),
            "127.0.0.1:0".parse().expect("addr"),
            vec![rules],
        );
        cfg.roles = roles;
        cfg.first_admin.password = Some(super::operator::ADMIN_PASSWORD.into());
        runtime
            .block_on(vigil_server::testing::for_data_dir(data_dir))
            .apply(&mut cfg);
        let server = runtime.block_on(Server::bind(&cfg)).expect("server binds");
        let api = format!("http://{}", server.api_addr());
        let stop = CancellationToken::new();
        let task = runtime.spawn(server.run(stop.clone()));
        Self {
            api,
            stop,
            runtime: Some(runtime),
            task: Some(task),
        }
    }

    /// An admin API token for this server.
    pub fn token(&self) -> String {
        super::operator::admin_token(&self.api)
    }

    /// Stops the server and waits until it has closed its store.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.cancel();
        if let (Some(runtime), Some(task)) = (self.runtime.take(), self.task.take()) {
            runtime
                .block_on(task)
                .expect("server task")
                .expect("server stops cleanly");
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.shutdown();
        } else {
            self.stop.cancel();
        }
    }
}
