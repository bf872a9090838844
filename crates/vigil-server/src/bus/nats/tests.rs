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
fn batches_are_split_by_class_and_size_and_queued_whole_for_detection() {
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
    events.insert(5, raw("s1", "n1", 4001, json!({})));
    let out = encode_batches(&cfg, &[("s1".to_owned(), events)]);
    let uids_on = |subject: &str| {
        let messages: Vec<_> = out.iter().filter(|(s, _, _)| s == subject).collect();
        let mut uids = Vec::new();
        for (_, _, payload) in &messages {
            let docs: Vec<serde_json::Value> = serde_json::from_slice(payload).unwrap();
            uids.extend(
                docs.iter()
                    .map(|d| d["metadata"]["uid"].as_str().unwrap().to_owned()),
            );
        }
        (messages.len(), uids)
    };
    assert!(out.iter().all(|(_, _, p)| p.len() <= MAX_PAYLOAD));
    let (messages, uids) = uids_on("vigil.events.process_activity.s1");
    assert!(messages >= 3, "12 × 100 kB must not fit one message");
    assert_eq!(uids, (0..12).map(|i| format!("p{i}")).collect::<Vec<_>>());
    let (_, uids) = uids_on("vigil.events.network_activity.s1");
    assert_eq!(uids, ["n1"]);
    // The detection queue gets the batch whole, in the order it came, on the endpoint's
    // partition.
    let detect = format!("vigil.detect.{}.s1", partition_of("s1", cfg.partitions));
    let (_, uids) = uids_on(&detect);
    let mut want: Vec<String> = (0..12).map(|i| format!("p{i}")).collect();
    want.insert(5, "n1".to_owned());
    assert_eq!(uids, want);
    assert!(
        out.iter()
            .all(|(s, _, _)| s.starts_with("vigil.events.") || *s == detect)
    );
    let ids: std::collections::HashSet<_> = out
        .iter()
        .filter(|(s, _, _)| s.starts_with("vigil.events."))
        .map(|(_, id, _)| id)
        .collect();
    assert_eq!(
        ids.len(),
        out.len() - out.iter().filter(|(s, _, _)| *s == detect).count(),
        "every message of the class streams has its own id"
    );
}

#[tokio::test]
async fn events_land_on_their_class_stream_and_partition_once() {
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
        [format!("{}.detect.{p}.sensor%2Eone", cfg.prefix)]
    );
    // The class stream holds the batch once, on the endpoint's own subject.
    let js = async_nats::jetstream::new(bus.client().clone());
    let mut class = js
        .get_stream(format!(
            "{}_EVENTS_PROCESS_ACTIVITY",
            cfg.prefix.to_uppercase()
        ))
        .await
        .unwrap();
    assert_eq!(class.info().await.unwrap().state.messages, 1);
    let last = class
        .get_last_raw_message_by_subject(&format!(
            "{}.events.process_activity.sensor%2Eone",
            cfg.prefix
        ))
        .await
        .unwrap();
    let docs: Vec<serde_json::Value> = serde_json::from_slice(&last.payload).unwrap();
    assert_eq!(docs.len(), 2);
    // The detection queue is a work queue: what a partition acknowledged is gone.
    let mut queue = js
        .get_stream(format!("{}_DETECT", cfg.prefix.to_uppercase()))
        .await
        .unwrap();
    assert_eq!(queue.info().await.unwrap().state.messages, 0);
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
async fn a_class_without_a_stream_gets_one_on_its_first_event() {
    let bus = connect(test_config()).await;
    let prefix = bus.config().prefix.clone();
    let before = bus.event_streams().await.unwrap();
    assert_eq!(
        before.len(),
        CLASSES.len(),
        "the known classes' streams are made at start: {before:?}"
    );
    bus.events_stored(&[("s1".to_owned(), vec![raw("s1", "m1", 6003, json!({}))])])
        .await
        .unwrap();
    let after = bus.event_streams().await.unwrap();
    let made = format!("{}_EVENTS_CLASS_6003", prefix.to_uppercase());
    assert!(after.contains(&made), "{after:?}");
    let js = async_nats::jetstream::new(bus.client().clone());
    let info = js
        .get_stream(&made)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .clone();
    assert_eq!(info.state.messages, 1);
    assert_eq!(
        info.config.subjects,
        [format!("{prefix}.events.class_6003.*")]
    );
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
    // Commands travel on the endpoint's own subject, where anyone may listen.
    let mut watcher = a
        .client()
        .subscribe(format!("{}.commands.s9", cfg.prefix))
        .await
        .unwrap();
    a.detect.clone().info().await.unwrap();
    let notice = Notice::Commands {
        sensor_id: "s9".into(),
    };
    a.notify(&notice);
    let got = tokio::time::timeout(Duration::from_secs(5), at_b.recv())
        .await
        .expect("the other instance hears the notice")
        .unwrap();
    assert_eq!(got, notice);
    let seen = tokio::time::timeout(Duration::from_secs(5), watcher.next())
        .await
        .expect("the command notice is on vigil.commands.<sensor>")
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&seen.payload).unwrap();
    assert_eq!(body["kind"], "commands");
    assert_eq!(body["sensor_id"], "s9");
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
async fn a_stream_of_the_earlier_layout_is_named_in_the_error() {
    let cfg = test_config();
    let client = async_nats::connect(test_url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let old = format!("{}_EVENTS", cfg.prefix.to_uppercase());
    js.create_stream(stream::Config {
        name: old.clone(),
        subjects: vec![format!("{}.events.>", cfg.prefix)],
        ..Default::default()
    })
    .await
    .unwrap();
    let err = NatsBus::connect(cfg.clone()).await.unwrap_err().to_string();
    js.delete_stream(&old).await.unwrap();
    assert!(
        err.contains(&old) && err.contains("earlier Vigil version"),
        "{err}"
    );
    // Once it is gone the bus starts.
    let bus = connect(cfg).await;
    cleanup(&bus).await;
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
