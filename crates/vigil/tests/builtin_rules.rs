//! Every rule in Vigil's own `rules/` folder loads, and matches exactly its fixture events.

use std::path::PathBuf;

use serde_json::{Value, json};
use vigil_detect::RuleSet;
use vigil_ocsf::Event;
use vigil_ocsf::fieldmap::FieldMaps;

fn rules_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../rules"))
}

/// Wraps a fixture's attributes into a Process Activity launch event.
fn launch(attrs: &Value) -> Event {
    let mut doc = json!({"class_uid": 1007, "activity_id": 1, "time": 1, "metadata": {}});
    for (k, v) in attrs.as_object().expect("fixture events are objects") {
        doc[k] = v.clone();
    }
    Event::from_value(doc).unwrap()
}

#[test]
fn every_builtin_rule_loads_and_has_fixtures_that_hold() {
    let maps = FieldMaps::builtin().unwrap();
    let (set, report) = RuleSet::load_dirs(&[rules_dir()], &maps).unwrap();
    // A rule may wait for telemetry Vigil does not map yet; anything else is a problem.
    let problems: Vec<_> = report
        .problems()
        .filter(|r| !matches!(&r.status, vigil_detect::RuleStatus::NotApplicable(why) if why.contains("has no OCSF mapping yet")))
        .collect();
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(!set.is_empty());
    for rule in set.rules() {
        let stem = rule.path.file_stem().unwrap().to_str().unwrap();
        let fixture = rules_dir().join("fixtures").join(format!("{stem}.json"));
        let text = std::fs::read_to_string(&fixture)
            .unwrap_or_else(|e| panic!("rule {stem} needs fixtures at {}: {e}", fixture.display()));
        let fx: Value = serde_json::from_str(&text).unwrap();
        let cases = |key: &str| fx[key].as_array().cloned().unwrap_or_default();
        assert!(
            !cases("match").is_empty() && !cases("no_match").is_empty(),
            "{stem}: both lists needed"
        );
        for ev in cases("match") {
            assert!(rule.is_match(&launch(&ev)), "{stem} should match {ev}");
        }
        for ev in cases("no_match") {
            assert!(!rule.is_match(&launch(&ev)), "{stem} should not match {ev}");
        }
    }
}
