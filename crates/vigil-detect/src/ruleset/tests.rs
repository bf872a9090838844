//! Tests of loading and matching.

use std::fs;
use std::path::{Path, PathBuf};

use vigil_ocsf::Event;
use vigil_ocsf::fieldmap::FieldMaps;

use super::*;
use crate::lookup::{FieldPath, Lookups};
use crate::rule::RuleStatus;
use serde_json::{Value, json};

const RULE: &str = "
title: Base64 decode
id: r1
logsource: {category: process_creation, product: linux}
detection:
    selection:
        Image|endswith: /base64
        CommandLine|contains: -d
    condition: selection
level: low
";

fn maps() -> FieldMaps {
    FieldMaps::builtin().unwrap()
}

fn event(activity: u8, image: &str, cmd: &str) -> Event {
    Event::from_value(json!({
        "class_uid": 1007, "activity_id": activity, "time": 1,
        "metadata": {"uid": "e1"},
        "process": {"file": {"path": image}, "cmd_line": cmd}
    }))
    .unwrap()
}

#[test]
fn matches_filters_by_class_and_activity() {
    let (rules, reports) = RuleSet::from_yaml_str(RULE, Path::new("r.yml"), &maps());
    assert_eq!(reports[0].status, RuleStatus::Loaded);
    let set = RuleSet::new(rules);
    assert_eq!(set.len(), 1);
    let hit = event(1, "/usr/bin/base64", "base64 -d x");
    assert_eq!(set.matches(&hit).count(), 1);
    assert!(set.rules()[0].is_match(&hit));
    assert_eq!(
        set.matches(&event(2, "/usr/bin/base64", "base64 -d x"))
            .count(),
        0
    );
    assert_eq!(
        set.matches(&event(1, "/usr/bin/base64", "base64 x"))
            .count(),
        0
    );
    let mut other_class = hit.clone();
    other_class.class_uid = 1001;
    assert_eq!(set.matches(&other_class).count(), 0);
    assert!(!set.rules()[0].is_match(&other_class));
}

#[test]
fn rule_set_is_send_sync() {
    fn check<T: Send + Sync>() {}
    check::<RuleSet>();
}

#[test]
fn load_dirs_walks_sorted_and_reports_problems() {
    let root = tempfile::tempdir().unwrap();
    let sub = root.path().join("b_sub");
    fs::create_dir(&sub).unwrap();
    fs::write(root.path().join("a.yml"), RULE).unwrap();
    fs::write(sub.join("c.yaml"), RULE.replace("id: r1", "id: r2")).unwrap();
    fs::write(sub.join("d.yml"), RULE).unwrap();
    fs::write(sub.join("e.yml"), "title: [").unwrap();
    fs::write(sub.join("f.yml"), [0xFFu8, 0xFE]).unwrap();
    fs::write(sub.join("notes.txt"), "not a rule").unwrap();
    let (set, report) = RuleSet::load_dirs(&[root.path().to_owned()], &maps()).unwrap();
    let ids: Vec<&str> = set.rules().iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["r1", "r2"]);
    assert_eq!(report.rules.len(), 5);
    assert_eq!((report.loaded(), report.malformed()), (2, 3));
    let problems: Vec<String> = report
        .problems()
        .map(|p| p.status.reason().unwrap_or_default().to_owned())
        .collect();
    assert!(problems[0].contains("duplicate rule id r1"), "{problems:?}");
    assert!(problems[1].contains("invalid YAML"), "{problems:?}");
    assert!(problems[2].contains("not UTF-8"), "{problems:?}");
}

#[test]
fn missing_directory_is_fatal() {
    let err =
        RuleSet::load_dirs(&[PathBuf::from("/nonexistent/vigil-rules")], &maps()).unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/vigil-rules"),
        "{err}"
    );
}

