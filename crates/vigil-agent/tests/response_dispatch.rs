//! The responder end to end: commands as the server sends them (action + JSON arguments), run
//! on tokio's blocking pool, against real processes, files and an exec guard.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use serde_json::json;
use vigil_agent::response::exec_deny::{ExecGuard, ExecGuardConfig};
use vigil_agent::response::{Responder, ResponderConfig};

fn responder(data: &std::path::Path) -> Responder {
    Responder::new(ResponderConfig {
        data_dir: data.to_owned(),
        fleet_servers: vec!["127.0.0.1".parse().unwrap()],
        dns_servers: vec![],
    })
}

#[tokio::test]
async fn kill_suspend_resume_through_execute() {
    let data = tempfile::tempdir().unwrap();
    let r = responder(data.path());
    let mut child = Command::new("sleep").arg("300").spawn().unwrap();
    let pid = child.id();

    let o = r.execute("suspend", &json!({"pid": pid})).await;
    assert!(o.succeeded, "{o:?}");
    assert_eq!(o.detail["state"], "T");
    let o = r.execute("resume", &json!({"pid": pid})).await;
    assert!(o.succeeded, "{o:?}");
    let o = r.execute("kill", &json!({"pid": pid, "tree": true})).await;
    assert!(o.succeeded, "{o:?}");
    assert_eq!(o.detail["verified"], true);
    assert_eq!(o.detail["killed"][0]["pid"], pid);
    child.wait().unwrap();

    let o = r.execute("kill", &json!({"pid": pid})).await;
    assert!(!o.succeeded);
    assert!(
        o.detail["error"].as_str().unwrap().contains("no process"),
        "{o:?}"
    );
}

#[tokio::test]
async fn quarantine_and_restore_through_execute() {
    let data = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let r = responder(data.path());
    let file = files.path().join("dropper");
    fs::write(&file, b"payload").unwrap();

    let o = r.execute("quarantine", &json!({"path": file})).await;
    assert!(o.succeeded, "{o:?}");
    assert!(!file.exists());
    let id = o.detail["id"].as_str().unwrap().to_owned();
    let o = r.execute("restore", &json!({"id": id})).await;
    assert!(o.succeeded, "{o:?}");
    assert_eq!(fs::read(&file).unwrap(), b"payload");

    let o = r.execute("restore", &json!({"id": id})).await;
    assert!(
        o.detail["error"]
            .as_str()
            .unwrap()
            .contains("nothing in the vault"),
        "{o:?}"
    );
}

#[tokio::test]
async fn deny_and_allow_exec_through_execute() {
    let data = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let script = files.path().join("blocked.sh");
    fs::write(
        &script,
        format!("#!/bin/sh\necho dispatch-{}\n", std::process::id()),
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();

    let r = responder(data.path());
    let caps = r.capabilities();
    let deny = caps.iter().find(|c| c.0 == "deny_exec").unwrap();
    assert!(!deny.1, "no guard yet: {deny:?}");

    let (guard, _rx) = ExecGuard::start(ExecGuardConfig {
        data_dir: data.path().to_owned(),
        hash_filesystems: Some(vec![files.path().to_owned()]),
    })
    .unwrap();
    let r = r.with_exec_guard(guard);
    let deny = r
        .capabilities()
        .into_iter()
        .find(|c| c.0 == "deny_exec")
        .unwrap();
    assert!(deny.1, "{deny:?}");

    let o = r.execute("deny_exec", &json!({"path": script})).await;
    assert!(o.succeeded, "{o:?}");
    let e = Command::new(&script).output().unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EPERM));
    let o = r.execute("allow_exec", &json!({"path": script})).await;
    assert!(o.succeeded, "{o:?}");
    assert!(Command::new(&script).output().unwrap().status.success());

    let o = r
        .execute(
            "deny_exec",
            &json!({"path": script, "sha256": "a".repeat(64)}),
        )
        .await;
    assert!(
        o.detail["error"].as_str().unwrap().contains("exactly one"),
        "{o:?}"
    );
}
