//! The auditd view: SigmaHQ's `service: auditd` rules, loaded unmodified, fire on the exec
//! events the sensor captures from real processes.
//!
//! Needs root (eBPF) and the SigmaHQ rules in `../shared/sigma` beside the checkout; without
//! either the test says so and passes.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use vigil_detect::{RuleSet, RuleStatus};
use vigil_ocsf::fieldmap::FieldMaps;
use vigil_sensor::SourceMode;

const AUDITD_RULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/sigma/rules/linux/auditd"
);
/// SigmaHQ "Remove Immutable File Attribute" (EXECVE: `a0|contains: chattr`, `a1|contains: -i`).
const CHATTR_RULE: &str = "a5b977d6-8a81-4475-91b9-49dbfcd941f7";
/// SigmaHQ "Program Executions in Suspicious Folders" (SYSCALL: `exe|startswith: /tmp/`).
const TMP_EXE_RULE: &str = "a39d7fa7-3fbd-4dc2-97e1-d87f546b1bbc";

fn auditd_rules() -> Option<RuleSet> {
    if !Path::new(AUDITD_RULES).is_dir() {
        eprintln!("skipping auditd_view: {AUDITD_RULES} not found");
        return None;
    }
    let maps = FieldMaps::builtin().expect("field maps");
    let (set, report) =
        RuleSet::load_dirs(&[PathBuf::from(AUDITD_RULES)], &maps).expect("load auditd rules");
    let loaded = report
        .rules
        .iter()
        .filter(|r| matches!(r.status, RuleStatus::Loaded))
        .count();
    eprintln!("auditd rules loaded: {loaded} of {}", report.rules.len());
    for r in &report.rules {
        if !matches!(r.status, RuleStatus::Loaded) {
            eprintln!("  {}: {:?}", r.path.display(), r.status);
        }
    }
    assert!(
        loaded * 4 >= report.rules.len() * 3,
        "most auditd rules should load through the view"
    );
    Some(set)
}

#[test]
fn sigma_auditd_rules_fire_on_real_execs() {
    skip_unless_root!();
    let Some(rules) = auditd_rules() else {
        return;
    };
    let mut h = Harness::start(SourceMode::Ebpf);
    let nonce = nonce("vigil-auditd");

    // EXECVE a0/a1: chattr on a file of the test's own (the exec is what counts; chattr's own
    // failure on a tmpfs or missing file does not matter).
    let dir = std::env::temp_dir().join(&nonce);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let target = dir.join("file");
    std::fs::write(&target, b"x").expect("temp file");
    let mut child = spawn(Command::new("chattr").arg("-i").arg(&target));
    let exec = h.wait_for("chattr -i on the test's file", cmd_line_contains(&nonce));
    let _ = child.wait();
    assert_eq!(
        exec.get("unmapped.argv"),
        Some(&serde_json::json!([
            "chattr",
            "-i",
            target.to_string_lossy()
        ])),
        "the argument vector is kept whole"
    );
    let fired: Vec<&str> = rules.matches(&exec).map(|r| r.id.as_str()).collect();
    assert!(fired.contains(&CHATTR_RULE), "fired: {fired:?}");
    assert!(!fired.contains(&TMP_EXE_RULE), "fired: {fired:?}");

    // SYSCALL exe: a program run from /tmp.
    let copy = dir.join("true");
    std::fs::copy("/bin/true", &copy).expect("copy /bin/true");
    let mut child = spawn(Command::new(&copy).arg(&nonce));
    let pid = child.id();
    let exec = h.wait_for("a program in /tmp", pid_is(pid));
    let _ = child.wait();
    let fired: Vec<&str> = rules.matches(&exec).map(|r| r.id.as_str()).collect();
    assert!(fired.contains(&TMP_EXE_RULE), "fired: {fired:?}");
    assert!(!fired.contains(&CHATTR_RULE), "fired: {fired:?}");

    let _ = std::fs::remove_dir_all(&dir);
    h.sensor.stop();
}
