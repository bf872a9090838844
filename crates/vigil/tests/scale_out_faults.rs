//! Faults of the scale-out deployment's services, with a `vigil server` child on NATS and
//! PostgreSQL while a simulated agent streams: NATS killed (SIGKILL) and started again on its
//! data, PostgreSQL stopped like a crash (`pg_ctl stop -m immediate`) and started again. In both,
//! the agent does what the real one does — a batch the server could not take is sent again on a
//! new session — and in the end every acknowledged event is stored once and scored.
//!
//! The service that fails is one of the test's own (a NATS server, or a PostgreSQL cluster made
//! with `initdb`, on a free loopback port), never the machine's.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::scale::{Instance, ReliableSim, SECRET, TestDb, event, fleet_url};
use serde_json::Value;
use vigil_agent::identity;
use vigil_proto::fleet::HostFacts;

const PARTITIONS: u16 = 4;
const BATCHES: usize = 40;
/// The batch during which the service fails.
const FAULT_AT: usize = 12;
/// How long the service stays down: longer than the server waits for it (10 s for a
/// PostgreSQL connection, 5 s for a JetStream acknowledgement), so batches fail and are sent
/// again, not merely delayed.
const OUTAGE: Duration = Duration::from_secs(12);
const SHADOW_RULE: &str = "6d3f1a52-8b0e-4c4e-9d1a-7a1f0e2b5c01";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A NATS server of the test's own, with JetStream on a data directory that survives restarts.
struct OwnNats {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl OwnNats {
    fn start() -> Self {
        let mut n = Self {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        n.run();
        n
    }

    fn run(&mut self) {
        let child = Command::new("nats-server")
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server (scripts/setup installs it)");
        self.child = Some(child);
        wait_port(self.port);
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for OwnNats {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A PostgreSQL cluster of the test's own (run as the `postgres` user, as `initdb` requires).
struct OwnPostgres {
    port: u16,
    dir: PathBuf,
}

impl OwnPostgres {
    fn bin(tool: &str) -> PathBuf {
        let versions = std::fs::read_dir("/usr/lib/postgresql").expect("PostgreSQL is installed");
        let mut dirs: Vec<PathBuf> = versions.filter_map(|e| e.ok().map(|e| e.path())).collect();
        dirs.sort();
        dirs.last()
            .expect("a PostgreSQL version")
            .join("bin")
            .join(tool)
    }

    fn as_postgres(args: &[&str]) {
        let status = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .args(args)
            .stdout(Stdio::null())
            .status()
            .expect("runuser");
        assert!(status.success(), "{args:?} failed");
    }

    fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("vigil-pg-{}", common::scale::tag()));
        std::fs::create_dir_all(&dir).unwrap();
        let chown = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(chown.success());
        let pg = Self {
            port: free_port(),
            dir,
        };
        let data = pg.data();
        Self::as_postgres(&[
            Self::bin("initdb").to_str().unwrap(),
            "-D",
            &data,
            "--auth=trust",
            "-U",
            "postgres",
            "-N",
        ]);
        pg.run();
        pg
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn run(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("log").display().to_string();
        Self::as_postgres(&[
            Self::bin("pg_ctl").to_str().unwrap(),
            "-D",
            &self.data(),
            "-o",
            &opts,
            "-l",
            &log,
            "-w",
            "start",
        ]);
    }

    /// Stops it as a crash would: no checkpoint, connections cut.
    fn crash(&self) {
        Self::as_postgres(&[
            Self::bin("pg_ctl").to_str().unwrap(),
            "-D",
            &self.data(),
            "-m",
            "immediate",
            "-w",
            "stop",
        ]);
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(Self::bin("pg_ctl"))
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_root(test: &str) -> bool {
    common::is_root(test)
}

/// Runs one server (every role) on `nats` and `store`, streams `BATCHES` batches from one
/// agent, calls `fault` before batch `FAULT_AT` and `recover` [`OUTAGE`] later (while the
/// agent keeps trying), then checks that every event is stored once and every marker scored.
async fn stream_through_a_fault(
    dir: &Path,
    nats: &str,
    store: &str,
    count_events: impl AsyncFn() -> i64,
    fault: impl FnOnce(),
    recover: impl FnOnce() + Send + 'static,
) {
    vigil_server::pki::install_crypto_provider();
    let prefix = format!("vt{}", common::scale::tag());
    let mut server = Instance::start(
        "server",
        dir,
        store,
        (nats, &prefix, PARTITIONS),
        "fleet,ingest,detect,api",
    );
    let url = fleet_url(&server.wait_line("fleet:"));
    let api = server
        .wait_line("API listening on ")
        .trim_start_matches("API listening on ")
        .to_owned();
    let ca = std::fs::read_to_string(dir.join("fleet-ca.crt")).unwrap();
    let adir = dir.join("agent");
    std::fs::create_dir_all(&adir).unwrap();
    let id = identity::enroll(&url, &adir, &ca, SECRET, HostFacts::default(), "")
        .await
        .expect("enrollment");
    let mut agent = ReliableSim::new(&url, id);
    let mut recover = Some(recover);
    let mut fault = Some(fault);
    let mut healer = None;
    for b in 0..BATCHES {
        if b == FAULT_AT {
            if let Some(f) = fault.take() {
                f();
            }
            let r = recover.take().expect("once");
            healer = Some(std::thread::spawn(move || {
                std::thread::sleep(OUTAGE);
                r();
            }));
        }
        let events: Vec<_> = (0..10)
            .map(|k| event(&format!("b{b}-{k}"), k == 0))
            .collect();
        let ack = agent.deliver(&events).await;
        assert_eq!(ack.stored + ack.duplicates, 10, "{ack:?}");
    }
    healer.expect("the fault happened").join().unwrap();
    assert!(
        agent.retries > 0,
        "the fault never reached the agent: no batch had to be sent again"
    );
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server kept running through the fault"
    );

    // Every marker scored once.
    let token = common::operator::admin_token(&api);
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut got: Vec<String>;
    loop {
        let body: Value = http
            .get(format!(
                "{api}/api/v1/alerts?limit=500&rule_id={SHADOW_RULE}"
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        got = body["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f["finding_info"]["related_events"][0]["uid"].as_str())
            .map(str::to_owned)
            .collect();
        if got.len() >= BATCHES || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    got.sort();
    let mut expected: Vec<String> = (0..BATCHES).map(|b| format!("b{b}-0")).collect();
    expected.sort();
    assert_eq!(got, expected, "every marker scored, once");
    assert_eq!(
        count_events().await,
        (BATCHES * 10) as i64,
        "every acknowledged event stored, once"
    );
    server.kill();
    if let Ok(bus) = vigil_server::bus::nats::NatsBus::connect({
        let mut c = vigil_server::bus::nats::NatsConfig::new(nats);
        c.prefix = prefix;
        c.partitions = PARTITIONS;
        c
    })
    .await
    {
        let _ = bus.remove().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_killed_and_restarted_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::create(&common::scale::postgres_admin(), &common::scale::tag()).await;
    let nats = std::sync::Arc::new(std::sync::Mutex::new(OwnNats::start()));
    let url = nats.lock().unwrap().url();
    let (a, b) = (nats.clone(), nats.clone());
    stream_through_a_fault(
        dir.path(),
        &url,
        &db.url,
        async || db.count("events").await,
        move || a.lock().unwrap().kill(),
        move || b.lock().unwrap().run(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_crash_and_restart_the_server_carries_on() {
    if !is_root("postgres_crash_and_restart_the_server_carries_on") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pg = std::sync::Arc::new(OwnPostgres::start());
    let store = pg.url();
    let (a, b) = (pg.clone(), pg.clone());
    let count = async || {
        let mut conn = <sqlx::postgres::PgConnection as sqlx::Connection>::connect(&store)
            .await
            .unwrap();
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM events")
            .fetch_one(&mut conn)
            .await
            .unwrap()
    };
    stream_through_a_fault(
        dir.path(),
        &common::scale::nats_url(),
        &store,
        count,
        move || a.crash(),
        move || b.run(),
    )
    .await;
}
