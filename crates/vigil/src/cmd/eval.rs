//! `vigil rules eval`: replays a file of events through the compiled rules (offline hunting).
//!
//! Each input line is an OCSF event, or a flat Sysmon-for-Linux-style event
//! ([`vigil_ocsf::flat`]). Events run through the same [`Evaluator`] as the server's detection
//! workers, correlation rules included (state per host: `device.hostname`, else
//! `device.uid`). Findings go out as JSON lines; a closing summary line (events, findings,
//! seconds, events/s) goes to stderr, with progress every few seconds on long replays. A line
//! that is not an event is skipped and reported with its number; nothing else stops a replay.
//! With `--threads N` hosts are spread over N evaluators (a host's events stay on one, in
//! order); findings then come out in no particular order across hosts.
//!
//! An OCSF line is read for the attributes the rules need only ([`RuleSet::read_event`]) and
//! parsed whole only when it raises a finding, as the server's workers do; a flat line is
//! converted whole.

use std::collections::hash_map::DefaultHasher;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use vigil_detect::{CorrelationLimits, Evaluator, RuleSet};
use vigil_ocsf::fieldmap::FieldMaps;
use vigil_ocsf::{DetectionFinding, Event, flat};

/// `vigil rules eval` arguments.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Rule folders (searched recursively for *.yml / *.yaml).
    #[arg(long = "rules", required = true)]
    rules: Vec<PathBuf>,
    /// Events, one JSON object per line (OCSF, or flat Sysmon-style with an EventID); `-` reads
    /// standard input.
    #[arg(long)]
    events: PathBuf,
    /// Where the findings go (JSON lines); standard output when absent.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Evaluators to run in parallel, hosts spread over them (default: one).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: u16,
}

/// How many bad lines are reported one by one before only counting them.
const REPORTED_BAD_LINES: u64 = 20;
/// Progress goes to stderr this often on long replays.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// Events handed to a worker at a time.
const CHUNK: usize = 1024;

