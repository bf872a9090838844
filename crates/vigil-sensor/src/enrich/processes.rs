//! What the sensor knows about processes it has seen exec, for naming parents.

use super::cache::BoundedCache;
use super::path::basename;
use super::procfs;

/// How many processes to remember. Each entry holds at most a 4 KiB command line and a path,
/// so the cache stays under about 20 MiB even when every command line is at the bound.
const PROCESS_CACHE_CAPACITY: usize = 4096;

/// The image a process is running, as of its last exec.
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
}

/// A bounded pid → [`KnownProcess`] cache, fed by exec events, with `/proc` as the fallback.
#[derive(Debug)]
pub(crate) struct ProcessCache {
    cache: BoundedCache<u32, KnownProcess>,
}

impl ProcessCache {
    pub(crate) fn new() -> Self {
        Self {
            cache: BoundedCache::new(PROCESS_CACHE_CAPACITY),
        }
    }

    /// Records the image `pid` now runs.
    pub(crate) fn remember(&mut self, pid: u32, process: KnownProcess) {
        self.cache.insert(pid, process);
    }

    /// The process `pid` whose start time is `start_ticks` (when known): from the cache if it
    /// exec'd while we watched, else from `/proc/<pid>`. `None` when it is gone, or when the
    /// pid now belongs to a different process.
    pub(crate) fn lookup(&mut self, pid: u32, start_ticks: Option<u64>) -> Option<KnownProcess> {
        if let Some(known) = self.cache.get(&pid)
            && same_start(known.start_ticks, start_ticks)
        {
            return Some(known.clone());
        }
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
            (Some(exe), _) => basename(exe).to_owned(),
            (None, Some(stat)) => stat.comm.clone(),
            (None, None) => String::new(),
        };
        let known = KnownProcess {
            name,
            exe,
            cmd_line,
            start_ticks: live_ticks.or(start_ticks),
        };
        self.cache.insert(pid, known.clone());
        Some(known)
    }
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

    fn known(name: &str, ticks: u64) -> KnownProcess {
        KnownProcess {
            name: name.into(),
            exe: Some(format!("/usr/bin/{name}")),
            cmd_line: Some(name.into()),
            start_ticks: Some(ticks),
        }
    }

    #[test]
    fn cached_parent_is_returned_when_start_time_matches() {
        let mut cache = ProcessCache::new();
        // A pid that cannot exist, so a miss cannot be answered from /proc.
        let pid = u32::MAX - 7;
        cache.remember(pid, known("bash", 500));
        assert_eq!(cache.lookup(pid, Some(500)), Some(known("bash", 500)));
        assert_eq!(cache.lookup(pid, None), Some(known("bash", 500)));
        assert_eq!(
            cache.lookup(pid, Some(501)),
            None,
            "pid reused by another process"
        );
    }

    #[test]
    fn uncached_parent_is_read_from_proc() {
        let mut cache = ProcessCache::new();
        let me = std::process::id();
        let found = cache.lookup(me, None);
        let exe = std::env::current_exe()
            .ok()
            .map(|p| p.to_string_lossy().into_owned());
        assert_eq!(found.and_then(|k| k.exe), exe);
    }
}
