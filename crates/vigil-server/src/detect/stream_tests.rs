//! Detection over JetStream with the machine's NATS: work shared between workers, a worker
//! that dies mid-stream, and events that reach the bus twice.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use vigil_detect::RuleSet;

use super::*;
use crate::bus::Bus;
use crate::bus::nats::tests::{cleanup, connect, raw, test_config};
use crate::bus::nats::{NatsBus, NatsConfig};
use crate::store::FindingQuery;
use crate::store::sqlite::SqliteStore;

const RULES: &str = "
title: marker
id: 5f2c0d4e-1111-4a22-9b33-0c4d5e6f7a81
name: stream_marker
logsource: {category: process_creation, product: linux}
detection: {sel: {CommandLine|contains: stream-test-marker}, condition: sel}
level: high
---
title: five markers
id: 5f2c0d4e-2222-4a22-9b33-0c4d5e6f7a82
correlation:
    type: event_count
    rules: [stream_marker]
    generate: true
    timespan: 1h
    condition: {gte: 5}
level: high
";

fn rules() -> Arc<RuleSet> {
    let maps = vigil_ocsf::fieldmap::FieldMaps::builtin().unwrap();
    let (rules, report) = RuleSet::load_str(RULES, Path::new("t.yml"), &maps);
    assert!(
        report.rules.len() == 2
            && report
                .rules
                .iter()
                .all(|r| r.status == vigil_detect::RuleStatus::Loaded),
        "{report:?}"
    );
    Arc::new(rules)
}

fn marker(sensor: &str, uid: &str) -> vigil_ocsf::RawEvent {
    raw(
        sensor,
        uid,
        1007,
        json!({"process": {"pid": 7, "cmd_line": "sh -c stream-test-marker"}}),
    )
}

