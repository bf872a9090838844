//! The raw fanotify calls (libc: `nix` has no `FAN_REPORT_DFID_NAME` support) and turning a
//! directory's file handle back into a path. Checked against Linux 6.18.
//!
//! Needs CAP_SYS_ADMIN (filesystem marks) and CAP_DAC_READ_SEARCH (`open_by_handle_at`).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Events every mark asks for, besides how renames are reported: entries created and
/// deleted, files closed after writing, attribute (mode, owner, times) changes, for directories
/// too (`FAN_ONDIR`). `FAN_MODIFY` is not asked for: one event per `write(2)` across the whole
/// file system would cost more than the close that ends the writing.
pub(crate) const BASE_MASK: u64 = libc::FAN_CREATE
    | libc::FAN_DELETE
    | libc::FAN_CLOSE_WRITE
    | libc::FAN_ATTRIB
    | libc::FAN_ONDIR;
/// Renames as one event with the old and the new name (Linux 5.17+).
pub(crate) const RENAME_MASK: u64 = libc::FAN_RENAME;
/// Renames as two events, the old name then the new (Linux 5.9+), paired by the reader.
pub(crate) const MOVES_MASK: u64 = libc::FAN_MOVED_FROM | libc::FAN_MOVED_TO;

/// Longest `struct file_handle` (`MAX_HANDLE_SZ` bytes of handle after its two header words).
const MAX_FILE_HANDLE: usize = 8 + 128;

/// A notification-class fanotify group reporting directory handles and entry names
/// (`FAN_REPORT_DFID_NAME`), non-blocking.
#[derive(Debug)]
pub(crate) struct FanotifyGroup {
    fd: OwnedFd,
}

