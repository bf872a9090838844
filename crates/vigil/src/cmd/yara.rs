//! `vigil yara check PATH…` and `vigil yara scan --rules PATH… TARGET…`: YARA rules on demand.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Subcommand};
use vigil_detect::yara::{
    DEFAULT_MAX_FILE_SIZE, FileScan, FileVerdict, ScanError, ScanLimits, SkipReason, YaraError,
    YaraRules, YaraScanner, yara_finding,
};

/// A progress line goes to stderr every this many files.
const PROGRESS_EVERY: u64 = 1000;

/// `vigil yara …`
#[derive(Debug, Subcommand)]
pub enum YaraCommand {
    /// Compile YARA rule files (folders are searched recursively for *.yar and *.yara) and
    /// print how many rules each holds. Exits 1, naming file and line, when any does not
    /// compile.
    Check {
        /// Rule files or folders.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// Scan files and folders (recursively; symbolic links inside folders are not followed)
    /// and print one line per match: `PATH  RULE  TAGS`, or the findings as JSON lines with
    /// `--json`; a summary goes to stderr. Exits 0 when nothing matched, 1 when something did,
    /// 2 on an error (rules that do not compile, a target that does not exist).
    Scan(ScanArgs),
}

/// Options of `vigil yara scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Rule files or folders, comma-separated or repeated.
    #[arg(
        long = "rules",
        required = true,
        value_delimiter = ',',
        value_name = "PATHS"
    )]
    rules: Vec<PathBuf>,
    /// Print each match as an OCSF Detection Finding (one JSON object per line).
    #[arg(long)]
    json: bool,
    /// Skip files larger than this many bytes (they are counted and named in the summary).
    #[arg(long, default_value_t = DEFAULT_MAX_FILE_SIZE, value_name = "BYTES")]
    max_file_size: u64,
    /// Seconds the scan of one file may take before it is given up (and counted).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout_secs: u64,
    /// Files and folders to scan.
    #[arg(required = true, value_name = "TARGET")]
    targets: Vec<PathBuf>,
}

/// Runs a yara subcommand.
pub fn run(cmd: YaraCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        YaraCommand::Check { paths } => check(&paths),
        YaraCommand::Scan(args) => Ok(match scan(&args) {
            Ok(true) => ExitCode::from(1),
            Ok(false) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("vigil: error: {}", crate::output::error_line(&error));
                ExitCode::from(2)
            }
        }),
    }
}