/// Findings of one rule, as (sensor, event uid) of their first related event.
async fn findings(store: &Arc<dyn Store>, rule: &str) -> Vec<(String, String)> {
    let q = FindingQuery {
        limit: 100_000,
        rule_id: Some(rule.to_owned()),
        ..Default::default()
    };
    let mut out: Vec<(String, String)> = store
        .query_findings(&q)
        .await
        .unwrap()
        .into_iter()
        .map(|f| {
            (
                f.body["device"]["uid"].as_str().unwrap_or("").to_owned(),
                f.body["finding_info"]["related_events"][0]["uid"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Waits until `check` holds, up to `limit`; panics with `what` otherwise.
async fn until<F: AsyncFn() -> bool>(limit: Duration, what: &str, check: F) {
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Which instances hold partition leases.
async fn lease_holders(bus: &NatsBus) -> Vec<String> {
    let mut out: Vec<String> = bus
        .partition_owners()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|(_, holder)| holder)
        .collect();
    out.sort();
    out
}

/// A detection worker on a runtime of its own, which `crash` drops at once: its connection,
/// its leases and the batches it fetched but had not acknowledged go with it, as with a
/// process killed by SIGKILL.
struct Worker {
    crash: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Worker {
    fn start(cfg: NatsConfig, store: Arc<dyn Store>) -> Self {
        let (crash, crashed) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let bus = connect(cfg).await;
                let detector =
                    StreamDetector::new(bus, store, rules(), RuleSwitches::default(), None);
                tokio::select! {
                    () = detector.run(CancellationToken::new()) => {}
                    _ = crashed => {}
                }
            });
            rt.shutdown_background();
        });
        Self {
            crash: Some(crash),
            thread: Some(thread),
        }
    }

    fn crash(mut self) {
        if let Some(c) = self.crash.take() {
            let _ = c.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_share_partitions_and_a_dead_worker_loses_no_event() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
    let cfg = test_config();
    let publisher = connect(cfg.clone()).await;
    let named = |n: &str| {
        let mut c = cfg.clone();
        c.instance = format!("{}-{n}", cfg.instance);
        c
    };
    let a = Worker::start(named("a"), Arc::clone(&store));
    let b = Worker::start(named("b"), Arc::clone(&store));
    until(
        Duration::from_secs(20),
        "both workers to hold partitions",
        async || {
            let h = lease_holders(&publisher).await;
            h.len() == usize::from(cfg.partitions)
                && h.iter().any(|i| i.ends_with("-a"))
                && h.iter().any(|i| i.ends_with("-b"))
        },
    )
    .await;

    // 40 endpoints, two events each per wave: one finding per event.
    let wave = |w: usize| -> Vec<(String, Vec<vigil_ocsf::RawEvent>)> {
        (0..40)
            .map(|s| {
                let sensor = format!("host-{s}");
                let events = (0..2)
                    .map(|i| marker(&sensor, &format!("w{w}-{s}-{i}")))
                    .collect();
                (sensor, events)
            })
            .collect()
    };
    publisher.events_stored(&wave(1)).await.unwrap();
    publisher.events_stored(&wave(2)).await.unwrap();
    until(Duration::from_secs(30), "160 findings", async || {
        findings(&store, "5f2c0d4e-1111-4a22-9b33-0c4d5e6f7a81")
            .await
            .len()
            == 160
    })
    .await;

    // b dies without a word; what it held goes to a once its leases lapse.
    b.crash();
    publisher.events_stored(&wave(3)).await.unwrap();
    until(
        Duration::from_secs(40),
        "240 findings after the crash",
        async || {
            findings(&store, "5f2c0d4e-1111-4a22-9b33-0c4d5e6f7a81")
                .await
                .len()
                == 240
        },
    )
    .await;
    let holders = lease_holders(&publisher).await;
    assert!(
        holders.iter().all(|h| h.ends_with("-a")) && holders.len() == usize::from(cfg.partitions),
        "{holders:?}"
    );
    let got = findings(&store, "5f2c0d4e-1111-4a22-9b33-0c4d5e6f7a81").await;
    let mut expected: Vec<(String, String)> = (1..=3)
        .flat_map(|w| {
            (0..40).flat_map(move |s| {
                (0..2).map(move |i| (format!("host-{s}"), format!("w{w}-{s}-{i}")))
            })
        })
        .collect();
    expected.sort();
    assert_eq!(got, expected, "every event scored, each finding once");
    // Six markers per endpoint now. The correlation fires at most once per endpoint: before
    // the crash an endpoint's events stayed on one worker; the state b held died with it.
    let corr = findings(&store, "5f2c0d4e-2222-4a22-9b33-0c4d5e6f7a82").await;
    assert!(corr.len() <= 40, "{}", corr.len());
    a.crash();
    cleanup(&publisher).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_on_the_bus_twice_counts_once() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
    let mut cfg = test_config();
    cfg.partitions = 1;
    let publisher = connect(cfg.clone()).await;
    let worker = Worker::start(cfg.clone(), Arc::clone(&store));
    let four: Vec<_> = (0..4).map(|i| marker("h1", &format!("e{i}"))).collect();
    publisher
        .events_stored(&[("h1".to_owned(), four.clone())])
        .await
        .unwrap();
    // The same events again in other groupings (new message ids, past JetStream's
    // duplicate check): a correlation counting them would reach five.
    for e in &four {
        publisher
            .events_stored(&[("h1".to_owned(), vec![e.clone()])])
            .await
            .unwrap();
    }
    // A marker of another endpoint after them (one partition: in order): once it is scored,
    // so were the duplicates.
    publisher
        .events_stored(&[("h2".to_owned(), vec![marker("h2", "x")])])
        .await
        .unwrap();
    until(Duration::from_secs(20), "the five findings", async || {
        findings(&store, "5f2c0d4e-1111-4a22-9b33-0c4d5e6f7a81")
            .await
            .len()
            == 5
    })
    .await;
    assert!(
        findings(&store, "5f2c0d4e-2222-4a22-9b33-0c4d5e6f7a82")
            .await
            .is_empty(),
        "four distinct events, each seen twice, are not five"
    );
    // A fifth distinct event completes the correlation.
    publisher
        .events_stored(&[("h1".to_owned(), vec![marker("h1", "e4")])])
        .await
        .unwrap();
    until(Duration::from_secs(20), "the correlation", async || {
        findings(&store, "5f2c0d4e-2222-4a22-9b33-0c4d5e6f7a82")
            .await
            .len()
            == 1
    })
    .await;
    assert_eq!(
        findings(&store, "5f2c0d4e-1111-4a22-9b33-0c4d5e6f7a81")
            .await
            .len(),
        6
    );
    worker.crash();
    cleanup(&publisher).await;
}
