//! The `expand` modifier: `%name%` placeholders whose values a `placeholders:` document among
//! the rule files defines.

use std::fs;
use std::path::Path;

use serde_json::json;
use vigil_detect::{RuleSet, RuleStatus};
use vigil_ocsf::Event;
use vigil_ocsf::fieldmap::FieldMaps;

const RULE: &str = "
title: Admin shell from a web root
id: 6c7d2b8e-expand-rule
logsource: {category: process_creation, product: linux}
detection:
    selection:
        User|expand: '%admins%'
        CurrentDirectory|expand|startswith: '%web_roots%'
    condition: selection
level: high
";

const PLACEHOLDERS: &str = "
placeholders:
    admins: [root, ops]
    web_roots: ['/var/www', '/srv/*/htdocs']
";

fn maps() -> FieldMaps {
    FieldMaps::builtin().unwrap()
}

fn exec(user: &str, cwd: &str) -> Event {
    Event::from_value(json!({
        "class_uid": 1007, "activity_id": 1, "time": 1, "metadata": {"uid": format!("{user}{cwd}")},
        "process": {"pid": 7, "file": {"path": "/bin/sh"}, "cmd_line": "sh",
                    "user": {"name": user}, "working_directory": cwd}
    }))
    .unwrap()
}

fn hits(set: &RuleSet, event: &Event) -> usize {
    set.matches(event).count()
}

#[test]
fn placeholders_in_another_file_expand_to_each_value() {
    let dir = tempfile::tempdir().unwrap();
    // The rule's file sorts first: the placeholders are read after it.
    fs::write(dir.path().join("a_rule.yml"), RULE).unwrap();
    fs::write(dir.path().join("z_site.yml"), PLACEHOLDERS).unwrap();
    let (set, report) = RuleSet::load_dirs(&[dir.path().to_owned()], &maps()).unwrap();
    for r in &report.rules {
        assert_eq!(r.status, RuleStatus::Loaded, "{r:?}");
    }
    assert_eq!(set.len(), 1);
    assert_eq!(hits(&set, &exec("root", "/var/www/html")), 1);
    assert_eq!(
        hits(&set, &exec("OPS", "/srv/shop/htdocs/img")),
        1,
        "case-insensitive"
    );
    assert_eq!(hits(&set, &exec("alice", "/var/www")), 0, "not an admin");
    assert_eq!(hits(&set, &exec("root", "/home/root")), 0, "not a web root");
    assert_eq!(
        hits(&set, &exec("root", "/srv/htdocs")),
        0,
        "the wildcard needs a part"
    );
    assert_eq!(
        hits(&set, &exec("%admins%", "/var/www")),
        0,
        "never the literal"
    );
}

#[test]
fn an_undefined_placeholder_is_not_applicable_with_the_fix() {
    let (set, report) = RuleSet::load_str(RULE, Path::new("r.yml"), &maps());
    assert!(set.is_empty());
    let RuleStatus::NotApplicable(why) = &report.rules[0].status else {
        panic!("{:?}", report.rules[0]);
    };
    assert!(
        why.contains("%admins%") && why.contains("placeholders:"),
        "{why}"
    );
}

#[test]
fn a_placeholder_defined_twice_is_malformed_and_the_first_wins() {
    let text = format!("{PLACEHOLDERS}\n---\nplaceholders: {{admins: [alice]}}\n---\n{RULE}");
    let (set, report) = RuleSet::load_str(&text, Path::new("site.yml"), &maps());
    let statuses: Vec<_> = report.rules.iter().map(|r| &r.status).collect();
    assert_eq!(statuses[0], &RuleStatus::Loaded);
    assert!(
        matches!(statuses[1], RuleStatus::Malformed(m) if m.contains("defined twice")),
        "{statuses:?}"
    );
    assert_eq!(statuses[2], &RuleStatus::Loaded);
    assert_eq!(hits(&set, &exec("root", "/var/www")), 1);
    assert_eq!(hits(&set, &exec("alice", "/var/www")), 0);
}

