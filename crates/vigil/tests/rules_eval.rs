//! `vigil rules eval`: a file of events — OCSF and flat Sysmon-style, with bad lines among
//! them — replayed through the SigmaHQ Linux corpus and Vigil's own rules (a correlation
//! included), as an analyst hunting in exported logs would run it.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

const SIGMA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/sigma/rules/linux"
);
const OWN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../rules");

fn eval(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["rules", "eval", "--rules", SIGMA, "--rules", OWN])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run vigil");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn findings(out: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn titles(found: &[Value]) -> Vec<String> {
    let mut t: Vec<String> = found
        .iter()
        .map(|f| {
            format!(
                "{}@{}",
                f["finding_info"]["title"].as_str().unwrap(),
                f["device"]["hostname"].as_str().unwrap_or("-")
            )
        })
        .collect();
    t.sort();
    t
}

/// A base64 decode (flat, web-1), a harmless `ls` (flat), two bad lines, the same decode as
/// OCSF (db-1), and 30 refused connections from one source to 30 ports of web-2 in 30 s.
fn events() -> String {
    let mut lines = vec![
        json!({"EventID": 1, "UtcTime": "2024-03-05 10:11:12.123", "Computer": "web-1",
               "Image": "/usr/bin/base64", "CommandLine": "base64 -d /tmp/payload",
               "ParentImage": "/bin/bash", "User": "www-data"})
        .to_string(),
        json!({"EventID": 1, "UtcTime": "2024-03-05 10:11:13.000", "Computer": "web-1",
               "Image": "/usr/bin/ls", "CommandLine": "ls -la"})
        .to_string(),
        "this is not an event".to_owned(),
        json!({"EventID": 8, "Computer": "web-1"}).to_string(),
        json!({"class_uid": 1007, "activity_id": 1, "time": 1_709_633_473_000i64,
               "device": {"hostname": "db-1"},
               "process": {"file": {"path": "/usr/bin/base64"}, "cmd_line": "base64 -d x",
                           "pid": 4242, "uid": "p-4242"}})
        .to_string(),
    ];
    for port in 0..30 {
        lines.push(
            json!({"EventID": 3, "UtcTime": format!("2024-03-05 10:12:{port:02}.000"),
                   "Computer": "web-2", "Initiated": "false", "Protocol": "tcp",
                   "SourceIp": "10.9.9.9", "SourcePort": 40000 + port,
                   "DestinationIp": "10.0.0.2", "DestinationPort": 1000 + port})
            .to_string(),
        );
    }
    lines.join("\n") + "\n"
}

const EXPECTED: [&str; 3] = [
    "Decode Base64 Encoded Text@db-1",
    "Decode Base64 Encoded Text@web-1",
    "Port Scan of a Host From One Source@web-2",
];

#[test]
fn a_log_file_replays_into_findings_with_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.jsonl");
    let output = dir.path().join("findings.jsonl");
    std::fs::write(&input, events()).unwrap();
    let out = eval(
        &[
            "--events",
            input.to_str().unwrap(),
            "--out",
            output.to_str().unwrap(),
        ],
        None,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(out.stdout.is_empty(), "findings go to --out");
    let found = findings(&std::fs::read(&output).unwrap());
    assert_eq!(titles(&found), EXPECTED, "{stderr}");
    let scan = found
        .iter()
        .find(|f| f["finding_info"]["title"] == "Port Scan of a Host From One Source")
        .unwrap();
    assert_eq!(
        scan["finding_info"]["attacks"][0]["technique"]["uid"],
        "T1046"
    );
    // The OCSF line is read for what the rules need only; its finding still carries the whole
    // event as evidence, and the id the line gave it.
    let db = found
        .iter()
        .find(|f| f["device"]["hostname"] == "db-1")
        .unwrap();
    assert_eq!(db["evidences"][0]["process"]["pid"], 4242);
    assert_eq!(db["evidences"][0]["process"]["uid"], "p-4242");
    assert_eq!(db["finding_info"]["related_events"][0]["uid"], "line-5");
    // Bad lines are named by number; the summary counts what happened.
    assert!(stderr.contains("line 3: not JSON"), "{stderr}");
    assert!(
        stderr.contains("line 4: EventID 8 is not one Vigil maps"),
        "{stderr}"
    );
    let summary = stderr.lines().last().unwrap();
    assert!(
        summary.starts_with("eval: 33 events, 3 findings, ")
            && summary.contains(" events/s")
            && summary.ends_with("(2 lines skipped)"),
        "{summary}"
    );

    // The same file again: the same findings, with the same ids.
    let again = eval(&["--events", input.to_str().unwrap()], None);
    let ids = |v: &[Value]| {
        let mut ids: Vec<String> = v
            .iter()
            .map(|f| f["finding_info"]["uid"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    let base_ids = ids(&found[..2]);
    let again_found = findings(&again.stdout);
    assert!(
        base_ids.iter().all(|id| ids(&again_found).contains(id)),
        "stable finding ids"
    );
}

#[test]
fn standard_input_and_threads_give_the_same_findings() {
    let events = events();
    let one = eval(&["--events", "-"], Some(&events));
    assert!(
        one.status.success(),
        "{}",
        String::from_utf8_lossy(&one.stderr)
    );
    let four = eval(&["--events", "-", "--threads", "4"], Some(&events));
    assert!(
        four.status.success(),
        "{}",
        String::from_utf8_lossy(&four.stderr)
    );
    assert_eq!(titles(&findings(&one.stdout)), EXPECTED);
    assert_eq!(titles(&findings(&four.stdout)), EXPECTED);
}

#[test]
fn a_missing_file_or_a_malformed_rule_is_one_clear_error() {
    let out = eval(&["--events", "/nonexistent/events.jsonl"], None);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot open events file /nonexistent/events.jsonl"),
        "{stderr}"
    );

    let rules = tempfile::tempdir().unwrap();
    std::fs::write(rules.path().join("bad.yml"), "title: [unclosed\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["rules", "eval", "--events", "-", "--rules"])
        .arg(rules.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.yml: MALFORMED") && stderr.contains("1 malformed rule"),
        "{stderr}"
    );
}
