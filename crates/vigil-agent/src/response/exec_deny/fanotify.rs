//! The raw fanotify calls exec denial needs (libc; `nix` has no permission-event support that
//! fits). Checked against Linux 6.18: `FAN_CLASS_CONTENT` groups with `FAN_OPEN_EXEC_PERM`
//! marks, answered with `FAN_ALLOW` / `FAN_DENY`.

use std::ffi::CString;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

/// A fanotify group of class `FAN_CLASS_CONTENT` (permission events), non-blocking.
#[derive(Debug)]
pub(crate) struct Fanotify {
    fd: OwnedFd,
}

/// What a mark covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MarkKind {
    /// The one inode a path names (symlinks followed, like exec does).
    Inode,
    /// The whole file system the path is on.
    Filesystem,
}

/// One permission event read from the group. The file descriptor is closed on drop.
#[derive(Debug)]
pub(crate) struct PermEvent {
    /// An open, read-only descriptor of the file being executed.
    pub file: OwnedFd,
    /// The process asking.
    pub pid: i32,
    /// The event mask.
    pub mask: u64,
}

impl Fanotify {
    /// A new content-class group. Needs CAP_SYS_ADMIN and a kernel with
    /// `CONFIG_FANOTIFY_ACCESS_PERMISSIONS`.
    pub fn new() -> io::Result<Self> {
        let flags = libc::FAN_CLASS_CONTENT | libc::FAN_CLOEXEC | libc::FAN_NONBLOCK;
        let event_flags = (libc::O_RDONLY | libc::O_LARGEFILE | libc::O_CLOEXEC) as libc::c_uint;
        // SAFETY: fanotify_init takes two flag words and returns a new fd or -1; no pointers.
        let fd = unsafe { libc::fanotify_init(flags, event_flags) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
        Ok(Self {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Adds (or removes) an `FAN_OPEN_EXEC_PERM` mark.
    pub fn mark(&self, path: &Path, kind: MarkKind, add: bool) -> io::Result<()> {
        let c_path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
        let mut flags = if add {
            libc::FAN_MARK_ADD
        } else {
            libc::FAN_MARK_REMOVE
        };
        if kind == MarkKind::Filesystem {
            flags |= libc::FAN_MARK_FILESYSTEM;
        }
        // SAFETY: the group fd is valid for `self`'s lifetime, `c_path` is a NUL-terminated
        // string that outlives the call, and AT_FDCWD makes a relative path relative to the cwd.
        let rc = unsafe {
            libc::fanotify_mark(
                self.fd.as_raw_fd(),
                flags,
                libc::FAN_OPEN_EXEC_PERM,
                libc::AT_FDCWD,
                c_path.as_ptr(),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits up to `timeout` for events; `Ok(false)` on timeout.
    pub fn wait(&self, timeout: Duration) -> io::Result<bool> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: `pfd` is one valid pollfd on the stack, and the count passed is 1.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            };
        }
        Ok(rc > 0)
    }

    /// Reads the pending events (none when the queue is empty).
    pub fn read(&self, buf: &mut [u8]) -> io::Result<Vec<PermEvent>> {
        // SAFETY: `buf` is a valid writable region of `buf.len()` bytes.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(Vec::new()),
                _ => Err(e),
            };
        }
        let n = n as usize;
        let meta_len = size_of::<libc::fanotify_event_metadata>();
        let mut events = Vec::new();
        let mut off = 0;
        while off + meta_len <= n {
            // SAFETY: at least `meta_len` bytes from `off` are inside the filled part of `buf`;
            // read_unaligned copes with any alignment.
            let meta: libc::fanotify_event_metadata =
                unsafe { std::ptr::read_unaligned(buf.as_ptr().add(off).cast()) };
            let len = meta.event_len as usize;
            if meta.vers != libc::FANOTIFY_METADATA_VERSION || len < meta_len || off + len > n {
                // A layout we do not understand (the ABI is stable, so this is theoretical):
                // allow this event so nothing waits on it, hand back what was parsed, and drop
                // the rest of the buffer, whose boundaries are unknown.
                if meta.fd >= 0 {
                    // SAFETY: the kernel handed us this fd with the event; we own it.
                    let fd = unsafe { OwnedFd::from_raw_fd(meta.fd) };
                    let _ = self.respond(fd.as_fd(), true);
                }
                tracing::error!(
                    version = meta.vers,
                    len,
                    "Fanotify event layout not understood; allowed"
                );
                break;
            }
            if meta.fd >= 0 {
                events.push(PermEvent {
                    // SAFETY: the kernel opened this fd for us with the event; we own it now.
                    file: unsafe { OwnedFd::from_raw_fd(meta.fd) },
                    pid: meta.pid,
                    mask: meta.mask,
                });
            }
            off += len;
        }
        Ok(events)
    }

    /// Answers a permission event.
    pub fn respond(&self, file: BorrowedFd<'_>, allow: bool) -> io::Result<()> {
        let resp = libc::fanotify_response {
            fd: file.as_raw_fd(),
            response: if allow {
                libc::FAN_ALLOW
            } else {
                libc::FAN_DENY
            },
        };
        let size = size_of::<libc::fanotify_response>();
        // SAFETY: `resp` is a valid fanotify_response on the stack and `size` is its size.
        let n = unsafe {
            libc::write(
                self.fd.as_raw_fd(),
                (&resp as *const libc::fanotify_response).cast(),
                size,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Whether this host can deny execs: a content-class group can be created and a
/// `FAN_OPEN_EXEC_PERM` mark placed (on a scratch file in `dir`, removed afterwards).
pub(crate) fn probe(dir: &Path) -> io::Result<()> {
    let group = Fanotify::new()?;
    let scratch = dir.join(format!(".vigil-fanotify-probe-{}", std::process::id()));
    std::fs::write(&scratch, b"")?;
    let res = group.mark(&scratch, MarkKind::Inode, true);
    drop(group);
    let _ = std::fs::remove_file(&scratch);
    res
}
