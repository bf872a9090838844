//! File activity under the configured paths, through fanotify (`FAN_REPORT_DFID_NAME`).
//!
//! One notification group with a *filesystem* mark on each distinct file system the watched
//! paths live on (mount marks cannot report directory-entry events, and the kernel cannot
//! filter a mark by subtree), asking for entry creation and deletion, close after writing,
//! attribute changes and renames, for files and directories. Each event names the directory by
//! file handle and the entry by name; the reader names the directory (cached, see `dirs`) and
//! keeps the events at or under a watched path and not under an excluded one (`scope`). The
//! sensor's own process is never reported, so the agent writing its buffer does not feed back.
//!
//! The kernel queue holds 16384 events; when the reader falls behind it overflows and the lost
//! events are counted as dropped (one per overflow). `record` parses the events, `group` owns
//! the syscalls, `moves` pairs the two halves of a rename on kernels before 5.17, and
//! `listener` is the capture thread.

mod dirs;
mod group;
mod listener;
mod moves;
mod record;
mod scope;

use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

pub(crate) use listener::run;

use crate::{FileConfig, SensorError};
use dirs::DirCache;
use group::{Anchor, BASE_MASK, FanotifyGroup, MOVES_MASK, RENAME_MASK};
use scope::{Scope, normalise};

/// How renames reach the reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Renames {
    /// One `FAN_RENAME` event with both names.
    Rename,
    /// `FAN_MOVED_FROM` then `FAN_MOVED_TO`, paired by the reader.
    Moves,
}

/// A fanotify group marked for the configured paths, ready for [`run`].
#[derive(Debug)]
pub(crate) struct FileWatch {
    group: FanotifyGroup,
    dirs: DirCache,
    scope: Scope,
    /// What the capability should say: what is watched, and any path that is not.
    pub(crate) detail: String,
}

fn step(step: &'static str) -> impl FnOnce(io::Error) -> SensorError {
    move |source| SensorError::Fanotify { step, source }
}

impl FileWatch {
    /// Creates the group and marks the file systems of `config.paths`. Fails when no group can
    /// be created (kernel before 5.9, no CAP_SYS_ADMIN) or no watched path can be marked; a
    /// path that cannot be marked while others can is left out, and said so in `detail`.
    pub(crate) fn open(config: &FileConfig) -> Result<Self, SensorError> {
        let mut notes = Vec::new();
        let mut watched = Vec::new();
        let mut anchors: Vec<(String, PathBuf)> = Vec::new();
        for path in &config.paths {
            match resolve(path) {
                Some((resolved, existing)) => {
                    if !watched.contains(&resolved) {
                        watched.push(resolved.clone());
                        anchors.push((resolved, existing));
                    }
                }
                None => notes.push(format!("{} ignored: not an absolute path", path.display())),
            }
        }
        let excluded: Vec<String> = config
            .exclude
            .iter()
            .filter_map(|path| resolve(path).map(|(resolved, _)| resolved))
            .collect();
        if watched.is_empty() {
            return Err(SensorError::Fanotify {
                step: "find a path to watch",
                source: io::Error::new(io::ErrorKind::InvalidInput, "no absolute path configured"),
            });
        }

        let group = FanotifyGroup::new().map_err(step(
            "create the fanotify group (FAN_REPORT_DFID_NAME, Linux 5.9+)",
        ))?;
        let mut renames = None;
        let mut marked: Vec<Anchor> = Vec::new();
        let mut unwatched = Vec::new();
        let mut last_error = None;
        for (path, existing) in &anchors {
            let anchor = match Anchor::open(existing) {
                Ok(anchor) => anchor,
                Err(error) => {
                    unwatched.push(format!("{path} ({error})"));
                    watched.retain(|w| w != path);
                    last_error = Some(error);
                    continue;
                }
            };
            if marked.iter().any(|m| m.fsid == anchor.fsid) {
                continue;
            }
            match mark(&group, &anchor, &mut renames) {
                Ok(()) => marked.push(anchor),
                Err(error) => {
                    unwatched.push(format!("{path} ({error})"));
                    watched.retain(|w| w != path);
                    last_error = Some(error);
                }
            }
        }
        let Some(renames) = renames.filter(|_| !marked.is_empty()) else {
            let source = last_error.unwrap_or_else(|| io::Error::other("nothing marked"));
            return Err(SensorError::Fanotify {
                step: "mark the file systems of the watched paths",
                source,
            });
        };
        let scope = Scope::new(watched, excluded);
        let mut detail = format!(
            "create, update (on close after writing), delete, rename, attribute changes under {}",
            scope.watched().join(", ")
        );
        if !scope.excluded().is_empty() {
            detail.push_str(&format!("; excluding {}", scope.excluded().join(", ")));
        }
        if renames == Renames::Moves {
            detail.push_str(
                "; renames paired from MOVED_FROM/MOVED_TO (no FAN_RENAME before Linux 5.17)",
            );
        }
        if !unwatched.is_empty() {
            detail.push_str(&format!("; not watched: {}", unwatched.join(", ")));
        }
        notes.iter().for_each(|n| {
            detail.push_str("; ");
            detail.push_str(n);
        });
        Ok(Self {
            group,
            dirs: DirCache::new(marked),
            scope,
            detail,
        })
    }
}

