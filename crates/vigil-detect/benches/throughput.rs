//! Detection throughput on one core: events per second through `RuleSet::matches`, for the
//! SigmaHQ Linux corpus (and, for comparison, evaluating each of its rules on its own) and for
//! synthetic rule sets of 100, 1,000 and 5,000 rules, over a realistic mix of events (half
//! process launches, a quarter network connections, a fifth file activity, the rest logons;
//! one launch and one file event in a hundred suspicious), plus how long each set takes to load
//! and compile and the heap it holds; the same from the events' JSON text; then Vigil's own
//! rules with the correlation engine over a port scan.
//!
//! `cargo bench -p vigil-detect --bench throughput` (release profile). Timing uses
//! `std::time` only; figures vary with the machine, so nothing here asserts on them.
#![allow(clippy::print_stdout, clippy::cast_precision_loss)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use vigil_detect::{CorrelationLimits, Correlator, RuleSet};
use vigil_ocsf::Event;
use vigil_ocsf::fieldmap::FieldMaps;

/// CPU time each measurement runs for, and each of its trials.
const RUN: Duration = Duration::from_secs(3);
const TRIAL: Duration = Duration::from_millis(150);

/// CPU time this thread has used: from `/proc/thread-self/schedstat` (ns), so figures are
/// per core even on a busy machine; wall time where that file is missing.
struct CpuClock {
    wall: Instant,
}

impl CpuClock {
    fn start() -> Self {
        Self {
            wall: Instant::now(),
        }
    }

    fn thread_cpu() -> Option<Duration> {
        let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
        let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
        (ns > 0).then(|| Duration::from_nanos(ns))
    }

    fn now(&self) -> Duration {
        Self::thread_cpu().unwrap_or_else(|| self.wall.elapsed())
    }
}

/// Runs `pass` (which handles `n` events) in trials of [`TRIAL`] CPU time until [`RUN`] is
/// used; events per CPU second in the best trial (the machine may be shared: the best trial
/// is the one least disturbed by other work).
fn rate(n: usize, mut pass: impl FnMut()) -> f64 {
    let clock = CpuClock::start();
    let begin = clock.now();
    let mut best = 0f64;
    loop {
        let start = clock.now();
        let mut evaluated = 0usize;
        let used = loop {
            pass();
            evaluated += n;
            let used = clock.now().saturating_sub(start);
            if used >= TRIAL {
                break used;
            }
        };
        best = best.max(evaluated as f64 / used.as_secs_f64());
        if clock.now().saturating_sub(begin) >= RUN {
            return best;
        }
    }
}

/// Events per second through `matches`, and how many matches were found per pass.
fn throughput(set: &RuleSet, events: &[Event]) -> (f64, usize) {
    let per_pass: usize = events.iter().map(|e| set.matches(e).count()).sum();
    let r = rate(events.len(), || {
        for ev in events {
            black_box(set.matches(black_box(ev)).count());
        }
    });
    (r, per_pass)
}

/// Events per second evaluating every rule of the event's class on its own (no prefilter).
fn brute_force(set: &RuleSet, events: &[Event]) -> f64 {
    rate(events.len(), || {
        for ev in events {
            black_box(
                set.rules()
                    .iter()
                    .filter(|r| r.is_match(black_box(ev)))
                    .count(),
            );
        }
    })
}

/// Detection cost on events just parsed from JSON (so in cache, as in a detection worker):
/// the time to parse and evaluate, less the time to parse alone; events per CPU second.
fn just_parsed(set: &RuleSet, events: &[Event]) -> f64 {
    let docs: Vec<Vec<u8>> = events.iter().map(Event::to_json).collect();
    let parse = |d: &Vec<u8>| Event::from_json(black_box(d)).expect("valid event");
    let parse_only = rate(docs.len(), || {
        for d in &docs {
            black_box(parse(d));
        }
    });
    let both = rate(docs.len(), || {
        for d in &docs {
            let ev = parse(d);
            black_box(set.matches(&ev).count());
        }
    });
    1.0 / (1.0 / both - 1.0 / parse_only)
}