#[test]
fn statuses_for_unmapped_logsources_fields_and_other_documents() {
    let text = "
title: Auditd
id: a1
logsource: {product: linux, service: nosuch}
detection: {sel: {type: EXECVE}, condition: sel}
---
title: Unmapped field
id: a2
logsource: {category: process_creation, product: linux}
detection: {sel: {TargetFilename: /x}, condition: sel}
---
title: Correlation
id: a3
correlation: {type: event_count, rules: [a1], group-by: [x], timespan: 1m, condition: {gte: 5}}
---
title: No id
logsource: {category: process_creation, product: linux}
detection: {sel: {Image: /x}, condition: sel}
---
title: Declared unsupported
status: unsupported
logsource: {category: process_creation, product: linux}
detection: {sel: {Image: /y}, condition: sel}
";
    let (rules, reports) = RuleSet::from_yaml_str(text, Path::new("dir/multi.yml"), &maps());
    let statuses: Vec<&RuleStatus> = reports.iter().map(|r| &r.status).collect();
    assert_eq!(
        statuses[0],
        &RuleStatus::NotApplicable(
            "logsource product=linux service=nosuch has no OCSF mapping yet".into()
        )
    );
    assert!(matches!(statuses[1], RuleStatus::NotApplicable(r) if r.contains("`TargetFilename`")));
    assert!(
        matches!(statuses[2], RuleStatus::NotApplicable(r)
                if r.contains("refers to rule `a1` (dir/multi.yml), which is not loaded: logsource product=linux service=nosuch")),
        "{:?}",
        statuses[2]
    );
    assert_eq!(statuses[3], &RuleStatus::Loaded);
    assert!(matches!(statuses[4], RuleStatus::Unsupported(r) if r.contains("status: unsupported")));
    assert_eq!(rules[0].id, "multi#3");
    assert_eq!(
        reports[1].logsource,
        "category=process_creation product=linux"
    );
}

#[test]
fn auditd_view_reads_exec_records_from_process_activity() {
    let text = "
title: Immutable removed
id: au1
logsource: {product: linux, service: auditd}
detection:
    selection: {type: EXECVE, a0|contains: chattr, a1|contains: '-i'}
    condition: selection
---
title: Other syscall
id: au2
logsource: {product: linux, service: auditd}
detection: {selection: {type: SYSCALL, SYSCALL: mknod}, condition: selection}
---
title: From tmp
id: au3
logsource: {product: linux, service: auditd}
detection: {selection: {type: 'SYSCALL', exe|startswith: /tmp/}, condition: selection}
";
    let (rules, reports) = RuleSet::from_yaml_str(text, Path::new("a.yml"), &maps());
    let statuses: Vec<_> = reports.iter().map(|r| &r.status).collect();
    assert_eq!(statuses[0], &RuleStatus::Loaded);
    assert_eq!(statuses[2], &RuleStatus::Loaded);
    // No record Vigil makes is a mknod syscall: the rule cannot apply, and says so.
    assert!(
        matches!(statuses[1], RuleStatus::NotApplicable(why) if why.contains("SYSCALL")),
        "{statuses:?}"
    );
    let set = RuleSet::new(rules);
    let exec = |exe: &str, argv: &[&str]| {
        Event::from_value(json!({
            "class_uid": 1007, "activity_id": 1, "launch_type_id": 3, "time": 1,
            "metadata": {"uid": "e1"},
            "process": {"file": {"path": exe}, "cmd_line": argv.join(" ")},
            "unmapped": {"argv": argv}
        }))
        .unwrap()
    };
    let ids = |event: &Event| -> Vec<String> { set.matches(event).map(|r| r.id.clone()).collect() };
    assert_eq!(
        ids(&exec("/usr/bin/chattr", &["chattr", "-i", "/x"])),
        ["au1"]
    );
    assert_eq!(ids(&exec("/tmp/x/true", &["true"])), ["au3"]);
    assert!(ids(&exec("/usr/bin/chattr", &["chattr", "+i", "/x"])).is_empty());
    // `a1` is the second argument, not a piece of the command line.
    assert!(ids(&exec("/usr/bin/chattr", &["chattr", "+a", "-i"])).is_empty());
}

