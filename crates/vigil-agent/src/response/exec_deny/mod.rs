//! Deny execution by path or by SHA-256, with fanotify permission events (`FAN_OPEN_EXEC_PERM`
//! answered `FAN_DENY`; this kernel has no BPF LSM).
//!
//! An [`ExecGuard`] owns one fanotify group and a thread that answers its events. Every event is
//! answered, `FAN_ALLOW` unless a rule matches; anything that goes wrong while deciding (a file
//! that cannot be read, a lock, the hash) answers `FAN_ALLOW` and is logged, so the guard can
//! never stall the host's execs.
//!
//! * **Path rules** put an inode mark on the file: only execs of that file reach the guard. The
//!   rule follows the file (its inode), and while a file-system mark is in place (hash rules)
//!   an exec whose path equals a denied path is denied too.
//! * **Hash rules** need to see every exec, so while at least one exists the guard puts a
//!   file-system mark on each watched file system, and hashes each executed file once: the hash
//!   is cached under (device, inode, mtime, ctime, size). Files larger than
//!   [`MAX_HASHED_SIZE`] are allowed without hashing. The marks are removed with the last hash
//!   rule.
//!
//! The rules are kept in `<data_dir>/exec_deny.json` (0600) and loaded by [`ExecGuard::start`].
//! Each denied exec is sent, without ever blocking the guard thread, on the channel that `start`
//! returns, as a [`BlockedExec`] for the agent to turn into an event and a finding.
//!
//! Limits: a script run as `sh script.sh` is opened for reading, not executed, so it is not
//! seen; and a marked file replaced by a new one under the same name is a new inode (covered
//! again only by a hash rule or a new path rule).

mod fanotify;
mod thread;

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use self::fanotify::{Fanotify, MarkKind};
use super::persist;

/// The deny list's file in the data directory.
pub const STATE_FILE: &str = "exec_deny.json";
/// Executables larger than this are allowed without hashing (hashing them would hold the exec).
pub const MAX_HASHED_SIZE: u64 = 512 << 20;
/// How many blocked-exec reports may wait on the channel; more are counted and dropped.
pub const CHANNEL_CAPACITY: usize = 1024;
/// How many file hashes are cached before the cache is cleared.
const HASH_CACHE_MAX: usize = 16_384;
/// File system types never watched for hash rules (nothing is executed from them).
const PSEUDO_FS: &[&str] = &[
    "proc",
    "sysfs",
    "cgroup",
    "cgroup2",
    "devpts",
    "mqueue",
    "debugfs",
    "tracefs",
    "securityfs",
    "pstore",
    "bpf",
    "configfs",
    "fusectl",
    "hugetlbfs",
    "autofs",
    "binfmt_misc",
    "nsfs",
    "efivarfs",
    "selinuxfs",
    "rpc_pipefs",
    "devtmpfs",
];

