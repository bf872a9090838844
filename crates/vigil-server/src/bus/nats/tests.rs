//! The JetStream bus against the machine's NATS server (`VIGIL_TEST_NATS`, default
//! `nats://127.0.0.1:4222`). Every test works under a subject prefix of its own and deletes its
//! streams and bucket at the end.

use std::time::Duration;

use futures::StreamExt;
use serde_json::json;

use super::*;

/// The NATS server the tests use.
pub(crate) fn test_url() -> String {
    std::env::var("VIGIL_TEST_NATS").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

/// A configuration under a fresh prefix, with short leases.
pub(crate) fn test_config() -> NatsConfig {
    let mut cfg = NatsConfig::new(&test_url());
    cfg.prefix = format!("vt{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    cfg.partitions = 4;
    cfg.lease_ttl = Duration::from_secs(2);
    cfg.ack_wait = Duration::from_secs(3);
    cfg
}

/// Connects, failing with a message that says what is missing.
pub(crate) async fn connect(cfg: NatsConfig) -> Arc<NatsBus> {
    match NatsBus::connect(cfg).await {
        Ok(bus) => bus,
        Err(e) => panic!(
            "these tests need NATS with JetStream at {} (scripts/setup starts it): {e}",
            test_url()
        ),
    }
}

/// Deletes what a test's prefix created.
pub(crate) async fn cleanup(bus: &NatsBus) {
    bus.remove().await.expect("the test's streams are deleted");
}

pub(crate) fn raw(sensor: &str, uid: &str, class_uid: u32, extra: serde_json::Value) -> RawEvent {
    let mut doc = json!({"class_uid": class_uid, "activity_id": 1, "time": 1_000,
        "metadata": {"uid": uid}});
    if let (Some(d), Some(e)) = (doc.as_object_mut(), extra.as_object()) {
        d.extend(e.clone());
    }
    RawEvent::from_json_stamped(&serde_json::to_vec(&doc).unwrap(), sensor).unwrap()
}

#[test]
fn partitions_are_stable_and_spread() {
    // The hash is part of the wire contract: every instance and version must agree.
    assert_eq!(partition_of("", 32), (0xcbf2_9ce4_8422_2325u64 % 32) as u16);
    let mut counts = [0usize; 8];
    for i in 0..8000 {
        counts[usize::from(partition_of(&uuid::Uuid::new_v4().to_string(), 8))] += 1;
        let _ = i;
    }
    assert!(counts.iter().all(|&c| c > 700), "{counts:?}");
    assert_eq!(partition_of("abc", 1), 0);
}

#[test]
fn batches_are_split_by_class_and_size() {
    let cfg = NatsConfig::new("nats://127.0.0.1:4222");
    let big = "x".repeat(100_000);
    let mut events: Vec<RawEvent> = (0..12)
        .map(|i| {
            raw(
                "s1",
                &format!("p{i}"),
                1007,
                json!({"process": {"cmd_line": big}}),
            )
        })
        .collect();
    events.push(raw("s1", "n1", 4001, json!({})));
    let out = encode_batches(&cfg, &[("s1".to_owned(), events)]);
    let process: Vec<_> = out
        .iter()
        .filter(|(s, _, _)| s.starts_with("vigil.events.process_activity.s1."))
        .collect();
    assert!(process.len() >= 3, "12 × 100 kB must not fit one message");
    assert!(out.iter().all(|(_, _, p)| p.len() <= MAX_PAYLOAD));
    let mut uids = Vec::new();
    for (_, _, payload) in &process {
        let docs: Vec<serde_json::Value> = serde_json::from_slice(payload).unwrap();
        uids.extend(
            docs.iter()
                .map(|d| d["metadata"]["uid"].as_str().unwrap().to_owned()),
        );
    }
    assert_eq!(uids, (0..12).map(|i| format!("p{i}")).collect::<Vec<_>>());
    let ids: std::collections::HashSet<_> = out.iter().map(|(_, id, _)| id).collect();
    assert_eq!(ids.len(), out.len(), "every message has its own id");
    assert!(
        out.iter()
            .any(|(s, _, _)| s.starts_with("vigil.events.network_activity.s1."))
    );
}

#[tokio::test]
async fn events_land_on_their_partition_subject_once() {
    let bus = connect(test_config()).await;
    let cfg = bus.config().clone();
    let batch = vec![(
        "sensor.one".to_owned(),
        vec![
            raw("sensor.one", "e1", 1007, json!({})),
            raw("sensor.one", "e2", 1007, json!({})),
        ],
    )];
    bus.events_stored(&batch).await.unwrap();
    // The same batch again (a sensor re-sending after a lost acknowledgement): dropped.
    bus.events_stored(&batch).await.unwrap();
    let p = partition_of("sensor.one", cfg.partitions);
    let consumer = bus.partition_consumer(p).await.unwrap();
    let mut got = consumer
        .fetch()
        .max_messages(10)
        .expires(Duration::from_secs(1))
        .messages()
        .await
        .unwrap();
    let mut subjects = Vec::new();
    while let Some(m) = got.next().await {
        let m = m.unwrap();
        subjects.push(m.subject.to_string());
        m.ack().await.unwrap();
    }
    assert_eq!(
        subjects,
        [format!(
            "{}.events.process_activity.sensor%2Eone.{p}",
            cfg.prefix
        )]
    );
    // The other partitions' consumers see nothing of it.
    let other = bus
        .partition_consumer((p + 1) % cfg.partitions)
        .await
        .unwrap();
    let mut none = other
        .fetch()
        .max_messages(10)
        .expires(Duration::from_millis(300))
        .messages()
        .await
        .unwrap();
    assert!(none.next().await.is_none());
    cleanup(&bus).await;
}

#[tokio::test]
async fn notices_reach_the_other_instances_not_the_sender() {
    let cfg = test_config();
    let a = connect(cfg.clone()).await;
    let mut b_cfg = cfg.clone();
    b_cfg.instance = format!("{}-b", cfg.instance);
    let b = connect(b_cfg).await;
    let mut at_a = a.notices().unwrap();
    let mut at_b = b.notices().unwrap();
    let notice = Notice::Commands {
        sensor_id: "s9".into(),
    };
    a.notify(&notice);
    let got = tokio::time::timeout(Duration::from_secs(5), at_b.recv())
        .await
        .expect("the other instance hears the notice")
        .unwrap();
    assert_eq!(got, notice);
    // The sender does not hear itself: b's reply is the next thing a sees.
    b.notify(&Notice::Policies);
    let got = tokio::time::timeout(Duration::from_secs(5), at_a.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, Notice::Policies);
    cleanup(&a).await;
}

#[tokio::test]
async fn an_instance_with_another_partition_count_is_refused() {
    let cfg = test_config();
    let a = connect(cfg.clone()).await;
    let mut other = cfg.clone();
    other.partitions = cfg.partitions + 1;
    let err = NatsBus::connect(other).await.unwrap_err().to_string();
    assert!(err.contains("partitions"), "{err}");
    cleanup(&a).await;
}

#[tokio::test]
async fn an_unreachable_server_is_a_clear_error() {
    let mut cfg = test_config();
    // A loopback port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    cfg.url = format!("nats://127.0.0.1:{port}");
    let err = NatsBus::connect(cfg).await.unwrap_err().to_string();
    assert!(err.contains("cannot connect"), "{err}");
}
