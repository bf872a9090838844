//! The first administrator as `vigil server` creates it (generated and printed once, or from
//! `VIGIL_ADMIN_PASSWORD`), and `vigil user` / `vigil token` on the data directory.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A `vigil server` child, killed on drop if still running.
struct Srv(Child);

impl Drop for Srv {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// `vigil server` on free ports; its stdout up to the API line, and the API URL.
fn server(data: &Path, env: &[(&str, &str)]) -> (Srv, Vec<String>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("server")
        .arg("--data-dir")
        .arg(data)
        .args(["--listen", "127.0.0.1:0", "--fleet-listen", "127.0.0.1:0"])
        .env_remove("VIGIL_ADMIN_PASSWORD")
        .env_remove("VIGIL_ADMIN_USER")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn vigil server");
    let stdout = child.stdout.take().unwrap();
    let child = Srv(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lines = Vec::new();
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("no API line: {lines:?}"));
        lines.push(line.clone());
        if let Some(api) = line.strip_prefix("API listening on ") {
            return (child, lines, api.trim().to_owned());
        }
    }
}

fn stop(mut child: Srv) {
    let _ = Command::new("kill")
        .args(["-INT", &child.0.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "vigil server did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn login_status(api: &str, user: &str, password: &str) -> u16 {
    let api = api.to_owned();
    let body = json!({"username": user, "password": password});
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                vigil_server::pki::install_crypto_provider();
                reqwest::Client::new()
                    .post(format!("{api}/api/v1/auth/login"))
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
    })
    .join()
    .unwrap()
}

fn vigil(args: &[&str], data: &Path, stdin: Option<&str>) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (
        out.status.success(),
        text + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn a_generated_first_admin_password_is_printed_once() {
    let data = tempfile::tempdir().unwrap();
    let (child, lines, api) = server(data.path(), &[]);
    let line = lines
        .iter()
        .find(|l| l.starts_with("admin: created the first administrator"))
        .unwrap_or_else(|| panic!("{lines:?}"));
    let password = line
        .split("with password ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap()
        .to_owned();
    assert_eq!(login_status(&api, "admin", &password), 200);
    stop(child);

    // Restarted: nothing created, nothing printed; the password still works.
    let (child, lines, api) = server(data.path(), &[("VIGIL_ADMIN_PASSWORD", "ignored-now-123")]);
    assert!(
        !lines.iter().any(|l| l.contains(&password)),
        "printed again: {lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("operators exist already")),
        "{lines:?}"
    );
    assert_eq!(login_status(&api, "admin", &password), 200);
    assert_eq!(login_status(&api, "admin", "ignored-now-123"), 401);

    // The CLI works on the same store while the server runs.
    let (ok, out) = vigil(
        &["user", "add", "bob", "--role", "viewer", "--password-stdin"],
        data.path(),
        Some("bobs-long-password\n"),
    );
    assert!(ok, "{out}");
    assert_eq!(login_status(&api, "bob", "bobs-long-password"), 200);
    let (ok, out) = vigil(&["user", "list"], data.path(), None);
    assert!(
        ok && out.contains("admin\tadmin") && out.contains("bob\tviewer"),
        "{out}"
    );
    let (ok, out) = vigil(
        &["token", "create", "bob-ci", "--user", "bob"],
        data.path(),
        None,
    );
    assert!(ok, "{out}");
    let token = out.lines().next().unwrap().trim().to_owned();
    assert!(token.starts_with("vgl_"), "{out}");
    let me: Value = common::get_json_with(&format!("{api}/api/v1/auth/me"), &token);
    assert_eq!(
        (me["user"].as_str(), me["role"].as_str()),
        (Some("bob"), Some("viewer"))
    );
    let (ok, out) = vigil(&["user", "passwd", "bob"], data.path(), None);
    assert!(ok && out.contains("(shown once)"), "{out}");
    assert_eq!(login_status(&api, "bob", "bobs-long-password"), 401);
    // A role change applies to the user's existing token at once.
    let (ok, out) = vigil(&["user", "role", "bob", "analyst"], data.path(), None);
    assert!(ok && out.contains("bob is now analyst"), "{out}");
    let me: Value = common::get_json_with(&format!("{api}/api/v1/auth/me"), &token);
    assert_eq!(
        me["role"].as_str(),
        Some("viewer"),
        "a token keeps its lower role"
    );
    let (ok, out) = vigil(&["user", "role", "admin", "viewer"], data.path(), None);
    assert!(!ok && out.contains("last admin"), "{out}");
    let (ok, out) = vigil(&["user", "role", "nobody", "viewer"], data.path(), None);
    assert!(!ok && out.contains("no user nobody"), "{out}");
    let (ok, out) = vigil(&["user", "remove", "admin"], data.path(), None);
    assert!(!ok && out.contains("last admin"), "{out}");
    let (ok, out) = vigil(&["user", "remove", "bob"], data.path(), None);
    assert!(ok, "{out}");
    stop(child);
}

#[test]
fn the_first_admin_takes_its_password_from_the_environment() {
    let data = tempfile::tempdir().unwrap();
    let (child, lines, api) = server(
        data.path(),
        &[
            ("VIGIL_ADMIN_PASSWORD", "env-admin-password"),
            ("VIGIL_ADMIN_USER", "chief"),
        ],
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"chief\" with the password from VIGIL_ADMIN_PASSWORD")),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("env-admin-password")),
        "{lines:?}"
    );
    assert_eq!(login_status(&api, "chief", "env-admin-password"), 200);
    stop(child);
}