/// Why a deny rule could not be added, removed or loaded.
#[derive(Debug, thiserror::Error)]
pub enum ExecDenyError {
    /// fanotify permission events are not available.
    #[error(
        "fanotify permission events are unavailable ({0}): exec denial needs root \
         (CAP_SYS_ADMIN) and a kernel built with CONFIG_FANOTIFY_ACCESS_PERMISSIONS"
    )]
    Unsupported(#[source] io::Error),
    /// The path does not name an executable file.
    #[error("cannot deny {}: {reason}", path.display())]
    BadPath {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The hash is not 64 hex digits.
    #[error("{0:?} is not a SHA-256 (expected 64 hexadecimal digits)")]
    BadHash(String),
    /// The rule would stop the agent itself.
    #[error("refusing to deny {0}: it is the Vigil agent's own executable")]
    SelfDenial(String),
    /// The mark could not be placed.
    #[error("cannot watch {}: {source}", path.display())]
    Mark {
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// No such rule.
    #[error("no deny rule for {0}")]
    NoSuchRule(String),
    /// The deny list file could not be read or written.
    #[error("deny list {}: {source}", path.display())]
    State {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The guard thread could not be started.
    #[error("cannot start the exec guard thread: {0}")]
    Thread(#[source] io::Error),
}

/// The deny rules, as persisted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenyList {
    /// Denied files, by canonical path.
    #[serde(default)]
    pub paths: BTreeSet<PathBuf>,
    /// Denied contents, lowercase hex SHA-256.
    #[serde(default)]
    pub sha256: BTreeSet<String>,
}

/// An exec the guard denied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockedExec {
    /// The file whose execution was denied.
    pub path: PathBuf,
    /// The process that tried to execute it.
    pub pid: i32,
    /// That process's command name (before the exec), when it could be read.
    pub comm: String,
    /// That process's real uid, when it could be read.
    pub uid: Option<u32>,
    /// SHA-256 of the file (empty if it could not be read).
    pub sha256: String,
    /// The rule that matched: `path:<path>` or `sha256:<hex>`.
    pub rule: String,
    /// When, ms since the epoch.
    pub time_ms: i64,
}

/// Counters of the guard's work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct GuardStats {
    /// Permission events answered.
    pub answered: u64,
    /// Events answered `FAN_DENY`.
    pub denied: u64,
    /// Files hashed (cache misses).
    pub hashed: u64,
    /// Events allowed because deciding failed.
    pub errors: u64,
    /// Blocked-exec reports dropped because the channel was full or closed.
    pub reports_dropped: u64,
}

/// Settings of an [`ExecGuard`].
#[derive(Debug, Clone)]
pub struct ExecGuardConfig {
    /// Where the deny list is kept.
    pub data_dir: PathBuf,
    /// File systems (any path on each) watched while hash rules exist; `None` means every
    /// mounted file system except pseudo ones (proc, sysfs, cgroup, …).
    pub hash_filesystems: Option<Vec<PathBuf>>,
}

/// (device, inode) of a file.
type FileId = (u64, u64);
/// (device, inode, mtime ns, ctime ns, size): a file's identity and version for the hash cache.
type CacheKey = (u64, u64, i64, i64, u64);

#[derive(Debug, Default)]
struct Rules {
    list: DenyList,
    /// Inodes of path rules, to the rule's path.
    inodes: HashMap<FileId, PathBuf>,
    /// File systems currently marked for hash rules.
    fs_marks: Vec<PathBuf>,
    cache: HashMap<CacheKey, String>,
}

#[derive(Debug, Default)]
struct Counters {
    answered: AtomicU64,
    denied: AtomicU64,
    hashed: AtomicU64,
    errors: AtomicU64,
    dropped: AtomicU64,
}

#[derive(Debug)]
struct Shared {
    group: Fanotify,
    rules: Mutex<Rules>,
    stop: AtomicBool,
    /// Set if the guard thread panicked: every exec is allowed from then on.
    failed: AtomicBool,
    counters: Counters,
    reports: mpsc::Sender<BlockedExec>,
}

impl Shared {
    fn rules(&self) -> MutexGuard<'_, Rules> {
        // A poisoned lock only means a panic elsewhere; the rule data itself stays consistent.
        self.rules.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Denies execution of files by path or content; see the module documentation. Dropping the
/// guard stops its thread and closes the group, which lifts every denial at once.
#[derive(Debug)]
pub struct ExecGuard {
    shared: Arc<Shared>,
    config: ExecGuardConfig,
    agent_exe: Option<(FileId, PathBuf)>,
    /// The agent executable's hash, computed on the first hash rule.
    agent_sha256: std::sync::OnceLock<Option<String>>,
    thread: Option<JoinHandle<()>>,
}

impl ExecGuard {
    /// Creates the fanotify group, loads the saved deny list (rules whose file is gone are kept
    /// and logged) and starts the answering thread. The receiver gets every blocked exec.
    pub fn start(
        config: ExecGuardConfig,
    ) -> Result<(Self, mpsc::Receiver<BlockedExec>), ExecDenyError> {
        let group = Fanotify::new().map_err(ExecDenyError::Unsupported)?;
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let shared = Arc::new(Shared {
            group,
            rules: Mutex::new(Rules::default()),
            stop: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            counters: Counters::default(),
            reports: tx,
        });
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("vigil-exec-guard".into())
            .spawn(move || thread::run(&thread_shared))
            .map_err(ExecDenyError::Thread)?;
        let agent_exe = std::fs::canonicalize("/proc/self/exe").ok().and_then(|p| {
            let m = std::fs::metadata(&p).ok()?;
            Some(((m.dev(), m.ino()), p))
        });
        let guard = Self {
            shared,
            config,
            agent_exe,
            agent_sha256: std::sync::OnceLock::new(),
            thread: Some(thread),
        };
        let saved: DenyList = persist::read_json(&guard.state_file())
            .map_err(|source| ExecDenyError::State {
                path: guard.state_file(),
                source,
            })?
            .unwrap_or_default();
        for path in &saved.paths {
            if let Err(error) = guard.add_path(path) {
                tracing::warn!(path = %path.display(), %error, "Saved exec deny rule not enforced");
                guard.shared.rules().list.paths.insert(path.clone());
            }
        }
        for hash in &saved.sha256 {
            guard.add_hash(hash)?;
        }
        Ok((guard, rx))
    }

    /// Whether this host can deny execs (creates and drops a scratch group and mark in `dir`).
    pub fn probe(dir: &Path) -> Result<(), ExecDenyError> {
        fanotify::probe(dir).map_err(ExecDenyError::Unsupported)
    }

    fn state_file(&self) -> PathBuf {
        self.config.data_dir.join(STATE_FILE)
    }

    fn save(&self) -> Result<(), ExecDenyError> {
        let list = self.shared.rules().list.clone();
        let path = self.state_file();
        persist::write_json(&path, &list).map_err(|source| ExecDenyError::State { path, source })
    }

    /// The rules in force.
    pub fn rules(&self) -> DenyList {
        self.shared.rules().list.clone()
    }

    /// Counters of the guard's work so far.
    pub fn stats(&self) -> GuardStats {
        let c = &self.shared.counters;
        GuardStats {
            answered: c.answered.load(Ordering::Relaxed),
            denied: c.denied.load(Ordering::Relaxed),
            hashed: c.hashed.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            reports_dropped: c.dropped.load(Ordering::Relaxed),
        }
    }

    /// Denies executing the file at `path` (symlinks resolved). Returns the canonical path.
    pub fn deny_path(&self, path: &Path) -> Result<PathBuf, ExecDenyError> {
        let canonical = self.add_path(path)?;
        self.save()?;
        Ok(canonical)
    }

    fn add_path(&self, path: &Path) -> Result<PathBuf, ExecDenyError> {
        let bad = |reason: String| ExecDenyError::BadPath {
            path: path.to_owned(),
            reason,
        };
        if !path.is_absolute() {
            return Err(bad("give an absolute path".into()));
        }
        let canonical = std::fs::canonicalize(path).map_err(|e| bad(e.to_string()))?;
        let meta = std::fs::metadata(&canonical).map_err(|e| bad(e.to_string()))?;
        if !meta.is_file() {
            return Err(bad("it is not a regular file".into()));
        }
        let id = (meta.dev(), meta.ino());
        if self.agent_exe.as_ref().is_some_and(|(a, _)| *a == id) {
            return Err(ExecDenyError::SelfDenial(canonical.display().to_string()));
        }
        self.shared
            .group
            .mark(&canonical, MarkKind::Inode, true)
            .map_err(|source| ExecDenyError::Mark {
                path: canonical.clone(),
                source,
            })?;
        let mut rules = self.shared.rules();
        rules.inodes.insert(id, canonical.clone());
        rules.list.paths.insert(canonical.clone());
        Ok(canonical)
    }

    /// Lifts a path rule (by the path given to [`deny_path`](Self::deny_path), or any path
    /// resolving to the same file).
    pub fn allow_path(&self, path: &Path) -> Result<PathBuf, ExecDenyError> {
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        let removed = {
            let mut rules = self.shared.rules();
            let before = rules.inodes.len();
            rules.inodes.retain(|_, p| *p != canonical);
            let listed = rules.list.paths.remove(&canonical);
            listed || rules.inodes.len() != before
        };
        if !removed {
            return Err(ExecDenyError::NoSuchRule(path.display().to_string()));
        }
        // The rule is gone from the table; removing the mark only spares the guard the events
        // (and fails harmlessly when the file is gone).
        let _ = self.shared.group.mark(&canonical, MarkKind::Inode, false);
        self.save()?;
        Ok(canonical)
    }

    /// Denies executing any file whose content has this SHA-256. Returns it normalised.
    pub fn deny_sha256(&self, sha256: &str) -> Result<String, ExecDenyError> {
        let hash = self.add_hash(sha256)?;
        self.save()?;
        Ok(hash)
    }

    fn add_hash(&self, sha256: &str) -> Result<String, ExecDenyError> {
        let hash = normalise_hash(sha256)?;
        let own = self.agent_sha256.get_or_init(|| {
            let (_, exe) = self.agent_exe.as_ref()?;
            hash_path(exe).ok()
        });
        if own.as_deref() == Some(hash.as_str()) {
            return Err(ExecDenyError::SelfDenial(format!("sha256 {hash}")));
        }
        let mut rules = self.shared.rules();
        if rules.fs_marks.is_empty() {
            rules.fs_marks = self.mark_filesystems()?;
        }
        rules.list.sha256.insert(hash.clone());
        Ok(hash)
    }

    /// Lifts a hash rule.
    pub fn allow_sha256(&self, sha256: &str) -> Result<String, ExecDenyError> {
        let hash = normalise_hash(sha256)?;
        {
            let mut rules = self.shared.rules();
            if !rules.list.sha256.remove(&hash) {
                return Err(ExecDenyError::NoSuchRule(format!("sha256 {hash}")));
            }
            if rules.list.sha256.is_empty() {
                for fs in std::mem::take(&mut rules.fs_marks) {
                    if let Err(error) = self.shared.group.mark(&fs, MarkKind::Filesystem, false) {
                        tracing::warn!(fs = %fs.display(), %error, "Cannot remove file-system mark");
                    }
                }
            }
        }
        self.save()?;
        Ok(hash)
    }

    /// Places file-system marks on the watched file systems; at least one must succeed.
    fn mark_filesystems(&self) -> Result<Vec<PathBuf>, ExecDenyError> {
        let wanted = match &self.config.hash_filesystems {
            Some(list) => list.clone(),
            None => mounted_filesystems(),
        };
        let mut seen = BTreeSet::new();
        let mut marked = Vec::new();
        let mut last_err = None;
        for fs in wanted {
            let Ok(meta) = std::fs::metadata(&fs) else {
                continue;
            };
            if !seen.insert(meta.dev()) {
                continue;
            }
            match self.shared.group.mark(&fs, MarkKind::Filesystem, true) {
                Ok(()) => marked.push(fs),
                Err(source) => {
                    tracing::debug!(fs = %fs.display(), error = %source, "File system not watched for hash rules");
                    last_err = Some(ExecDenyError::Mark { path: fs, source });
                }
            }
        }
        if marked.is_empty() {
            return Err(last_err.unwrap_or_else(|| ExecDenyError::Mark {
                path: PathBuf::from("/"),
                source: io::Error::other("no file system to watch"),
            }));
        }
        Ok(marked)
    }
}

impl Drop for ExecGuard {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // The group closes when the last Arc goes, which allows any event not yet answered.
    }
}

fn normalise_hash(s: &str) -> Result<String, ExecDenyError> {
    let h = s.trim().to_ascii_lowercase();
    if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(h)
    } else {
        Err(ExecDenyError::BadHash(s.to_owned()))
    }
}

