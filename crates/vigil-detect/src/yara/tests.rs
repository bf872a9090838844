use std::path::{Path, PathBuf};

use serde_json::json;
use sha2::{Digest, Sha256};
use vigil_ocsf::{Event, Severity};

use super::*;

const MARKER_RULE: &str = r#"
rule Marker_String : attack_execution attack_t1059_004 demo
{
    meta:
        description = "A test marker"
        severity = "high"
        author = "Vigil"
    strings:
        $m = "vigil-test-marker-7f3a"
    condition:
        $m
}
"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, text).unwrap();
    path
}

fn marker_rules() -> YaraRules {
    YaraRules::from_source("tests", Path::new("tests.yar"), MARKER_RULE).unwrap()
}

#[test]
fn load_compiles_every_rule_file_recursively_in_sorted_order() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "b.yara", "rule B1 { condition: false }");
    write(
        dir.path(),
        "a.yar",
        "rule A1 { condition: false }\nprivate rule A2 { condition: true }",
    );
    write(
        dir.path(),
        "linux/miners.YAR",
        "rule A1 { condition: false }",
    );
    write(dir.path(), "README.md", "not a rule");
    let rules = YaraRules::load(&[dir.path().to_owned()]).unwrap();
    let summary = rules.summary();
    let files: Vec<_> = summary
        .files
        .iter()
        .map(|f| (f.namespace.as_str(), f.rules))
        .collect();
    // Each file has its namespace, so `A1` in two files is no clash.
    assert_eq!(files, [("a", 2), ("b", 1), ("linux_miners", 1)]);
    assert_eq!(summary.rules, 4);
    assert_eq!(rules.len(), 4);
    assert_eq!(summary.files[2].path, dir.path().join("linux/miners.YAR"));
}

#[test]
fn a_file_named_directly_is_compiled_whatever_its_extension() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "marker.rules", MARKER_RULE);
    let rules = YaraRules::load(&[path]).unwrap();
    assert_eq!(rules.summary().files[0].namespace, "marker");
    assert_eq!(rules.len(), 1);
}

#[test]
fn no_rule_file_and_missing_paths_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "notes.txt", "rule X { condition: true }");
    let err = YaraRules::load(&[dir.path().to_owned()]).unwrap_err();
    assert!(matches!(err, YaraError::NoRuleFiles { .. }), "{err}");
    let missing = dir.path().join("nowhere");
    let err = YaraRules::load(std::slice::from_ref(&missing)).unwrap_err();
    match err {
        YaraError::Read { path, .. } => assert_eq!(path, missing),
        other => panic!("expected a read error, got {other}"),
    }
}

#[test]
fn a_compile_error_names_the_file_line_and_message() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "good.yar", "rule Good { condition: true }");
    let bad = write(
        dir.path(),
        "bad.yar",
        "rule Bad\n{\n    condition:\n        $missing and true\n}\n",
    );
    let err = YaraRules::load(&[dir.path().to_owned()]).unwrap_err();
    let YaraError::Compile(errors) = &err else {
        panic!("expected a compile error, got {err}");
    };
    assert_eq!(errors.len(), 1);
    let e = &errors[0];
    assert_eq!(e.path, bad);
    assert_eq!((e.line, e.column), (4, 9));
    assert!(e.title.contains("unknown pattern"), "{}", e.title);
    let text = err.to_string();
    assert!(
        text.contains(&format!("{}:4:9: ", bad.display())),
        "the message locates the error: {text}"
    );
    assert!(
        text.contains("$missing"),
        "yara-x's report shows the code: {text}"
    );
}

#[test]
fn every_file_that_does_not_compile_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "one.yar", "rule One { condition: tru }");
    write(
        dir.path(),
        "two.yar",
        "\n\nrule Two { strings: $a = \"x\" }",
    );
    let Err(YaraError::Compile(errors)) = YaraRules::load(&[dir.path().to_owned()]) else {
        panic!("expected compile errors");
    };
    // The parser may report more than one error in a file (here two in `two.yar`).
    let mut located: Vec<_> = errors
        .iter()
        .map(|e| {
            (
                e.path.file_name().unwrap().to_string_lossy().into_owned(),
                e.line,
            )
        })
        .collect();
    located.dedup();
    assert_eq!(located, [("one.yar".into(), 1), ("two.yar".into(), 3)]);
}

