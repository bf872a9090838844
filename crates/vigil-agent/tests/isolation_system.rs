//! Host isolation as an operator uses it: the agent runs inside a network namespace this test
//! creates, the fleet server in the host namespace on the veth's address. Isolate: the fleet
//! stays reachable, everything else is dropped, the host namespace is untouched, and the API
//! shows "isolated" only once the agent confirmed it. An agent restart keeps the host isolated.
//! Release restores connectivity.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use serde_json::json;

mod common;
use common::system::{AgentProc, TestServer, wait_for};
use common::{TestNet, host_has_vigil_table, reachable};
use vigil_agent::response::isolate::TABLE;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("skipping isolation_system: needs root (network namespaces, nftables)");
    }
    root
}

async fn isolation_status(server: &TestServer, sensor: &str) -> String {
    let ep = server.get(&format!("/api/v1/endpoints/{sensor}")).await;
    ep["isolation_status"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_isolates_an_agent_in_a_namespace_and_releases_it() {
    if !is_root() {
        return;
    }
    let net = TestNet::new(3);
    let other_listener = TcpListener::bind(SocketAddr::new(net.other, 0)).unwrap();
    let other = other_listener.local_addr().unwrap();
    let server_data = tempfile::tempdir().unwrap();
    let agent_data = tempfile::tempdir().unwrap();
    let server = TestServer::start(server_data.path(), SocketAddr::new(net.fleet, 0)).await;
    let fleet = server.fleet;

    let agent = AgentProc::spawn(Some(&net.ns), &server, agent_data.path());
    let ep = server.endpoint().await;
    let sensor = ep["sensor_id"].as_str().unwrap().to_owned();
    let caps = ep["capabilities"].as_array().unwrap();
    assert!(
        caps.iter()
            .any(|c| c["name"] == "response.isolate" && c["live"] == true),
        "the agent can isolate: {caps:#?}"
    );
    assert_eq!(isolation_status(&server, &sensor).await, "none");
    assert!(net.inside(move || reachable(other)), "before isolation");

    let done = server.command(&sensor, "isolate", json!({})).await;
    assert_eq!(done["state"], "succeeded", "{done:#}");
    assert_eq!(isolation_status(&server, &sensor).await, "isolated");
    let (other_ok, fleet_ok) = net.inside(move || (reachable(other), reachable(fleet)));
    assert!(
        !other_ok,
        "an isolated host reaches nothing but its fleet server"
    );
    assert!(fleet_ok, "an isolated host still reaches its fleet server");
    assert!(
        !host_has_vigil_table(),
        "the host's own namespace is untouched"
    );

    // The agent restarts while isolated: the host stays isolated and the agent comes back.
    agent.stop();
    let sessions_before = server.get(&format!("/api/v1/endpoints/{sensor}")).await["last_seen"]
        .as_i64()
        .unwrap();
    assert!(net.nft_in_ns(&["list", "tables"]).contains(TABLE));
    let agent = AgentProc::spawn(Some(&net.ns), &server, agent_data.path());
    wait_for(
        "the restarted agent's heartbeat",
        Duration::from_secs(30),
        async || {
            let ep = server.get(&format!("/api/v1/endpoints/{sensor}")).await;
            (ep["session_live"] == true
                && ep["last_seen"].as_i64() > Some(sessions_before)
                && ep["heartbeat"]["isolation"] == "isolated")
                .then_some(())
        },
    )
    .await;
    assert_eq!(isolation_status(&server, &sensor).await, "isolated");
    assert!(
        !net.inside(move || reachable(other)),
        "still isolated after the restart"
    );

    let done = server.command(&sensor, "release", json!({})).await;
    assert_eq!(done["state"], "succeeded", "{done:#}");
    assert_eq!(isolation_status(&server, &sensor).await, "released");
    assert!(net.inside(move || reachable(other)), "released");
    assert!(!net.nft_in_ns(&["list", "tables"]).contains(TABLE));

    let audit = server
        .get(&format!("/api/v1/audit?target=endpoint:{sensor}"))
        .await;
    let actions: Vec<_> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        actions,
        [
            "command.succeeded",
            "command.queued",
            "command.succeeded",
            "command.queued"
        ]
    );
    agent.stop();
    server.stop().await;
}
