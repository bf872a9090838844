//! The auditd view: SigmaHQ's `service: auditd` rules, loaded unmodified, fire on the exec
//! events the sensor captures from real processes, and their PATH rules on the file changes it
//! captures.
//!
//! Needs root (eBPF) and the SigmaHQ rules in `../shared/sigma` beside the checkout; without
//! either the test says so and passes.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use vigil_detect::{RuleSet, RuleStatus};
use vigil_ocsf::fieldmap::FieldMaps;
use vigil_sensor::{FileConfig, SensorConfig, SourceMode};

const AUDITD_RULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/sigma/rules/linux/auditd"
);
/// SigmaHQ "Remove Immutable File Attribute" (EXECVE: `a0|contains: chattr`, `a1|contains: -i`).
const CHATTR_RULE: &str = "a5b977d6-8a81-4475-91b9-49dbfcd941f7";
/// SigmaHQ "Program Executions in Suspicious Folders" (SYSCALL: `exe|startswith: /tmp/`).
const TMP_EXE_RULE: &str = "a39d7fa7-3fbd-4dc2-97e1-d87f546b1bbc";

/// SigmaHQ "Systemd Service Creation" (PATH: `nametype: CREATE`, `name|startswith:
/// /etc/systemd/system/`).
const UNIT_CREATION_RULE: &str = "1bac86ba-41aa-4f62-9d6b-405eac99b485";
/// SigmaHQ "Unix Shell Configuration Modification" (PATH: `name: /etc/profile.d/*`, …).
const SHELL_CONFIG_RULE: &str = "a94cdd87-6c54-4678-a6cc-2814ffe5a13d";

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

#[test]
fn sigma_auditd_path_rules_fire_on_real_file_changes() {
    skip_unless_root!();
    let Some(rules) = auditd_rules() else {
        return;
    };
    let units = Path::new("/etc/systemd/system");
    let profile = Path::new("/etc/profile.d");
    for dir in [units, profile] {
        if !dir.is_dir() {
            eprintln!("skipping: {} does not exist here", dir.display());
            return;
        }
    }
    let mut h = Harness::start_with(SensorConfig {
        mode: SourceMode::Auto,
        files: FileConfig {
            enabled: true,
            paths: vec![units.to_owned(), profile.to_owned()],
            exclude: Vec::new(),
        },
        ..Default::default()
    });
    let nonce = nonce("vigil-path");
    // Names of the test's own; systemd reads a unit only on daemon-reload and a profile.d
    // script only in a new login shell, and all are removed below.
    let unit = units.join(format!("{nonce}.service"));
    let staged = units.join(format!(".{nonce}.tmp"));
    let moved = units.join(format!("{nonce}-moved.service"));
    let script = profile.join(format!("{nonce}.sh"));
    let _cleanup = Remove(vec![
        unit.clone(),
        staged.clone(),
        moved.clone(),
        script.clone(),
    ]);
    let file_event = |activity: u64, path: &Path, to: Option<&Path>| {
        let path = path.to_string_lossy().into_owned();
        let to = to.map(|t| t.to_string_lossy().into_owned());
        move |e: &vigil_ocsf::Event| {
            e.class_uid == 1001
                && u64_at(e, "activity_id") == Some(activity)
                && str_at(e, "file.path") == Some(path.as_str())
                && str_at(e, "file_result.path") == to.as_deref()
        }
    };
    let fired = |event: &vigil_ocsf::Event| -> Vec<String> {
        rules.matches(event).map(|r| r.id.clone()).collect()
    };

    // The sensor leaves out its own process's activity: a shell makes each change.
    let sh = |script: &str| -> u32 {
        let mut child = spawn(Command::new("sh").arg("-c").arg(script));
        let pid = child.id();
        let status = child.wait().expect("wait for sh");
        assert!(status.success(), "sh -c {script}: {status}");
        pid
    };
    let p = |path: &Path| path.to_string_lossy().into_owned();

    // A new unit: PATH nametype CREATE.
    sh(&format!("echo '[Service]' > {}", p(&unit)));
    let created = h.wait_for("the unit's creation", file_event(1, &unit, None));
    let written = h.wait_for("the unit's write", file_event(3, &unit, None));
    assert!(
        fired(&created).iter().any(|id| id == UNIT_CREATION_RULE),
        "{:?}",
        fired(&created)
    );
    // Closing it after the write is nametype NORMAL: not a creation.
    assert!(
        !fired(&written).iter().any(|id| id == UNIT_CREATION_RULE),
        "{:?}",
        fired(&written)
    );

    // A unit moved into place: the new name is a CREATE record.
    sh(&format!(
        "echo '[Service]' > {0} && mv {0} {1}",
        p(&staged),
        p(&moved)
    ));
    let renamed = h.wait_for("the unit's rename", file_event(5, &staged, Some(&moved)));
    let ids = fired(&renamed);
    assert_eq!(
        ids.iter().filter(|id| *id == UNIT_CREATION_RULE).count(),
        1,
        "once per event: {ids:?}"
    );

    // Removing a unit is a DELETE record.
    sh(&format!("rm {}", p(&moved)));
    let deleted = h.wait_for("the unit's removal", file_event(4, &moved, None));
    assert!(
        !fired(&deleted).iter().any(|id| id == UNIT_CREATION_RULE),
        "{:?}",
        fired(&deleted)
    );

    // A shell start-up script: any PATH record of /etc/profile.d/*.
    let writer = sh(&format!("echo '# vigil test' > {}", p(&script)));
    let script_written = h.wait_for("the script's write", file_event(3, &script, None));
    assert!(
        fired(&script_written)
            .iter()
            .any(|id| id == SHELL_CONFIG_RULE),
        "{:?}",
        fired(&script_written)
    );
    assert_eq!(
        u64_at(&script_written, "actor.process.pid"),
        Some(u64::from(writer)),
        "the shell wrote it"
    );

    h.sensor.stop();
}

/// Files removed on drop, whether the test passed or not.
struct Remove(Vec<PathBuf>);

impl Drop for Remove {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}
