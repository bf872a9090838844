//! The Rust mirror of `struct vigil_exec_record` in `bpf/exec.h`; the only place that knows its
//! layout. The asserts below fail the build when the two drift apart.

use std::mem::offset_of;

/// `VIGIL_COMM_LEN`.
pub(crate) const COMM_LEN: usize = 16;
/// `VIGIL_FILENAME_LEN`.
pub(crate) const FILENAME_LEN: usize = 256;
/// `VIGIL_ARGS_LEN`.
pub(crate) const ARGS_LEN: usize = 4096;

/// `VIGIL_EXEC_ARGS_TRUNCATED`: argv was longer than [`ARGS_LEN`].
pub(crate) const FLAG_ARGS_TRUNCATED: u16 = 0x1;
/// `VIGIL_EXEC_ARGS_READ_FAILED`: reading argv from the new mm failed.
pub(crate) const FLAG_ARGS_READ_FAILED: u16 = 0x2;
/// `VIGIL_EXEC_FILENAME_FAILED`: reading `bprm->filename` failed.
pub(crate) const FLAG_FILENAME_FAILED: u16 = 0x4;

/// `struct vigil_exec_record`, field for field; see `bpf/exec.h` for what each one holds.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct ExecRecord {
    pub(crate) ktime_ns: u64,
    pub(crate) start_boottime_ns: u64,
    pub(crate) parent_start_boottime_ns: u64,
    pub(crate) cgroup_id: u64,
    pub(crate) pid: u32,
    pub(crate) tid: u32,
    pub(crate) ppid: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) euid: u32,
    pub(crate) egid: u32,
    pub(crate) args_size: u32,
    pub(crate) args_len: u32,
    pub(crate) filename_len: u16,
    pub(crate) flags: u16,
    pub(crate) comm: [u8; COMM_LEN],
    pub(crate) filename: [u8; FILENAME_LEN],
    pub(crate) args: [u8; ARGS_LEN],
}

/// Size of the record, as `_Static_assert`ed in `bpf/exec.h`.
pub(crate) const EXEC_RECORD_SIZE: usize = 4440;

const _: () = assert!(size_of::<ExecRecord>() == EXEC_RECORD_SIZE);
const _: () = assert!(offset_of!(ExecRecord, cgroup_id) == 24);
const _: () = assert!(offset_of!(ExecRecord, pid) == 32);
const _: () = assert!(offset_of!(ExecRecord, egid) == 56);
const _: () = assert!(offset_of!(ExecRecord, args_len) == 64);
const _: () = assert!(offset_of!(ExecRecord, filename_len) == 68);
const _: () = assert!(offset_of!(ExecRecord, flags) == 70);
const _: () = assert!(offset_of!(ExecRecord, comm) == 72);
const _: () = assert!(offset_of!(ExecRecord, filename) == 88);
const _: () = assert!(offset_of!(ExecRecord, args) == 344);

/// A ring buffer item that is not a whole record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("exec record has {len} bytes, expected {EXEC_RECORD_SIZE}")]
pub(crate) struct ShortRecord {
    /// The item's length.
    pub(crate) len: usize,
}

/// Copies a record out of a ring buffer item.
pub(crate) fn parse_record(bytes: &[u8]) -> Result<ExecRecord, ShortRecord> {
    if bytes.len() < EXEC_RECORD_SIZE {
        return Err(ShortRecord { len: bytes.len() });
    }
    // SAFETY: `bytes` holds at least size_of::<ExecRecord>() readable bytes (checked above);
    // ExecRecord is plain integers and byte arrays, valid for any bit pattern; read_unaligned
    // does not need the item to be aligned.
    Ok(unsafe { bytes.as_ptr().cast::<ExecRecord>().read_unaligned() })
}

impl ExecRecord {
    /// `comm` up to its NUL.
    pub(crate) fn comm(&self) -> String {
        c_string(&self.comm)
    }

