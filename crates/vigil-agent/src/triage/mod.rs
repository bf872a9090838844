//! The live triage package: what runs, what it talks to, how it is pinned and what changed
//! recently, collected read-only from the host in four bounded phases.
//!
//! | phase | source | bound |
//! |---|---|---|
//! | `processes` | `/proc/[pid]/{stat,cmdline,status,exe,cwd}` | [`MAX_PROCESSES`] |
//! | `connections` | `/proc/net/{tcp,tcp6,udp,udp6}`, owners through `/proc/[pid]/fd` socket inodes | [`MAX_CONNECTIONS`] |
//! | `persistence` | cron (system, per-user), systemd units and timers, XDG autostart, rc.local, profile.d, init.d, shell rc files | [`MAX_PERSISTENCE`] |
//! | `recent_files` | files changed within [`RECENT_WINDOW_S`] under forensic directories, by `find` (or a built-in walk of the same depth, [`MAX_DEPTH`]) | [`MAX_RECENT_FILES`] |
//!
//! Each phase fails on its own: its `error` says why, the others are still collected. Nothing
//! on the host is written, deleted or signalled; the package is one JSON document (schema
//! [`SCHEMA`]) that goes to the caller (the fleet link, or `vigil triage --out`, which writes
//! it 0600). With the bounds, the worst-case package stays under [`MAX_PACKAGE_BYTES`].

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

mod files;
pub(crate) mod net;
mod persistence;
pub(crate) mod procs;

pub use files::RecentFile;
pub use net::Connection;
pub use persistence::PersistenceItem;
pub use procs::ProcessNode;

/// The package's schema version.
pub const SCHEMA: &str = "vigil.triage/1";
/// Most processes in a package.
pub const MAX_PROCESSES: usize = 4096;
/// Most connections.
pub const MAX_CONNECTIONS: usize = 2048;
/// Most persistence items.
pub const MAX_PERSISTENCE: usize = 512;
/// Most recent files.
pub const MAX_RECENT_FILES: usize = 1024;
/// How deep the recent-files search goes below each directory.
pub const MAX_DEPTH: usize = 4;
/// "Recent": changed within this many seconds (24 h).
pub const RECENT_WINDOW_S: u64 = 24 * 3600;
/// Longest command line or file excerpt kept, in bytes.
pub const MAX_TEXT: usize = 1024;
/// The bound the constants above keep a package under.
pub const MAX_PACKAGE_BYTES: usize = 4 * 1024 * 1024;

/// Where to look.
#[derive(Debug, Clone)]
pub struct TriageOptions {
    /// `/` on a live host; a test root for the file-system phases (persistence, recent files)
    /// in tests. The process and connection phases always read the running kernel.
    pub root: PathBuf,
    /// Use the built-in walk even when `find` exists.
    pub builtin_walk: bool,
}

impl Default for TriageOptions {
    fn default() -> Self {
        Self {
            root: PathBuf::from("/"),
            builtin_walk: false,
        }
    }
}

/// One phase's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Phase<T> {
    /// What was collected (possibly partial when `error` is set).
    pub items: Vec<T>,
    /// True when the phase stopped at its bound.
    pub truncated: bool,
    /// Why the phase failed, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How long it took.
    pub took_ms: u64,
}

/// The four phases.
#[derive(Debug, Clone, Serialize)]
pub struct Phases {
    /// Running processes.
    pub processes: Phase<ProcessNode>,
    /// Sockets with their owning processes.
    pub connections: Phase<Connection>,
    /// Autostart locations and what they hold.
    pub persistence: Phase<PersistenceItem>,
    /// Recently changed files.
    pub recent_files: Phase<RecentFile>,
}

/// A triage package.
#[derive(Debug, Clone, Serialize)]
pub struct Package {
    /// [`SCHEMA`].
    pub schema: &'static str,
    /// Host name.
    pub hostname: String,
    /// Kernel release.
    pub kernel_release: String,
    /// When collection started / ended (ms since the epoch).
    pub started_at: i64,
    /// When collection ended.
    pub finished_at: i64,
    /// The file-system root the file phases read.
    pub root: String,
    /// The phases.
    pub phases: Phases,
}

/// What a phase produces: items, whether it hit its bound, or why it failed.
pub(crate) type PhaseResult<T> = Result<(Vec<T>, bool), (Vec<T>, String)>;

fn run<T>(f: impl FnOnce() -> PhaseResult<T>) -> Phase<T> {
    let start = Instant::now();
    let (items, truncated, error) = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
    {
        Ok(Ok((items, truncated))) => (items, truncated, None),
        Ok(Err((items, error))) => (items, false, Some(error)),
        Err(_) => (Vec::new(), false, Some("the phase panicked".to_owned())),
    };
    Phase {
        items,
        truncated,
        error,
        took_ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
    }
}

/// Collects a package. Blocking (reads /proc and the file system): call it off async threads.
pub fn collect(opts: &TriageOptions) -> Package {
    let started_at = vigil_ocsf::now_ms();
    let host = crate::host::HostInfo::read();
    let phases = Phases {
        processes: run(procs::collect),
        connections: run(net::collect),
        persistence: run(|| persistence::collect(&opts.root)),
        recent_files: run(|| files::collect(&opts.root, opts.builtin_walk)),
    };
    Package {
        schema: SCHEMA,
        hostname: host.hostname,
        kernel_release: host.kernel_release,
        started_at,
        finished_at: vigil_ocsf::now_ms(),
        root: opts.root.display().to_string(),
        phases,
    }
}

/// Text cut to [`MAX_TEXT`] bytes on a character boundary.
pub(crate) fn cut(mut s: String) -> String {
    if s.len() > MAX_TEXT {
        let mut end = MAX_TEXT;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// `root` joined with an absolute host path.
pub(crate) fn under(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// The host path a file under `root` stands for.
pub(crate) fn host_path(root: &Path, path: &Path) -> String {
    match path.strip_prefix(root) {
        Ok(rel) => format!("/{}", rel.display()),
        Err(_) => path.display().to_string(),
    }
}
