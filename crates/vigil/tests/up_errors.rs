//! `vigil up` refuses to start, with one clear line and nothing half-started, when it cannot.

use std::process::{Command, Output};

fn vigil_up(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("up")
        .args(args)
        .output()
        .expect("run vigil")
}

fn error_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("vigil: error:"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn missing_rules_directory_is_one_error_line() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("never-created");
    let out = vigil_up(&[
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--rules",
        "/nonexistent/vigil-rules",
    ]);
    assert!(!out.status.success());
    let errs = error_lines(&out);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].contains("/nonexistent/vigil-rules"), "{}", errs[0]);
    assert!(
        !data_dir.exists(),
        "nothing may be created when start-up fails"
    );
}

#[test]
fn port_in_use_is_one_error_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("never-created");
    let rules = tempfile::tempdir().unwrap();
    let out = vigil_up(&[
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--listen",
        &addr,
        "--rules",
        rules.path().to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let errs = error_lines(&out);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains(&addr) && errs[0].contains("in use"),
        "{}",
        errs[0]
    );
    assert!(
        !data_dir.exists(),
        "nothing may be created when start-up fails"
    );
}

#[test]
fn malformed_rule_is_named_and_skipped() {
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(rules.path().join("broken.yml"), "title: x\ndetection: [\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["rules", "check", rules.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a malformed rule makes `rules check` fail"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("broken.yml: MALFORMED: invalid YAML"),
        "{stdout}"
    );
}

#[test]
fn a_bad_action_webhook_is_one_error_line() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("never-created");
    let rules = tempfile::tempdir().unwrap();
    let out = vigil_up(&[
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--rules",
        rules.path().to_str().unwrap(),
        "--action-webhook",
        "ftp://soar.example/hook",
    ]);
    assert!(!out.status.success());
    let errs = error_lines(&out);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].contains("ftp://soar.example/hook"), "{}", errs[0]);
    assert!(
        !data_dir.exists(),
        "nothing may be created when start-up fails"
    );
}

#[test]
fn vigil_triage_writes_a_private_package_and_refuses_to_overwrite() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipping vigil_triage_writes_a_private_package: needs root to read /proc");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pkg.json");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_vigil"))
            .arg("triage")
            .args(args)
            .output()
            .unwrap()
    };
    let done = run(&["--out", out.to_str().unwrap()]);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let pkg: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(pkg["schema"], "vigil.triage/1");
    assert!(
        pkg["phases"]["processes"]["items"]
            .as_array()
            .unwrap()
            .len()
            > 1
    );
    let again = run(&["--out", out.to_str().unwrap()]);
    assert!(
        !again.status.success(),
        "an existing file is never overwritten"
    );
}
