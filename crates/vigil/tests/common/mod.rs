//! Shared set-up for the `vigil` system tests.
#![allow(dead_code)]

pub mod lab;
pub mod operator;
pub mod scale;
pub mod scan;
pub mod server;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// True when the test runs as root; otherwise prints why it skips.
pub fn is_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("skipping {test}: needs root (eBPF / netlink capture)");
    }
    root
}

/// A `vigil up` child process, stopped (SIGKILL) on drop if still running.
pub struct VigilUp {
    pub child: Child,
    pub api: String,
    pub stdout: Vec<String>,
}

impl VigilUp {
    /// Starts `vigil up` on a free API port and waits for it to print where the API listens.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Self {
        Self::start_in(None, "127.0.0.1:0", data_dir, extra)
    }

    /// Starts `vigil up` inside network namespace `netns` (when given, through
    /// `ip netns exec`, which execs it: the child is `vigil` itself), its API on `listen`.
    pub fn start_in(netns: Option<&str>, listen: &str, data_dir: &Path, extra: &[&str]) -> Self {
        Self::start_with_env(netns, listen, data_dir, extra, &[])
    }

    /// [`VigilUp::start_in`] with extra environment variables.
    pub fn start_with_env(
        netns: Option<&str>,
        listen: &str,
        data_dir: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let vigil = env!("CARGO_BIN_EXE_vigil");
        let mut command = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, vigil]);
                c
            }
            None => Command::new(vigil),
        };
        let mut child = command
            .arg("up")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", listen])
            .args(extra)
            .env("VIGIL_ADMIN_PASSWORD", operator::ADMIN_PASSWORD)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info,aya=warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn vigil up");
        let stdout = child.stdout.take().expect("stdout piped");
        // From here on, Drop stops the child if start-up fails.
        let mut up = Self {
            child,
            api: String::new(),
            stdout: Vec::new(),
        };
        let (tx, rx) = mpsc::channel();
        // Keeps reading after start-up (discarding what nobody waits for): closing the pipe
        // would make vigil's next line to stdout fail with EPIPE and panic it.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "vigil up never said where the API listens; got {:?}",
                    up.stdout
                )
            });
            let api = line
                .strip_prefix("API listening on ")
                .map(|u| u.trim().to_owned());
            up.stdout.push(line);
            if let Some(api) = api {
                up.api = api;
                return up;
            }
        }
    }

    /// An admin API token for this server.
    pub fn token(&self) -> String {
        operator::admin_token(&self.api)
    }

    /// GET a JSON document from the API (as the admin).
    pub fn get(&self, path_and_query: &str) -> Value {
        get_json(&format!("{}{path_and_query}", self.api))
    }

    /// Sends SIGINT and waits (bounded) for a clean exit.
    pub fn interrupt(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .expect("run kill");
        assert!(ok.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait vigil") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "vigil up did not stop within 30 s of SIGINT"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for VigilUp {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A blocking GET returning JSON, as the server's admin ([`operator::admin_token`]).
pub fn get_json(url: &str) -> Value {
    get_json_with(url, &operator::admin_token(url))
}

/// A blocking GET returning JSON, with this API token.
pub fn get_json_with(url: &str, token: &str) -> Value {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        vigil_server::pki::install_crypto_provider();
        let res = reqwest::Client::new()
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .expect("GET");
        assert!(res.status().is_success(), "GET {url}: {}", res.status());
        res.json::<Value>().await.expect("JSON body")
    })
}

/// Polls `probe` every 100 ms until it returns `Some`, or panics after `within`.
pub fn wait_for<T>(what: &str, within: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A fresh random marker for command lines and rule ids.
pub fn nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The console's folder.
pub const CONSOLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../console");

/// Whether the console's browser tests can run here (node, Debian's chromium, the console's
/// packages, a server built with the console); otherwise says what is missing.
pub fn console_testable(test: &str) -> bool {
    let missing: Vec<&str> = [
        ("/usr/bin/chromium", "Debian's chromium"),
        (
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../console/node_modules/playwright-core"
            ),
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
            "skipping the console part of {test}: needs node, {missing:?} and a server built with \
             the console (run scripts/setup)"
        );
    }
    ok
}

/// Opens the console at `api` in headless Chromium and checks that an alert titled `title` is
/// in the queue and that its page shows every text in `texts`; panics with what the page
/// showed otherwise.
pub fn assert_console_shows_alert(api: &str, title: &str, texts: &[&str]) {
    let out = Command::new("node")
        .current_dir(CONSOLE)
        .env("VIGIL_E2E_PASSWORD", operator::ADMIN_PASSWORD)
        .arg("tests/alert.mjs")
        .arg(api)
        .arg(title)
        .args(texts)
        .output()
        .expect("run node");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    assert!(
        out.status.success(),
        "the console does not show the alert:\n{text}"
    );
}
