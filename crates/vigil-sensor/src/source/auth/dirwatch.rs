//! inotify on the directories holding the followed files, so a line is read as soon as it is
//! written instead of at the next poll.
//!
//! Directories are watched, not files: an entry created or renamed into place (rotation, a
//! log that appears later) is reported too, and a watch survives the file being replaced. Every
//! event names the entry, so only the files concerned are read. A queue overflow, or a
//! directory that goes away, asks the reader to check every file.

use std::collections::{HashMap, HashSet};
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// Changes to entries of a watched directory: appends and truncations (`IN_MODIFY`), entries
/// created or moved in or out, and the directory itself going away.
const MASK: u32 = libc::IN_MODIFY
    | libc::IN_CREATE
    | libc::IN_MOVED_TO
    | libc::IN_MOVED_FROM
    | libc::IN_DELETE
    | libc::IN_DELETE_SELF
    | libc::IN_MOVE_SELF
    | libc::IN_ONLYDIR;
/// Size of `struct inotify_event` without its name.
const HEADER: usize = size_of::<libc::inotify_event>();

/// What changed since the last look.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Changes {
    /// These paths (directory joined with entry name) changed.
    Paths(HashSet<PathBuf>),
    /// Events were lost or a watched directory went away: check everything.
    All,
}

/// An inotify instance watching directories.
#[derive(Debug)]
pub(crate) struct DirWatch {
    fd: OwnedFd,
    dirs: HashMap<i32, PathBuf>,
}

impl DirWatch {
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: inotify_init1 takes no pointers; the result is checked.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(Self {
            fd,
            dirs: HashMap::new(),
        })
    }

    /// Whether `dir` is watched.
    pub(crate) fn watches(&self, dir: &Path) -> bool {
        self.dirs.values().any(|d| d == dir)
    }

    /// Watches `dir` (again, after it went away); fails while it does not exist.
    pub(crate) fn add(&mut self, dir: &Path) -> io::Result<()> {
        if self.watches(dir) {
            return Ok(());
        }
        let c = CString::new(dir.as_os_str().as_bytes())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: `c` is a NUL-terminated path that outlives the call.
        let wd = unsafe { libc::inotify_add_watch(self.fd.as_raw_fd(), c.as_ptr(), MASK) };
        if wd < 0 {
            return Err(io::Error::last_os_error());
        }
        self.dirs.insert(wd, dir.to_owned());
        Ok(())
    }

    /// Reads every pending event.
    pub(crate) fn changes(&mut self) -> io::Result<Changes> {
        let mut paths = HashSet::new();
        let mut all = false;
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            // SAFETY: reads at most `buf.len()` bytes into the live buffer.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast::<libc::c_void>(),
                    buf.len(),
                )
            };
            if n < 0 {
                let error = io::Error::last_os_error();
                match error.kind() {
                    io::ErrorKind::WouldBlock => break,
                    io::ErrorKind::Interrupted => continue,
                    _ => return Err(error),
                }
            }
            let n = usize::try_from(n).unwrap_or(0);
            if n == 0 {
                break;
            }
            let mut at = 0;
            while at + HEADER <= n {
                // SAFETY: HEADER bytes at `at` are within the read data; read unaligned.
                let event: libc::inotify_event =
                    unsafe { std::ptr::read_unaligned(buf[at..].as_ptr().cast()) };
                let name_len = usize::try_from(event.len).unwrap_or(usize::MAX);
                let Some(name) = buf.get(at + HEADER..at + HEADER + name_len) else {
                    all = true;
                    break;
                };
                at += HEADER + name_len;
                if event.mask & libc::IN_Q_OVERFLOW != 0 {
                    all = true;
                    continue;
                }
                if event.mask & (libc::IN_IGNORED | libc::IN_DELETE_SELF | libc::IN_MOVE_SELF) != 0
                {
                    // The directory is gone or moved: watch its path again when it is back.
                    if let Some(dir) = self.dirs.remove(&event.wd) {
                        tracing::debug!(dir = %dir.display(), "A watched log directory went away");
                        if event.mask & libc::IN_IGNORED == 0 {
                            // SAFETY: removes our own watch; an error only means it is gone.
                            let _ =
                                unsafe { libc::inotify_rm_watch(self.fd.as_raw_fd(), event.wd) };
                        }
                    }
                    all = true;
                    continue;
                }
                let name: Vec<u8> = name.iter().copied().take_while(|&b| b != 0).collect();
                if let Some(dir) = self.dirs.get(&event.wd) {
                    paths.insert(dir.join(OsString::from_vec(name)));
                }
            }
        }
        Ok(if all {
            Changes::All
        } else {
            Changes::Paths(paths)
        })
    }
}

impl AsFd for DirWatch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The directory and entry name of `path`.
pub(crate) fn split(path: &Path) -> Option<(&Path, &OsStr)> {
    Some((path.parent()?, path.file_name()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_the_entries_that_changed_and_a_vanished_directory() -> io::Result<()> {
        let dir = std::env::temp_dir().join(format!("vigil-dirwatch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let mut watch = DirWatch::new()?;
        watch.add(&dir)?;
        watch.add(&dir)?;
        assert_eq!(watch.dirs.len(), 1);
        assert_eq!(watch.changes()?, Changes::Paths(HashSet::new()));
        std::fs::write(dir.join("auth.log"), "x\n")?;
        std::fs::rename(dir.join("auth.log"), dir.join("auth.log.1"))?;
        let Changes::Paths(paths) = watch.changes()? else {
            panic!("expected paths");
        };
        assert!(paths.contains(&dir.join("auth.log")));
        assert!(paths.contains(&dir.join("auth.log.1")));
        std::fs::remove_dir_all(&dir)?;
        assert_eq!(watch.changes()?, Changes::All);
        assert!(!watch.watches(&dir));
        assert!(watch.add(&dir).is_err(), "gone");
        assert_eq!(
            split(Path::new("/var/log/auth.log")).map(|s| s.1),
            Some(OsStr::new("auth.log"))
        );
        Ok(())
    }
}