/// Marks the file system of `anchor`, with `FAN_RENAME` unless the kernel refused it before
/// (then, and on a first refusal, with `MOVED_FROM`/`MOVED_TO`).
fn mark(group: &FanotifyGroup, anchor: &Anchor, renames: &mut Option<Renames>) -> io::Result<()> {
    if *renames != Some(Renames::Moves) {
        match group.mark_filesystem(anchor.as_fd(), BASE_MASK | RENAME_MASK) {
            Ok(()) => {
                *renames = Some(Renames::Rename);
                return Ok(());
            }
            Err(error) if error.raw_os_error() == Some(libc::EINVAL) && renames.is_none() => {}
            Err(error) => return Err(error),
        }
    }
    group.mark_filesystem(anchor.as_fd(), BASE_MASK | MOVES_MASK)?;
    *renames = Some(Renames::Moves);
    Ok(())
}

/// A configured path as it will be matched (symbolic links resolved, normalised), and the
/// nearest part of it that exists now (to find its file system). `None` for relative paths.
fn resolve(path: &Path) -> Option<(String, PathBuf)> {
    let text = normalise(path.to_str()?)?;
    let mut existing = PathBuf::from(&text);
    let mut missing = Vec::new();
    let canonical = loop {
        match std::fs::canonicalize(&existing) {
            Ok(canonical) => break canonical,
            Err(_) => {
                let name = existing.file_name()?.to_owned();
                missing.push(name);
                if !existing.pop() {
                    return None;
                }
            }
        }
    };
    let mut resolved = canonical.clone();
    resolved.extend(missing.iter().rev());
    let resolved = normalise(resolved.to_str()?)?;
    Some((resolved, canonical))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_paths_resolve_through_links_and_missing_parts() {
        let (root, existing) = resolve(Path::new("/")).unwrap_or_else(|| panic!("/"));
        assert_eq!((root.as_str(), existing.as_path()), ("/", Path::new("/")));
        let missing = "/proc/self/vigil-none/x/";
        let (resolved, existing) =
            resolve(Path::new(missing)).unwrap_or_else(|| panic!("{missing}"));
        let own = std::fs::canonicalize("/proc/self").unwrap_or_default();
        assert_eq!(existing, own);
        assert_eq!(resolved, format!("{}/vigil-none/x", own.display()));
        assert_eq!(resolve(Path::new("etc")), None);
        let me = std::env::current_exe().unwrap_or_default();
        let (exe, _) = resolve(&me).unwrap_or_else(|| panic!("{}", me.display()));
        assert_eq!(Some(exe.as_str()), me.to_str());
    }
}
