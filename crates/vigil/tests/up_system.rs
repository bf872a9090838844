//! `vigil up` end to end: a real process on this host becomes an event and an alert in the API.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{VigilUp, is_root, nonce, wait_for};
use serde_json::Value;

const RULE_ID: &str = "1f0e6a0c-5b7d-4c61-9f55-0d9a3c2b7e10";

fn write_marker_rule(dir: &std::path::Path, marker: &str) {
    let rule = format!(
        "title: Vigil system test marker
id: {RULE_ID}
status: test
description: Matches the marker the system test puts on a command line.
tags:
    - attack.execution
    - attack.t1059.004
logsource:
    category: process_creation
    product: linux
detection:
    selection:
        Image|endswith:
            - /sh
            - /dash
        CommandLine|contains: '{marker}'
    condition: selection
level: high
"
    );
    std::fs::write(dir.join("marker.yml"), rule).unwrap();
}

fn find_by_cmdline<'a>(items: &'a Value, marker: &str) -> Option<&'a Value> {
    items["items"].as_array()?.iter().find(|ev| {
        ev["process"]["cmd_line"]
            .as_str()
            .is_some_and(|c| c.contains(marker))
    })
}

#[test]
fn process_on_host_becomes_event_and_alert() {
    if !is_root("process_on_host_becomes_event_and_alert") {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let rules = tempfile::tempdir().unwrap();
    let marker = format!("vigil-system-{}", nonce());
    write_marker_rule(rules.path(), &marker);
    let vigil = VigilUp::start(data.path(), &["--rules", rules.path().to_str().unwrap()]);
    assert!(
        vigil
            .stdout
            .iter()
            .any(|l| l.starts_with("rules: 1 loaded, 0 skipped, 0 not applicable")),
        "start-up summary missing: {:?}",
        vigil.stdout
    );

    let script = format!("true {marker}");
    let mut child = Command::new("/bin/sh")
        .args(["-c", &script])
        .spawn()
        .unwrap();
    let pid = child.id();
    assert!(child.wait().unwrap().success());

    let event = wait_for("the exec event in the API", Duration::from_secs(20), || {
        // Asked by the marker: the host runs other processes too.
        let evs = vigil.get(&format!(
            "/api/v1/events?class_uid=1007&q={marker}&limit=1000"
        ));
        // The exec, not the fork or exit of the same process (newest come first).
        let execs: Vec<_> = evs["items"]
            .as_array()?
            .iter()
            .filter(|ev| ev["launch_type_id"] == 3)
            .cloned()
            .collect();
        find_by_cmdline(&serde_json::json!({ "items": execs }), &marker).cloned()
    });
    assert_eq!(event["class_uid"], 1007);
    assert_eq!(event["activity_id"], 1);
    assert_eq!(event["process"]["pid"], pid);
    assert_eq!(event["process"]["cmd_line"], format!("/bin/sh -c {script}"));
    assert_eq!(event["actor"]["process"]["pid"], std::process::id());
    let me = std::env::current_exe().unwrap();
    assert_eq!(
        event["process"]["parent_process"]["file"]["path"],
        me.to_str().unwrap()
    );
    assert!(event["time"].as_i64().unwrap() > 0);
    assert_eq!(event["process"]["user"]["uid"], "0");

    let alert = wait_for("the alert in the API", Duration::from_secs(20), || {
        let alerts = vigil.get("/api/v1/alerts?limit=1000");
        alerts["items"]
            .as_array()?
            .iter()
            .find(|a| {
                a["finding_info"]["analytic"]["uid"] == RULE_ID
                    && find_by_cmdline(&serde_json::json!({"items": a["evidences"]}), &marker)
                        .is_some()
            })
            .cloned()
    });
    assert_eq!(alert["class_uid"], 2004);
    assert_eq!(alert["severity_id"], 4);
    let attack = &alert["finding_info"]["attacks"][0];
    assert_eq!(attack["technique"]["uid"], "T1059.004");
    assert_eq!(attack["tactic"]["uid"], "TA0002");
    assert_eq!(
        alert["finding_info"]["related_events"][0]["uid"],
        event["metadata"]["uid"]
    );

    let endpoints = vigil.get("/api/v1/endpoints");
    let ep = &endpoints["items"][0];
    assert_eq!(ep["capabilities"][0]["name"], "process");
    assert_eq!(ep["capabilities"][0]["live"], true);
    // The id `vigil up` printed for its agent is the endpoint's id in the fleet.
    let printed = vigil
        .stdout
        .iter()
        .find_map(|l| l.strip_prefix("agent: sensor "))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("vigil up names its agent");
    assert_eq!(ep["sensor_id"], printed);

    let status = vigil.interrupt();
    assert!(status.success(), "vigil up exited with {status}");
}

#[test]
fn sigma_linux_corpus_loads_with_summary() {
    if !is_root("sigma_linux_corpus_loads_with_summary") {
        return;
    }
    let corpus = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/sigma/rules/linux"
    );
    if !std::path::Path::new(corpus).is_dir() {
        eprintln!("skipping sigma_linux_corpus_loads_with_summary: shared/sigma not found");
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let vigil = VigilUp::start(
        data.path(),
        &[
            "--rules",
            corpus,
            "--rules",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../rules"),
        ],
    );
    let summary = vigil
        .stdout
        .iter()
        .find(|l| l.starts_with("rules: ") && l.contains(" loaded, "))
        .expect("a rules summary line");
    let loaded: usize = summary["rules: ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(loaded >= 100, "{summary}");
    assert!(summary.contains("not applicable"), "{summary}");
    assert!(vigil.interrupt().success());
}
