//! The agent keeps what it captured while the server is unreachable, and delivers all of it,
//! once each, when the server comes back — across a server restart too.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio_util::sync::CancellationToken;
use vigil_agent::{Agent, AgentConfig};
use vigil_ocsf::Event;
use vigil_server::{Server, ServerConfig};

const SECRET: &str = "offline-test-secret";

fn synthetic(i: usize, run: &str) -> Event {
    Event::from_value(json!({
        "class_uid": 1007, "activity_id": 1, "time": vigil_ocsf::now_ms(),
        "metadata": {"uid": format!("{run}-{i}")},
        "process": {"pid": i, "cmd_line": format!("synthetic {i}")}
    }))
    .unwrap()
}

async fn wait_until(what: &str, within: Duration, mut probe: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !probe().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn start_server(
    data: &Path,
    rules: &Path,
    fleet: SocketAddr,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let mut cfg = ServerConfig::new(
        data.to_owned(),
        "127.0.0.1:0".parse().unwrap(),
        fleet,
        vec![rules.to_owned()],
    );
    cfg.enroll_secret = Some(SECRET.into());
    vigil_server::testing::for_data_dir(data)
        .await
        .apply(&mut cfg);
    let server = Server::bind(&cfg)
        .await
        .expect("server binds the fleet port again");
    let stop = CancellationToken::new();
    let run = tokio::spawn({
        let stop = stop.clone();
        async move { server.run(stop).await.expect("server ran") }
    });
    (stop, run)
}

async fn stored_uids(data: &Path) -> Vec<String> {
    let store = vigil_server::testing::for_data_dir(data)
        .await
        .open_store(data)
        .await;
    let page = store.events_after(0, 100_000).await.unwrap();
    page.events.into_iter().map(|e| e.event.uid).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_buffers_while_server_is_down_and_delivers_each_event_once() {
    let run = uuid::Uuid::new_v4().simple().to_string();
    let server_data = tempfile::tempdir().unwrap();
    let agent_data = tempfile::tempdir().unwrap();
    let rules = tempfile::tempdir().unwrap();
    // A free port for the server that is not running yet.
    let fleet = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();

    // The fleet CA exists before the server first runs, as an installer would ship it.
    let ca = vigil_server::pki::FleetCa::load_or_create(server_data.path()).unwrap();
    let mut cfg = AgentConfig::new(agent_data.path().to_owned(), format!("https://{fleet}"));
    cfg.sensor = None;
    cfg.ca_pem = Some(ca.cert_pem().to_owned());
    cfg.enroll_secret = Some(SECRET.into());
    cfg.batch_max = 100;
    cfg.heartbeat = Duration::from_secs(1);
    let agent = Agent::start(cfg).await.unwrap();
    let intake = agent.intake();

    // Phase 1: the server is down. Everything lands in the durable buffer.
    for i in 0..1000 {
        intake.send(synthetic(i, &run)).await.unwrap();
    }
    wait_until(
        "1000 events buffered",
        Duration::from_secs(20),
        async || agent.buffered() == 1000,
    )
    .await;
    assert_eq!(agent.link_stats().sessions.load(Ordering::Relaxed), 0);

    // The server comes up: the agent reconnects (backoff ≤ 12.8 s) and drains.
    let (stop, task) = start_server(server_data.path(), rules.path(), fleet).await;
    wait_until("the buffer to drain", Duration::from_secs(30), async || {
        agent.buffered() == 0
    })
    .await;

    // Phase 2: the server goes away again mid-stream, more events arrive, then it returns.
    stop.cancel();
    task.await.unwrap();
    for i in 1000..1500 {
        intake.send(synthetic(i, &run)).await.unwrap();
    }
    wait_until("500 events buffered", Duration::from_secs(20), async || {
        agent.buffered() == 500
    })
    .await;
    let (stop, task) = start_server(server_data.path(), rules.path(), fleet).await;
    wait_until(
        "the buffer to drain again",
        Duration::from_secs(30),
        async || agent.buffered() == 0,
    )
    .await;
    assert!(agent.link_stats().sessions.load(Ordering::Relaxed) >= 2);

    drop(intake);
    agent.shutdown().await;
    stop.cancel();
    task.await.unwrap();

    let uids = stored_uids(server_data.path()).await;
    let unique: HashSet<_> = uids.iter().cloned().collect();
    assert_eq!(uids.len(), 1500, "every event stored exactly once");
    assert_eq!(unique.len(), 1500);
    let expected: HashSet<_> = (0..1500).map(|i| format!("{run}-{i}")).collect();
    assert_eq!(unique, expected);
}
