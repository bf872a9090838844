//! What the fleet ingest path does to a batch, over a real mTLS session: every event is stamped
//! with the session's endpoint whatever device it claims, an event that is not valid OCSF is
//! refused (and the rest of its batch kept), and an event id already held is stored once.

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use vigil_agent::identity;
use vigil_proto::fleet::fleet_client::FleetClient;
use vigil_proto::fleet::{Ack, Event as WireEvent, EventBatch, Hello, HostFacts};
use vigil_proto::{AgentMessage, ServerMessage, agent_message, server_message};
use vigil_server::{Server, ServerConfig};

const SECRET: &str = "fleet-ingest-test-secret";

fn wire(doc: &[u8]) -> WireEvent {
    WireEvent {
        // The wire's envelope copies are ignored: the server re-derives them from the document.
        uid: "ignored".into(),
        class_uid: 9999,
        time: 0,
        ocsf_json: doc.to_vec(),
    }
}

fn event(uid: &str, device: Value) -> WireEvent {
    let doc = json!({
        "class_uid": 1007, "activity_id": 1, "time": 1_700_000_000_000_i64,
        "metadata": { "uid": uid, "version": "1.8.0" },
        "device": device,
        "process": { "pid": 42, "cmd_line": "/bin/true \"quoted\" \u{e9}" },
    });
    wire(doc.to_string().as_bytes())
}

/// Sends a batch on the session and waits for its ack.
async fn send(
    tx: &tokio::sync::mpsc::Sender<AgentMessage>,
    inbound: &mut tonic::Streaming<ServerMessage>,
    seq: u64,
    events: Vec<WireEvent>,
) -> Ack {
    let msg = agent_message::Msg::Events(EventBatch { seq, events });
    tx.send(AgentMessage { msg: Some(msg) }).await.unwrap();
    loop {
        match inbound.message().await.unwrap() {
            Some(ServerMessage {
                msg: Some(server_message::Msg::Ack(ack)),
            }) => return ack,
            Some(_) => {}
            None => panic!("the server closed the session"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_stamped_validated_and_deduplicated() {
    let data = tempfile::tempdir().unwrap();
    let rules = tempfile::tempdir().unwrap();
    let agent_dir = tempfile::tempdir().unwrap();
    let mut cfg = ServerConfig::new(
        data.path().to_owned(),
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
        vec![rules.path().to_owned()],
    );
    cfg.enroll_secret = Some(SECRET.into());
    vigil_server::testing::for_data_dir(data.path())
        .await
        .apply(&mut cfg);
    let server = Server::bind(&cfg).await.unwrap();
    let fleet = format!("https://{}", server.fleet_addr());
    let ca_pem = std::fs::read_to_string(server.ca_path()).unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn({
        let stop = stop.clone();
        async move { server.run(stop).await.unwrap() }
    });

    let id = identity::enroll(
        &fleet,
        agent_dir.path(),
        &ca_pem,
        SECRET,
        HostFacts::default(),
        "",
    )
    .await
    .unwrap();
    let channel = identity::endpoint(&fleet, id.client_tls())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let hello = Hello {
        sensor_id: id.sensor_id.clone(),
        ..Default::default()
    };
    tx.send(AgentMessage {
        msg: Some(agent_message::Msg::Hello(hello)),
    })
    .await
    .unwrap();
    let mut inbound = FleetClient::new(channel)
        .session(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();

    let ack = send(
        &tx,
        &mut inbound,
        1,
        vec![
            // Claims to come from another endpoint.
            event("claims-other", json!({ "uid": "victim", "hostname": "h" })),
            // Not JSON; JSON but not an object; no class; a lone surrogate.
            wire(b"{not json"),
            wire(b"[1, 2]"),
            wire(br#"{"time":1,"metadata":{"uid":"no-class"}}"#),
            wire(br#"{"class_uid":1007,"time":1,"metadata":{"uid":"bad-string"},"x":"\ud800"}"#),
            // No id: the server assigns one.
            wire(br#"{"class_uid":1007,"time":2,"device":"not an object"}"#),
            // The same id twice in one batch.
            event("twice", Value::Null),
            event("twice", Value::Null),
        ],
    )
    .await;
    assert_eq!((ack.seq, ack.stored, ack.duplicates), (1, 3, 1));

    // A resent batch (the agent never saw the ack) is stored once.
    let ack = send(
        &tx,
        &mut inbound,
        2,
        vec![
            event("claims-other", json!({ "uid": "victim" })),
            event("twice", Value::Null),
            event("fresh", json!({})),
        ],
    )
    .await;
    assert_eq!((ack.seq, ack.stored, ack.duplicates), (2, 1, 2));

    drop(tx);
    stop.cancel();
    task.await.unwrap();

    let store = vigil_server::testing::for_data_dir(data.path())
        .await
        .open_store(data.path())
        .await;
    let log = store.events_after(0, 100).await.unwrap().events;
    let uids: Vec<&str> = log.iter().map(|e| e.event.uid.as_str()).collect();
    assert_eq!(log.len(), 4, "{uids:?}");
    assert_eq!(uids[0], "claims-other");
    assert_eq!(uids[2], "twice");
    assert_eq!(uids[3], "fresh");
    assert_eq!(uids[1].len(), 36, "a server-assigned uuid: {uids:?}");
    for stored in &log {
        assert_eq!(stored.sensor_id, id.sensor_id);
        assert_eq!(
            stored.event.get("device.uid").and_then(Value::as_str),
            Some(id.sensor_id.as_str()),
            "{}",
            stored.event.data
        );
        assert_eq!(stored.event.class_uid, 1007);
        assert_eq!(
            stored.event.get("metadata.uid").and_then(Value::as_str),
            Some(stored.event.uid.as_str())
        );
    }
    let first = &log[0].event;
    assert_eq!(
        first.get("device.hostname").and_then(Value::as_str),
        Some("h")
    );
    assert_eq!(first.time, 1_700_000_000_000);
    assert_eq!(
        first.get("process.cmd_line").and_then(Value::as_str),
        Some("/bin/true \"quoted\" \u{e9}")
    );
    assert!(!first.data.to_string().contains("victim"));
    // Queries read the same stamped documents.
    let queried = store
        .query_events(&vigil_server::store::EventQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(queried.len(), 4);
    assert!(
        queried
            .iter()
            .all(|e| e["device"]["uid"] == id.sensor_id.as_str())
    );
}
