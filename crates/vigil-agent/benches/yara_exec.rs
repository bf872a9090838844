//! What scanning executed files costs the agent, through [`ExecScanner`] with Vigil's rule
//! pack (one worker, as the agent runs it):
//! - miss: N exec events, each for a different file (copies of `/bin/ls`, each made distinct),
//!   from `observe` until the last verdict: open, read, SHA-256, scan;
//! - cache hit by file: N exec events for one file already scanned, without a hash on the
//!   event: the worker opens and stats the file and finds its verdict;
//! - cache hit by hash: N exec events carrying the file's SHA-256 (as the sensor's are): the
//!   verdict is found in `observe` itself, no worker involved.
//!
//! `cargo bench -p vigil-agent --bench yara_exec` (release; N: VIGIL_BENCH_YARA_EXECS,
//! default 2,000). Wall time per exec event; nothing here asserts on it.
#![allow(clippy::print_stdout, clippy::cast_precision_loss)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use sha2::{Digest, Sha256};
use vigil_agent::yara::{ExecScanConfig, ExecScanCounts, ExecScanner, FindingSink};
use vigil_detect::yara::YaraRules;
use vigil_ocsf::Event;

fn exec_event(path: &Path, sha256: Option<&str>) -> Event {
    let mut file = json!({ "path": path, "name": "ls", "type_id": 1 });
    if let Some(sha) = sha256 {
        file["hashes"] = json!([{ "algorithm_id": 3, "algorithm": "SHA-256", "value": sha }]);
    }
    Event::from_value(json!({
        "class_uid": 1007, "activity_id": 1, "time": 1,
        "process": { "pid": u32::MAX - 1, "file": file },
    }))
    .expect("a valid event")
}

/// Waits until `done` holds for the counters; how long that took from `start`.
fn until(
    scanner: &ExecScanner,
    start: Instant,
    done: impl Fn(&ExecScanCounts) -> bool,
) -> Duration {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let counts = scanner.counts();
        if done(&counts) {
            return start.elapsed();
        }
        assert!(Instant::now() < deadline, "the scanner stalled: {counts:?}");
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn report(what: &str, n: usize, took: Duration) {
    println!(
        "{what}: {n} execs in {:.3} s, {:.1} µs per exec",
        took.as_secs_f64(),
        took.as_secs_f64() * 1e6 / n as f64
    );
}

fn main() {
    let n: usize = std::env::var("VIGIL_BENCH_YARA_EXECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let pack = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules/yara");
    let rules = Arc::new(YaraRules::load(&[pack]).expect("the pack compiles"));
    let sink: FindingSink = Arc::new(|_| {});
    let cfg = ExecScanConfig {
        queue: n + 1,
        ..ExecScanConfig::default()
    };
    let scanner = ExecScanner::start(rules, cfg, sink).expect("scanner starts");
    let dir = tempfile::tempdir().expect("a temp dir");
    let ls = std::fs::read("/bin/ls").expect("/bin/ls");

    let copies = n.min(500);
    let paths: Vec<_> = (0..copies)
        .map(|i| {
            let path = dir.path().join(format!("ls-{i}"));
            let mut bytes = ls.clone();
            bytes.extend_from_slice(format!("copy {i}").as_bytes());
            std::fs::write(&path, bytes).expect("write a copy");
            path
        })
        .collect();
    let start = Instant::now();
    for p in &paths {
        scanner.observe(&exec_event(p, None));
    }
    let took = until(&scanner, start, |c| c.scanned as usize == copies);
    report(
        &format!(
            "miss (read + SHA-256 + scan of a {:.0} kB file)",
            ls.len() as f64 / 1e3
        ),
        copies,
        took,
    );

    let hot = &paths[0];
    let before = scanner.counts().cache_hits as usize;
    let start = Instant::now();
    for _ in 0..n {
        scanner.observe(&exec_event(hot, None));
    }
    let took = until(&scanner, start, |c| c.cache_hits as usize == before + n);
    report(
        "cache hit by file (open + fstat + lookup, on the worker)",
        n,
        took,
    );

    let sha = hex::encode(Sha256::digest(std::fs::read(hot).expect("the hot copy")));
    let events: Vec<_> = (0..n).map(|_| exec_event(hot, Some(&sha))).collect();
    let before = scanner.counts().cache_hits as usize;
    let start = Instant::now();
    for ev in &events {
        scanner.observe(ev);
    }
    let took = until(&scanner, start, |c| c.cache_hits as usize == before + n);
    report("cache hit by hash on the event (in observe)", n, took);
    let counts = scanner.counts();
    assert_eq!(counts.dropped, 0, "{counts:?}");
    println!("{counts:?}");
}
