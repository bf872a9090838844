//! Inbound connection attempts to many ports of one host, injected through the HTTP fleet API,
//! raise exactly one T1046 alert through the detection worker's correlation; one busy port does
//! not.

mod common;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use vigil_server::{Server, ServerConfig};

fn attempt(i: usize, src: &str, port: u16, t0: i64) -> Value {
    json!({
        "class_uid": 4001, "activity_id": 1, "time": t0 + i as i64 * 10,
        "metadata": {"uid": format!("{src}-{port}-{i}-{t0}")},
        "src_endpoint": {"ip": src, "port": 40000 + i},
        "dst_endpoint": {"ip": "10.9.0.1", "port": port},
        "connection_info": {"direction_id": 1, "protocol_num": 6},
        "unmapped": {"initiated": "false"}
    })
}

async fn t1046_alerts(client: &reqwest::Client, api: &str) -> Vec<Value> {
    let alerts: Value = client
        .get(format!("{api}/api/v1/alerts"))
        .bearer_auth(common::operator::admin_token(api))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    alerts["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            a["finding_info"]["attacks"]
                .as_array()
                .is_some_and(|at| at.iter().any(|x| x["technique"]["uid"] == "T1046"))
        })
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_scan_raises_one_t1046_alert_and_one_busy_port_none() {
    let data = tempfile::tempdir().unwrap();
    let rules = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../rules"));
    let mut cfg = ServerConfig::new(
        data.path().to_owned(),
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
        vec![rules],
    );
    cfg.first_admin.password = Some(common::operator::ADMIN_PASSWORD.into());
    vigil_server::testing::for_data_dir(data.path())
        .await
        .apply(&mut cfg);
    let server = Server::bind(&cfg).await.unwrap();
    let api = format!("http://{}", server.api_addr());
    let stop = CancellationToken::new();
    let task = tokio::spawn({
        let stop = stop.clone();
        async move { server.run(stop).await.unwrap() }
    });
    let client = {
        vigil_server::pki::install_crypto_provider();
        reqwest::Client::new()
    };
    let reg: Value = client
        .post(format!("{api}/api/v1/endpoints"))
        .bearer_auth(common::operator::admin_token(&api))
        .json(&json!({"hostname": "target"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (sensor, token) = (
        reg["sensor_id"].as_str().unwrap(),
        reg["token"].as_str().unwrap(),
    );
    let t0 = vigil_ocsf::now_ms();

    // A web server: 300 clients, one port. Then a scan: one source, 100 ports.
    let busy: Vec<_> = (0..300)
        .map(|i| attempt(i, &format!("10.9.1.{}", i % 250 + 1), 443, t0))
        .collect();
    let scan: Vec<_> = (0..100)
        .map(|i| attempt(i, "10.9.0.66", 1000 + i as u16, t0 + 5_000))
        .collect();
    for batch in [busy, scan] {
        let res = client
            .post(format!("{api}/api/v1/edr/{sensor}/events"))
            .bearer_auth(token)
            .json(&batch)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{}", res.text().await.unwrap());
    }

    let deadline = Instant::now() + Duration::from_secs(20);
    let alerts = loop {
        let found = t1046_alerts(&client, &api).await;
        if !found.is_empty() || Instant::now() > deadline {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Let detection finish everything that was stored before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let alerts_after = t1046_alerts(&client, &api).await;
    assert_eq!(alerts.len(), 1, "exactly one scan alert: {alerts:#?}");
    assert_eq!(
        alerts_after.len(),
        1,
        "no more alerts for the same scan window"
    );
    let desc = alerts[0]["finding_info"]["desc"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        desc.contains("10.9.0.66"),
        "the alert names the scanner: {desc}"
    );
    assert_eq!(alerts[0]["device"]["uid"], sensor);
    stop.cancel();
    task.await.unwrap();
}