/// The whole cost from an event's JSON text to its verdict, as a detection worker or
/// `vigil rules eval` pays it: reading the attributes the rules need
/// ([`RuleSet::read_event`]) and matching; and the same with the whole document parsed
/// ([`Event::from_json`]) instead. Events per CPU second.
fn from_text(set: &RuleSet, events: &[Event]) -> (f64, f64) {
    let docs: Vec<Vec<u8>> = events.iter().map(Event::to_json).collect();
    let partial = rate(docs.len(), || {
        for d in &docs {
            let ev = set.read_event(black_box(d)).expect("valid event");
            black_box(set.matches(&ev).count());
        }
    });
    let whole = rate(docs.len(), || {
        for d in &docs {
            let ev = Event::from_json(black_box(d)).expect("valid event");
            black_box(set.matches(&ev).count());
        }
    });
    (partial, whole)
}

/// The system allocator, counting the bytes allocated less those freed while [`COUNTING`]
/// is on: what a compiled rule set holds is that count's growth while it is built (the load
/// report dropped). Off during the timed sections, which it would slow down.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static COUNTING: AtomicBool = AtomicBool::new(false);

// SAFETY: every call is passed to the system allocator unchanged; only a counter is kept.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is forwarded as is.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() && COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is forwarded as is.
        unsafe { System.dealloc(ptr, layout) };
        if COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract is forwarded as is.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() && COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            LIVE.fetch_add(new_size, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The count of bytes allocated less those freed while counting.
fn live() -> isize {
    LIVE.load(Ordering::Relaxed) as isize
}

/// What building a rule set cost: time, and the heap the set holds.
#[derive(Clone, Copy)]
struct Built {
    compile: Duration,
    heap: usize,
}

/// Builds a rule set with `load` (which drops everything but the set and a small answer),
/// measuring [`Built`].
fn build<R>(load: impl FnOnce() -> (RuleSet, R)) -> (RuleSet, R, Built) {
    let before = live();
    COUNTING.store(true, Ordering::Relaxed);
    let start = Instant::now();
    let (set, report) = load();
    let compile = start.elapsed();
    COUNTING.store(false, Ordering::Relaxed);
    let heap = usize::try_from(live().wrapping_sub(before)).unwrap_or(0);
    (set, report, Built { compile, heap })
}

fn report(name: &str, set: &RuleSet, built: Built, events: &[Event]) {
    let (rate, per_pass) = throughput(set, events);
    let stats = set.prefilter_stats();
    println!(
        "{name:<28} {:>6} rules  compile {:>9.1} ms  {:>12.0} events/s  {:>7.0} ns/event  \
         (heap {:.1} MiB; {} literals at {} attributes, {} automata of {} KiB, {} rules always evaluated, {per_pass} matches per {} events)",
        set.len(),
        built.compile.as_secs_f64() * 1e3,
        rate,
        1e9 / rate,
        built.heap as f64 / (1024.0 * 1024.0),
        stats.literals,
        stats.attributes,
        stats.automata,
        stats.automaton_bytes / 1024,
        stats.always_evaluated,
        events.len(),
    );
}

/// Whether a section runs: all by default, else those whose name contains an argument
/// (`cargo bench -p vigil-detect --bench throughput -- synthetic`).
fn wanted(name: &str) -> bool {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()))
}

/// Exactly `passes` passes of `events` through `matches`, for instruction counts under
/// `valgrind --tool=callgrind --toggle-collect='throughput::profile_passes'`.
#[inline(never)]
fn profile_passes(set: &RuleSet, events: &[Event], passes: usize) -> usize {
    let mut found = 0;
    for _ in 0..passes {
        for ev in events {
            found += black_box(set.matches(black_box(ev)).count());
        }
    }
    found
}