impl FanotifyGroup {
    pub(crate) fn new() -> io::Result<Self> {
        let flags = libc::FAN_CLASS_NOTIF
            | libc::FAN_REPORT_DFID_NAME
            | libc::FAN_CLOEXEC
            | libc::FAN_NONBLOCK;
        let event_flags = libc::O_RDONLY | libc::O_LARGEFILE | libc::O_CLOEXEC;
        // SAFETY: fanotify_init takes two flag words and returns a new fd or -1; no pointers.
        let fd = unsafe { libc::fanotify_init(flags, event_flags.cast_unsigned()) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
        Ok(Self {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Marks the whole file system `on` lives on with `mask`.
    pub(crate) fn mark_filesystem(&self, on: BorrowedFd<'_>, mask: u64) -> io::Result<()> {
        // SAFETY: both descriptors are valid for the call; a null path marks `on` itself.
        let rc = unsafe {
            libc::fanotify_mark(
                self.fd.as_raw_fd(),
                libc::FAN_MARK_ADD | libc::FAN_MARK_FILESYSTEM,
                mask,
                on.as_raw_fd(),
                std::ptr::null(),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Reads queued events into `buf`; `WouldBlock` when there are none.
    pub(crate) fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: `buf` is writable for `buf.len()` bytes.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        usize::try_from(n).map_err(|_| io::Error::last_os_error())
    }
}

impl AsFd for FanotifyGroup {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// An open descriptor on a file system, through which its handles are opened; it also names
/// the mount through which paths are reported.
#[derive(Debug)]
pub(crate) struct Anchor {
    /// `statfs.f_fsid`, as fanotify reports it.
    pub(crate) fsid: [u8; 8],
    fd: OwnedFd,
}

impl Anchor {
    /// Opens `path` (read-only: `open_by_handle_at` refuses `O_PATH` descriptors).
    pub(crate) fn open(path: &Path) -> io::Result<Self> {
        let c_path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
        // SAFETY: `c_path` is NUL-terminated and outlives the call.
        let raw = unsafe {
            libc::open(
                c_path.as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: all-zero is a valid `statfs` (plain integers).
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: `st` is a live, writable statfs.
        if unsafe { libc::fstatfs(fd.as_raw_fd(), &mut st) } != 0 {
            return Err(io::Error::last_os_error());
        }
        const _: () = assert!(size_of::<libc::fsid_t>() == 8);
        // SAFETY: `fsid_t` is two 32-bit integers (8 bytes, asserted), readable as bytes.
        let fsid: [u8; 8] = unsafe { std::ptr::read_unaligned((&raw const st.f_fsid).cast()) };
        Ok(Self { fsid, fd })
    }

    /// The path of the directory `file_handle` (a `struct file_handle` as fanotify reported
    /// it) names, as seen through this anchor's mount; a directory removed since but still
    /// open somewhere loses its ` (deleted)` suffix. Fails with `ESTALE` when it is gone.
    pub(crate) fn path_of(&self, file_handle: &[u8]) -> io::Result<String> {
        if file_handle.len() < 8 || file_handle.len() > MAX_FILE_HANDLE {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        // `struct file_handle` starts with two 32-bit words: copy into aligned storage.
        let mut aligned = [0u32; MAX_FILE_HANDLE / 4];
        for (word, chunk) in aligned.iter_mut().zip(file_handle.chunks(4)) {
            let mut bytes = [0; 4];
            bytes[..chunk.len()].copy_from_slice(chunk);
            *word = u32::from_ne_bytes(bytes);
        }
        // SAFETY: `aligned` holds a complete, 4-byte aligned file_handle whose handle_bytes
        // (checked above to fit) the kernel reads; the anchor is a valid descriptor.
        let raw = unsafe {
            libc::open_by_handle_at(
                self.fd.as_raw_fd(),
                aligned.as_mut_ptr().cast(),
                libc::O_PATH | libc::O_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor nothing else owns; closed when dropped.
        let dir = unsafe { OwnedFd::from_raw_fd(raw) };
        let target = std::fs::read_link(format!("/proc/self/fd/{}", dir.as_raw_fd()))?;
        let path = target.to_string_lossy();
        Ok(path.strip_suffix(" (deleted)").unwrap_or(&path).to_owned())
    }

    /// The file handle of the directory at `path` (on this file system) in the layout fanotify
    /// reports: handle length, type, bytes.
    pub(crate) fn handle_of(path: &str) -> io::Result<Vec<u8>> {
        let c_path = CString::new(path)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
        let mut handle = [0u32; MAX_FILE_HANDLE / 4];
        handle[0] = (MAX_FILE_HANDLE - 8) as u32;
        let mut mount_id: libc::c_int = 0;
        // SAFETY: `handle` is an aligned file_handle with room for handle_bytes bytes,
        // `c_path` is NUL-terminated, and `mount_id` a live c_int.
        let rc = unsafe {
            libc::name_to_handle_at(
                libc::AT_FDCWD,
                c_path.as_ptr(),
                handle.as_mut_ptr().cast(),
                &mut mount_id,
                0,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        let bytes: Vec<u8> = handle.iter().flat_map(|w| w.to_ne_bytes()).collect();
        let len = 8 + usize::try_from(handle[0]).unwrap_or(usize::MAX);
        bytes
            .get(..len)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EOVERFLOW))
    }
}

impl AsFd for Anchor {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_round_trip_to_paths_when_privileged() {
        let dir = env!("CARGO_MANIFEST_DIR");
        let Ok(anchor) = Anchor::open(Path::new(dir)) else {
            return;
        };
        assert_ne!(anchor.fsid, [0; 8]);
        let Ok(handle) = Anchor::handle_of(dir) else {
            return; // a file system without handles
        };
        match anchor.path_of(&handle) {
            Ok(path) => assert_eq!(
                Some(path),
                std::fs::canonicalize(dir)
                    .ok()
                    .and_then(|p| p.to_str().map(str::to_owned))
            ),
            // Without CAP_DAC_READ_SEARCH.
            Err(error) => assert_eq!(error.raw_os_error(), Some(libc::EPERM), "{error}"),
        }
        assert!(anchor.path_of(&[0; 4]).is_err());
    }
}