#[test]
fn all_keeps_each_value_an_alternative_of_its_expansions() {
    let rule = "
title: T
id: expand-all
logsource: {category: process_creation, product: linux}
detection:
    sel:
        CommandLine|contains|all|expand: ['%tool%', '%flag%']
    condition: sel
";
    let site = "placeholders: {tool: [curl, wget], flag: ['-O', '--output']}";
    let text = format!("{rule}\n---\n{site}");
    let (set, report) = RuleSet::load_str(&text, Path::new("r.yml"), &maps());
    assert_eq!(report.rules[0].status, RuleStatus::Loaded, "{report:?}");
    let cmd = |c: &str| {
        Event::from_value(json!({"class_uid": 1007, "activity_id": 1, "time": 1,
            "process": {"cmd_line": c, "file": {"path": "/usr/bin/x"}}}))
        .unwrap()
    };
    assert_eq!(hits(&set, &cmd("wget --output /tmp/x http://h")), 1);
    assert_eq!(hits(&set, &cmd("curl -O http://h")), 1);
    assert_eq!(hits(&set, &cmd("curl http://h")), 0, "no flag");
    assert_eq!(hits(&set, &cmd("fetch -O http://h")), 0, "no tool");
}

#[test]
fn keywords_and_filters_expand_too() {
    let rule = "
title: Keyword
id: expand-keyword
logsource: {product: linux, service: sshd}
detection:
    keywords:
        '|expand': '%bad_users%'
    condition: keywords
";
    let filter = "
title: Not from the bastions
logsource: {product: linux, service: sshd}
filter:
    rules: [expand-keyword]
    selection:
        '|expand': '%bastions%'
    condition: not selection
";
    let site = "placeholders: {bad_users: ['invalid user admin'], bastions: [10.9.9.9]}";
    let text = format!("{rule}\n---\n{filter}\n---\n{site}");
    let (set, report) = RuleSet::load_str(&text, Path::new("r.yml"), &maps());
    for r in &report.rules {
        assert_eq!(r.status, RuleStatus::Loaded, "{r:?}");
    }
    let line = |msg: &str| {
        Event::from_value(json!({"class_uid": 0, "activity_id": 0, "time": 1,
            "metadata": {"log_provider": "sshd"}, "message": msg}))
        .unwrap()
    };
    let rule = &set.rules()[0];
    assert!(rule.is_match(&line("Invalid user admin from 10.1.1.1 port 22")));
    assert!(!rule.is_match(&line("Invalid user admin from 10.9.9.9 port 22")));
    assert!(!rule.is_match(&line("Accepted publickey for admin from 10.1.1.1")));
}

#[test]
fn the_placeholders_travel_with_a_rule_to_another_loader() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("rule.yml"), RULE).unwrap();
    fs::write(dir.path().join("site.yml"), PLACEHOLDERS).unwrap();
    let (set, _) = RuleSet::load_dirs(&[dir.path().to_owned()], &maps()).unwrap();
    let doc = set.placeholders_yaml().expect("placeholders were loaded");
    // What the server sends an agent: the rule's own text and the placeholders.
    let text = format!("{RULE}\n---\n{doc}");
    let (rules, reports) = RuleSet::from_yaml_str(&text, Path::new("policy.yml"), &maps());
    assert!(
        reports.iter().all(|r| r.status == RuleStatus::Loaded),
        "{reports:?}"
    );
    let agent = RuleSet::new(rules);
    assert_eq!(hits(&agent, &exec("ops", "/var/www/a")), 1);
    assert_eq!(hits(&agent, &exec("bob", "/var/www/a")), 0);
    let (plain, _) = RuleSet::load_str(
        "title: x\nlogsource: {category: process_creation, product: linux}\ndetection: {s: {Image: x}, condition: s}",
        Path::new("x.yml"),
        &maps(),
    );
    assert_eq!(plain.placeholders_yaml(), None);
}

#[test]
fn expand_only_takes_plain_values() {
    let rule = "
title: T
id: expand-re
logsource: {category: process_creation, product: linux}
detection: {sel: {Image|re|expand: '%x%'}, condition: sel}
";
    let (_, report) = RuleSet::load_str(rule, Path::new("r.yml"), &maps());
    assert!(
        matches!(&report.rules[0].status, RuleStatus::Malformed(m) if m.contains("expand")),
        "{:?}",
        report.rules[0]
    );
}
