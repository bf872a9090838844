//! Evaluating an event that no rule matches allocates nothing (a counting global allocator
//! watches this thread while the rule set runs).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::json;
use vigil_detect::{RuleSet, RuleStatus};
use vigil_ocsf::Event;
use vigil_ocsf::fieldmap::FieldMaps;

struct CountingAllocator;

thread_local! {
    /// Allocations made by this thread since counting started; `None` when not counting.
    static ALLOCATIONS: Cell<Option<usize>> = const { Cell::new(None) };
}

fn note_allocation() {
    let _ = ALLOCATIONS.try_with(|c| {
        if let Some(n) = c.get() {
            c.set(Some(n + 1));
        }
    });
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Runs `f` and returns how many allocations this thread made meanwhile.
fn allocations_during(f: impl FnOnce()) -> usize {
    ALLOCATIONS.with(|c| c.set(Some(0)));
    f();
    ALLOCATIONS.with(|c| c.replace(None)).unwrap_or(0)
}

/// Rules exercising every kind of matcher.
const RULES: &str = r#"
title: Every matcher kind
id: every-kind
logsource: {category: process_creation, product: linux}
detection:
    literal: {Image|endswith: [/nc, /ncat], CommandLine|contains|all: [' -e ', /bin/sh]}
    glob: {CommandLine: 'cat /dev/null >*sh_histor?'}
    regex: {CommandLine|re: '\s-[FTd]\s'}
    number: {ProcessId: 4242, LogonId: 0}
    text_vs_number: {ProcessId|startswith: '99'}
    windash: {CommandLine|windash|contains: ' -exec '}
    encoded: {CommandLine|base64offset|contains: '/dev/tcp/'}
    missing: {User: null, ParentImage|exists: false}
    keywords: ['mkfifo /tmp/f', 'MIMIKATZ']
    condition: 1 of them
"#;

fn rule_sets() -> Vec<RuleSet> {
    let maps = FieldMaps::builtin().expect("built-in field maps parse");
    let (rules, reports) = RuleSet::from_yaml_str(RULES, Path::new("inline.yml"), &maps);
    assert!(
        reports.iter().all(|r| r.status == RuleStatus::Loaded),
        "{reports:?}"
    );
    let mut sets = vec![RuleSet::new(rules)];
    let corpus = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/sigma/rules/linux"
    ));
    if corpus.is_dir() {
        let (set, _) = RuleSet::load_dirs(&[corpus], &maps).expect("corpus is readable");
        sets.push(set);
    } else {
        println!("skipping corpus part: shared/sigma not found");
    }
    sets
}

fn benign_events() -> Vec<Event> {
    [
        ("/usr/bin/ls", "ls -la /home/alice", 1234),
        ("/usr/bin/git", "git status --short", 5678),
        ("/usr/bin/python3", "python3 manage.py runserver 0.0.0.0:8000", 91),
        ("/usr/lib/systemd/systemd-journald", "", 1),
    ]
    .into_iter()
    .map(|(image, cmd, pid)| {
        Event::from_value(json!({
            "class_uid": 1007, "activity_id": 1, "time": 1,
            "metadata": {"uid": "e"},
            "device": {"hostname": "h", "type_id": 1, "os": {"name": "Linux", "type_id": 200}},
            "process": {
                "pid": pid, "cmd_line": cmd, "file": {"path": image, "name": "x", "type_id": 1},
                "user": {"name": "alice", "uid": "1000"}
            },
            "actor": {"process": {"pid": 1, "cmd_line": "/sbin/init", "file": {"path": "/sbin/init"}}}
        }))
        .expect("valid event")
    })
    .collect()
}

#[test]
fn evaluating_unmatched_events_allocates_nothing() {
    let sets = rule_sets();
    let events = benign_events();
    // Warm up: the regex engine fills its per-thread cache on first use.
    for set in &sets {
        for ev in &events {
            assert_eq!(
                set.matches(ev).count(),
                0,
                "a rule fired on {:?}",
                ev.get("process.cmd_line")
            );
        }
    }
    for set in &sets {
        let n = allocations_during(|| {
            for ev in &events {
                assert_eq!(set.matches(ev).count(), 0);
                assert_eq!(set.matches_all(ev).count(), 0);
            }
        });
        assert_eq!(
            n,
            0,
            "matching allocated {n} times over {} rules",
            set.len()
        );
    }
    // A rough figure for the report (debug builds are much slower than release).
    if let Some(corpus) = sets.get(1) {
        let rounds = 2_000;
        let start = Instant::now();
        for _ in 0..rounds {
            for ev in &events {
                std::hint::black_box(corpus.matches(ev).count());
            }
        }
        let per_event = start.elapsed() / (rounds * events.len() as u32);
        println!(
            "{} rules: {per_event:?} per unmatched process event",
            corpus.len()
        );
    }
}
