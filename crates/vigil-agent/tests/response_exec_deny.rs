//! Exec denial with fanotify permission events, on scripts this test writes to temp dirs.
//! Each test uses its own script content, so a hash rule of one test never matches another's.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::mpsc::Receiver;
use vigil_agent::response::exec_deny::{BlockedExec, ExecGuard, ExecGuardConfig, STATE_FILE};

fn script(dir: &Path, name: &str, tag: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, format!("#!/bin/sh\necho ran-{tag}\n")).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// Runs `path`: `Ok(stdout)` or the exec error.
fn exec(path: &Path) -> io::Result<String> {
    let out = Command::new(path).output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn denied(path: &Path) -> bool {
    match exec(path) {
        Err(e) => {
            assert_eq!(e.raw_os_error(), Some(libc::EPERM), "unexpected error {e}");
            true
        }
        Ok(_) => false,
    }
}

fn start(data: &Path, watch: &Path) -> (ExecGuard, Receiver<BlockedExec>) {
    ExecGuard::start(ExecGuardConfig {
        data_dir: data.to_owned(),
        hash_filesystems: Some(vec![watch.to_owned()]),
    })
    .unwrap()
}

fn next_report(rx: &mut Receiver<BlockedExec>) -> BlockedExec {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(b) = rx.try_recv() {
            return b;
        }
        assert!(Instant::now() < deadline, "no blocked exec reported");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn sha256(path: &Path) -> String {
    hex::encode(Sha256::digest(fs::read(path).unwrap()))
}

#[test]
fn deny_by_path_blocks_that_file_only_until_allowed() {
    let data = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let tag = format!("path-{}", std::process::id());
    let target = script(files.path(), "target.sh", &tag);
    let twin = script(files.path(), "twin.sh", &tag);
    let (guard, mut rx) = start(data.path(), files.path());

    assert_eq!(exec(&target).unwrap(), format!("ran-{tag}"));
    let canonical = guard.deny_path(&target).unwrap();
    assert!(denied(&target), "denied by path");
    assert_eq!(
        exec(&twin).unwrap(),
        format!("ran-{tag}"),
        "another file is unaffected"
    );
    assert!(exec(Path::new("/bin/true")).is_ok());

    let b = next_report(&mut rx);
    assert_eq!(b.path, canonical);
    assert!(b.pid > 0);
    assert_eq!(b.sha256, sha256(&target));
    assert_eq!(b.rule, format!("path:{}", canonical.display()));
    assert!(guard.stats().denied >= 1);

    // The rule is saved (0600) and comes back with a new guard.
    let state = data.path().join(STATE_FILE);
    assert_eq!(
        fs::metadata(&state).unwrap().permissions().mode() & 0o777,
        0o600
    );
    drop(guard);
    assert!(!denied(&target), "closing the guard lifts the denial");
    let (guard, _rx) = start(data.path(), files.path());
    assert!(guard.rules().paths.contains(&canonical));
    assert!(denied(&target), "reloaded rule is enforced");

    guard.allow_path(&target).unwrap();
    assert_eq!(exec(&target).unwrap(), format!("ran-{tag}"));
    assert!(guard.rules().paths.is_empty());
    assert!(guard.allow_path(&target).is_err(), "no such rule any more");
}

#[test]
fn deny_by_sha256_blocks_every_copy_until_allowed() {
    let data = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let tag = format!("hash-{}", std::process::id());
    let original = script(files.path(), "tool.sh", &tag);
    let other = script(files.path(), "other.sh", &format!("{tag}-other"));
    let hash = sha256(&original);
    let (guard, mut rx) = start(data.path(), files.path());

    assert_eq!(guard.deny_sha256(&hash.to_uppercase()).unwrap(), hash);
    let copy = files.path().join("renamed-copy");
    fs::copy(&original, &copy).unwrap();
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
    assert!(
        denied(&copy),
        "a copy under another name is denied by its hash"
    );
    assert!(denied(&original));
    assert_eq!(
        exec(&other).unwrap(),
        format!("ran-{tag}-other"),
        "other content runs"
    );
    assert!(exec(Path::new("/bin/true")).is_ok());

    let b = next_report(&mut rx);
    assert_eq!(b.sha256, hash);
    assert_eq!(b.rule, format!("sha256:{hash}"));
    assert!(b.path.ends_with("renamed-copy"), "{b:?}");

    guard.allow_sha256(&hash).unwrap();
    assert_eq!(exec(&copy).unwrap(), format!("ran-{tag}"));
    assert!(guard.rules().sha256.is_empty());
    let stats = guard.stats();
    assert!(
        stats.denied >= 2 && stats.answered >= stats.denied,
        "{stats:?}"
    );
}

#[test]
fn bad_rules_are_refused() {
    let data = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let (guard, _rx) = start(data.path(), files.path());
    assert!(guard.deny_sha256("abc").is_err());
    assert!(guard.deny_path(Path::new("relative/path")).is_err());
    assert!(guard.deny_path(files.path()).is_err(), "a directory");
    assert!(guard.deny_path(&files.path().join("missing")).is_err());
    let me = fs::canonicalize("/proc/self/exe").unwrap();
    let e = guard.deny_path(&me).unwrap_err().to_string();
    assert!(e.contains("agent's own executable"), "{e}");
    assert!(guard.rules().paths.is_empty() && guard.rules().sha256.is_empty());
}
