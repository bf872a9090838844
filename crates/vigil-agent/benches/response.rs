//! Response latency, measured on this machine (root needed):
//! - kill: a policy rule with a kill response; a matching process is started N times and the
//!   time from its spawn to its reaping (which contains exec → capture → match → SIGKILL →
//!   verification) is recorded;
//! - isolation: an agent process inside a test network namespace; an operator isolate (then
//!   release) command is queued N times over a live session and the time from the API call to
//!   the agent's confirmation is recorded.
//!
//! `cargo bench -p vigil-agent --bench response` (runs: VIGIL_BENCH_KILLS, VIGIL_BENCH_ISOLATIONS).

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use vigil_agent::{Agent, AgentConfig, SourceMode};

#[path = "../tests/common/mod.rs"]
mod common;
use common::TestNet;
use common::system::{AgentProc, SECRET, TestServer, wait_for};

fn runs(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{what}: n={} p50={:.1} ms p99={:.1} ms max={:.1} ms",
        samples.len(),
        percentile(&samples, 0.50).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
        samples.last().unwrap().as_secs_f64() * 1e3,
    );
}

async fn kill_latency(n: usize) {
    let server_data = tempfile::tempdir().unwrap();
    let agent_data = tempfile::tempdir().unwrap();
    let bins = tempfile::tempdir().unwrap();
    let server = TestServer::start(server_data.path(), "127.0.0.1:0".parse().unwrap()).await;
    let name = format!("vigil-bench-{}", std::process::id());
    let rule = format!(
        "title: bench marker\nid: 6f1d1c1e-0000-4000-8000-{:012x}\nlevel: high\n\
         logsource: {{category: process_creation, product: linux}}\n\
         detection:\n  sel:\n    Image|endswith: '/{name}'\n  condition: sel\n",
        std::process::id()
    );
    let (status, body) = server
        .post(
            "/api/v1/policies",
            json!({"name": "bench", "tags": ["*"], "rules": [{"sigma": rule, "response": "kill"}]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let mut cfg = AgentConfig::new(
        agent_data.path().to_owned(),
        format!("https://{}", server.fleet),
    );
    cfg.sensor = Some(SourceMode::Ebpf);
    cfg.ca_pem = Some(std::fs::read_to_string(&server.ca).unwrap());
    cfg.enroll_secret = Some(SECRET.into());
    let agent = Agent::start(cfg).await.unwrap();
    wait_for("the policy", Duration::from_secs(30), async || {
        (agent.policy().len() >= 5).then_some(())
    })
    .await;
    let marker = bins.path().join(&name);
    std::fs::copy("/bin/sleep", &marker).unwrap();
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let marker = marker.clone();
        let took = tokio::task::spawn_blocking(move || {
            let start = Instant::now();
            let mut child = Command::new(&marker).arg("30").spawn().unwrap();
            child.wait().unwrap();
            start.elapsed()
        })
        .await
        .unwrap();
        samples.push(took);
    }
    report("kill: matching process spawn -> killed and reaped", samples);
    agent.shutdown().await;
    server.stop().await;
}

async fn isolation_latency(n: usize) {
    let net = TestNet::new(7);
    let server_data = tempfile::tempdir().unwrap();
    let agent_data = tempfile::tempdir().unwrap();
    let server = TestServer::start(server_data.path(), SocketAddr::new(net.fleet, 0)).await;
    let agent = AgentProc::spawn(Some(&net.ns), &server, agent_data.path());
    let ep = server.endpoint().await;
    let sensor = ep["sensor_id"].as_str().unwrap().to_owned();
    let (mut isolate, mut release) = (Vec::new(), Vec::new());
    for _ in 0..n {
        for (action, samples) in [("isolate", &mut isolate), ("release", &mut release)] {
            let done = server.command(&sensor, action, json!({})).await;
            assert_eq!(done["state"], "succeeded", "{done}");
            // The server's own clock: queued (the API call) to the agent's result stored.
            let took =
                done["completed_at"].as_i64().unwrap() - done["created_at"].as_i64().unwrap();
            samples.push(Duration::from_millis(u64::try_from(took).unwrap_or(0)));
        }
    }
    report(
        "isolate: queued by the API -> agent's confirmation stored",
        isolate,
    );
    report(
        "release: queued by the API -> agent's confirmation stored",
        release,
    );
    agent.stop();
    server.stop().await;
    drop(net);
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("response bench: needs root (eBPF capture, network namespaces)");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(kill_latency(runs("VIGIL_BENCH_KILLS", 100)));
    rt.block_on(isolation_latency(runs("VIGIL_BENCH_ISOLATIONS", 20)));
}