#[test]
fn auditd_path_records_read_file_changes() {
    // SigmaHQ-shaped: PATH records alone, PATH with nametype, and PATH beside EXECVE.
    let text = "
title: ld.so.preload
id: p1
logsource: {product: linux, service: auditd}
detection: {selection: {type: 'PATH', name: /etc/ld.so.preload}, condition: selection}
---
title: Unit created
id: p2
logsource: {product: linux, service: auditd}
detection:
    path: {type: PATH, nametype: CREATE}
    name_1: {name|startswith: [/etc/systemd/system/]}
    condition: path and 1 of name_*
---
title: Discovery
id: p3
logsource: {product: linux, service: auditd}
detection:
    selection_1: {type: PATH, name: /etc/issue}
    selection_2: {type: EXECVE, a0: uname}
    condition: 1 of selection_*
---
title: Exec only
id: p4
logsource: {product: linux, service: auditd}
detection: {selection: {type: EXECVE, a0: uname}, condition: selection}
---
title: Key only
id: p5
logsource: {product: linux, service: auditd}
detection: {selection: {key: susp_activity}, condition: selection}
";
    let (rules, reports) = RuleSet::from_yaml_str(text, Path::new("a.yml"), &maps());
    let status: Vec<_> = reports.iter().map(|r| r.status.clone()).collect();
    assert!(
        status[..4].iter().all(|s| matches!(s, RuleStatus::Loaded)),
        "{reports:?}"
    );
    // A field no view has is still reported, not loaded as a rule that can never match.
    assert!(
        matches!(&status[4], RuleStatus::NotApplicable(why) if why.contains("`key`")),
        "{:?}",
        status[4]
    );
    // An EXECVE-only rule is not compiled for the file views.
    let views = |id: &str| -> Vec<Option<&str>> {
        rules
            .iter()
            .filter(|r| r.id == id)
            .map(|r| r.view.as_deref())
            .collect()
    };
    assert_eq!(views("p4"), [None]);
    // Only the views whose records it tests: CREATE names, no exec.
    assert_eq!(views("p2"), [Some("path-create"), Some("path-rename-new")]);
    assert_eq!(
        views("p1").len(),
        6,
        "the exec's PATH record and every file view"
    );
    let set = RuleSet::new(rules);
    assert_eq!(set.len(), 4, "variants count once");
    let file = |activity: u8, path: &str, new: Option<&str>| {
        let mut doc = json!({
            "class_uid": 1001, "activity_id": activity, "time": 1,
            "metadata": {"uid": "f1"},
            "file": {"path": path, "type_id": 1},
            "actor": {"process": {"pid": 9, "file": {"path": "/usr/bin/tee"}}}
        });
        if let Some(new) = new {
            doc["file_result"] = json!({"path": new, "type_id": 1});
        }
        Event::from_value(doc).unwrap()
    };
    let ids = |event: &Event| -> Vec<String> { set.matches(event).map(|r| r.id.clone()).collect() };
    const CREATE: u8 = 1;
    const UPDATE: u8 = 3;
    const DELETE: u8 = 4;
    const RENAME: u8 = 5;
    const ATTRIBUTES: u8 = 6;
    assert_eq!(ids(&file(UPDATE, "/etc/ld.so.preload", None)), ["p1"]);
    assert_eq!(ids(&file(ATTRIBUTES, "/etc/ld.so.preload", None)), ["p1"]);
    assert_eq!(ids(&file(DELETE, "/etc/ld.so.preload", None)), ["p1"]);
    assert!(ids(&file(UPDATE, "/etc/ld.so.conf", None)).is_empty());
    // nametype CREATE: a new unit, or one moved into place; not an edit, a removal, or a unit
    // moved away (its old name is a DELETE record).
    let unit = "/etc/systemd/system/evil.service";
    assert_eq!(ids(&file(CREATE, unit, None)), ["p2"]);
    assert_eq!(ids(&file(RENAME, "/tmp/evil", Some(unit))), ["p2"]);
    assert!(ids(&file(UPDATE, unit, None)).is_empty());
    assert!(ids(&file(DELETE, unit, None)).is_empty());
    assert!(ids(&file(RENAME, unit, Some("/tmp/evil"))).is_empty());
    // Both names of a rename match: the rule is reported once.
    assert_eq!(
        ids(&file(
            RENAME,
            "/etc/ld.so.preload",
            Some("/etc/ld.so.preload")
        )),
        ["p1"]
    );
    // The PATH half of a mixed rule reads files, its EXECVE half execs.
    assert_eq!(ids(&file(UPDATE, "/etc/issue", None)), ["p3"]);
    let exec = Event::from_value(json!({
        "class_uid": 1007, "activity_id": 1, "launch_type_id": 3, "time": 1,
        "metadata": {"uid": "e1"},
        "process": {"file": {"path": "/usr/bin/uname"}, "cmd_line": "uname -a"},
        "unmapped": {"argv": ["uname", "-a"]}
    }))
    .unwrap();
    assert_eq!(ids(&exec), ["p3", "p4"]);
}

