use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use sha2::{Digest, Sha256};
use vigil_detect::yara::YaraRules;
use vigil_ocsf::{DetectionFinding, Event};

use super::*;

const MARKER: &str = "vigil-exec-scan-marker-51c2";

fn rules() -> Arc<YaraRules> {
    let text = format!(
        "rule Exec_Marker : attack_t1059 {{ meta: severity = \"high\" strings: $m = \"{MARKER}\" condition: $m }}"
    );
    Arc::new(YaraRules::from_source("t", Path::new("t.yar"), &text).unwrap())
}

fn exec_event(path: &Path, pid: u32, sha256: Option<&str>) -> Event {
    let mut file = json!({ "path": path, "name": "x", "type_id": 1 });
    if let Some(sha) = sha256 {
        file["hashes"] = json!([{ "algorithm_id": 3, "algorithm": "SHA-256", "value": sha }]);
    }
    Event::from_value(json!({
        "class_uid": 1007, "activity_id": 1, "time": 1,
        "process": { "pid": pid, "file": file },
    }))
    .unwrap()
}

/// A sink that collects findings.
fn collector() -> (FindingSink, Arc<Mutex<Vec<DetectionFinding>>>) {
    let found = Arc::new(Mutex::new(Vec::new()));
    let into = Arc::clone(&found);
    let sink: FindingSink = Arc::new(move |f| into.lock().unwrap().push(f));
    (sink, found)
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn sample(dir: &Path, name: &str, marked: bool) -> PathBuf {
    let path = dir.join(name);
    let body = if marked {
        format!("\x7fELF...{MARKER}...")
    } else {
        "\x7fELF...clean...".to_owned()
    };
    std::fs::write(&path, body).unwrap();
    path
}

/// A pid that is not running (the scanner then reads the path).
const NO_PID: u32 = u32::MAX - 1;

#[test]
fn each_exec_of_a_matching_file_is_a_finding_but_the_file_is_scanned_once() {
    let dir = tempfile::tempdir().unwrap();
    let bad = sample(dir.path(), "bad", true);
    let clean = sample(dir.path(), "clean", false);
    let (sink, found) = collector();
    let scanner = ExecScanner::start(rules(), ExecScanConfig::default(), sink).unwrap();
    let first = exec_event(&bad, NO_PID, None);
    scanner.observe(&first);
    scanner.observe(&exec_event(&clean, NO_PID, None));
    wait_until("the first exec is reported", || {
        found.lock().unwrap().len() == 1 && scanner.counts().scanned == 2
    });
    let again = exec_event(&bad, NO_PID, None);
    scanner.observe(&again);
    wait_until("the second exec is reported", || {
        found.lock().unwrap().len() == 2
    });
    let counts = scanner.counts();
    assert_eq!(
        (
            counts.execs,
            counts.scanned,
            counts.cache_hits,
            counts.findings
        ),
        (3, 2, 1, 2)
    );
    let found = found.lock().unwrap();
    let sha = hex::encode(Sha256::digest(std::fs::read(&bad).unwrap()));
    for (finding, event) in found.iter().zip([&first, &again]) {
        assert_eq!(finding.finding_info.analytic.uid, "yara:t.Exec_Marker");
        assert!(
            finding
                .finding_info
                .related_event_uids()
                .eq([event.uid.as_str()])
        );
        let file = finding.evidences[0].file.as_ref().unwrap();
        assert_eq!(file["path"], bad.display().to_string());
        assert_eq!(file["hashes"][0]["value"], sha);
    }
    assert_ne!(found[0].finding_info.uid, found[1].finding_info.uid);
}

#[test]
fn a_file_edited_in_place_is_scanned_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = sample(dir.path(), "tool", false);
    let (sink, found) = collector();
    let scanner = ExecScanner::start(rules(), ExecScanConfig::default(), sink).unwrap();
    scanner.observe(&exec_event(&path, NO_PID, None));
    wait_until("the clean file is scanned", || {
        scanner.counts().scanned == 1
    });
    // Same inode, new content and size.
    std::fs::write(&path, format!("{MARKER} now")).unwrap();
    scanner.observe(&exec_event(&path, NO_PID, None));
    wait_until("the edited file is reported", || {
        found.lock().unwrap().len() == 1
    });
    assert_eq!(scanner.counts().scanned, 2);
}