/// Runs `vigil rules eval`.
pub fn run(args: &EvalArgs) -> anyhow::Result<ExitCode> {
    let maps = FieldMaps::builtin()?;
    let (rules, report) = RuleSet::load_dirs(&args.rules, &maps)?;
    let counts = report.counts();
    if counts.malformed > 0 {
        for r in report.problems() {
            if let vigil_detect::RuleStatus::Malformed(why) = &r.status {
                eprintln!("{}: MALFORMED: {why}", r.path.display());
            }
        }
        bail!(
            "{} malformed rule(s); `vigil rules check` lists every problem",
            counts.malformed
        );
    }
    if counts.loaded == 0 {
        bail!("no rule under {:?} applies to Vigil's events", args.rules);
    }
    eprintln!(
        "eval: {} rules loaded ({} not applicable, {} unsupported)",
        counts.loaded, counts.not_applicable, counts.unsupported
    );
    let input: Box<dyn BufRead> = if args.events == Path::new("-") {
        Box::new(io::stdin().lock())
    } else {
        let file = File::open(&args.events)
            .with_context(|| format!("cannot open events file {}", args.events.display()))?;
        Box::new(BufReader::with_capacity(1 << 20, file))
    };
    let output: Box<dyn Write + Send> = match &args.out {
        Some(path) => Box::new(
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
        ),
        None => Box::new(io::stdout()),
    };
    let mut output = BufWriter::with_capacity(1 << 16, output);
    let rules = Arc::new(rules);
    let started = Instant::now();
    let tally = if args.threads == 1 {
        replay_inline(input, &mut output, &maps, rules)?
    } else {
        replay_parallel(input, &mut output, &maps, &rules, usize::from(args.threads))?
    };
    output.flush().context("cannot write the findings")?;
    let secs = started.elapsed().as_secs_f64();
    let rate = if secs > 0.0 {
        tally.events as f64 / secs
    } else {
        0.0
    };
    eprintln!(
        "eval: {} events, {} findings, {secs:.3} s, {rate:.0} events/s{}",
        tally.events,
        tally.findings,
        if tally.skipped > 0 {
            format!(" ({} lines skipped)", tally.skipped)
        } else {
            String::new()
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// What a replay counted.
#[derive(Debug, Default)]
struct Tally {
    events: u64,
    findings: u64,
    skipped: u64,
}

/// Turns input lines into events, reporting bad lines and progress.
struct Reader<'a> {
    input: Box<dyn BufRead + 'a>,
    maps: &'a FieldMaps,
    rules: &'a RuleSet,
    line: String,
    number: u64,
    skipped: u64,
    read: u64,
    last_progress: Instant,
}

impl<'a> Reader<'a> {
    fn new(input: Box<dyn BufRead + 'a>, maps: &'a FieldMaps, rules: &'a RuleSet) -> Self {
        Self {
            input,
            maps,
            rules,
            line: String::new(),
            number: 0,
            skipped: 0,
            read: 0,
            last_progress: Instant::now(),
        }
    }

    /// The next event, or `None` at the end of the input.
    fn next_event(&mut self) -> anyhow::Result<Option<Item>> {
        loop {
            self.line.clear();
            if self
                .input
                .read_line(&mut self.line)
                .context("cannot read the events")?
                == 0
            {
                return Ok(None);
            }
            self.number += 1;
            if self.line.trim().is_empty() {
                continue;
            }
            if self.last_progress.elapsed() >= PROGRESS_EVERY {
                eprintln!("eval: {} lines read …", self.number);
                self.last_progress = Instant::now();
            }
            match parse(&self.line, self.number, self.maps, self.rules) {
                Ok((event, partial)) => {
                    self.read += 1;
                    let host = host_of(&event);
                    let text = partial.then(|| std::mem::take(&mut self.line));
                    return Ok(Some(Item { host, event, text }));
                }
                Err(why) => {
                    self.skipped += 1;
                    if self.skipped <= REPORTED_BAD_LINES {
                        eprintln!("eval: line {}: {why}", self.number);
                    } else if self.skipped == REPORTED_BAD_LINES + 1 {
                        eprintln!("eval: more bad lines; counting them only");
                    }
                }
            }
        }
    }
}

/// One input event: its host, the event, and its line when the event was read in part.
struct Item {
    host: String,
    event: Event,
    /// The line an OCSF event was read from in part ([`RuleSet::read_event`]); `None` for an
    /// event parsed whole (a converted flat event).
    text: Option<String>,
}

impl Item {
    fn evaluate(&self, evaluator: &mut Evaluator, findings: &mut Vec<DetectionFinding>) {
        let now = vigil_ocsf::now_ms();
        match &self.text {
            Some(text) => evaluator.evaluate_read(
                &self.host,
                &self.event,
                text.as_bytes(),
                now,
                |_| true,
                findings,
            ),
            None => evaluator.evaluate(&self.host, &self.event, now, |_| true, findings),
        }
    }
}

/// One line as an event, and whether it was read in part (an OCSF event: only what the rules
/// read) rather than converted whole (a flat event). An event without `metadata.uid` is named
/// by its line number, so a replay of the same file gives the same finding ids.
fn parse(
    line: &str,
    number: u64,
    maps: &FieldMaps,
    rules: &RuleSet,
) -> Result<(Event, bool), String> {
    let mut doc = rules
        .read_document(line.as_bytes())
        .map_err(|e| format!("not JSON: {e}"))?;
    let partial = doc.get("class_uid").is_some() || !doc.is_object();
    if !partial {
        // Possibly a flat event: its attributes are not among those an OCSF read keeps.
        let whole: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
        doc = if flat::is_flat(&whole) {
            flat::to_ocsf(&whole, maps, vigil_ocsf::now_ms()).map_err(|e| e.to_string())?
        } else {
            whole
        };
    }
    let has_uid = doc
        .pointer("/metadata/uid")
        .and_then(serde_json::Value::as_str)
        .is_some_and(|u| !u.is_empty());
    if !has_uid && let Some(obj) = doc.as_object_mut() {
        let meta = obj
            .entry("metadata")
            .or_insert_with(|| serde_json::json!({}));
        if let Some(meta) = meta.as_object_mut() {
            meta.insert("uid".into(), format!("line-{number}").into());
        }
    }
    let event = Event::from_value(doc).map_err(|e| format!("not an OCSF event: {e}"))?;
    Ok((event, partial))
}

fn host_of(ev: &Event) -> String {
    ev.get("device.hostname")
        .or_else(|| ev.get("device.uid"))
        .and_then(serde_json::Value::as_str)
        .unwrap_or("-")
        .to_owned()
}

fn write_findings(out: &mut impl Write, findings: &[DetectionFinding]) -> anyhow::Result<()> {
    for f in findings {
        serde_json::to_writer(&mut *out, f)?;
        out.write_all(b"\n").context("cannot write the findings")?;
    }
    Ok(())
}

fn replay_inline(
    input: Box<dyn BufRead + '_>,
    out: &mut impl Write,
    maps: &FieldMaps,
    rules: Arc<RuleSet>,
) -> anyhow::Result<Tally> {
    let mut reader = Reader::new(input, maps, &rules);
    let mut evaluator = Evaluator::new(Arc::clone(&rules), CorrelationLimits::default());
    let mut findings = Vec::new();
    let mut tally = Tally::default();
    let mut newest = i64::MIN;
    while let Some(item) = reader.next_event()? {
        item.evaluate(&mut evaluator, &mut findings);
        if item.event.time > newest {
            newest = item.event.time;
            evaluator.expire(newest);
        }
        tally.findings += findings.len() as u64;
        write_findings(out, &findings)?;
        findings.clear();
    }
    tally.events = reader.read;
    tally.skipped = reader.skipped;
    Ok(tally)
}

fn replay_parallel(
    input: Box<dyn BufRead + '_>,
    out: &mut (impl Write + Send),
    maps: &FieldMaps,
    rules: &Arc<RuleSet>,
    threads: usize,
) -> anyhow::Result<Tally> {
    std::thread::scope(|scope| {
        let (found_tx, found_rx) = mpsc::sync_channel::<Vec<DetectionFinding>>(threads * 4);
        let mut workers = Vec::with_capacity(threads);
        for _ in 0..threads {
            let (tx, rx) = mpsc::sync_channel::<Vec<Item>>(4);
            let found_tx = found_tx.clone();
            let rules = Arc::clone(rules);
            scope.spawn(move || {
                let mut evaluator = Evaluator::new(rules, CorrelationLimits::default());
                let mut newest = i64::MIN;
                for chunk in rx {
                    let mut findings = Vec::new();
                    for item in &chunk {
                        item.evaluate(&mut evaluator, &mut findings);
                        if item.event.time > newest {
                            newest = item.event.time;
                            evaluator.expire(newest);
                        }
                    }
                    if !findings.is_empty() && found_tx.send(findings).is_err() {
                        return;
                    }
                }
            });
            workers.push((tx, Vec::with_capacity(CHUNK)));
        }
        drop(found_tx);
        let writer = scope.spawn(move || -> anyhow::Result<u64> {
            let mut n = 0u64;
            for findings in found_rx {
                n += findings.len() as u64;
                write_findings(out, &findings)?;
            }
            Ok(n)
        });
        let mut reader = Reader::new(input, maps, rules);
        let read = (|| -> anyhow::Result<()> {
            while let Some(item) = reader.next_event()? {
                let mut h = DefaultHasher::new();
                item.host.hash(&mut h);
                let slot = (h.finish() % threads as u64) as usize;
                let (tx, buf) = &mut workers[slot];
                buf.push(item);
                if buf.len() == CHUNK {
                    let full = std::mem::replace(buf, Vec::with_capacity(CHUNK));
                    tx.send(full).context("an evaluator stopped")?;
                }
            }
            for (tx, buf) in &mut workers {
                if !buf.is_empty() {
                    tx.send(std::mem::take(buf))
                        .context("an evaluator stopped")?;
                }
            }
            Ok(())
        })();
        drop(workers);
        let findings = writer
            .join()
            .map_err(|_| anyhow::anyhow!("the findings writer panicked"))??;
        read?;
        Ok(Tally {
            events: reader.read,
            findings,
            skipped: reader.skipped,
        })
    })
}
