//! What the sensor knows about the host's processes, for naming parents, owners and the
//! processes that fork and exit.
//!
//! The cache follows the lifecycle: seeded from `/proc` at start, a fork copies the parent's
//! image to the child, an exec replaces it, an exit moves it to a small cache of recently exited
//! processes. A miss falls back to `/proc/<pid>`, which only helps while the process is alive,
//! then to the recently exited, so the parent of a child that execs after its parent is gone
//! (a double fork, `setsid`, `nohup … &`) is still named.

use super::cache::BoundedCache;
use super::path::basename;
use super::procfs;

/// How many processes to remember. Each entry holds at most a 4 KiB command line and a path,
/// so the cache stays under about 20 MiB even when every command line is at the bound.
const PROCESS_CACHE_CAPACITY: usize = 4096;
/// How many exited processes to remember for naming orphans' parents.
const EXITED_CACHE_CAPACITY: usize = 512;

/// The image a process is running, as of its last exec (or its parent's, after a fork).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KnownProcess {
    /// Executable base name, or `comm` when the path is unknown.
    pub(crate) name: String,
    /// Absolute executable path.
    pub(crate) exe: Option<String>,
    /// Command line, arguments joined with spaces.
    pub(crate) cmd_line: Option<String>,
    /// Start time in clock ticks since boot: tells a pid from its reuse.
    pub(crate) start_ticks: Option<u64>,
    /// The parent's pid, when known.
    pub(crate) ppid: Option<u32>,
    /// Real user id, when known (as of the exec, fork or `/proc` read that named it).
    pub(crate) uid: Option<u32>,
    /// The image is the parent's, copied at fork: the process may have exec'd since without
    /// the cache having heard of it yet.
    pub(crate) forked: bool,
}

/// A bounded pid → [`KnownProcess`] cache, with `/proc` as the fallback.
#[derive(Debug)]
pub(crate) struct ProcessCache {
    cache: BoundedCache<u32, KnownProcess>,
    exited: BoundedCache<u32, KnownProcess>,
}

impl ProcessCache {
    pub(crate) fn new() -> Self {
        Self::with_capacity(PROCESS_CACHE_CAPACITY)
    }

    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            cache: BoundedCache::new(capacity),
            exited: BoundedCache::new(EXITED_CACHE_CAPACITY),
        }
    }

    /// Fills the cache with the processes running now, as far as it has room; returns how many
    /// were added. Processes that were running before the sensor then have a name, image and
    /// parent when they fork, exec children or exit.
    pub(crate) fn seed_from_proc(&mut self) -> usize {
        let mut pids = procfs::list_pids();
        // Oldest first (low pids are mostly long-lived services); the newest win if full.
        pids.sort_unstable();
        let room = self.cache.capacity().saturating_sub(self.cache.len());
        let skip = pids.len().saturating_sub(room);
        let mut added = 0;
        for pid in pids.into_iter().skip(skip) {
            if self.cache.get(&pid).is_none()
                && let Some(known) = read_from_proc(pid, None)
            {
                self.cache.insert(pid, known);
                added += 1;
            }
        }
        added
    }

    /// Records the image `pid` now runs.
    pub(crate) fn remember(&mut self, pid: u32, process: KnownProcess) {
        self.cache.insert(pid, process);
    }

    /// Forgets `pid` as a live process (it exited), unless the cached entry is a newer process
    /// with that pid; it stays findable among the recently exited.
    pub(crate) fn forget(&mut self, pid: u32, start_ticks: Option<u64>) {
        if self
            .cache
            .get(&pid)
            .is_some_and(|known| same_start(known.start_ticks, start_ticks))
            && let Some(known) = self.cache.remove(&pid)
        {
            self.exited.insert(pid, known);
        }
    }

    /// The process `pid` whose start time is `start_ticks` (when known): from the cache, else
    /// from `/proc/<pid>` (and then cached), else among the recently exited. `None` when it is
    /// unknown, or when the pid now belongs to a different process.
    pub(crate) fn lookup(&mut self, pid: u32, start_ticks: Option<u64>) -> Option<KnownProcess> {
        if let Some(known) = self.cache.get(&pid)
            && same_start(known.start_ticks, start_ticks)
        {
            return Some(known.clone());
        }
        if let Some(known) = read_from_proc(pid, start_ticks) {
            self.cache.insert(pid, known.clone());
            return Some(known);
        }
        self.exited
            .get(&pid)
            .filter(|known| same_start(known.start_ticks, start_ticks))
            .cloned()
    }

    /// What `/proc/<pid>` says now, remembered; `None` when the process is gone.
    pub(crate) fn refresh(&mut self, pid: u32) -> Option<KnownProcess> {
        let known = read_from_proc(pid, None)?;
        self.cache.insert(pid, known.clone());
        Some(known)
    }

    /// The processes above `pid` (excluded): its parent, grandparent, … up to `depth` of them,
    /// stopping at pid 1 or at the first one that cannot be found.
    pub(crate) fn ancestors(&mut self, pid: u32, depth: usize) -> Vec<(u32, KnownProcess)> {
        let mut chain = Vec::new();
        let mut next = self.cache.get(&pid).and_then(|k| k.ppid);
        while let Some(ppid) = next {
            if chain.len() >= depth || ppid == 0 || chain.iter().any(|(p, _)| *p == ppid) {
                break;
            }
            let Some(known) = self.lookup(ppid, None) else {
                break;
            };
            next = if ppid == 1 { None } else { known.ppid };
            chain.push((ppid, known));
        }
        chain
    }
}