#[test]
fn a_match_carries_rule_namespace_tags_metadata_and_patterns() {
    let rules = marker_rules();
    let mut scanner = YaraScanner::new(&rules, ScanLimits::default());
    let hits = scanner
        .scan_bytes(b"\x7fELF....vigil-test-marker-7f3a....")
        .unwrap();
    assert_eq!(
        hits,
        [YaraMatch {
            rule: "Marker_String".into(),
            namespace: "tests".into(),
            tags: vec![
                "attack_execution".into(),
                "attack_t1059_004".into(),
                "demo".into()
            ],
            metadata: vec![
                ("description".into(), "A test marker".into()),
                ("severity".into(), "high".into()),
                ("author".into(), "Vigil".into()),
            ],
            patterns: vec!["$m".into()],
        }]
    );
    assert_eq!(hits[0].id(), "tests.Marker_String");
    assert!(scanner.scan_bytes(b"vigil-test-marker").unwrap().is_empty());
}

#[test]
fn scan_file_hashes_the_bytes_it_scans() {
    let dir = tempfile::tempdir().unwrap();
    let data = b"prefix vigil-test-marker-7f3a suffix";
    let path = dir.path().join("sample.bin");
    std::fs::write(&path, data).unwrap();
    let rules = marker_rules();
    let mut scanner = YaraScanner::new(&rules, ScanLimits::default());
    let FileVerdict::Scanned(scan) = scanner.scan_file(&path).unwrap() else {
        panic!("expected a scan");
    };
    assert_eq!(scan.file.sha256, hex::encode(Sha256::digest(data)));
    assert_eq!(scan.file.size, data.len() as u64);
    assert_eq!(scan.file.path, path.display().to_string());
    assert_eq!(scan.matches.len(), 1);

    let clean = dir.path().join("clean.bin");
    std::fs::write(&clean, b"nothing here").unwrap();
    let FileVerdict::Scanned(scan) = scanner.scan_file(&clean).unwrap() else {
        panic!("expected a scan");
    };
    assert!(scan.matches.is_empty());
}

#[test]
fn files_over_the_size_limit_and_non_files_are_skipped_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    let mut data = vec![b'x'; 4096];
    data.extend_from_slice(b"vigil-test-marker-7f3a");
    std::fs::write(&path, &data).unwrap();
    let rules = marker_rules();
    let limits = ScanLimits {
        max_file_size: 4096,
        ..ScanLimits::default()
    };
    let mut scanner = YaraScanner::new(&rules, limits);
    let verdict = scanner.scan_file(&path).unwrap();
    let expected = SkipReason::TooLarge {
        size: data.len() as u64,
        max: 4096,
    };
    assert_eq!(verdict, FileVerdict::Skipped(expected));
    assert_eq!(
        expected.to_string(),
        format!("larger than the limit ({} > 4096 bytes)", data.len())
    );
    // At the limit exactly, it is scanned.
    std::fs::write(&path, &data[data.len() - 4096..]).unwrap();
    assert!(matches!(
        scanner.scan_file(&path).unwrap(),
        FileVerdict::Scanned(FileScan { ref matches, .. }) if matches.len() == 1
    ));
    assert_eq!(
        scanner.scan_file(dir.path()).unwrap(),
        FileVerdict::Skipped(SkipReason::NotRegularFile)
    );
    let err = scanner.scan_file(&dir.path().join("gone")).unwrap_err();
    assert!(matches!(err, ScanError::Io { .. }), "{err}");
}

fn exec_event() -> Event {
    Event::from_value(json!({
        "class_uid": 1007, "activity_id": 1, "time": 5, "metadata": {"uid": "ev-1"},
        "device": {"type_id": 0, "hostname": "h", "uid": "s-1", "os": {"name": "Linux", "type_id": 200}},
        "process": {"pid": 42, "name": "dropper", "file": {"path": "/tmp/dropper", "name": "dropper", "type_id": 1}},
        "actor": {"process": {"pid": 1, "name": "bash"}}
    }))
    .unwrap()
}

fn facts() -> FileFacts {
    FileFacts {
        path: "/tmp/dropper".into(),
        sha256: "ab".repeat(32),
        size: 1234,
    }
}

