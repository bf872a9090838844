//! The literal prefilter changes how fast a rule set answers, never what it answers: for the
//! SigmaHQ Linux corpus, Vigil's own rules and synthetic rule sets, on realistic events and
//! on events assembled from the rules' own literals, `matches_all` agrees with evaluating
//! every rule on its own (`Rule::is_match`), and `matches` with that less the rules that only
//! feed correlations. The same holds for the events as a detection worker reads them, in part
//! from their JSON text (`RuleSet::read_event`: only the attributes the rules read).

mod common;

use std::path::{Path, PathBuf};

use vigil_detect::RuleSet;
use vigil_ocsf::Event;
use vigil_ocsf::fieldmap::FieldMaps;

fn maps() -> FieldMaps {
    FieldMaps::builtin().expect("built-in field maps parse")
}

/// Compares prefiltered and brute-force evaluation; returns how many events matched a rule.
fn agree(set: &RuleSet, events: &[Event], what: &str) -> usize {
    let mut matched = 0;
    for ev in events {
        let fast: Vec<&str> = set.matches_all(ev).map(|r| r.id.as_str()).collect();
        // A rule with several views matches once per event.
        let mut slow: Vec<&str> = set
            .rules()
            .iter()
            .filter(|r| r.is_match(ev))
            .map(|r| r.id.as_str())
            .collect();
        slow.dedup();
        assert_eq!(fast, slow, "{what}: prefilter disagrees on {}", ev.data);
        let standalone: Vec<&str> = set.matches(ev).map(|r| r.id.as_str()).collect();
        let mut slow_standalone: Vec<&str> = set
            .rules()
            .iter()
            .filter(|r| r.standalone && r.is_match(ev))
            .map(|r| r.id.as_str())
            .collect();
        slow_standalone.dedup();
        assert_eq!(standalone, slow_standalone, "{what}: {}", ev.data);
        let partial = set
            .read_event(&ev.to_json())
            .expect("an event's JSON reads back");
        assert_eq!(
            (&partial.uid, partial.class_uid, partial.time),
            (&ev.uid, ev.class_uid, ev.time)
        );
        let from_text: Vec<&str> = set.matches_all(&partial).map(|r| r.id.as_str()).collect();
        assert_eq!(
            fast, from_text,
            "{what}: the partial read disagrees on {}",
            ev.data
        );
        matched += usize::from(!fast.is_empty());
    }
    matched
}

/// The YAML text of every rule file under `dir`.
fn corpus_text(dir: &Path) -> String {
    fn walk(dir: &Path, out: &mut String) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("readable corpus")
            .flatten()
            .map(|e| e.path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "yml" || e == "yaml") {
                out.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
                out.push_str("\n---\n");
            }
        }
    }
    let mut out = String::new();
    walk(dir, &mut out);
    out
}

fn check_corpus(dir: &Path, what: &str) {
    if !dir.is_dir() {
        println!("skipping {what}: {} not found", dir.display());
        return;
    }
    let (set, _) = RuleSet::load_dirs(&[dir.to_owned()], &maps()).expect("readable");
    assert!(!set.is_empty(), "{what}: no rule loaded");
    let literals = common::detection_literals(&corpus_text(dir));
    let mut events = common::realistic_events(3_000, 1);
    events.extend(common::adversarial_events(&literals, 12_000, 2));
    let matched = agree(&set, &events, what);
    println!(
        "{what}: {} rules, {} events, {matched} matched some rule; {:?}",
        set.len(),
        events.len(),
        set.prefilter_stats()
    );
    assert!(
        matched > 100,
        "{what}: the events exercise too few rules ({matched})"
    );
}

#[test]
fn sigmahq_linux_corpus() {
    check_corpus(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/sigma/rules/linux"),
        "SigmaHQ linux",
    );
}

#[test]
fn sigmahq_extra_corpora() {
    for sub in ["rules-emerging-threats", "rules-threat-hunting"] {
        check_corpus(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../../shared/sigma")
                .join(sub),
            sub,
        );
    }
}

#[test]
fn vigil_rules() {
    check_corpus(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules"),
        "Vigil rules",
    );
}

#[test]
fn synthetic_rule_sets() {
    for (n, seed) in [(100, 7), (1_000, 8)] {
        let text = common::synthetic_rules(n, seed);
        let (set, report) = RuleSet::load_str(&text, Path::new("synthetic.yml"), &maps());
        assert_eq!(report.loaded(), n, "{:?}", report.problems().next());
        let literals = common::detection_literals(&text);
        let mut events = common::realistic_events(1_000, seed);
        events.extend(common::adversarial_events(&literals, 6_000, seed + 1));
        let matched = agree(&set, &events, &format!("{n} synthetic rules"));
        assert!(
            matched > 100,
            "{n} synthetic rules: only {matched} events matched"
        );
    }
}
