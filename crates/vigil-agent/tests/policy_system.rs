//! Response through the whole path, on real processes this test starts:
//! - a policy rule with a kill response kills a matching process that starts after the policy
//!   was pushed, while the server is unreachable, and the finding (with what the agent did)
//!   reaches the server once it is back;
//! - operator commands kill, suspend/resume and quarantine/restore over a live session, each
//!   with its recorded transitions. (That a redelivered command is not run twice is tested
//!   beside the executor.)

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vigil_agent::{Agent, SourceMode};

mod common;
use common::system::{TestServer, wait_for};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("skipping policy_system: needs root (eBPF capture, signals)");
    }
    root
}

async fn start_agent(server: &TestServer, data: &Path) -> Agent {
    common::system::start_agent(server, data, SourceMode::Ebpf).await
}

/// A copy of `sleep` under a name no other process on the host has.
fn marker_binary(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::copy("/bin/sleep", &path).unwrap();
    path
}

/// Waits (bounded) for a child to exit.
fn wait_exit(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn kill_rule(name: &str, id: &str) -> String {
    format!(
        "title: Test marker process\nid: {id}\nstatus: test\nlevel: high\n\
         tags: [attack.execution, attack.t1059]\n\
         logsource: {{category: process_creation, product: linux}}\n\
         detection:\n  sel:\n    Image|endswith: '/{name}'\n  condition: sel\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kill_policy_acts_offline_and_its_finding_arrives_later() {
    if !is_root() {
        return;
    }
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let name = format!("vigil-kill-{}", &nonce[..12]);
    let rule_id = uuid::Uuid::new_v4().to_string();
    let server_data = tempfile::tempdir().unwrap();
    let agent_data = tempfile::tempdir().unwrap();
    let bins = tempfile::tempdir().unwrap();
    // The server restarts on the same port: take one below the ephemeral range, which
    // parallel tests' outgoing connections draw their source ports from.
    let server = TestServer::start(server_data.path(), common::system::quiet_port()).await;
    let fleet = server.fleet;

    let (status, policy) = server
        .post(
            "/api/v1/policies",
            json!({"name": "kill test marker", "tags": ["*"],
                   "rules": [{"sigma": kill_rule(&name, &rule_id), "response": "kill"}]}),
        )
        .await;
    assert_eq!(status, 201, "{policy}");
    let agent = start_agent(&server, agent_data.path()).await;
    wait_for(
        "the policy on the agent",
        Duration::from_secs(30),
        async || (agent.policy().len() >= 5).then_some(()),
    )
    .await;

    // The server goes away; the agent alone must act.
    server.stop().await;
    let marker = marker_binary(bins.path(), &name);
    let started = Instant::now();
    let mut victim = Command::new(&marker).arg("30").spawn().unwrap();
    let status = wait_exit(&mut victim, Duration::from_secs(10)).unwrap_or_else(|| {
        let _ = victim.kill();
        panic!("the policy did not kill the matching process within 10 s")
    });
    eprintln!(
        "matching process killed {:?} after it started",
        started.elapsed()
    );
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    // A process the rule does not match runs to its end.
    let ok = Command::new("/bin/sleep").arg("0.2").status().unwrap();
    assert!(ok.success());

    // The server returns on the same address: the finding arrives, with the agent's action.
    let server = TestServer::start(server_data.path(), fleet).await;
    let finding = wait_for("the edge finding", Duration::from_secs(30), async || {
        let alerts = server.get("/api/v1/alerts").await;
        alerts["items"]
            .as_array()?
            .iter()
            .find(|f| f["finding_info"]["analytic"]["uid"] == rule_id.as_str())
            .cloned()
    })
    .await;
    let response = &finding["unmapped"]["response"][0];
    assert_eq!(response["action"], "kill", "{finding:#}");
    assert_eq!(response["succeeded"], true, "{finding:#}");
    assert_eq!(response["args"]["pid"], victim.id(), "{finding:#}");
    assert_eq!(response["policy_id"], policy["id"], "{finding:#}");
    assert_eq!(
        finding["evidences"][0]["process"]["file"]["path"],
        marker.to_str().unwrap()
    );
    // One finding, not one from the agent and one from the server's own detection.
    let alerts = server.get("/api/v1/alerts").await;
    let copies = alerts["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["finding_info"]["analytic"]["uid"] == rule_id.as_str())
        .count();
    assert_eq!(copies, 1);
    agent.shutdown().await;
    server.stop().await;
}

fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operator_commands_act_on_real_processes_and_files() {
    if !is_root() {
        return;
    }
    let server_data = tempfile::tempdir().unwrap();
    let agent_data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = TestServer::start(server_data.path(), "127.0.0.1:0".parse().unwrap()).await;
    let agent = start_agent(&server, agent_data.path()).await;
    let ep = server.endpoint().await;
    let sensor = ep["sensor_id"].as_str().unwrap().to_owned();

    // Suspend, resume, kill.
    let mut child = Command::new("/bin/sleep").arg("60").spawn().unwrap();
    let pid = child.id();
    let done = server
        .command(&sensor, "suspend", json!({"pid": pid}))
        .await;
    assert_eq!(done["state"], "succeeded", "{done:#}");
    assert_eq!(proc_state(pid), Some('T'));
    let done = server.command(&sensor, "resume", json!({"pid": pid})).await;
    assert_eq!(done["state"], "succeeded", "{done:#}");
    assert_ne!(proc_state(pid), Some('T'));
    let done = server
        .command(&sensor, "kill", json!({"pid": pid, "tree": true}))
        .await;
    assert_eq!(done["state"], "succeeded", "{done:#}");
    let status = wait_exit(&mut child, Duration::from_secs(5)).expect("killed");
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    // Refused on the agent, with the reason: the agent's own process.
    let done = server
        .command(&sensor, "kill", json!({"pid": std::process::id()}))
        .await;
    assert_eq!(done["state"], "failed", "{done:#}");
    assert!(done["result"]["error"].is_string(), "{done:#}");

    // Quarantine and restore, byte-identical.
    let file = work.path().join("payload.bin");
    let content: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&file, &content).unwrap();
    let done = server
        .command(&sensor, "quarantine", json!({"path": file}))
        .await;
    assert_eq!(done["state"], "succeeded", "{done:#}");
    assert!(!file.exists(), "quarantined files leave their place");
    let id = done["result"]["id"].as_str().unwrap().to_owned();
    let done = server.command(&sensor, "restore", json!({"id": id})).await;
    assert_eq!(done["state"], "succeeded", "{done:#}");
    assert_eq!(std::fs::read(&file).unwrap(), content);

    // Every command's history: queued, delivered, then its outcome.
    let cmds = server
        .get(&format!("/api/v1/endpoints/{sensor}/commands"))
        .await;
    let ids: Vec<Value> = cmds["items"].as_array().unwrap().clone();
    assert_eq!(ids.len(), 6);
    let first = ids.last().unwrap()["id"].as_str().unwrap().to_owned();
    let one = server
        .get(&format!("/api/v1/endpoints/{sensor}/commands/{first}"))
        .await;
    let states: Vec<_> = one["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["state"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(states, ["queued", "delivered", "succeeded"]);
    agent.shutdown().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_denied_exec_is_refused_reported_as_event_and_finding_then_allowed_again() {
    if !is_root() {
        return;
    }
    let server_data = tempfile::tempdir().unwrap();
    let agent_data = tempfile::tempdir().unwrap();
    let bins = tempfile::tempdir().unwrap();
    let server = TestServer::start(server_data.path(), "127.0.0.1:0".parse().unwrap()).await;
    let agent = start_agent(&server, agent_data.path()).await;
    let ep = server.endpoint().await;
    let sensor = ep["sensor_id"].as_str().unwrap().to_owned();
    let tool = marker_binary(bins.path(), "vigil-denied-tool");

    let done = server
        .command(&sensor, "deny_exec", json!({"path": tool}))
        .await;
    assert_eq!(done["state"], "succeeded", "{done:#}");
    let err = Command::new(&tool).arg("0").status().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}");
    // `true` is not denied.
    assert!(Command::new("/bin/true").status().unwrap().success());

    let path = tool.to_str().unwrap().to_owned();
    let finding = wait_for(
        "the exec-denied finding",
        Duration::from_secs(30),
        async || {
            let alerts = server.get("/api/v1/alerts").await;
            alerts["items"]
                .as_array()?
                .iter()
                .find(|f| f["finding_info"]["analytic"]["uid"] == "vigil-exec-deny")
                .cloned()
        },
    )
    .await;
    assert_eq!(
        finding["evidences"][0]["process"]["file"]["path"],
        path.as_str()
    );
    let event_uid = finding["finding_info"]["related_events"][0]["uid"]
        .as_str()
        .unwrap()
        .to_owned();
    let event = wait_for(
        "the failed-launch event",
        Duration::from_secs(30),
        async || {
            let events = server
                .get(&format!(
                    "/api/v1/events?class_uid=1007&sensor_id={sensor}&field=metadata.uid&value={event_uid}"
                ))
                .await;
            events["items"]
                .as_array()?
                .iter()
                .find(|e| e["metadata"]["uid"] == event_uid.as_str())
                .cloned()
        },
    )
    .await;
    assert_eq!(event["status_id"], 2, "{event:#}");
    assert_eq!(event["process"]["file"]["path"], path.as_str());

    let done = server
        .command(&sensor, "allow_exec", json!({"path": tool}))
        .await;
    assert_eq!(done["state"], "succeeded", "{done:#}");
    assert!(Command::new(&tool).arg("0").status().unwrap().success());
    agent.shutdown().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_operator_triage_package_is_stored_listed_and_downloadable() {
    if !is_root() {
        return;
    }
    let server_data = tempfile::tempdir().unwrap();
    let agent_data = tempfile::tempdir().unwrap();
    let server = TestServer::start(server_data.path(), "127.0.0.1:0".parse().unwrap()).await;
    let agent = start_agent(&server, agent_data.path()).await;
    let ep = server.endpoint().await;
    let sensor = ep["sensor_id"].as_str().unwrap().to_owned();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();

    let done = server.command(&sensor, "triage", json!({})).await;
    assert_eq!(done["state"], "succeeded", "{done:#}");
    let id = done["result"]["package_id"].as_str().unwrap().to_owned();
    assert!(
        done["result"]["summary"]["phases"]["processes"]["items"]
            .as_u64()
            .unwrap()
            > 0
    );
    let list = server
        .get(&format!("/api/v1/endpoints/{sensor}/triage"))
        .await;
    assert_eq!(list["items"][0]["id"], id.as_str());
    let pkg = server
        .get(&format!("/api/v1/endpoints/{sensor}/triage/{id}"))
        .await;
    assert_eq!(pkg["schema"], "vigil.triage/1");
    let mine = pkg["phases"]["connections"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["local_port"] == port && c["state"] == "LISTEN")
        .cloned()
        .expect("the test's listener in the package");
    assert_eq!(mine["pid"], std::process::id());
    drop(listener);
    agent.shutdown().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fleet_live_query_is_answered_per_host() {
    if !is_root() {
        return;
    }
    let server_data = tempfile::tempdir().unwrap();
    let agent_data = tempfile::tempdir().unwrap();
    let server = TestServer::start(server_data.path(), "127.0.0.1:0".parse().unwrap()).await;
    let agent = start_agent(&server, agent_data.path()).await;
    let ep = server.endpoint().await;
    let sensor = ep["sensor_id"].as_str().unwrap().to_owned();
    let mut child = Command::new("/bin/sleep").arg("30").spawn().unwrap();
    let pid = child.id();

    let (status, q) = server
        .post(
            "/api/v1/queries",
            json!({"sql": format!("SELECT pid, name FROM processes WHERE pid = {pid}"),
                   "tags": ["*"], "timeout_s": 10}),
        )
        .await;
    assert_eq!(status, 201, "{q}");
    let id = q["id"].as_str().unwrap().to_owned();
    let answer = wait_for("the host's answer", Duration::from_secs(30), async || {
        let a = server.get(&format!("/api/v1/queries/{id}")).await;
        (a["summary"]["answered"] == 1).then_some(a)
    })
    .await;
    let host = &answer["hosts"][0];
    assert_eq!(host["sensor_id"], sensor.as_str());
    assert_eq!(host["result"]["columns"], json!(["pid", "name"]));
    assert_eq!(host["result"]["rows"], json!([[pid, "sleep"]]));

    // A write is refused by the agent, and says so.
    let (_, q) = server
        .post(
            "/api/v1/queries",
            json!({"sql": "DELETE FROM processes", "endpoints": [sensor.as_str()]}),
        )
        .await;
    let id = q["id"].as_str().unwrap().to_owned();
    let answer = wait_for("the refusal", Duration::from_secs(30), async || {
        let a = server.get(&format!("/api/v1/queries/{id}")).await;
        (a["summary"]["failed"] == 1).then_some(a)
    })
    .await;
    assert!(
        answer["hosts"][0]["error"]
            .as_str()
            .unwrap()
            .contains("read-only"),
        "{answer:#}"
    );
    let (status, _) = server
        .post(
            "/api/v1/queries",
            json!({"sql": "SELECT 1", "endpoints": ["no-such-endpoint"]}),
        )
        .await;
    assert_eq!(status, 404);
    let _ = child.kill();
    let _ = child.wait();
    agent.shutdown().await;
    server.stop().await;
}
