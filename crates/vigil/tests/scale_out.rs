//! The scale-out deployment as separate `vigil server` processes on the machine's NATS
//! (JetStream) and PostgreSQL: two fleet instances, two detection workers and an API instance,
//! with simulated agents speaking the real gRPC + mTLS protocol. Each run works in a database
//! and under a bus prefix of its own, removed at the end.
//!
//! What it shows: events from agents on either fleet instance are stored and scored; a
//! detection worker killed with SIGKILL in the middle of a stream loses no event and doubles no
//! finding; a command queued on the API instance reaches the agent's session on another
//! instance at once; an agent that reconnects to the other fleet instance carries on.

mod common;

use std::time::{Duration, Instant};

use common::scale::{Instance, SECRET, Sim, event, fleet_url, instance_name, lease_holders};
use serde_json::{Value, json};
use vigil_agent::identity;
use vigil_proto::fleet::HostFacts;
/// Detection partitions of the test's bus.
const PARTITIONS: u16 = 8;
/// Simulated agents.
const AGENTS: usize = 6;
/// Vigil's rule for /etc/shadow read by a text tool.
const SHADOW_RULE: &str = "6d3f1a52-8b0e-4c4e-9d1a-7a1f0e2b5c01";

/// One wave: each agent sends 10 events, the first a marker.
async fn wave(agents: &mut [Sim], w: u32) {
    for (i, a) in agents.iter_mut().enumerate() {
        let events = (0..10)
            .map(|k| event(&format!("w{w}-a{i}-{k}"), k == 0))
            .collect();
        let ack = a.send(events).await;
        assert_eq!(ack.stored + ack.duplicates, 10, "{ack:?}");
    }
}