#[test]
fn a_finding_carries_rule_file_process_and_attack() {
    let rules = marker_rules();
    let mut scanner = YaraScanner::new(&rules, ScanLimits::default());
    let hit = scanner
        .scan_bytes(b"vigil-test-marker-7f3a")
        .unwrap()
        .remove(0);
    let event = exec_event();
    let f = yara_finding(&hit, &facts(), Some(&event), 99);
    assert_eq!(f.time, 99);
    assert_eq!(f.class_uid, 2004);
    assert_eq!(f.severity_id, Severity::High as u8);
    let info = &f.finding_info;
    assert_eq!(info.title, "A test marker");
    assert_eq!(info.analytic.uid, "yara:tests.Marker_String");
    assert_eq!(info.analytic.name, "Marker_String");
    assert_eq!(info.analytic.category, "yara");
    assert_eq!(info.types, ["yara"]);
    assert!(info.related_event_uids().eq(["ev-1"]));
    assert!(
        info.desc
            .as_deref()
            .is_some_and(|d| d.contains("/tmp/dropper") && d.contains(&"ab".repeat(32)))
    );
    assert_eq!(info.attacks.len(), 1);
    let attack = &info.attacks[0];
    assert_eq!(attack.technique.as_ref().unwrap().uid, "T1059.004");
    assert_eq!(attack.tactic.as_ref().unwrap().name, "Execution");
    assert_eq!(f.device.as_ref().map(|d| d.hostname.as_str()), Some("h"));
    let evidence = &f.evidences[0];
    let file = evidence.file.as_ref().unwrap();
    assert_eq!(file["path"], "/tmp/dropper");
    assert_eq!(file["name"], "dropper");
    assert_eq!(file["size"], 1234);
    assert_eq!(file["hashes"][0]["algorithm_id"], 3);
    assert_eq!(file["hashes"][0]["value"], "ab".repeat(32));
    assert_eq!(evidence.process.as_ref().unwrap()["pid"], 42);
    assert_eq!(evidence.actor.as_ref().unwrap()["process"]["name"], "bash");
    let yara = &f.unmapped.as_ref().unwrap()["yara"];
    assert_eq!(yara["tags"][2], "demo");
    assert_eq!(yara["metadata"]["author"], "Vigil");
    assert_eq!(yara["patterns"][0], "$m");

    let schemas = vigil_ocsf::schema::Schemas::linux_edr().unwrap();
    let wrapped = Event::from_record(&f).unwrap();
    assert_eq!(
        schemas.check(&wrapped),
        Ok(()),
        "a YARA finding is valid OCSF"
    );
    let on_demand = Event::from_record(&yara_finding(&hit, &facts(), None, 1)).unwrap();
    assert_eq!(schemas.check(&on_demand), Ok(()));
}

#[test]
fn the_finding_id_is_stable_for_rule_content_and_event() {
    let rules = marker_rules();
    let mut scanner = YaraScanner::new(&rules, ScanLimits::default());
    let hit = scanner
        .scan_bytes(b"vigil-test-marker-7f3a")
        .unwrap()
        .remove(0);
    let event = exec_event();
    let uid =
        |file: &FileFacts, ev: Option<&Event>| yara_finding(&hit, file, ev, 1).finding_info.uid;
    let base = uid(&facts(), Some(&event));
    assert_eq!(
        base,
        uid(&facts(), Some(&event)),
        "a re-send is the same finding"
    );
    let other_content = FileFacts {
        sha256: "cd".repeat(32),
        ..facts()
    };
    assert_ne!(base, uid(&other_content, Some(&event)));
    let mut other_exec = exec_event();
    other_exec.uid = "ev-2".into();
    assert_ne!(base, uid(&facts(), Some(&other_exec)));
    let elsewhere = FileFacts {
        path: "/srv/dropper".into(),
        ..facts()
    };
    assert_eq!(uid(&facts(), None), uid(&facts(), None));
    assert_ne!(uid(&facts(), None), uid(&elsewhere, None));
}

#[test]
fn yara_tags_naming_attack_are_understood() {
    let tags: Vec<String> = [
        "attack_t1059",
        "T1059_004",
        "mitre_t1496",
        "ATTACK_Command_And_Control",
        "attack_defense_evasion",
        "execution",
        "t105",
        "attack_t1059_4",
        "linux",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    assert_eq!(
        attack_tags(&tags),
        [
            "attack.t1059",
            "attack.t1059.004",
            "attack.t1496",
            "attack.command-and-control",
            "attack.stealth",
        ]
    );
}

#[test]
fn severity_comes_from_metadata_or_is_medium() {
    let with = |meta: &[(&str, &str)]| {
        let m = YaraMatch {
            rule: "R".into(),
            namespace: "n".into(),
            tags: Vec::new(),
            metadata: meta
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            patterns: Vec::new(),
        };
        let f = yara_finding(&m, &facts(), None, 1);
        (f.severity_id, f.finding_info.title)
    };
    assert_eq!(with(&[]), (Severity::Medium as u8, "R".into()));
    assert_eq!(
        with(&[("severity", "Critical")]).0,
        Severity::Critical as u8
    );
    assert_eq!(with(&[("level", "low")]).0, Severity::Low as u8);
    assert_eq!(with(&[("severity", "4")]).0, Severity::High as u8);
    assert_eq!(
        with(&[("severity", "info")]).0,
        Severity::Informational as u8
    );
    assert_eq!(with(&[("severity", "urgent")]).0, Severity::Medium as u8);
    assert_eq!(with(&[("description", " ")]).1, "R");
}
