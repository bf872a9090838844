//! Tests of the prefilter: which rules become candidates for an event. (That prefiltered
//! evaluation answers as evaluating every rule does is `tests/prefilter_differential.rs`.)

use std::path::Path;

use serde_json::{Value, json};
use vigil_ocsf::Event;
use vigil_ocsf::fieldmap::FieldMaps;

use super::{Automaton, Scratch};
use crate::RuleSet;
use crate::lookup::Lookups;

fn set(text: &str) -> RuleSet {
    let maps = FieldMaps::builtin().unwrap();
    let (set, report) = RuleSet::load_str(text, Path::new("p.yml"), &maps);
    assert_eq!(
        report.problems().count(),
        0,
        "{:?}",
        report.problems().next()
    );
    set
}

/// The ids of the candidate rules (always-evaluated ones included) for an event.
fn candidates(set: &RuleSet, data: Value) -> Vec<String> {
    let event = Event::from_value(data).unwrap();
    let Some(class) = set.class(event.class_uid) else {
        return Vec::new();
    };
    // Scanned as `matches` does (the class's paths prefetched, only those present visited)
    // and path by path: the same candidates.
    let mut prefetched = Lookups::new(&event.data);
    prefetched.prefetch(&class.paths);
    let mut scratch = Scratch::default();
    class.prefilter.scan(&mut prefetched, &mut scratch);
    let want = scratch.candidates.clone();
    scratch.reset();
    let mut lookups = Lookups::new(&event.data);
    class.prefilter.scan(&mut lookups, &mut scratch);
    assert_eq!(scratch.candidates, want);
    let mut local: Vec<u32> = scratch
        .candidates
        .iter()
        .copied()
        .filter(|&c| class.prefilter.holds(c, &scratch))
        .chain(class.prefilter.always().iter().copied())
        .collect();
    local.sort_unstable();
    scratch.reset();
    assert!(scratch.candidates.is_empty() && scratch.bits.iter().all(|w| *w == 0));
    local
        .into_iter()
        .map(|l| set.rules()[class.rules[l as usize]].id.clone())
        .collect()
}

fn launch(image: &str, cmd: &str) -> Value {
    json!({"class_uid": 1007, "activity_id": 1, "time": 1,
           "process": {"file": {"path": image}, "cmd_line": cmd}})
}

const RULES: &str = "
title: Curl to shell
id: curl-sh
logsource: {category: process_creation, product: linux}
detection:
    sel: {Image|endswith: /curl, CommandLine|contains: '| sh'}
    condition: sel
---
title: Encoded
id: enc
logsource: {category: process_creation, product: linux}
detection:
    sel: {CommandLine|contains|all: [' -enc ', 'powershell']}
    condition: sel
---
title: Not root
id: not-root
logsource: {category: process_creation, product: linux}
detection: {sel: {User: root}, condition: not sel}
---
title: Either
id: either
logsource: {category: process_creation, product: linux}
detection:
    a: {CommandLine|re: 'wget\\s+-q'}
    b: {Image|startswith: /opt/evil}
    condition: a or b
";

#[test]
fn only_rules_whose_literals_are_all_there_are_candidates() {
    let set = set(RULES);
    let stats = set.prefilter_stats();
    // One automaton per attribute with literals: the image and the command line.
    assert_eq!(
        (stats.rules, stats.always_evaluated, stats.automata),
        (4, 1, 2)
    );
    assert_eq!(
        candidates(&set, launch("/usr/bin/ls", "ls -la")),
        ["not-root"]
    );
    assert_eq!(
        candidates(&set, launch("/usr/bin/CURL", "curl http://x | SH")),
        ["curl-sh", "not-root"]
    );
    // One clause met is not enough.
    assert_eq!(
        candidates(&set, launch("/usr/bin/curl", "curl http://x")),
        ["not-root"]
    );
    assert_eq!(
        candidates(&set, launch("/x", "powershell -enc AAAA")),
        ["enc", "not-root"]
    );
    // Either branch of an OR: the regular expression's literal, or the prefix.
    assert_eq!(
        candidates(&set, launch("/usr/bin/wget", "wget -q http://x")),
        ["not-root", "either"]
    );
    assert_eq!(
        candidates(&set, launch("/opt/evil/x", "x")),
        ["not-root", "either"]
    );
}

#[test]
fn a_literal_counts_only_at_its_own_attribute() {
    let set = set(RULES);
    // `/curl` in the command line and `| sh` in the image: no candidate.
    assert_eq!(
        candidates(&set, launch("/bin/x| sh", "run /curl")),
        ["not-root"]
    );
    // Attributes are searched one by one: no literal spans two of them.
    let set = self::set(
        "
title: Span
id: span
logsource: {category: process_creation, product: linux}
detection: {sel: {CommandLine|contains: 'ab/cd'}, condition: sel}
",
    );
    let mut ev = launch("/cd", "xab");
    ev["process"]["cmd_line"] = json!("xab");
    assert!(candidates(&set, ev).is_empty());
}

