//! Scanning what hosts execute: exec events in, YARA findings out, off the intake's path.

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use serde_json::Value;
use vigil_detect::yara::{
    FileFacts, FileVerdict, ScanLimits, YaraRules, YaraScanner, yara_finding,
};
use vigil_ocsf::{DetectionFinding, Event};

use super::cache::{Verdict, VerdictCache, file_key};

/// How the agent scans executed files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecScanConfig {
    /// Scanning threads.
    pub workers: usize,
    /// Execs waiting for a worker; past this, new ones are dropped and counted.
    pub queue: usize,
    /// Files whose verdict is remembered.
    pub cache_entries: usize,
    /// Size limit and timeout of one scan.
    pub limits: ScanLimits,
}

impl Default for ExecScanConfig {
    fn default() -> Self {
        Self {
            workers: 1,
            queue: 1024,
            cache_entries: 4096,
            limits: ScanLimits::default(),
        }
    }
}

/// Counters since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExecScanCounts {
    /// Exec events that named a file.
    pub execs: u64,
    /// Files read and scanned.
    pub scanned: u64,
    /// Execs answered from the cache (same file, or same content hash).
    pub cache_hits: u64,
    /// Execs dropped because the queue was full (`yara_skipped`).
    pub dropped: u64,
    /// Files not scanned: too large, or not a regular file.
    pub not_scanned: u64,
    /// Files that could not be read, or whose scan failed or timed out.
    pub errors: u64,
    /// Findings raised.
    pub findings: u64,
}

#[derive(Debug, Default)]
struct Counters {
    execs: AtomicU64,
    scanned: AtomicU64,
    cache_hits: AtomicU64,
    dropped: AtomicU64,
    not_scanned: AtomicU64,
    errors: AtomicU64,
    findings: AtomicU64,
}

/// Where findings go (the agent queues them on the priority lane).
pub type FindingSink = Arc<dyn Fn(DetectionFinding) + Send + Sync>;

/// An exec waiting to be scanned.
struct Request {
    path: PathBuf,
    pid: Option<u32>,
    sha256: Option<String>,
    event: Event,
}

struct Shared {
    cache: Mutex<VerdictCache>,
    counters: Counters,
    sink: FindingSink,
    /// When the last "queue full" warning was logged, ms since the epoch.
    last_drop_warning: AtomicI64,
}

/// Scans the file of every exec it observes on its worker threads and turns matches into
/// findings. Observing never blocks: a full queue drops the exec, counted and logged (at most
/// once a minute).
pub struct ExecScanner {
    queue: Mutex<Option<SyncSender<Request>>>,
    shared: Arc<Shared>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

/// Milliseconds between two "queue full" warnings.
const DROP_WARNING_EVERY_MS: i64 = 60_000;

impl ExecScanner {
    /// Starts the worker threads over `rules`.
    pub fn start(
        rules: Arc<YaraRules>,
        cfg: ExecScanConfig,
        sink: FindingSink,
    ) -> std::io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::sync_channel(cfg.queue.max(1));
        let rx = Arc::new(Mutex::new(rx));
        let shared = Arc::new(Shared {
            cache: Mutex::new(VerdictCache::new(cfg.cache_entries)),
            counters: Counters::default(),
            sink,
            last_drop_warning: AtomicI64::new(i64::MIN),
        });
        let mut workers = Vec::new();
        for n in 0..cfg.workers.max(1) {
            let (rules, rx, shared) = (Arc::clone(&rules), Arc::clone(&rx), Arc::clone(&shared));
            let limits = cfg.limits;
            workers.push(
                std::thread::Builder::new()
                    .name(format!("vigil-yara-{n}"))
                    .spawn(move || work(&rules, limits, &rx, &shared))?,
            );
        }
        Ok(Self {
            queue: Mutex::new(Some(tx)),
            shared,
            workers: Mutex::new(workers),
        })
    }