#[test]
fn an_exec_whose_hash_is_known_needs_no_scan() {
    let dir = tempfile::tempdir().unwrap();
    let original = sample(dir.path(), "orig", true);
    let copy = dir.path().join("copy");
    std::fs::copy(&original, &copy).unwrap();
    let sha = hex::encode(Sha256::digest(std::fs::read(&original).unwrap()));
    let (sink, found) = collector();
    let scanner = ExecScanner::start(rules(), ExecScanConfig::default(), sink).unwrap();
    scanner.observe(&exec_event(&original, NO_PID, Some(&sha)));
    wait_until("the original is reported", || {
        found.lock().unwrap().len() == 1
    });
    // Another file with the same content: answered from the hash, on the caller's thread.
    scanner.observe(&exec_event(&copy, NO_PID, Some(&sha)));
    assert_eq!(found.lock().unwrap().len(), 2);
    let counts = scanner.counts();
    assert_eq!((counts.scanned, counts.cache_hits), (1, 1));
    let file = found.lock().unwrap()[1].evidences[0].file.clone().unwrap();
    assert_eq!(file["path"], copy.display().to_string());
}

#[test]
fn events_other_than_launches_are_ignored() {
    let (sink, _found) = collector();
    let scanner = ExecScanner::start(rules(), ExecScanConfig::default(), sink).unwrap();
    let other = |v| Event::from_value(v).unwrap();
    scanner.observe(&other(
        json!({"class_uid": 1007, "activity_id": 2, "time": 1,
        "process": {"pid": 1, "file": {"path": "/bin/sh"}}}),
    ));
    scanner.observe(&other(
        json!({"class_uid": 1001, "activity_id": 1, "time": 1,
        "file": {"path": "/bin/sh"}}),
    ));
    scanner.observe(&other(
        json!({"class_uid": 1007, "activity_id": 1, "time": 1,
        "process": {"pid": 1}}),
    ));
    assert_eq!(scanner.counts(), ExecScanCounts::default());
}

#[test]
fn a_full_queue_drops_and_counts_instead_of_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let bad = sample(dir.path(), "bad", true);
    // The sink blocks the only worker until released.
    let (entered_tx, entered) = mpsc::channel::<()>();
    let (release, release_rx) = mpsc::channel::<()>();
    let entered_tx = Mutex::new(entered_tx);
    let release_rx = Mutex::new(release_rx);
    let sink: FindingSink = Arc::new(move |_| {
        let _ = entered_tx.lock().unwrap().send(());
        let _ = release_rx.lock().unwrap().recv();
    });
    let cfg = ExecScanConfig {
        queue: 1,
        ..ExecScanConfig::default()
    };
    let scanner = ExecScanner::start(rules(), cfg, sink).unwrap();
    scanner.observe(&exec_event(&bad, NO_PID, None));
    entered
        .recv_timeout(Duration::from_secs(10))
        .expect("the worker reports the first exec");
    // The worker is busy: one exec fits in the queue, the next two are dropped.
    let started = Instant::now();
    for _ in 0..3 {
        scanner.observe(&exec_event(&bad, NO_PID, None));
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "observe never waits"
    );
    assert_eq!(scanner.counts().dropped, 2);
    for _ in 0..2 {
        release.send(()).unwrap();
    }
    wait_until("the queued exec is reported", || {
        scanner.counts().findings == 2
    });
    let counts = scanner.counts();
    assert_eq!((counts.execs, counts.scanned, counts.dropped), (4, 1, 2));
    drop(release);
    scanner.stop();
}

#[test]
fn a_binary_deleted_after_its_exec_is_read_from_the_running_image() {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("sleeper");
    let mut bytes = std::fs::read("/bin/sleep").unwrap();
    bytes.extend_from_slice(MARKER.as_bytes());
    std::fs::write(&exe, &bytes).unwrap();
    std::fs::set_permissions(&exe, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut child = std::process::Command::new(&exe).arg("30").spawn().unwrap();
    std::fs::remove_file(&exe).unwrap();
    let (sink, found) = collector();
    let scanner = ExecScanner::start(rules(), ExecScanConfig::default(), sink).unwrap();
    scanner.observe(&exec_event(&exe, child.id(), None));
    wait_until("the deleted binary is reported", || {
        found.lock().unwrap().len() == 1
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let file = found.lock().unwrap()[0].evidences[0].file.clone().unwrap();
    assert_eq!(file["path"], exe.display().to_string());
    assert_eq!(
        file["hashes"][0]["value"],
        hex::encode(Sha256::digest(&bytes))
    );
}
