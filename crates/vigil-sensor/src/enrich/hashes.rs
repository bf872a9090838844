//! SHA-256 of executables, read through `/proc/<pid>/exe` (the image the process runs, even
//! when its path was replaced or deleted since), cached by file identity and version so each
//! binary is hashed once while it stays the same.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;

use sha2::{Digest, Sha256};

/// Files larger than this are not hashed at exec time (it would stall capture).
pub(crate) const MAX_HASHED_BYTES: u64 = 64 * 1024 * 1024;
/// Distinct executables remembered.
const CAPACITY: usize = 4096;

/// (device, inode, mtime ns, ctime ns, size): a file's identity and version.
type Key = (u64, u64, i64, i64, u64);

/// The cache.
#[derive(Debug, Default)]
pub(crate) struct ExeHashes {
    known: HashMap<Key, String>,
}

impl ExeHashes {
    /// The SHA-256 (lowercase hex) of what `pid` executes, when it can be read.
    pub(crate) fn of_pid(&mut self, pid: u32) -> Option<String> {
        let mut f = File::open(format!("/proc/{pid}/exe")).ok()?;
        let m = f.metadata().ok()?;
        if !m.is_file() || m.len() > MAX_HASHED_BYTES {
            return None;
        }
        let key = (
            m.dev(),
            m.ino(),
            m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            m.ctime() * 1_000_000_000 + m.ctime_nsec(),
            m.len(),
        );
        if let Some(h) = self.known.get(&key) {
            return Some(h.clone());
        }
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = f.read(&mut buf).ok()?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let hex = hex::encode(hasher.finalize());
        if self.known.len() >= CAPACITY {
            // Bounded: start over rather than track recency; a miss costs one more hash.
            self.known.clear();
        }
        self.known.insert(key, hex.clone());
        Some(hex)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_executable_is_hashed_once() {
        // A child running a small system binary: the test binary itself may be larger than
        // MAX_HASHED_BYTES in a debug build.
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let pid = child.id();
        let mut h = ExeHashes::default();
        let first = h.of_pid(pid).expect("child exe");
        assert_eq!(first.len(), 64);
        assert_eq!(h.of_pid(pid).as_deref(), Some(first.as_str()));
        assert_eq!(h.known.len(), 1);
        let bytes = std::fs::read(format!("/proc/{pid}/exe")).unwrap();
        assert_eq!(first, hex::encode(Sha256::digest(&bytes)));
        child.kill().expect("kill sleep");
        child.wait().expect("reap sleep");
    }
}