    /// `bprm->filename`, or `None` when it could not be read.
    pub(crate) fn filename(&self) -> Option<String> {
        if self.flags & FLAG_FILENAME_FAILED != 0 || self.filename_len == 0 {
            return None;
        }
        let len = usize::from(self.filename_len).min(FILENAME_LEN);
        Some(c_string(&self.filename[..len]))
    }

    /// The argv bytes copied (NUL-separated), bounded by the buffer.
    pub(crate) fn argv(&self) -> &[u8] {
        if self.flags & FLAG_ARGS_READ_FAILED != 0 {
            return &[];
        }
        let len = usize::try_from(self.args_len)
            .unwrap_or(ARGS_LEN)
            .min(ARGS_LEN);
        &self.args[..len]
    }

    /// Whether argv was longer than what was copied.
    pub(crate) fn args_truncated(&self) -> bool {
        self.flags & FLAG_ARGS_TRUNCATED != 0
    }
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lays a record out by the offsets computed from `bpf/exec.h` by hand, independently of
    /// the Rust struct.
    fn raw_record() -> Vec<u8> {
        let mut b = vec![0u8; EXEC_RECORD_SIZE];
        let mut put = |off: usize, v: &[u8]| b[off..off + v.len()].copy_from_slice(v);
        put(0, &111u64.to_ne_bytes()); // ktime_ns
        put(8, &222u64.to_ne_bytes()); // start_boottime_ns
        put(16, &333u64.to_ne_bytes()); // parent_start_boottime_ns
        put(24, &444u64.to_ne_bytes()); // cgroup_id
        for (i, v) in [10u32, 11, 9, 1000, 1001, 0, 27].iter().enumerate() {
            put(32 + 4 * i, &v.to_ne_bytes()); // pid tid ppid uid gid euid egid
        }
        put(60, &5000u32.to_ne_bytes()); // args_size
        put(64, &15u32.to_ne_bytes()); // args_len
        put(68, &10u16.to_ne_bytes()); // filename_len, with NUL
        put(70, &FLAG_ARGS_TRUNCATED.to_ne_bytes()); // flags
        put(72, b"echo\0"); // comm
        put(88, b"/bin/echo\0"); // filename
        put(344, b"/bin/echo\0a b\0"); // args
        b
    }

    #[test]
    fn record_parses_from_kernel_layout() -> Result<(), ShortRecord> {
        let raw = raw_record();
        // Also at an odd address: ring buffer items need not be aligned for us.
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(&raw);
        for bytes in [&raw[..], &shifted[1..]] {
            let r = parse_record(bytes)?;
            assert_eq!(
                (
                    r.ktime_ns,
                    r.start_boottime_ns,
                    r.parent_start_boottime_ns,
                    r.cgroup_id
                ),
                (111, 222, 333, 444)
            );
            assert_eq!((r.pid, r.tid, r.ppid), (10, 11, 9));
            assert_eq!((r.uid, r.gid, r.euid, r.egid), (1000, 1001, 0, 27));
            assert_eq!(r.args_size, 5000);
            assert_eq!(r.comm(), "echo");
            assert_eq!(r.filename().as_deref(), Some("/bin/echo"));
            assert_eq!(r.argv(), b"/bin/echo\0a b\0\0");
            assert!(r.args_truncated());
        }
        Ok(())
    }

    #[test]
    fn short_or_failed_records_are_handled() {
        assert_eq!(
            parse_record(&[0u8; 100]).err(),
            Some(ShortRecord { len: 100 })
        );
        let mut raw = raw_record();
        raw[70..72].copy_from_slice(&(FLAG_FILENAME_FAILED | FLAG_ARGS_READ_FAILED).to_ne_bytes());
        raw[64..68].copy_from_slice(&u32::MAX.to_ne_bytes());
        let r = parse_record(&raw).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.filename(), None);
        assert_eq!(r.argv(), b"");
        raw[70..72].copy_from_slice(&0u16.to_ne_bytes());
        let r = parse_record(&raw).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            r.argv().len(),
            ARGS_LEN,
            "a bogus length is clamped to the buffer"
        );
    }
}
