//! A server in this test process and an agent process, driven through the operator API.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use vigil_server::{Server, ServerConfig};

pub const SECRET: &str = "response-system-test-secret";
/// The first admin's password: the test logs in with it and calls the API with a token it
/// creates (see [`TestServer::start`]).
pub const ADMIN_PASSWORD: &str = "response-system-test-admin";

/// A server running in this process.
pub struct TestServer {
    pub api: String,
    /// An admin API token, sent with every call.
    pub token: String,
    pub fleet: SocketAddr,
    pub ca: PathBuf,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server on `fleet` (port 0 for any) with the repository's rules.
    pub async fn start(data: &Path, fleet: SocketAddr) -> Self {
        let rules = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../rules"));
        let mut cfg = ServerConfig::new(
            data.to_owned(),
            "127.0.0.1:0".parse().unwrap(),
            fleet,
            vec![rules],
        );
        cfg.enroll_secret = Some(SECRET.into());
        cfg.first_admin.password = Some(ADMIN_PASSWORD.into());
        vigil_server::testing::for_data_dir(data)
            .await
            .apply(&mut cfg);
        // A restarted server takes its old port again; a parallel test's outgoing connection
        // may hold it as its source port for a moment.
        let deadline = Instant::now() + Duration::from_secs(15);
        let server = loop {
            match Server::bind(&cfg).await {
                Ok(s) => break s,
                Err(e) if Instant::now() < deadline && e.to_string().contains("in use") => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("server binds: {e}"),
            }
        };
        let api = format!("http://{}", server.api_addr());
        let (fleet, ca) = (server.fleet_addr(), server.ca_path().to_owned());
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let stop = stop.clone();
            async move { server.run(stop).await.expect("server ran") }
        });
        vigil_server::pki::install_crypto_provider();
        let token = admin_token(&api).await;
        Self {
            api,
            token,
            fleet,
            ca,
            stop,
            task: Some(task),
        }
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }

    pub async fn get(&self, path: &str) -> Value {
        let res = reqwest::Client::new()
            .get(format!("{}{path}", self.api))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "GET {path}: {}", res.status());
        res.json().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let res = reqwest::Client::new()
            .post(format!("{}{path}", self.api))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// Queues a command and waits (bounded) until the endpoint reported its outcome.
    pub async fn command(&self, sensor: &str, action: &str, args: Value) -> Value {
        let (status, cmd) = self
            .post(
                &format!("/api/v1/endpoints/{sensor}/commands"),
                json!({"action": action, "args": args, "reason": "system test"}),
            )
            .await;
        assert_eq!(status, 201, "{action}: {cmd}");
        let id = cmd["id"].as_str().unwrap().to_owned();
        let path = format!("/api/v1/endpoints/{sensor}/commands/{id}");
        wait_for(
            &format!("the {action} command's result"),
            Duration::from_secs(30),
            async || {
                let c = self.get(&path).await;
                matches!(c["state"].as_str(), Some("succeeded" | "failed")).then_some(c)
            },
        )
        .await
    }

    /// The only endpoint, once it reports capabilities.
    pub async fn endpoint(&self) -> Value {
        wait_for(
            "the agent's endpoint",
            Duration::from_secs(30),
            async || {
                let eps = self.get("/api/v1/endpoints").await;
                let ep = eps["items"].as_array()?.first()?.clone();
                ep["capabilities"]
                    .as_array()
                    .is_some_and(|c| !c.is_empty())
                    .then_some(ep)
            },
        )
        .await
    }
}

/// Logs in as `admin` and creates an API token over the API, as an operator would.
async fn admin_token(api: &str) -> String {
    let client = reqwest::Client::new();
    let res = client
        .post(format!("{api}/api/v1/auth/login"))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "login: {}", res.status());
    let cookie = res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let login: Value = res.json().await.unwrap();
    let res = client
        .post(format!("{api}/api/v1/tokens"))
        .header("cookie", cookie)
        .header("x-csrf-token", login["csrf_token"].as_str().unwrap())
        // Unique: a test may restart the server on the same store.
        .json(&json!({"name": format!("system-test-{}", uuid::Uuid::new_v4().simple())}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 201);
    let t: Value = res.json().await.unwrap();
    t["token"].as_str().unwrap().to_owned()
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// An agent in this test process, enrolled with `server`, heartbeating every second.
pub async fn start_agent(
    server: &TestServer,
    data: &Path,
    sensor: vigil_agent::SourceMode,
) -> vigil_agent::Agent {
    let mut cfg =
        vigil_agent::AgentConfig::new(data.to_owned(), format!("https://{}", server.fleet));
    cfg.sensor = Some(sensor);
    cfg.ca_pem = Some(std::fs::read_to_string(&server.ca).unwrap());
    cfg.enroll_secret = Some(SECRET.into());
    cfg.heartbeat = Duration::from_secs(1);
    vigil_agent::Agent::start(cfg).await.expect("agent starts")
}

/// Polls `probe` every 100 ms until it returns `Some`, or panics after `within`.
pub async fn wait_for<T>(
    what: &str,
    within: Duration,
    mut probe: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `vigil-agent` binary running (in a namespace, or not), stopped on drop.
pub struct AgentProc {
    child: Child,
}

impl AgentProc {
    pub fn spawn(netns: Option<&str>, server: &TestServer, data: &Path) -> Self {
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_vigil-agent")]);
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_vigil-agent")),
        };
        let child = cmd
            .arg("--server")
            .arg(format!("https://{}", server.fleet))
            .arg("--ca-cert")
            .arg(&server.ca)
            // eBPF: the process connector only works in the initial network namespace.
            .args(["--enroll-secret", SECRET, "--sensor", "ebpf"])
            .args(["--heartbeat-secs", "1"])
            .arg("--data-dir")
            .arg(data)
            .env("RUST_LOG", "info,aya=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn vigil-agent");
        Self { child }
    }

    /// SIGTERM, then waits (bounded) for a clean exit.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "the agent did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A free loopback address whose port lies below Linux's ephemeral range (32768–60999), so
/// no outgoing connection takes it as a source port while a test restarts a server on it.
pub fn quiet_port() -> SocketAddr {
    let start = 20_000 + std::process::id() % 10_000;
    (0..10_000)
        .map(|k| 20_000 + (start - 20_000 + k) % 10_000)
        .find_map(|port| {
            let addr = SocketAddr::from(([127, 0, 0, 1], u16::try_from(port).ok()?));
            std::net::TcpListener::bind(addr).ok().map(|_| addr)
        })
        .expect("a free port below the ephemeral range")
}
