//! A command result larger than any one message the link carries — here a live query's
//! 9 MB answer, over the 8 MiB message bound — goes in parts over the real session, and the
//! server joins them into the whole answer.

use std::time::Duration;

use serde_json::json;
use vigil_agent::SourceMode;

mod common;
use common::system::{TestServer, start_agent, wait_for};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("skipping large_results: needs root (the agent's sensor)");
    }
    root
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_live_query_answer_larger_than_a_message_arrives_whole() {
    if !is_root() {
        return;
    }
    let server_data = tempfile::tempdir().unwrap();
    let agent_data = tempfile::tempdir().unwrap();
    let server = TestServer::start(server_data.path(), "127.0.0.1:0".parse().unwrap()).await;
    let agent = start_agent(&server, agent_data.path(), SourceMode::ProcConnector).await;
    let ep = server.endpoint().await;
    let sensor = ep["sensor_id"].as_str().unwrap().to_owned();

    const ROWS: u64 = 9000;
    const WIDTH: usize = 1000;
    assert!(
        ROWS as usize * WIDTH > vigil_proto::MAX_MESSAGE_BYTES,
        "the answer must not fit one message"
    );
    let sql = format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ROWS}) \
         SELECT i, substr(hex(zeroblob({half})), 1, {WIDTH}) AS pad FROM n",
        half = WIDTH / 2
    );
    let (status, q) = server
        .post(
            "/api/v1/queries",
            json!({"sql": sql, "endpoints": [sensor.as_str()], "timeout_s": 30}),
        )
        .await;
    assert_eq!(status, 201, "{q}");
    let id = q["id"].as_str().unwrap().to_owned();
    let answer = wait_for("the whole answer", Duration::from_secs(60), async || {
        let a = server.get(&format!("/api/v1/queries/{id}")).await;
        let done = a["summary"]["answered"] == 1 || a["summary"]["failed"] == 1;
        done.then_some(a)
    })
    .await;
    let host = &answer["hosts"][0];
    assert!(host["error"].is_null(), "{}", host["error"]);
    let rows = host["result"]["rows"].as_array().expect("rows");
    assert_eq!(rows.len() as u64, ROWS);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row[0], i as u64 + 1, "row {i} in order");
        assert_eq!(row[1].as_str().map(str::len), Some(WIDTH), "row {i} whole");
    }
    // The audit log names the result's size rather than copying it.
    let audit = server.get("/api/v1/audit?limit=1000").await;
    let done = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "command.succeeded" && e["detail"]["action"] == "query")
        .cloned()
        .expect("the query's completion is audited");
    assert!(
        done["detail"]["result"]["bytes"].as_u64().unwrap() > vigil_proto::MAX_MESSAGE_BYTES as u64,
        "{done}"
    );
    agent.shutdown().await;
    server.stop().await;
}