/// Mount points of every mounted file system that can hold executables.
fn mounted_filesystems() -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_dev, dir, fstype) = (f.next()?, f.next()?, f.next()?);
            (!PSEUDO_FS.contains(&fstype)).then(|| PathBuf::from(unescape_mount(dir)))
        })
        .collect()
}

/// /proc/self/mounts escapes space, tab, newline and backslash as octal.
fn unescape_mount(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

fn hash_reader(mut r: impl Read) -> io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

fn hash_path(path: &Path) -> io::Result<String> {
    hash_reader(File::open(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_normalised_and_checked() {
        let h = "AB".repeat(32);
        assert_eq!(normalise_hash(&h).unwrap(), "ab".repeat(32));
        assert!(matches!(
            normalise_hash("abc"),
            Err(ExecDenyError::BadHash(_))
        ));
        assert!(matches!(
            normalise_hash(&"g".repeat(64)),
            Err(ExecDenyError::BadHash(_))
        ));
    }

    #[test]
    fn pseudo_file_systems_are_not_watched() {
        let fs = mounted_filesystems();
        assert!(fs.contains(&PathBuf::from("/")));
        assert!(!fs.contains(&PathBuf::from("/proc")));
    }

    #[test]
    fn deny_list_file_round_trips() {
        let mut l = DenyList::default();
        l.paths.insert("/tmp/x".into());
        l.sha256.insert("a".repeat(64));
        let back: DenyList = serde_json::from_str(&serde_json::to_string(&l).unwrap()).unwrap();
        assert_eq!(back, l);
    }
}
