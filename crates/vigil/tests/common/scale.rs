//! Shared pieces of the scale-out system tests: `vigil server` instances as child processes,
//! simulated agents speaking the real gRPC + mTLS protocol, and fresh PostgreSQL databases.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio_stream::wrappers::ReceiverStream;
use vigil_agent::identity::{self, AgentIdentity};
use vigil_proto::fleet::fleet_client::FleetClient;
use vigil_proto::fleet::{
    Ack, Capability, Command as WireCommand, Event as WireEvent, EventBatch, Hello,
};
use vigil_proto::{AgentMessage, ServerMessage, agent_message, server_message};

/// The enrollment secret of every scale-out test server.
pub const SECRET: &str = "scale-out-test-secret";

/// The machine's NATS (`VIGIL_TEST_NATS`).
pub fn nats_url() -> String {
    std::env::var("VIGIL_TEST_NATS").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

/// The machine's PostgreSQL, as an administrator (`VIGIL_TEST_POSTGRES`).
pub fn postgres_admin() -> String {
    std::env::var("VIGIL_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A fresh database on the server of `admin`, dropped on drop.
pub struct TestDb {
    admin: String,
    name: String,
    /// Its URL.
    pub url: String,
}

impl TestDb {
    /// Creates `vigil_t_<tag>`.
    pub async fn create(admin: &str, tag: &str) -> Self {
        let name = format!("vigil_t_{tag}");
        let mut pg = <sqlx::postgres::PgConnection as sqlx::Connection>::connect(admin)
            .await
            .unwrap_or_else(|e| panic!("this test needs PostgreSQL at {admin}: {e}"));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut pg)
            .await
            .expect("CREATE DATABASE");
        let url = format!(
            "{}/{name}",
            admin.rsplit_once('/').expect("a database in the URL").0
        );
        Self {
            admin: admin.to_owned(),
            name,
            url,
        }
    }

    /// Rows in a table.
    pub async fn count(&self, table: &str) -> i64 {
        let mut conn = <sqlx::postgres::PgConnection as sqlx::Connection>::connect(&self.url)
            .await
            .expect("the test database");
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
            .fetch_one(&mut conn)
            .await
            .expect("count")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Its own runtime: drop may run inside or outside one.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok(mut pg) =
                    <sqlx::postgres::PgConnection as sqlx::Connection>::connect(&admin).await
                {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut pg)
                    .await;
                }
            });
        })
        .join();
    }
}

/// A fresh tag for names (bus prefix, database).
pub fn tag() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// A `vigil server` child, killed (SIGKILL, by pid) on drop.
pub struct Instance {
    name: &'static str,
    /// The process.
    pub child: Child,
    lines: mpsc::Receiver<String>,
}

impl Instance {
    /// `vigil server --roles ROLES` over `dir` (the fleet CA is shared through it), on the
    /// bus at `nats` under `prefix` with `partitions`, storing in `db`.
    pub fn start(
        name: &'static str,
        dir: &Path,
        db: &str,
        (nats, prefix, partitions): (&str, &str, u16),
        roles: &str,
    ) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["server", "--roles", roles])
            .args(["--listen", "127.0.0.1:0", "--fleet-listen", "127.0.0.1:0"])
            .args(["--enroll-secret", SECRET, "--bus", nats])
            .args(["--bus-prefix", prefix])
            .args(["--bus-partitions", &partitions.to_string()])
            .args(["--store", db])
            .arg("--data-dir")
            .arg(dir)
            .env("VIGIL_ADMIN_PASSWORD", super::operator::ADMIN_PASSWORD)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("vigil server starts");
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Self { name, child, lines }
    }

    /// Waits for a line starting with `prefix`; returns it.
    pub fn wait_line(&self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) => {}
                Err(_) => panic!("{} never printed {prefix:?}", self.name),
            }
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The instance name at the end of the detect line.
pub fn instance_name(line: &str) -> String {
    line.rsplit(' ').next().expect("instance name").to_owned()
}

/// Partition → the instance holding its lease (none while the bucket cannot be read).
pub async fn lease_holders(bus: &vigil_server::bus::nats::NatsBus) -> Vec<(u16, String)> {
    bus.partition_owners().await.unwrap_or_default()
}

/// `https://127.0.0.1:PORT` from the fleet line.
pub fn fleet_url(line: &str) -> String {
    line.split_whitespace()
        .find(|w| w.starts_with("https://"))
        .expect("fleet address")
        .to_owned()
}

/// A simulated agent with its session.
pub struct Sim {
    pub id: AgentIdentity,
    tx: tokio::sync::mpsc::Sender<AgentMessage>,
    inbound: tonic::Streaming<ServerMessage>,
    seq: u64,
    commands: Vec<WireCommand>,
}