#[test]
fn numbers_booleans_and_arrays_are_scanned_as_the_matchers_see_them() {
    let set = set("
title: Port
id: port
logsource: {category: network_connection, product: linux}
detection: {sel: {DestinationPort: 4444, Initiated: 'true'}, condition: sel}
");
    let conn = |port: Value, initiated: Value| {
        json!({"class_uid": 4001, "time": 1, "dst_endpoint": {"port": port},
               "unmapped": {"initiated": initiated}})
    };
    for port in [json!(4444), json!(4444.0), json!("4444"), json!([80, 4444])] {
        for initiated in [json!(true), json!("TRUE")] {
            assert_eq!(
                candidates(&set, conn(port.clone(), initiated.clone())),
                ["port"],
                "{port} {initiated}"
            );
        }
    }
    assert!(candidates(&set, conn(json!(4443), json!(true))).is_empty());
    assert!(candidates(&set, conn(json!([[4444]]), json!(true))).is_empty());
}

#[test]
fn branches_that_cannot_match_need_nothing_and_rules_that_cannot_are_never_evaluated() {
    // In the auditd file views, `type: EXECVE` never holds: the rule needs only the file
    // names, and is not evaluated for every file event.
    let set = set("
title: Password policy read
id: pp
logsource: {product: linux, service: auditd}
detection:
    selection_files: {type: PATH, name: [/etc/login.defs, /etc/security/pwquality.conf]}
    selection_chage: {type: EXECVE, a0: chage, a1: [--list, -l]}
    condition: 1 of selection_*
");
    let stats = set.prefilter_stats();
    assert_eq!(stats.always_evaluated, 0, "{stats:?}");
    let file = |path: &str| {
        json!({"class_uid": 1001, "activity_id": 3, "time": 1,
               "file": {"path": path}, "unmapped": {"nametype": "NORMAL"}})
    };
    // One candidate per file view whose `name` is `file.path` (all but a rename's new name).
    let mut hits = candidates(&set, file("/etc/login.defs"));
    assert_eq!(hits.len(), 4);
    hits.dedup();
    assert_eq!(hits, ["pp"]);
    assert!(candidates(&set, file("/etc/hosts")).is_empty());
    let exec = json!({"class_uid": 1007, "activity_id": 1, "time": 1,
        "process": {"file": {"path": "/usr/bin/chage"}}, "unmapped": {"argv": ["chage", "-l"]}});
    assert_eq!(candidates(&set, exec), ["pp"]);
}

#[test]
fn a_rule_with_only_one_character_literals_is_a_candidate_only_when_they_occur() {
    let set = set("
title: Short names
id: short
logsource: {category: process_creation, product: linux}
detection: {sel: {Image: [w, id]}, condition: sel}
");
    assert_eq!(set.prefilter_stats().always_evaluated, 0);
    assert!(candidates(&set, launch("/usr/bin/ls", "ls")).is_empty());
    // A candidate whenever the image holds a `w`; a match only for `w` itself.
    assert_eq!(candidates(&set, launch("/usr/bin/wget", "wget")), ["short"]);
    let matches = |image| {
        set.matches(&Event::from_value(launch(image, "x")).unwrap())
            .count()
    };
    assert_eq!(matches("/usr/bin/wget"), 0);
    assert_eq!(matches("w"), 1);
}

#[test]
fn literal_sets_too_large_for_a_dfa_are_searched_by_a_compact_automaton() {
    // 2,000 command-line literals of 40 bytes: a dense table of far more than
    // `dfa::MAX_TABLE_ENTRIES` entries.
    let word = |i: usize| format!("{i:05}-abcdefghijklmnopqrstuvwxyz-{:09}", i * 7919);
    let text: String = (0..2_000)
        .map(|i| {
            format!(
                "title: R{i}\nid: r{i}\nlogsource: {{category: process_creation, product: linux}}\n\
                 detection: {{sel: {{CommandLine|contains: '{}'}}, condition: sel}}\n---\n",
                word(i)
            )
        })
        .collect();
    let set = set(&text);
    let class = set.class(1007).unwrap();
    assert!(matches!(
        class.prefilter.automata[..],
        [Automaton::Compact(_)]
    ));
    assert!(candidates(&set, launch("/bin/x", "nothing here")).is_empty());
    let cmd = format!("run {} and {}", word(17), word(1_999).to_uppercase());
    assert_eq!(candidates(&set, launch("/bin/x", &cmd)), ["r17", "r1999"]);
    let hits: Vec<String> = set
        .matches(&Event::from_value(launch("/bin/x", &cmd)).unwrap())
        .map(|r| r.id.clone())
        .collect();
    assert_eq!(hits, ["r17", "r1999"]);
}

#[test]
fn a_literal_may_hold_a_nul() {
    let set = set("
title: NUL
id: nul
logsource: {category: process_creation, product: linux}
detection: {sel: {CommandLine|contains: \"a\\0b\"}, condition: sel}
");
    assert_eq!(set.prefilter_stats().always_evaluated, 0);
    assert!(candidates(&set, launch("/x", "a b")).is_empty());
    assert_eq!(candidates(&set, launch("/x", "xA\u{0}By")), ["nul"]);
    let hit = Event::from_value(launch("/x", "xa\u{0}by")).unwrap();
    assert_eq!(set.matches(&hit).count(), 1);
}
