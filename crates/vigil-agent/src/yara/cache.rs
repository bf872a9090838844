//! Verdicts of files already scanned, by file identity and by content hash, bounded.

use std::collections::HashMap;
use std::fs::Metadata;
use std::hash::Hash;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

use vigil_detect::yara::{SkipReason, YaraMatch};

/// (device, inode, size, mtime ns, ctime ns): a file's identity and version. A rewrite changes
/// mtime or ctime, so a file edited in place is scanned again.
pub type FileKey = (u64, u64, u64, i64, i64);

/// The key of the file `meta` describes.
pub fn file_key(meta: &Metadata) -> FileKey {
    (
        meta.dev(),
        meta.ino(),
        meta.len(),
        meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
    )
}

/// What became of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Scanned: its content hash and size, and the rules that matched (none when clean).
    Scanned {
        /// SHA-256 of the content, lowercase hex.
        sha256: String,
        /// Bytes.
        size: u64,
        /// Matching rules.
        matches: Vec<YaraMatch>,
    },
    /// Not scanned, for this reason (remembered so that it is logged once, not at every exec).
    Skipped(SkipReason),
}

/// A map that holds at most `capacity` entries and forgets the least recently used half at a
/// time: entries live in a current and a previous generation; when the current one is full
/// it becomes the previous one (the old previous one is dropped), and a hit in the previous
/// generation moves the entry back to the current one.
#[derive(Debug)]
struct Generations<K, V> {
    current: HashMap<K, V>,
    previous: HashMap<K, V>,
    half: usize,
}

impl<K: Eq + Hash, V: Clone> Generations<K, V> {
    fn new(capacity: usize) -> Self {
        Self {
            current: HashMap::new(),
            previous: HashMap::new(),
            half: (capacity / 2).max(1),
        }
    }

    fn get(&mut self, key: &K) -> Option<V> {
        if let Some(v) = self.current.get(key) {
            return Some(v.clone());
        }
        let (key, value) = self.previous.remove_entry(key)?;
        self.insert(key, value.clone());
        Some(value)
    }

    fn insert(&mut self, key: K, value: V) {
        if self.current.len() >= self.half && !self.current.contains_key(&key) {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(key, value);
    }

    fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }
}

/// Verdicts by file identity, and scanned verdicts by content hash as well (a binary copied
/// elsewhere, or an exec whose event carries the hash, needs no scan).
#[derive(Debug)]
pub struct VerdictCache {
    by_file: Generations<FileKey, Arc<Verdict>>,
    by_sha256: Generations<String, Arc<Verdict>>,
}

impl VerdictCache {
    /// A cache of at most `capacity` files (and as many hashes).
    pub fn new(capacity: usize) -> Self {
        Self {
            by_file: Generations::new(capacity),
            by_sha256: Generations::new(capacity),
        }
    }

    /// The verdict on the file with this identity.
    pub fn by_file(&mut self, key: &FileKey) -> Option<Arc<Verdict>> {
        self.by_file.get(key)
    }

    /// The verdict on content with this SHA-256.
    pub fn by_sha256(&mut self, sha256: &str) -> Option<Arc<Verdict>> {
        self.by_sha256.get(&sha256.to_ascii_lowercase())
    }

    /// Remembers the verdict on a file.
    pub fn insert(&mut self, key: FileKey, verdict: Arc<Verdict>) {
        if let Verdict::Scanned { sha256, .. } = verdict.as_ref() {
            self.by_sha256.insert(sha256.clone(), Arc::clone(&verdict));
        }
        self.by_file.insert(key, verdict);
    }

    /// Files remembered.
    pub fn len(&self) -> usize {
        self.by_file.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scanned(sha: &str) -> Arc<Verdict> {
        Arc::new(Verdict::Scanned {
            sha256: sha.into(),
            size: 1,
            matches: Vec::new(),
        })
    }

    #[test]
    fn the_cache_stays_bounded_and_keeps_what_is_used() {
        let mut cache = VerdictCache::new(4);
        let key = |n: u64| (1, n, 0, 0, 0);
        cache.insert(key(1), scanned("a1"));
        cache.insert(key(2), scanned("a2"));
        // Full current generation: the next insert starts a new one; 1 and 2 are previous.
        cache.insert(key(3), scanned("a3"));
        assert!(cache.by_file(&key(1)).is_some(), "a hit moves 1 back");
        cache.insert(key(4), scanned("a4"));
        // Current {3, 1} was full: {3, 1} became previous, 2 was forgotten.
        assert!(cache.by_file(&key(2)).is_none());
        assert!(cache.by_file(&key(1)).is_some());
        assert!(cache.len() <= 4);
        for n in 5..100 {
            cache.insert(key(n), scanned(&format!("a{n}")));
            assert!(cache.len() <= 4);
        }
        assert!(
            cache.by_sha256("A99").is_some(),
            "hashes compare in any case"
        );
        assert!(cache.by_sha256("a5").is_none());
    }

    #[test]
    fn skipped_files_are_remembered_by_identity_only() {
        let mut cache = VerdictCache::new(8);
        let skipped = Arc::new(Verdict::Skipped(SkipReason::NotRegularFile));
        cache.insert((1, 1, 0, 0, 0), Arc::clone(&skipped));
        assert_eq!(cache.by_file(&(1, 1, 0, 0, 0)), Some(skipped));
        assert_eq!(cache.by_sha256(""), None);
    }
}