fn main() {
    // `VIGIL_BENCH_WRITE_EVENTS=FILE:N`: writes N events of the bench's mix as JSON lines
    // (input for `vigil rules eval`) and stops.
    if let Some((file, n)) = std::env::var("VIGIL_BENCH_WRITE_EVENTS")
        .ok()
        .and_then(|v| {
            Some((
                v.rsplit_once(':')?.0.to_owned(),
                v.rsplit_once(':')?.1.parse().ok()?,
            ))
        })
    {
        let mut out =
            std::io::BufWriter::new(std::fs::File::create(&file).expect("create the file"));
        for ev in common::realistic_events(n, 44) {
            std::io::Write::write_all(&mut out, &ev.to_json()).expect("write");
            std::io::Write::write_all(&mut out, b"\n").expect("write");
        }
        println!("{n} events written to {file}");
        return;
    }
    let maps = FieldMaps::builtin().expect("built-in field maps parse");
    // The main figures cycle through 256 distinct events (about a megabyte of parsed JSON, so
    // in the last-level cache). `just-parsed` measures events parsed right before they are
    // evaluated, as in a detection worker (parse and detect, less parse alone); `cold` cycles
    // through 20,000 events, far beyond cache.
    let events = common::realistic_events(256, 42);
    let cold = common::realistic_events(20_000, 43);
    println!(
        "vigil-detect throughput, one thread, {} distinct events cycled (50% process launches, 25% connections, 20% file activity, 5% logons; 1% of launches and files suspicious)\n",
        events.len()
    );

    let corpus = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/sigma/rules/linux"
    ));
    if !wanted("corpus") && !wanted("brute force") {
    } else if corpus.is_dir() {
        let (set, (), built) = build(|| {
            let (set, _report) = RuleSet::load_dirs(std::slice::from_ref(&corpus), &maps)
                .expect("corpus is readable");
            (set, ())
        });
        // `VIGIL_BENCH_PASSES=N`: only N fixed passes over the events (for profilers).
        if let Some(passes) = std::env::var("VIGIL_BENCH_PASSES")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            let found = profile_passes(&set, &events, passes);
            println!(
                "{passes} passes of {} events: {found} matches",
                events.len()
            );
            return;
        }
        report("SigmaHQ rules/linux", &set, built, &events);
        if wanted("parsed") {
            let r = just_parsed(&set, &cold);
            println!(
                "  same, just-parsed events     {r:>12.0} events/s  {:>7.0} ns/event",
                1e9 / r
            );
        }
        if wanted("text") {
            let (partial, whole) = from_text(&set, &events);
            println!(
                "  same, from JSON text         {partial:>12.0} events/s  {:>7.0} ns/event  (read in part, then matched; {whole:.0} events/s parsing each whole)",
                1e9 / partial
            );
        }
        if wanted("cold") {
            report("  same, 20000 events (cold)", &set, built, &cold);
        }
        if wanted("brute force") {
            let rate = brute_force(&set, &events);
            println!(
                "{:<28} {:>6} rules  {:>31.0} events/s  {:>7.0} ns/event  (every rule on its own, no prefilter)",
                "  same, brute force",
                set.len(),
                rate,
                1e9 / rate
            );
        }
    } else {
        println!("SigmaHQ corpus not found at {}: skipped", corpus.display());
    }

    for n in [100, 1_000, 5_000] {
        if !wanted(&format!("synthetic {n}")) {
            continue;
        }
        let text = common::synthetic_rules(n, n as u64);
        let (set, loaded, built) = build(|| {
            let (set, report) = RuleSet::load_str(&text, Path::new("synthetic.yml"), &maps);
            (set, report.loaded())
        });
        assert_eq!(loaded, n);
        report(&format!("synthetic {n}"), &set, built, &events);
    }

    // The correlation engine on a port scan: 1,000 ports from one scanner, among noise.
    let rules = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../rules"));
    if rules.is_dir() && wanted("correlation") {
        let (set, _) = RuleSet::load_dirs(&[rules], &maps).expect("Vigil rules are readable");
        let mut scan: Vec<Event> = (0..1_000u16)
            .map(|p| {
                common::connection(
                    ("203.0.113.9", 51_000),
                    ("10.0.0.5", p + 1),
                    true,
                    1_000 + i64::from(p),
                )
            })
            .collect();
        scan.extend(common::realistic_events(9_000, 7));
        let mut hits = 0;
        let mut rounds = 0usize;
        let r = rate(scan.len(), || {
            let mut correlator = Correlator::new(&set, CorrelationLimits::default());
            for ev in &scan {
                let matched: Vec<_> = set.matches_all(ev).collect();
                hits += correlator.observe(ev, &matched).len();
            }
            rounds += 1;
        });
        println!(
            "\nVigil rules + correlation   {r:>12.0} events/s  ({} hits per pass of {} events with a 1,000-port scan)",
            hits / rounds.max(1),
            scan.len()
        );
    }
}
