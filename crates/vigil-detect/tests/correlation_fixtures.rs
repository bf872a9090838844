//! Every correlation rule in Vigil's `rules/` folder meets its sequence fixtures, replayed
//! through a [`Correlator`].
//!
//! A fixture (`rules/fixtures/<rule file stem>.json`) of a correlation rule file holds, beside
//! the `match` / `no_match` events of its base rules, `sequence_match` and
//! `sequence_no_match`: lists of sequences. A sequence is a list of events, or an object
//! `{"description": …, "hits": n, "events": [...]}`; `hits` is how many findings the file's
//! correlations must raise (in `sequence_match`: at least one when absent; in
//! `sequence_no_match`: none). An event is an object of OCSF attributes with its `class_uid`
//! and `time` (ms), or a generator
//! `{"repeat": n, "every_ms": d, "vary": {"dst_endpoint.port": 1}, "numbered": {"user.name": "u"}, "event": {...}}`:
//! `n` copies of `event`, the i-th (from 0) at `time + i·d`, with each `vary` attribute
//! increased by `i·step` and each `numbered` attribute set to the prefix followed by `i + 1`.
//! The events of a sequence are fed in time order (a stable sort by `time`).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use vigil_detect::{
    CorrelationLimits, Correlator, LoadReport, Rule, RuleSet, RuleStatus, correlation_finding,
};
use vigil_ocsf::Event;
use vigil_ocsf::fieldmap::FieldMaps;

fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules")
}

/// Sets the attribute at a dotted path, creating objects on the way.
fn set_path(doc: &mut Value, path: &str, value: Value) {
    let mut at = doc;
    for key in path.split('.') {
        if !at.is_object() {
            *at = json!({});
        }
        at = &mut at[key];
    }
    *at = value;
}

fn get_path<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(doc, |v, k| v.get(k))
}

/// The events one fixture item stands for.
fn expand(item: &Value) -> Vec<Value> {
    let Some(n) = item.get("repeat").and_then(Value::as_u64) else {
        return vec![item.clone()];
    };
    let template = item
        .get("event")
        .cloned()
        .expect("a generator has an `event`");
    let every = item.get("every_ms").and_then(Value::as_i64).unwrap_or(0);
    let empty = serde_json::Map::new();
    let vary = item
        .get("vary")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let numbered = item
        .get("numbered")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    (0..n)
        .map(|i| {
            let i = i as i64;
            let mut ev = template.clone();
            let time = ev["time"].as_i64().expect("events have a `time`");
            ev["time"] = json!(time + i * every);
            for (path, step) in vary {
                let base = get_path(&template, path)
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                let step = step.as_i64().expect("`vary` steps are whole numbers");
                set_path(&mut ev, path, json!(base + i * step));
            }
            for (path, prefix) in numbered {
                let prefix = prefix.as_str().expect("`numbered` takes text prefixes");
                set_path(&mut ev, path, json!(format!("{prefix}{}", i + 1)));
            }
            ev
        })
        .collect()
}

/// A sequence's events, in time order, and how many hits it must raise (`None`: some).
fn sequence(seq: &Value) -> (String, Vec<Event>, Option<u64>) {
    let (description, items, hits) = match seq {
        Value::Array(items) => (String::new(), items.clone(), None),
        Value::Object(o) => (
            o.get("description")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            o.get("events")
                .and_then(Value::as_array)
                .cloned()
                .expect("a sequence object has `events`"),
            o.get("hits").and_then(Value::as_u64),
        ),
        other => panic!("a sequence is a list or an object, not {other}"),
    };
    let mut docs: Vec<Value> = items.iter().flat_map(expand).collect();
    docs.sort_by_key(|d| d["time"].as_i64().unwrap_or(0));
    let events = docs
        .into_iter()
        .map(|mut d| {
            if d.get("metadata").is_none() {
                d["metadata"] = json!({});
            }
            Event::from_value(d).expect("fixture events are valid OCSF envelopes")
        })
        .collect();
    (description, events, hits)
}

