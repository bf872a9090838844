//! The server is killed with SIGKILL in the middle of a stream; after its restart no
//! acknowledged event is missing and none is stored twice.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::json;
use vigil_agent::{Agent, AgentConfig};
use vigil_ocsf::Event;
use vigil_server::store::Store;
use vigil_server::store::sqlite::SqliteStore;

const SECRET: &str = "crash-test-secret";
const TOTAL: usize = 20_000;

/// `vigil server` as a child process, killed on drop.
struct ServerProc(Child);

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(data: &Path, rules: &Path, fleet: &str) -> ServerProc {
    let child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args([
            "server",
            "--listen",
            "127.0.0.1:0",
            "--fleet-listen",
            fleet,
            "--enroll-secret",
            SECRET,
        ])
        .arg("--data-dir")
        .arg(data)
        .arg("--rules")
        .arg(rules)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn vigil server");
    let server = ServerProc(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    // The listener binds first, the CA is written next (atomically): wait for both.
    while std::net::TcpStream::connect(fleet).is_err() || !data.join("fleet-ca.crt").exists() {
        assert!(
            Instant::now() < deadline,
            "vigil server did not listen on {fleet}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

async fn wait_until(what: &str, within: Duration, mut probe: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !probe() {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_sigkill_mid_stream_loses_and_duplicates_nothing() {
    let run = common::nonce();
    let server_data = tempfile::tempdir().unwrap();
    let agent_data = tempfile::tempdir().unwrap();
    let rules = tempfile::tempdir().unwrap();
    let fleet = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();

    let mut server = start_server(server_data.path(), rules.path(), &fleet);
    let ca = std::fs::read_to_string(server_data.path().join("fleet-ca.crt")).unwrap();
    let mut cfg = AgentConfig::new(agent_data.path().to_owned(), format!("https://{fleet}"));
    cfg.sensor = None;
    cfg.batch_max = 200;
    cfg.ca_pem = Some(ca);
    cfg.enroll_secret = Some(SECRET.into());
    let agent = Agent::start(cfg).await.unwrap();
    let intake = agent.intake();
    for i in 0..TOTAL {
        let ev = json!({"class_uid": 1007, "activity_id": 1, "time": vigil_ocsf::now_ms(),
                        "metadata": {"uid": format!("{run}-{i}")}, "process": {"pid": i}});
        intake.send(Event::from_value(ev).unwrap()).await.unwrap();
    }

    // Kill the server while the stream is under way: some batches acked, many not.
    let stats = agent.link_stats();
    wait_until("the first acks", Duration::from_secs(60), || {
        stats.events_acked.load(Ordering::Relaxed) >= 1_000
    })
    .await;
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    let acked_before_kill = stats.events_acked.load(Ordering::Relaxed);
    assert!(
        acked_before_kill < TOTAL as u64,
        "the kill must land mid-stream"
    );

    let _server = start_server(server_data.path(), rules.path(), &fleet);
    wait_until("the buffer to drain", Duration::from_secs(120), || {
        agent.buffered() == 0
    })
    .await;
    drop(intake);
    agent.shutdown().await;
    drop(_server);

    let store = SqliteStore::open(server_data.path()).await.unwrap();
    let page = store.events_after(0, 1_000_000).await.unwrap();
    let uids: Vec<_> = page.events.iter().map(|e| e.event.uid.clone()).collect();
    let unique: HashSet<_> = uids.iter().cloned().collect();
    assert_eq!(uids.len(), unique.len(), "an event was stored twice");
    let expected: HashSet<_> = (0..TOTAL).map(|i| format!("{run}-{i}")).collect();
    assert_eq!(
        unique, expected,
        "every event, acknowledged before the kill or not, is stored"
    );
}
