//! Isolation from the web console, in headless Chromium: the agent runs in a network namespace
//! this test creates, the server in the host namespace on the veth's address. The browser asks
//! for isolation while the agent is stopped and must show "requested", not "isolated"; once
//! the test starts the agent, the page turns "isolated" (the agent confirmed it) and the
//! namespace reaches only its fleet server; the release brings connectivity back. The browser
//! part is `console/tests/isolate.mjs` (playwright-core with Debian's chromium, installed by
//! `scripts/setup`); the two step in lock-step over the script's stdin and stdout.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Command, Stdio};

mod common;
use common::system::{ADMIN_PASSWORD, AgentProc, TestServer};
use common::{TestNet, host_has_vigil_table, reachable};

const CONSOLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../console");

/// Root, and node, chromium, playwright-core and a server built with the console.
fn ready(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipping {test}: needs root (network namespaces, nftables)");
        return false;
    }
    let missing: Vec<&str> = [
        ("/usr/bin/chromium", "Debian's chromium"),
        (
            &format!("{CONSOLE}/node_modules/playwright-core") as &str,
            "console/node_modules (npm ci)",
        ),
    ]
    .iter()
    .filter(|(p, _)| !Path::new(p).exists())
    .map(|(_, what)| *what)
    .collect();
    let node = Command::new("node").arg("--version").output().is_ok();
    let ok = missing.is_empty() && node && vigil_server::api::console::built();
    if !ok {
        eprintln!(
            "skipping {test}: needs node, {missing:?} and a server built with the console \
             (run scripts/setup)"
        );
    }
    ok
}

/// Where the browser tests keep their screenshots (shown in the README).
fn screenshots() -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_analyst_isolates_and_releases_an_endpoint_from_the_console() {
    if !ready("an_analyst_isolates_and_releases_an_endpoint_from_the_console") {
        return;
    }
    let net = TestNet::new(2);
    let other_listener = TcpListener::bind(SocketAddr::new(net.other, 0)).unwrap();
    let other = other_listener.local_addr().unwrap();
    let server_data = tempfile::tempdir().unwrap();
    let agent_data = tempfile::tempdir().unwrap();
    let server = TestServer::start(server_data.path(), SocketAddr::new(net.fleet, 0)).await;
    let fleet = server.fleet;
    let agent = AgentProc::spawn(Some(&net.ns), &server, agent_data.path());
    let ep = server.endpoint().await;
    let sensor = ep["sensor_id"].as_str().unwrap().to_owned();
    // Stopped: nothing can confirm an isolation until the test starts it again.
    agent.stop();

    let mut browser = Command::new("node")
        .current_dir(CONSOLE)
        .env("VIGIL_E2E_PASSWORD", ADMIN_PASSWORD)
        .env("E2E_SHOTS", screenshots())
        .args(["tests/isolate.mjs", &server.api, &sensor])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run node");
    let mut said = BufReader::new(browser.stdout.take().unwrap()).lines();
    let mut stdin = browser.stdin.take().unwrap();
    // Blocking reads of the script's lines, off the runtime's threads.
    let mut next_line = move || {
        tokio::task::block_in_place(|| said.next().and_then(Result::ok).unwrap_or_default())
    };

    assert_eq!(next_line(), "isolate: requested");
    assert!(
        net.inside(move || reachable(other)),
        "not isolated before the agent ran"
    );
    let agent = AgentProc::spawn(Some(&net.ns), &server, agent_data.path());
    writeln!(stdin, "go").unwrap();

    assert_eq!(next_line(), "isolate: isolated");
    let (other_ok, fleet_ok) = net.inside(move || (reachable(other), reachable(fleet)));
    assert!(!other_ok, "the isolated namespace reaches only its fleet");
    assert!(fleet_ok, "the isolated namespace still reaches its fleet");
    assert!(!host_has_vigil_table(), "the host's namespace is untouched");
    writeln!(stdin, "go").unwrap();

    assert_eq!(next_line(), "isolate: released");
    assert_eq!(next_line(), "isolate: ok");
    let status = tokio::task::block_in_place(|| browser.wait()).unwrap();
    assert!(
        status.success(),
        "the browser run failed (its output is above)"
    );
    assert!(
        net.inside(move || reachable(other)),
        "released: the namespace reaches other hosts again"
    );
    agent.stop();
    server.stop().await;
}