#[test]
fn field_map_gates_decide_once_per_event_for_every_rule_of_a_view() {
    // Two network rules share the map's exclusions; an sshd log rule has an inclusion.
    let text = "
title: A
id: gate-a
logsource: {category: network_connection, product: linux}
detection: {sel: {DestinationPort: 4444}, condition: sel}
---
title: B
id: gate-b
logsource: {category: network_connection, product: linux}
detection: {sel: {DestinationIp|startswith: '10.'}, condition: sel}
---
title: C
id: gate-c
logsource: {product: linux, service: sshd}
detection: {keywords: [Failed password], condition: keywords}
";
    let (set, report) = RuleSet::load_str(text, Path::new("g.yml"), &maps());
    assert_eq!(report.counts().loaded, 3, "{report:?}");
    let conn = |state: &str, activity: u8| {
        Event::from_value(
            json!({"class_uid": 4001, "activity_id": activity, "time": 1,
            "dst_endpoint": {"ip": "10.0.0.9", "port": 4444},
            "unmapped": {"tcp_state": state}}),
        )
        .unwrap()
    };
    let ids = |e: &Event| set.matches(e).map(|r| r.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&conn("SYN_SENT", 1)), ["gate-a", "gate-b"]);
    assert!(ids(&conn("ESTABLISHED", 1)).is_empty(), "excluded state");
    assert!(ids(&conn("SYN_SENT", 2)).is_empty(), "excluded activity");
    let line = |program: &str| {
        Event::from_value(json!({"class_uid": 0, "activity_id": 0, "time": 1,
            "metadata": {"log_provider": program}, "message": "Failed password for root"}))
        .unwrap()
    };
    assert_eq!(ids(&line("sshd")), ["gate-c"]);
    assert!(ids(&line("cron")).is_empty(), "not an sshd line");
    // The same answers as each rule on its own.
    for e in [
        conn("SYN_SENT", 1),
        conn("ESTABLISHED", 1),
        line("sshd"),
        line("cron"),
    ] {
        let alone: Vec<_> = set
            .rules()
            .iter()
            .filter(|r| r.is_match(&e))
            .map(|r| r.id.clone())
            .collect();
        assert_eq!(ids(&e), alone);
    }
}

/// Sets `value` at `segments` in `doc`, making objects (or, for a numeric segment, arrays
/// padded with nulls) on the way and replacing scalars in the way.
fn put(doc: &mut Value, segments: &[&str], value: Value) {
    let Some((first, rest)) = segments.split_first() else {
        *doc = value;
        return;
    };
    if let Ok(index) = first.parse::<usize>() {
        if !doc.is_array() {
            *doc = json!([]);
        }
        let items = doc.as_array_mut().unwrap();
        if items.len() <= index {
            items.resize(index + 1, Value::Null);
        }
        put(&mut items[index], rest, value);
    } else {
        if !doc.is_object() {
            *doc = json!({});
        }
        let entry = doc
            .as_object_mut()
            .unwrap()
            .entry(first.to_string())
            .or_insert(Value::Null);
        put(entry, rest, value);
    }
}