/// Replays events through a fresh correlator; the hits of the given correlations.
fn replay(set: &RuleSet, ids: &[&str], events: &[Event]) -> u64 {
    let mut correlator = Correlator::new(set, CorrelationLimits::default());
    let mut hits = 0;
    for ev in events {
        let matched: Vec<&Rule> = set.matches_all(ev).collect();
        for rule in &matched {
            if !rule.standalone {
                assert!(
                    set.matches(ev).all(|r| r.id != rule.id),
                    "{} feeds a correlation only, yet `matches` returns it",
                    rule.id
                );
            }
        }
        for hit in correlator.observe(ev, &matched) {
            if ids.contains(&hit.rule.id.as_str()) {
                let finding = correlation_finding(&hit, ev.time);
                let checked = vigil_ocsf::Event::from_record(&finding).unwrap();
                assert_eq!(schemas().check(&checked), Ok(()), "{}", hit.rule.id);
                assert_eq!(finding.finding_info.analytic.uid, hit.rule.id);
                assert!(!finding.finding_info.related_events.is_empty());
                hits += 1;
            }
        }
    }
    hits
}

/// The reports of the documents in the rule file `stem`.
fn reports_of<'a>(report: &'a LoadReport, stem: &str) -> Vec<&'a vigil_detect::RuleReport> {
    report
        .rules
        .iter()
        .filter(|r| r.path.file_stem().and_then(|s| s.to_str()) == Some(stem))
        .collect()
}

#[test]
fn every_correlation_rule_meets_its_sequence_fixtures() {
    let maps = FieldMaps::builtin().expect("built-in field maps parse");
    let (set, report) = RuleSet::load_dirs(&[rules_dir()], &maps).expect("rules are readable");
    for problem in report.problems() {
        assert!(
            matches!(&problem.status, RuleStatus::NotApplicable(r) if r.contains("has no OCSF mapping yet")),
            "only rules waiting for a field map may fail to load: {problem:?}"
        );
    }
    let mut checked = Vec::new();
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(rules_dir().join("fixtures"))
        .expect("fixtures folder")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    fixtures.sort();
    for path in fixtures {
        let fx: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("readable"))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if fx.get("sequence_match").is_none() && fx.get("sequence_no_match").is_none() {
            continue;
        }
        let stem = path.file_stem().and_then(|s| s.to_str()).expect("stem");
        let list = |key: &str| fx[key].as_array().cloned().unwrap_or_default();
        let (matching, not_matching) = (list("sequence_match"), list("sequence_no_match"));
        assert!(
            !matching.is_empty() && !not_matching.is_empty(),
            "{stem}: both sequence lists are needed"
        );
        // Parse every sequence, loaded or not, so broken fixtures show at once.
        let matching: Vec<_> = matching.iter().map(sequence).collect();
        let not_matching: Vec<_> = not_matching.iter().map(sequence).collect();
        let ids: Vec<&str> = set
            .correlations()
            .iter()
            .filter(|c| c.standalone && c.path.file_stem().and_then(|s| s.to_str()) == Some(stem))
            .map(|c| c.id.as_str())
            .collect();
        if ids.is_empty() {
            let reports = reports_of(&report, stem);
            assert!(!reports.is_empty(), "{stem}: fixture without a rule file");
            println!(
                "skipping {stem}: not loaded ({})",
                reports[0].status.reason().unwrap_or_default()
            );
            continue;
        }
        for (description, events, want) in &matching {
            let got = replay(&set, &ids, events);
            match want {
                Some(n) => assert_eq!(got, *n, "{stem}: {description}"),
                None => assert!(got > 0, "{stem}: {description}: no hit"),
            }
        }
        for (description, events, want) in &not_matching {
            assert!(
                want.is_none_or(|n| n == 0),
                "{stem}: {description}: `hits` must be 0"
            );
            assert_eq!(replay(&set, &ids, events), 0, "{stem}: {description}");
        }
        checked.extend(ids.iter().map(|s| s.to_string()));
    }
    for c in set.correlations().iter().filter(|c| c.standalone) {
        assert!(
            checked.contains(&c.id),
            "correlation {} ({}) has no sequence fixtures",
            c.id,
            c.path.display()
        );
    }
}

/// The OCSF schemas, compiled once for every fixture.
fn schemas() -> &'static vigil_ocsf::schema::Schemas {
    static SCHEMAS: std::sync::OnceLock<vigil_ocsf::schema::Schemas> = std::sync::OnceLock::new();
    SCHEMAS.get_or_init(|| vigil_ocsf::schema::Schemas::linux_edr().unwrap())
}
