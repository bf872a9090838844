//! The agent is killed with SIGKILL while its buffer holds captured events the server never
//! saw; after a restart it delivers them, each once.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use tokio_util::sync::CancellationToken;
use vigil_server::pki::FleetCa;
use vigil_server::{Server, ServerConfig};

const SECRET: &str = "agent-kill-secret";
const EXECS: usize = 50;

struct AgentProc(Child);

impl Drop for AgentProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_agent(data: &Path, ca: &Path, fleet: &str) -> AgentProc {
    AgentProc(
        Command::new(env!("CARGO_BIN_EXE_vigil-agent"))
            .args([
                "--server",
                &format!("https://{fleet}"),
                "--enroll-secret",
                SECRET,
            ])
            .args(["--sensor", "ebpf"])
            .arg("--ca-cert")
            .arg(ca)
            .arg("--data-dir")
            .arg(data)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn vigil-agent"),
    )
}

/// Rows in the agent's buffer whose document contains `marker`.
async fn buffered_with(data: &Path, marker: &str) -> i64 {
    let opts = SqliteConnectOptions::from_str("sqlite://")
        .unwrap()
        .filename(data.join("buffer.db"));
    let Ok(pool) = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await
    else {
        return 0;
    };
    // Exec records only (launch type 3): each marked process also exits.
    let n = sqlx::query_scalar(
        "SELECT COUNT(*) FROM events WHERE CAST(body AS TEXT) LIKE ? AND CAST(body AS TEXT) LIKE '%\"launch_type_id\":3%'",
    )
    .bind(format!("%{marker}%"))
        .fetch_one(&pool)
        .await
        .unwrap_or(0);
    pool.close().await;
    n
}

async fn stored_with(data: &Path, marker: &str) -> usize {
    let store = vigil_server::testing::for_data_dir(data)
        .await
        .open_store(data)
        .await;
    let page = store.events_after(0, 1_000_000).await.unwrap();
    page.events
        .iter()
        // Execs only: each marked process also forks and exits.
        .filter(|e| e.event.get("launch_type_id").and_then(|v| v.as_u64()) == Some(3))
        .filter(|e| {
            e.event
                .get("process.cmd_line")
                .and_then(|v| v.as_str())
                .is_some_and(|c| c.contains(marker))
        })
        .count()
}

async fn wait_until(what: &str, within: Duration, mut probe: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !probe().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the agent says capture is live (its stderr), so the execs that follow are seen.
fn wait_for_capture(agent: &mut AgentProc) {
    use std::io::{BufRead, BufReader};
    let stderr = agent.0.stderr.take().expect("stderr piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("Process capture live") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the agent never reported live capture");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_sigkill_with_a_full_buffer_delivers_it_after_restart() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "skipping agent_sigkill_with_a_full_buffer_delivers_it_after_restart: needs root (eBPF)"
        );
        return;
    }
    let marker = format!(
        "vigil-kill-{:x}-{:x}",
        std::process::id(),
        vigil_ocsf::now_ms()
    );
    let server_data = tempfile::tempdir().unwrap();
    let agent_data = tempfile::tempdir().unwrap();
    let rules = tempfile::tempdir().unwrap();
    let fleet = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    FleetCa::load_or_create(server_data.path()).unwrap();
    let ca = server_data.path().join("fleet-ca.crt");

    // The server is down: the agent captures into its buffer only.
    let mut agent = start_agent(agent_data.path(), &ca, &fleet);
    wait_for_capture(&mut agent);
    for i in 0..EXECS {
        let status = Command::new("/bin/true")
            .arg(format!("{marker}-{i}"))
            .status()
            .unwrap();
        assert!(status.success());
    }
    wait_until(
        "all marked execs in the buffer",
        Duration::from_secs(30),
        async || buffered_with(agent_data.path(), &marker).await >= EXECS as i64,
    )
    .await;
    agent.0.kill().unwrap();
    agent.0.wait().unwrap();

    // The server comes up; the restarted agent enrolls and delivers what it had buffered.
    let mut cfg = ServerConfig::new(
        server_data.path().to_owned(),
        "127.0.0.1:0".parse().unwrap(),
        fleet.parse().unwrap(),
        vec![rules.path().to_owned()],
    );
    cfg.enroll_secret = Some(SECRET.into());
    vigil_server::testing::for_data_dir(server_data.path())
        .await
        .apply(&mut cfg);
    let server = Server::bind(&cfg).await.unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn({
        let stop = stop.clone();
        async move { server.run(stop).await.unwrap() }
    });
    let restarted = start_agent(agent_data.path(), &ca, &fleet);
    wait_until(
        "the buffered execs on the server",
        Duration::from_secs(60),
        async || stored_with(server_data.path(), &marker).await >= EXECS,
    )
    .await;
    assert_eq!(
        stored_with(server_data.path(), &marker).await,
        EXECS,
        "each exactly once"
    );
    drop(restarted);
    stop.cancel();
    task.await.unwrap();
}