    /// Queues the executed file of `event` for a scan, if it is a process launch; answers at
    /// once when the event's hash has a verdict already.
    pub fn observe(&self, event: &Event) {
        let Some(request) = exec_request(event) else {
            return;
        };
        let c = &self.shared.counters;
        c.execs.fetch_add(1, Ordering::Relaxed);
        if let Some(sha) = &request.sha256 {
            let known = lock(&self.shared.cache).by_sha256(sha);
            if let Some(verdict) = known {
                c.cache_hits.fetch_add(1, Ordering::Relaxed);
                self.shared.report(&request, &verdict);
                return;
            }
        }
        let queue = lock(&self.queue);
        let Some(tx) = queue.as_ref() else { return };
        match tx.try_send(request) {
            Ok(()) => {}
            Err(TrySendError::Full(request)) => {
                let dropped = c.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                let now = vigil_ocsf::now_ms();
                let last = self.shared.last_drop_warning.load(Ordering::Relaxed);
                if now.saturating_sub(last) >= DROP_WARNING_EVERY_MS
                    && self
                        .shared
                        .last_drop_warning
                        .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                {
                    tracing::warn!(
                        yara_skipped = dropped,
                        path = %request.path.display(),
                        "YARA scan queue full: executed files go unscanned (counted in yara_skipped)"
                    );
                }
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// The counters so far.
    pub fn counts(&self) -> ExecScanCounts {
        let c = &self.shared.counters;
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ExecScanCounts {
            execs: n(&c.execs),
            scanned: n(&c.scanned),
            cache_hits: n(&c.cache_hits),
            dropped: n(&c.dropped),
            not_scanned: n(&c.not_scanned),
            errors: n(&c.errors),
            findings: n(&c.findings),
        }
    }

    /// Stops taking execs, lets the workers finish what is queued, and waits for them.
    pub fn stop(&self) {
        lock(&self.queue).take();
        let workers = std::mem::take(&mut *lock(&self.workers));
        for w in workers {
            let _ = w.join();
        }
    }
}

impl Drop for ExecScanner {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Shared {
    /// Raises a finding for each rule the verdict holds.
    fn report(&self, request: &Request, verdict: &Verdict) {
        let Verdict::Scanned {
            sha256,
            size,
            matches,
        } = verdict
        else {
            return;
        };
        if matches.is_empty() {
            return;
        }
        let file = FileFacts {
            path: request.path.display().to_string(),
            sha256: sha256.clone(),
            size: *size,
        };
        let now = vigil_ocsf::now_ms();
        for m in matches {
            tracing::warn!(rule = %m.id(), path = %file.path, sha256 = %file.sha256, event = %request.event.uid, "YARA rule matched an executed file");
            (self.sink)(yara_finding(m, &file, Some(&request.event), now));
            self.counters.findings.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The scan an event asks for: a Process Activity launch (class 1007, activity 1) naming its
/// executable.
fn exec_request(event: &Event) -> Option<Request> {
    if event.class_uid != vigil_ocsf::class::PROCESS_ACTIVITY
        || event.get("activity_id").and_then(Value::as_u64) != Some(1)
    {
        return None;
    }
    let path = event
        .get("process.file.path")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())?;
    let sha256 = event
        .get("process.file.hashes")
        .and_then(Value::as_array)
        .and_then(|hashes| {
            hashes
                .iter()
                .find(|h| h["algorithm_id"] == 3)
                .and_then(|h| h["value"].as_str())
        })
        .filter(|h| h.len() == 64)
        .map(str::to_owned);
    Some(Request {
        path: PathBuf::from(path),
        pid: event
            .get("process.pid")
            .and_then(Value::as_u64)
            .and_then(|p| u32::try_from(p).ok()),
        sha256,
        event: event.clone(),
    })
}

/// One worker: takes requests until the queue closes.
fn work(rules: &YaraRules, limits: ScanLimits, rx: &Mutex<Receiver<Request>>, shared: &Shared) {
    let mut scanner = YaraScanner::new(rules, limits);
    loop {
        // Holding the lock only to take one request: the other workers wait, not scan.
        let next = lock(rx).recv();
        let Ok(request) = next else { return };
        scan_one(&mut scanner, &request, shared);
    }
}

fn scan_one(scanner: &mut YaraScanner<'_>, request: &Request, shared: &Shared) {
    let c = &shared.counters;
    if let Some(sha) = &request.sha256 {
        // Queued before an identical file was scanned.
        let known = lock(&shared.cache).by_sha256(sha);
        if let Some(verdict) = known {
            c.cache_hits.fetch_add(1, Ordering::Relaxed);
            shared.report(request, &verdict);
            return;
        }
    }
    let image = || {
        request
            .pid
            .and_then(|pid| File::open(format!("/proc/{pid}/exe")).ok())
    };
    // The path, or the running image when the path is gone (a binary deleted after its exec).
    let file = match File::open(&request.path) {
        Ok(file) => file,
        Err(error) => match image() {
            Some(file) => file,
            None => {
                c.errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%error, path = %request.path.display(), "Cannot open an executed file to scan it");
                return;
            }
        },
    };
    let Some(mut verdict) = verdict_of(scanner, request, &file, shared) else {
        return;
    };
    // The file at the path is not what ran (replaced since, or the process lives in another
    // mount namespace): the image the process still runs is, if its hash says so.
    if let (Some(expected), Verdict::Scanned { sha256, .. }) = (&request.sha256, &*verdict)
        && !sha256.eq_ignore_ascii_case(expected)
        && let Some(file) = image()
        && let Some(v) = verdict_of(scanner, request, &file, shared)
        && matches!(&*v, Verdict::Scanned { sha256, .. } if sha256.eq_ignore_ascii_case(expected))
    {
        verdict = v;
    }
    shared.report(request, &verdict);
}

/// The verdict on `file`: remembered, or scanned now (and remembered). `None` when it could
/// not be read or scanned (counted and logged).
fn verdict_of(
    scanner: &mut YaraScanner<'_>,
    request: &Request,
    file: &File,
    shared: &Shared,
) -> Option<Arc<Verdict>> {
    let c = &shared.counters;
    let key = match file.metadata() {
        Ok(meta) => file_key(&meta),
        Err(error) => {
            c.errors.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%error, path = %request.path.display(), "Cannot stat an executed file");
            return None;
        }
    };
    let known = lock(&shared.cache).by_file(&key);
    if let Some(verdict) = known {
        c.cache_hits.fetch_add(1, Ordering::Relaxed);
        return Some(verdict);
    }
    let verdict = match scanner.scan_open(&request.path, file) {
        Ok(FileVerdict::Scanned(scan)) => {
            c.scanned.fetch_add(1, Ordering::Relaxed);
            Verdict::Scanned {
                sha256: scan.file.sha256,
                size: scan.file.size,
                matches: scan.matches,
            }
        }
        Ok(FileVerdict::Skipped(reason)) => {
            c.not_scanned.fetch_add(1, Ordering::Relaxed);
            tracing::info!(path = %request.path.display(), %reason, "Executed file not scanned");
            Verdict::Skipped(reason)
        }
        Err(error) => {
            c.errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%error, path = %request.path.display(), "YARA scan of an executed file failed");
            return None;
        }
    };
    let verdict = Arc::new(verdict);
    lock(&shared.cache).insert(key, Arc::clone(&verdict));
    Some(verdict)
}