/// A key that shares `key`'s length and first and last bytes (so its place in a level's key
/// table) but differs in the middle, or in the only byte when it is one byte long.
fn decoy(key: &str) -> String {
    let mut bytes = key.as_bytes().to_vec();
    let at = bytes.len() / 2;
    bytes[at] = if bytes[at] == b'_' { b'-' } else { b'_' };
    String::from_utf8(bytes).unwrap()
}

#[test]
fn flat_attribute_table_agrees_with_tree_lookups_for_every_corpus_path() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/sigma/rules/linux");
    if !dir.is_dir() {
        // Without the corpus (tests/sigma_corpus.rs says so): nothing to compare.
        return;
    }
    let (set, _) = RuleSet::load_dirs(&[dir], &maps()).unwrap();
    assert!(set.classes.len() >= 4);
    for class in set.classes.iter() {
        let paths = class.slotted.paths();
        let scanned = class.paths.paths();
        assert!(scanned.iter().all(|p| paths.contains(p)));
        assert!(!paths.is_empty(), "class {}", class.class_uid);
        // Every path each rule of the class reads has a slot in the class's table.
        let mut read = Vec::new();
        for &i in class.rules.iter() {
            set.rules[i].detection.paths(&mut read);
        }
        for path in &read {
            assert!(
                paths.iter().any(|(p, _)| p == path),
                "class {}: {path} has no slot",
                class.class_uid
            );
        }
        let mut docs = Vec::new();
        // Every path present, with distinct strings; then numbers at every other one; then
        // arrays; then decoy keys beside every wanted key; then each path's parent a scalar.
        let mut all = json!({"class_uid": class.class_uid});
        for (i, (p, _)) in paths.iter().enumerate() {
            let segments: Vec<&str> = p.split('.').collect();
            put(&mut all, &segments, json!(format!("v{i}")));
        }
        docs.push(all.clone());
        let mut some = json!({});
        for (i, (p, _)) in paths.iter().enumerate().step_by(2) {
            let segments: Vec<&str> = p.split('.').collect();
            put(&mut some, &segments, json!(i));
        }
        docs.push(some);
        let mut arrays = json!({});
        for (i, (p, _)) in paths.iter().enumerate() {
            let segments: Vec<&str> = p.split('.').collect();
            put(&mut arrays, &segments, json!([i, format!("a{i}"), null]));
        }
        docs.push(arrays);
        let mut decoys = all.clone();
        for (i, (p, _)) in paths.iter().enumerate() {
            let segments: Vec<&str> = p.split('.').collect();
            for depth in 0..segments.len() {
                let mut at = segments[..=depth].to_vec();
                let fake = decoy(at[depth]);
                if fake.parse::<usize>().is_ok() {
                    continue;
                }
                at[depth] = &fake;
                put(&mut decoys, &at, json!(format!("d{i}")));
            }
        }
        docs.push(decoys);
        let mut scalars = all;
        for (p, _) in &paths {
            let segments: Vec<&str> = p.split('.').collect();
            if segments.len() > 1 {
                put(&mut scalars, &segments[..segments.len() - 1], json!("flat"));
            }
        }
        docs.push(scalars);
        for doc in &docs {
            let mut lookups = Lookups::new(doc);
            lookups.prefetch(&class.paths);
            for (p, slot) in &paths {
                let flat = lookups.get(&FieldPath::with_slot(p, *slot));
                let tree = FieldPath::new(p).lookup(doc);
                assert_eq!(flat, tree, "class {}: {p} in {doc}", class.class_uid);
            }
        }
    }
}
