//! YARA-X cost on this machine: compiling Vigil's rule pack, and scanning real files with it
//! (open, read, SHA-256 and scan, as `YaraScanner::scan_file` does for the agent and for
//! `vigil yara scan`), per file and per megabyte.
//!
//! `cargo bench -p vigil-detect --features yara --bench yara` (release profile). The files are
//! the regular files of `/usr/bin` (symbolic links left out), or of `VIGIL_BENCH_YARA_DIR`;
//! they are read once before timing, so the figures are for files in the page cache, as a
//! just-executed binary is. Wall time; nothing here asserts on it.
#![allow(clippy::print_stdout, clippy::cast_precision_loss)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vigil_detect::yara::{FileVerdict, ScanLimits, YaraRules, YaraScanner};

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let pack = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules/yara");
    let started = Instant::now();
    let rules = YaraRules::load(&[pack]).expect("the pack compiles");
    println!(
        "compile: {} rules from {} files in {:.1} ms",
        rules.len(),
        rules.summary().files.len(),
        started.elapsed().as_secs_f64() * 1e3
    );

    let dir = std::env::var("VIGIL_BENCH_YARA_DIR").unwrap_or_else(|_| "/usr/bin".into());
    let files = files(Path::new(&dir));
    let limits = ScanLimits::default();
    // Warm the page cache.
    for f in &files {
        let _ = std::fs::read(f);
    }
    let mut scanner = YaraScanner::new(&rules, limits);
    let mut times = Vec::with_capacity(files.len());
    let (mut bytes, mut skipped, mut failed, mut matched) = (0u64, 0usize, 0usize, 0usize);
    let all = Instant::now();
    for f in &files {
        let t = Instant::now();
        let verdict = scanner.scan_file(f);
        let took = t.elapsed();
        match verdict {
            Ok(FileVerdict::Scanned(scan)) => {
                times.push(took);
                bytes += scan.file.size;
                if !scan.matches.is_empty() {
                    matched += 1;
                    let ids: Vec<_> = scan.matches.iter().map(|m| m.id()).collect();
                    println!("match: {} {ids:?}", f.display());
                }
            }
            Ok(FileVerdict::Skipped(_)) => skipped += 1,
            Err(_) => failed += 1,
        }
    }
    let total = all.elapsed();
    times.sort();
    let n = times.len();
    let mean = times.iter().sum::<Duration>() / u32::try_from(n.max(1)).unwrap_or(u32::MAX);
    println!(
        "scan_file over {dir}: {n} files, {:.1} MB in {:.2} s ({skipped} skipped, {failed} \
         unreadable, {matched} matched)",
        bytes as f64 / 1e6,
        total.as_secs_f64()
    );
    println!(
        "  per file: mean {:.0} µs, p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs; {:.0} MB/s",
        micros(mean),
        micros(percentile(&times, 0.5)),
        micros(percentile(&times, 0.99)),
        micros(percentile(&times, 1.0)),
        bytes as f64 / 1e6 / total.as_secs_f64()
    );

    // The same bytes without file I/O or hashing: the scan alone, on one larger file.
    let largest = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok().map(|m| (m.len(), f)))
        .filter(|(len, _)| *len <= limits.max_file_size)
        .max();
    if let Some((len, path)) = largest {
        let data = std::fs::read(path).expect("readable");
        let runs = 20;
        let t = Instant::now();
        for _ in 0..runs {
            let _ = std::hint::black_box(scanner.scan_bytes(&data));
        }
        let each = t.elapsed() / runs;
        println!(
            "scan_bytes of {} ({:.1} MB): {:.2} ms, {:.0} MB/s",
            path.display(),
            len as f64 / 1e6,
            each.as_secs_f64() * 1e3,
            len as f64 / 1e6 / each.as_secs_f64()
        );
    }
    let t = Instant::now();
    let scanners = 100;
    for _ in 0..scanners {
        std::hint::black_box(YaraScanner::new(&rules, limits));
    }
    println!("YaraScanner::new: {:.0} µs", micros(t.elapsed() / scanners));
}