fn check(paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let rules = match YaraRules::load(paths) {
        Ok(rules) => rules,
        Err(error @ YaraError::Compile(_)) => {
            eprintln!("{error}");
            return Ok(ExitCode::FAILURE);
        }
        Err(error) => return Err(error.into()),
    };
    let summary = rules.summary();
    for file in &summary.files {
        println!(
            "{}: {} rules (namespace {})",
            file.path.display(),
            file.rules,
            file.namespace
        );
    }
    for warning in &summary.warnings {
        eprintln!("{warning}");
    }
    println!(
        "{} rules in {} files, {} warnings",
        summary.rules,
        summary.files.len(),
        summary.warnings.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// What a scan went through.
#[derive(Debug, Default)]
struct Tally {
    scanned: u64,
    bytes: u64,
    skipped: BTreeMap<&'static str, u64>,
    matches: u64,
    files_matched: u64,
}

impl Tally {
    fn skip(&mut self, why: &'static str, path: &Path, detail: &dyn std::fmt::Display) {
        *self.skipped.entry(why).or_default() += 1;
        tracing::debug!(path = %path.display(), %detail, "Not scanned");
    }

    fn summary(&self, elapsed: Duration) -> String {
        let skipped: u64 = self.skipped.values().sum();
        let why: Vec<_> = self
            .skipped
            .iter()
            .map(|(why, n)| format!("{n} {why}"))
            .collect();
        let skipped = if skipped == 0 {
            "none skipped".to_owned()
        } else {
            format!("{skipped} skipped ({})", why.join(", "))
        };
        format!(
            "yara: {} files scanned ({:.1} MB) in {:.2} s, {} matches in {} files, {skipped}",
            self.scanned,
            self.bytes as f64 / 1e6,
            elapsed.as_secs_f64(),
            self.matches,
            self.files_matched,
        )
    }
}

/// Scans every target; `Ok(true)` when something matched.
fn scan(args: &ScanArgs) -> anyhow::Result<bool> {
    for target in &args.targets {
        std::fs::symlink_metadata(target)
            .with_context(|| format!("cannot scan {}", target.display()))?;
    }
    let rules = YaraRules::load(&args.rules)?;
    let limits = ScanLimits {
        max_file_size: args.max_file_size,
        timeout: Duration::from_secs(args.timeout_secs),
    };
    let mut scanner = YaraScanner::new(&rules, limits);
    let mut tally = Tally::default();
    let mut out = std::io::stdout().lock();
    let started = Instant::now();
    for target in &args.targets {
        // A target named on the command line is followed if it is a link.
        let meta = std::fs::metadata(target)
            .with_context(|| format!("cannot scan {}", target.display()))?;
        if meta.is_dir() {
            walk(target, &mut |path| {
                scan_one(&mut scanner, path, args.json, &mut tally, &mut out)
            })?;
        } else if meta.is_file() {
            scan_one(&mut scanner, target, args.json, &mut tally, &mut out)?;
        } else {
            tally.skip("not regular files", target, &SkipReason::NotRegularFile);
        }
    }
    out.flush()?;
    eprintln!("{}", tally.summary(started.elapsed()));
    Ok(tally.matches > 0)
}

/// Calls `each` on every regular file under `dir`, depth first, in sorted order, without
/// following symbolic links; what cannot be listed is reported and passed over.
fn walk(dir: &Path, each: &mut dyn FnMut(&Path) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let mut entries: Vec<_> = match std::fs::read_dir(dir) {
        Ok(list) => list.filter_map(Result::ok).collect(),
        Err(error) => {
            eprintln!("yara: cannot list {}: {error}", dir.display());
            return Ok(());
        }
    };
    entries.sort_by_key(std::fs::DirEntry::path);
    for entry in entries {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let path = entry.path();
        if kind.is_dir() {
            walk(&path, each)?;
        } else if kind.is_file() {
            each(&path)?;
        }
    }
    Ok(())
}

fn scan_one(
    scanner: &mut YaraScanner<'_>,
    path: &Path,
    json: bool,
    tally: &mut Tally,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    // Opened only once known to be a regular file: opening a FIFO would block.
    let verdict = File::open(path)
        .map_err(|source| ScanError::Io {
            path: path.to_owned(),
            source,
        })
        .and_then(|file| scanner.scan_open(path, &file));
    match verdict {
        Ok(FileVerdict::Scanned(scan)) => {
            tally.scanned += 1;
            tally.bytes += scan.file.size;
            if !scan.matches.is_empty() {
                tally.files_matched += 1;
                tally.matches += scan.matches.len() as u64;
                print_matches(&scan, json, out)?;
            }
            if tally.scanned.is_multiple_of(PROGRESS_EVERY) {
                eprintln!("yara: {} files scanned…", tally.scanned);
            }
        }
        Ok(FileVerdict::Skipped(reason @ SkipReason::TooLarge { .. })) => {
            tally.skip("too large", path, &reason)
        }
        Ok(FileVerdict::Skipped(reason)) => tally.skip("not regular files", path, &reason),
        Err(error @ ScanError::Io { .. }) => tally.skip("unreadable", path, &error),
        Err(error @ ScanError::Timeout { .. }) => {
            eprintln!("yara: {}: {error}", path.display());
            tally.skip("timed out", path, &error)
        }
        Err(error) => {
            eprintln!("yara: {}: {error}", path.display());
            tally.skip("failed", path, &error)
        }
    }
    Ok(())
}

fn print_matches(scan: &FileScan, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let now = vigil_ocsf::now_ms();
    for m in &scan.matches {
        if json {
            let finding = yara_finding(m, &scan.file, None, now);
            serde_json::to_writer(&mut *out, &finding)?;
            writeln!(out)?;
        } else {
            let tags = if m.tags.is_empty() {
                "-".to_owned()
            } else {
                m.tags.join(",")
            };
            writeln!(out, "{}  {}  {tags}", scan.file.path, m.rule)?;
        }
    }
    Ok(())
}
