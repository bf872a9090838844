//! Directory handle → path and verdict, with a bounded cache.
//!
//! Naming a directory costs `open_by_handle_at` and a `readlink`; the cache makes that once per
//! directory. Entries go stale when a directory is renamed (its path, and every path below it,
//! change), so the reader clears the cache on every directory rename and on overflow (a rename
//! may have been lost). A directory removed before its events are read can no longer be opened;
//! to still name the events of short-lived directories, the handle of each new directory is
//! learned when its creation is read ([`DirCache::learn`]).

use std::io;

use super::group::Anchor;
use super::record::DirHandle;
use super::scope::{Children, DirScope, Scope, join};
use crate::enrich::BoundedCache;

/// Directories remembered. Each entry is a handle (about 30 bytes) and a path.
const CAPACITY: usize = 4096;

/// A named directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dir {
    pub(crate) path: Box<str>,
    pub(crate) scope: DirScope,
}

/// What became of a directory handle.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Known {
    Dir(Dir),
    /// Removed before it could be named (`ESTALE`): handles are never reused.
    Gone,
}

/// Why a directory could not be named.
#[derive(Debug)]
pub(crate) enum Unnamed {
    /// It was removed before its event was read.
    Gone,
    /// Its file system is not one this group marked (cannot happen with filesystem marks).
    UnknownFilesystem,
    /// Opening it failed otherwise.
    Failed(io::Error),
}

/// The cache, and the anchors to open handles through.
#[derive(Debug)]
pub(crate) struct DirCache {
    anchors: Vec<Anchor>,
    known: BoundedCache<Box<[u8]>, Known>,
}

impl DirCache {
    pub(crate) fn new(anchors: Vec<Anchor>) -> Self {
        Self {
            anchors,
            known: BoundedCache::new(CAPACITY),
        }
    }

    /// The directory `handle` names, from the cache or the kernel.
    pub(crate) fn resolve(
        &mut self,
        handle: DirHandle<'_>,
        scope: &Scope,
    ) -> Result<&Dir, Unnamed> {
        if self.known.get(handle.key).is_none() {
            let fsid = handle.fsid();
            let anchor = self
                .anchors
                .iter()
                .find(|a| a.fsid == fsid)
                .ok_or(Unnamed::UnknownFilesystem)?;
            let known = match anchor.path_of(handle.file_handle()) {
                Ok(path) => Known::Dir(Dir {
                    scope: scope.dir(&path),
                    path: path.into_boxed_str(),
                }),
                Err(error) if error.raw_os_error() == Some(libc::ESTALE) => Known::Gone,
                Err(error) if error.raw_os_error() == Some(libc::ENOENT) => Known::Gone,
                Err(error) => return Err(Unnamed::Failed(error)),
            };
            self.known.insert(Box::from(handle.key), known);
        }
        match self.known.get(handle.key) {
            Some(Known::Dir(dir)) => Ok(dir),
            Some(Known::Gone) => Err(Unnamed::Gone),
            // Just inserted; a cache of capacity ≥ 1 keeps it.
            None => Err(Unnamed::Gone),
        }
    }

    /// Learns the handle of the new directory `path` (on the file system `fsid`), so events
    /// inside it are named even if it is removed before they are read. Best effort: a
    /// directory already gone is simply not learned.
    pub(crate) fn learn(&mut self, fsid: [u8; 8], path: &str, scope: &Scope) {
        let Ok(handle) = Anchor::handle_of(path) else {
            return;
        };
        let mut key = Vec::with_capacity(8 + handle.len());
        key.extend_from_slice(&fsid);
        key.extend_from_slice(&handle);
        let dir = Dir {
            scope: scope.dir(path),
            path: path.into(),
        };
        self.known.insert(key.into_boxed_slice(), Known::Dir(dir));
    }

    /// Forgets every directory (after a directory rename, or lost events).
    pub(crate) fn clear(&mut self) {
        self.known.clear();
    }
}

impl Dir {
    /// The path of the entry `name` of this directory (`.`: the directory itself) if its
    /// activity is reported. Allocates only for reported entries, and for entries of
    /// directories that are partly watched.
    pub(crate) fn reported_entry(&self, name: &str, scope: &Scope) -> Option<String> {
        if name == "." {
            return self.scope.itself.then(|| self.path.to_string());
        }
        match self.scope.children {
            Children::None => None,
            Children::All => Some(join(&self.path, name)),
            Children::Check => {
                let path = join(&self.path, name);
                scope.reports(&path).then_some(path)
            }
        }
    }

    /// The path of the entry `name`, reported or not.
    pub(crate) fn entry(&self, name: &str) -> String {
        if name == "." {
            self.path.to_string()
        } else {
            join(&self.path, name)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        Scope::new(vec!["/tmp".into()], vec!["/tmp/data".into()])
    }

    fn dir(path: &str) -> Dir {
        Dir {
            path: path.into(),
            scope: scope().dir(path),
        }
    }

    #[test]
    fn entries_are_reported_by_the_directory_verdict() {
        let s = scope();
        assert_eq!(
            dir("/tmp/x").reported_entry("f", &s).as_deref(),
            Some("/tmp/x/f")
        );
        assert_eq!(dir("/tmp").reported_entry("data", &s), None);
        assert_eq!(
            dir("/tmp").reported_entry("f", &s).as_deref(),
            Some("/tmp/f")
        );
        assert_eq!(dir("/tmp/data").reported_entry("buffer.db", &s), None);
        assert_eq!(
            dir("/tmp/x").reported_entry(".", &s).as_deref(),
            Some("/tmp/x")
        );
        assert_eq!(dir("/var").reported_entry("tmp", &s), None);
        assert_eq!(dir("/").reported_entry("tmp", &s).as_deref(), Some("/tmp"));
        assert_eq!(dir("/").entry("etc"), "/etc");
        assert_eq!(dir("/tmp").entry("."), "/tmp");
    }

    #[test]
    fn an_unknown_file_system_is_not_opened() {
        let mut cache = DirCache::new(Vec::new());
        let key = [0u8; 24];
        let handle = DirHandle { key: &key };
        assert!(matches!(
            cache.resolve(handle, &scope()),
            Err(Unnamed::UnknownFilesystem)
        ));
    }
}