impl Sim {
    /// Opens a session; panics when it cannot.
    pub async fn connect(url: &str, id: AgentIdentity) -> Self {
        Self::try_connect(url, id).await.expect("the session opens")
    }

    /// Opens a session (Hello, Welcome) reporting the `query` capability.
    pub async fn try_connect(url: &str, id: AgentIdentity) -> Result<Self, String> {
        let channel = identity::endpoint(url, id.client_tls())
            .map_err(|e| e.to_string())?
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let hello = Hello {
            sensor_id: id.sensor_id.clone(),
            host: None,
            capabilities: vec![Capability {
                name: "query".into(),
                source: "test".into(),
                live: true,
                detail: String::new(),
            }],
        };
        tx.send(AgentMessage {
            msg: Some(agent_message::Msg::Hello(hello)),
        })
        .await
        .map_err(|e| e.to_string())?;
        let mut inbound = FleetClient::new(channel)
            .session(ReceiverStream::new(rx))
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        inbound.message().await.map_err(|e| e.to_string())?;
        Ok(Self {
            id,
            tx,
            inbound,
            seq: 0,
            commands: Vec::new(),
        })
    }

    /// Sends a batch and waits for its acknowledgement; panics on failure.
    pub async fn send(&mut self, events: Vec<WireEvent>) -> Ack {
        self.try_send(events)
            .await
            .expect("the batch is acknowledged")
    }

    /// Sends a batch and waits for its acknowledgement.
    pub async fn try_send(&mut self, events: Vec<WireEvent>) -> Result<Ack, String> {
        self.seq += 1;
        let msg = agent_message::Msg::Events(EventBatch {
            seq: self.seq,
            events,
        });
        self.tx
            .send(AgentMessage { msg: Some(msg) })
            .await
            .map_err(|e| e.to_string())?;
        loop {
            match self.next().await? {
                server_message::Msg::Ack(a) => return Ok(a),
                server_message::Msg::Command(c) => self.commands.push(c),
                _ => {}
            }
        }
    }

    async fn next(&mut self) -> Result<server_message::Msg, String> {
        loop {
            let m = tokio::time::timeout(Duration::from_secs(30), self.inbound.message())
                .await
                .map_err(|_| "the server did not answer within 30 s".to_owned())?
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "the server closed the session".to_owned())?;
            if let Some(msg) = m.msg {
                return Ok(msg);
            }
        }
    }

    /// Waits for the command `id`.
    pub async fn command(&mut self, id: &str, within: Duration) -> WireCommand {
        let deadline = Instant::now() + within;
        loop {
            if let Some(c) = self.commands.iter().find(|c| c.id == id) {
                return c.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.next()).await {
                Ok(Ok(server_message::Msg::Command(c))) => self.commands.push(c),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => panic!("the session failed waiting for command {id}: {e}"),
                Err(_) => panic!("command {id} did not reach the agent within {within:?}"),
            }
        }
    }
}

/// An agent that does what the real one does when the server fails a batch: it opens a new
/// session (retrying) and sends the batch again, until it is acknowledged.
pub struct ReliableSim {
    url: String,
    id: AgentIdentity,
    session: Option<Sim>,
    /// Failed attempts (each one a batch not acknowledged and sent again).
    pub retries: u32,
}

impl ReliableSim {
    /// An agent of identity `id` for the fleet service at `url`.
    pub fn new(url: &str, id: AgentIdentity) -> Self {
        Self {
            url: url.to_owned(),
            id,
            session: None,
            retries: 0,
        }
    }

    /// Sends `events` until they are acknowledged (up to two minutes).
    pub async fn deliver(&mut self, events: &[WireEvent]) -> Ack {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            assert!(Instant::now() < deadline, "a batch was never acknowledged");
            if self.session.is_none() {
                match Sim::try_connect(&self.url, self.id.clone()).await {
                    Ok(s) => self.session = Some(s),
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                }
            }
            let Some(session) = self.session.as_mut() else {
                continue;
            };
            match session.try_send(events.to_vec()).await {
                Ok(ack) => return ack,
                Err(_) => {
                    self.retries += 1;
                    self.session = None;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}

/// A process event; a marker is a read of /etc/shadow by cat (one finding each).
pub fn event(uid: &str, marker: bool) -> WireEvent {
    let (path, cmd) = if marker {
        ("/usr/bin/cat", "cat /etc/shadow")
    } else {
        ("/usr/bin/python3", "python3 worker.py")
    };
    let doc = json!({
        "class_uid": 1007, "activity_id": 1, "time": vigil_ocsf::now_ms(),
        "metadata": {"uid": uid, "version": "1.8.0"},
        "process": {"pid": 4242, "cmd_line": cmd, "file": {"path": path}},
    });
    WireEvent {
        uid: uid.into(),
        class_uid: 1007,
        time: 0,
        ocsf_json: doc.to_string().into_bytes(),
    }
}