/// The marker findings' event ids, sorted (with repeats, if any).
async fn marker_findings(http: &reqwest::Client, api: &str, token: &str) -> Vec<String> {
    let body: Value = http
        .get(format!(
            "{api}/api/v1/alerts?limit=500&rule_id={SHADOW_RULE}"
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = body["items"].as_array().cloned().unwrap_or_default();
    let mut out: Vec<String> = items
        .iter()
        .filter_map(|f| f["finding_info"]["related_events"][0]["uid"].as_str())
        .map(str::to_owned)
        .collect();
    out.sort();
    out
}

async fn until_findings(http: &reqwest::Client, api: &str, token: &str, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let got = marker_findings(http, api, token).await;
        if got.len() >= n || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn expected(waves: &[u32], agents: usize) -> Vec<String> {
    let mut v: Vec<String> = waves
        .iter()
        .flat_map(|w| (0..agents).map(move |i| format!("w{w}-a{i}-0")))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_in_separate_processes_share_the_fleet() {
    vigil_server::pki::install_crypto_provider();
    let tag = common::scale::tag();
    let prefix = format!("vt{tag}");
    let nats = common::scale::nats_url();
    let bus_at = (nats.as_str(), prefix.as_str(), PARTITIONS);
    let db = common::scale::TestDb::create(&common::scale::postgres_admin(), &tag).await;
    let dir = tempfile::tempdir().unwrap();

    // The first fleet instance makes the fleet CA the others share (same data directory).
    let f1 = Instance::start("fleet 1", dir.path(), &db.url, bus_at, "fleet,ingest");
    let url1 = fleet_url(&f1.wait_line("fleet:"));
    let f2 = Instance::start("fleet 2", dir.path(), &db.url, bus_at, "fleet");
    let url2 = fleet_url(&f2.wait_line("fleet:"));
    let d1 = Instance::start("detect 1", dir.path(), &db.url, bus_at, "detect");
    let d1_name = instance_name(&d1.wait_line("detect:"));
    let mut d2 = Instance::start("detect 2", dir.path(), &db.url, bus_at, "detect");
    let d2_name = instance_name(&d2.wait_line("detect:"));
    let bus = {
        let mut c = vigil_server::bus::nats::NatsConfig::new(&nats);
        c.prefix = prefix.clone();
        c.partitions = PARTITIONS;
        vigil_server::bus::nats::NatsBus::connect(c)
            .await
            .expect("NATS with JetStream")
    };
    // Both workers own partitions before anything is sent (the first one gives half back
    // when it sees the second).
    let deadline = Instant::now() + Duration::from_secs(60);
    let d2_parts = loop {
        let held = lease_holders(&bus).await;
        let of = |n: &str| -> Vec<u16> {
            held.iter()
                .filter(|(_, h)| h == n)
                .map(|(p, _)| *p)
                .collect()
        };
        if held.len() == usize::from(PARTITIONS)
            && !of(&d1_name).is_empty()
            && !of(&d2_name).is_empty()
        {
            break of(&d2_name);
        }
        assert!(
            Instant::now() < deadline,
            "the workers never shared the partitions: {held:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let api_i = Instance::start("api", dir.path(), &db.url, bus_at, "api");
    let api = api_i
        .wait_line("API listening on ")
        .trim_start_matches("API listening on ")
        .to_owned();
    let token = common::operator::admin_token(&api);
    let http = reqwest::Client::new();

    // Six agents, enrolled and connected on both fleet instances, at least two of them
    // scored by the worker that is going to die (sensor ids are the server's to choose:
    // enroll until that holds).
    let ca = std::fs::read_to_string(dir.path().join("fleet-ca.crt")).unwrap();
    let mut agents = Vec::new();
    let mut on_d2 = 0;
    for i in 0..64 {
        if agents.len() == AGENTS {
            break;
        }
        let url = if i % 2 == 0 { &url1 } else { &url2 };
        let adir = dir.path().join(format!("agent-{i}"));
        std::fs::create_dir_all(&adir).unwrap();
        let host = HostFacts {
            hostname: format!("sim-{i}"),
            ..Default::default()
        };
        let id = identity::enroll(url, &adir, &ca, SECRET, host, "")
            .await
            .expect("enrollment on either fleet instance");
        let mine = d2_parts.contains(&vigil_server::bus::nats::partition_of(
            &id.sensor_id,
            PARTITIONS,
        ));
        if mine {
            on_d2 += 1;
        } else if agents.len() + 2usize.saturating_sub(on_d2) >= AGENTS {
            continue;
        }
        // Even positions on fleet 1, odd on fleet 2.
        let session = if agents.len() % 2 == 0 { &url1 } else { &url2 };
        agents.push(Sim::connect(session, id).await);
    }
    assert_eq!(agents.len(), AGENTS);
    assert!(on_d2 >= 2);

    wave(&mut agents, 1).await;
    let got = until_findings(&http, &api, &token, AGENTS).await;
    assert_eq!(
        got,
        expected(&[1], AGENTS),
        "every endpoint's events scored once"
    );

    // A detection worker dies in the middle of a stream: the other takes its partitions over
    // and JetStream redelivers what it had not acknowledged.
    let killer = tokio::task::spawn_blocking(move || {
        std::thread::sleep(Duration::from_millis(20));
        d2.kill();
        d2
    });
    wave(&mut agents, 2).await;
    let d2 = killer.await.unwrap();
    wave(&mut agents, 3).await;
    let got = until_findings(&http, &api, &token, 3 * AGENTS).await;
    assert_eq!(
        got,
        expected(&[1, 2, 3], AGENTS),
        "no event unscored and no finding doubled after a worker was killed"
    );
    drop(d2);

    // A command queued on the API instance reaches the agent's session on fleet 2 at once.
    let target = &mut agents[1];
    let res: Value = http
        .post(format!(
            "{api}/api/v1/endpoints/{}/commands",
            target.id.sensor_id
        ))
        .bearer_auth(&token)
        .json(&json!({"action": "query", "args": {"sql": "SELECT pid FROM processes LIMIT 1"}, "reason": "scale-out test"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cmd_id = res["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{res}"))
        .to_owned();
    let cmd = target.command(&cmd_id, Duration::from_secs(15)).await;
    assert_eq!(cmd.action, "query");

    // An agent moves to the other fleet instance and carries on.
    let moved = agents.remove(0);
    let id = moved.id.clone();
    drop(moved);
    let mut moved = Sim::connect(&url2, id).await;
    let ack = moved.send(vec![event("moved-0", true)]).await;
    assert_eq!(ack.stored, 1);
    let got = until_findings(&http, &api, &token, 3 * AGENTS + 1).await;
    assert!(got.contains(&"moved-0".to_owned()), "{got:?}");
    assert_eq!(got.len(), 3 * AGENTS + 1);

    // Every acknowledged event is in PostgreSQL once.
    assert_eq!(db.count("events").await, (AGENTS * 10 * 3 + 1) as i64);

    drop((f1, f2, d1, api_i));
    let _ = bus.remove().await;
}