/// What `/proc/<pid>` says, if it is the process started at `start_ticks` (when given).
fn read_from_proc(pid: u32, start_ticks: Option<u64>) -> Option<KnownProcess> {
    let stat = procfs::read_stat(pid);
    let live_ticks = stat.as_ref().map(|s| s.start_ticks);
    if !same_start(live_ticks, start_ticks) {
        return None;
    }
    let exe = procfs::read_exe(pid);
    let cmd_line = procfs::read_cmdline(pid).map(|(line, _)| line);
    if stat.is_none() && exe.is_none() && cmd_line.is_none() {
        return None;
    }
    let name = match (&exe, &stat) {
        (Some(exe), _) => basename(exe.strip_suffix(" (deleted)").unwrap_or(exe)).to_owned(),
        (None, Some(stat)) => stat.comm.clone(),
        (None, None) => String::new(),
    };
    Some(KnownProcess {
        name,
        exe,
        cmd_line,
        start_ticks: live_ticks.or(start_ticks),
        ppid: stat.map(|s| s.ppid),
        uid: procfs::read_ids(pid).map(|ids| ids.uid),
        forked: false,
    })
}

/// Two start times name the same process unless both are known and differ.
fn same_start(a: Option<u64>, b: Option<u64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(name: &str, ticks: u64, ppid: u32) -> KnownProcess {
        KnownProcess {
            name: name.into(),
            exe: Some(format!("/usr/bin/{name}")),
            cmd_line: Some(name.into()),
            start_ticks: Some(ticks),
            ppid: Some(ppid),
            uid: Some(0),
            forked: false,
        }
    }

    /// Pids that cannot exist, so a miss cannot be answered from /proc.
    const P: u32 = u32::MAX - 7;

    #[test]
    fn cached_parent_is_returned_when_start_time_matches() {
        let mut cache = ProcessCache::new();
        cache.remember(P, known("bash", 500, 1));
        assert_eq!(cache.lookup(P, Some(500)), Some(known("bash", 500, 1)));
        assert_eq!(cache.lookup(P, None), Some(known("bash", 500, 1)));
        assert_eq!(cache.lookup(P, Some(501)), None, "pid reused");
    }

    #[test]
    fn forget_evicts_only_the_same_process_and_keeps_it_as_exited() {
        let mut cache = ProcessCache::new();
        cache.remember(P, known("bash", 500, 1));
        cache.forget(P, Some(499));
        assert!(
            cache.cache.get(&P).is_some(),
            "a newer process kept its entry"
        );
        cache.forget(P, Some(500));
        assert!(cache.cache.get(&P).is_none(), "no longer live");
        // An orphan's exec still names its exited parent, but never a reused pid's.
        assert_eq!(cache.lookup(P, Some(500)), Some(known("bash", 500, 1)));
        assert_eq!(cache.lookup(P, Some(501)), None);
        cache.remember(P, known("vim", 900, 1));
        assert_eq!(cache.lookup(P, None).map(|k| k.name), Some("vim".into()));
    }

    #[test]
    fn ancestors_walk_cached_parents_newest_first() {
        let mut cache = ProcessCache::new();
        cache.remember(P, known("child", 3, P - 1));
        cache.remember(P - 1, known("bash", 2, P - 2));
        cache.remember(P - 2, known("sshd", 1, P - 3)); // P - 3 is unknown: the walk stops
        let names: Vec<_> = cache
            .ancestors(P, 8)
            .into_iter()
            .map(|(pid, k)| (pid, k.name))
            .collect();
        assert_eq!(names, vec![(P - 1, "bash".into()), (P - 2, "sshd".into())]);
        assert_eq!(cache.ancestors(P, 1).len(), 1);
        // A cycle (pid reuse gone wrong) does not loop.
        cache.remember(P - 2, known("sshd", 1, P));
        assert_eq!(cache.ancestors(P, 8).len(), 3);
    }

    #[test]
    fn uncached_process_is_read_from_proc_and_seeding_finds_ourselves() {
        let mut cache = ProcessCache::new();
        let me = std::process::id();
        let exe = std::env::current_exe()
            .ok()
            .map(|p| p.to_string_lossy().into_owned());
        assert_eq!(cache.lookup(me, None).and_then(|k| k.exe), exe);

        let mut seeded = ProcessCache::with_capacity(100_000);
        assert!(seeded.seed_from_proc() > 1);
        assert_eq!(seeded.cache.get(&me).and_then(|k| k.exe.clone()), exe);
        let ppid = procfs::read_stat(me).map(|s| s.ppid);
        let ancestors = seeded.ancestors(me, 64);
        assert_eq!(ancestors.first().map(|(pid, _)| *pid), ppid);
    }
}
