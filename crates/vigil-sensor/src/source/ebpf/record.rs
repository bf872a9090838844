//! The Rust mirror of `bpf/records.h`: the only place that knows the layout of what the eBPF
//! programs write. The asserts below fail the build when the two drift apart; the tests lay
//! records out by hand from the C offsets, independently of these structs.

use std::mem::offset_of;

/// `VIGIL_COMM_LEN`.
pub(crate) const COMM_LEN: usize = 16;
/// `VIGIL_TTY_LEN`.
pub(crate) const TTY_LEN: usize = 32;
/// `VIGIL_FILENAME_LEN`.
pub(crate) const FILENAME_LEN: usize = 256;
/// `VIGIL_ARGS_LEN`.
pub(crate) const ARGS_LEN: usize = 4096;
/// `VIGIL_NET_HDR_LEN`.
pub(crate) const NET_HDR_LEN: usize = 40;
/// `VIGIL_TCP_HDR_LEN`.
pub(crate) const TCP_HDR_LEN: usize = 20;

/// `VIGIL_KIND_*`: which struct follows the header.
pub(crate) const KIND_EXEC: u32 = 1;
pub(crate) const KIND_FORK: u32 = 2;
pub(crate) const KIND_EXIT: u32 = 3;
pub(crate) const KIND_TCP_STATE: u32 = 4;
pub(crate) const KIND_TCP_RESET: u32 = 5;

/// `VIGIL_EXEC_ARGS_TRUNCATED`: argv was longer than [`ARGS_LEN`].
pub(crate) const FLAG_ARGS_TRUNCATED: u32 = 0x1;
/// `VIGIL_EXEC_ARGS_READ_FAILED`: reading argv from the new mm failed.
pub(crate) const FLAG_ARGS_READ_FAILED: u32 = 0x2;
/// `VIGIL_EXEC_FILENAME_FAILED`: reading `bprm->filename` failed.
pub(crate) const FLAG_FILENAME_FAILED: u32 = 0x4;
/// `VIGIL_TCP_OWNER`: the record's owner is valid.
pub(crate) const FLAG_TCP_OWNER: u32 = 0x1;
/// `VIGIL_TCP_HDR_FAILED`: the reset's packet headers could not be read.
pub(crate) const FLAG_TCP_HDR_FAILED: u32 = 0x2;

/// `VIGIL_DIR_*`.
pub(crate) const DIR_INBOUND: u8 = 1;
pub(crate) const DIR_OUTBOUND: u8 = 2;

/// `struct vigil_header`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct Header {
    pub(crate) kind: u32,
    pub(crate) flags: u32,
    pub(crate) ktime_ns: u64,
}

/// `struct vigil_task`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct Task {
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
    pub(crate) auid: u32,
    pub(crate) sessionid: u32,
    pub(crate) _pad: u32,
    pub(crate) comm: [u8; COMM_LEN],
    pub(crate) tty: [u8; TTY_LEN],
}

/// `struct vigil_exec_record`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct ExecRecord {
    pub(crate) hdr: Header,
    pub(crate) task: Task,
    pub(crate) args_size: u32,
    pub(crate) args_len: u32,
    pub(crate) filename_len: u16,
    pub(crate) _pad: [u16; 3],
    pub(crate) filename: [u8; FILENAME_LEN],
    pub(crate) args: [u8; ARGS_LEN],
}

/// `struct vigil_fork_record`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct ForkRecord {
    pub(crate) hdr: Header,
    pub(crate) task: Task,
    pub(crate) parent_tid: u32,
    pub(crate) _pad: u32,
}

/// `struct vigil_exit_record`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct ExitRecord {
    pub(crate) hdr: Header,
    pub(crate) task: Task,
    pub(crate) exit_code: i32,
    pub(crate) _pad: u32,
}

/// `struct vigil_owner`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Owner {
    pub(crate) start_boottime_ns: u64,
    pub(crate) pid: u32,
    pub(crate) tid: u32,
    pub(crate) uid: u32,
    pub(crate) _pad: u32,
    pub(crate) comm: [u8; COMM_LEN],
}

/// `struct vigil_tcp_record`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct TcpRecord {
    pub(crate) hdr: Header,
    pub(crate) owner: Owner,
    pub(crate) netns: u32,
    pub(crate) sk_err: i32,
    pub(crate) family: u16,
    pub(crate) lport: u16,
    pub(crate) rport: u16,
    pub(crate) old_state: u8,
    pub(crate) new_state: u8,
    pub(crate) direction: u8,
    pub(crate) _pad: [u8; 3],
    pub(crate) reset_reason: u32,
    pub(crate) laddr: [u8; 16],
    pub(crate) raddr: [u8; 16],
    pub(crate) net_hdr_len: u16,
    pub(crate) tcp_hdr_len: u16,
    pub(crate) net_hdr: [u8; NET_HDR_LEN],
    pub(crate) tcp_hdr: [u8; TCP_HDR_LEN],
}

/// `struct vigil_listener_key` of tcp.bpf.c's `LISTENERS` map.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ListenerKey {
    pub(crate) netns: u32,
    pub(crate) port: u16,
    pub(crate) _pad: u16,
}

/// `struct vigil_listener`, the value of `LISTENERS`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct Listener {
    pub(crate) owner: Owner,
    pub(crate) sk: u64,
}

// SAFETY: both are `#[repr(C)]` integers and byte arrays with explicit padding fields, valid for
// any bit pattern, exactly as tcp.bpf.c defines the map's key and value.
unsafe impl aya::Pod for ListenerKey {}
// SAFETY: as above.
unsafe impl aya::Pod for Listener {}

const _: () = assert!(size_of::<Header>() == 16);
const _: () = assert!(size_of::<Task>() == 112);
const _: () = assert!(offset_of!(Task, pid) == 24);
const _: () = assert!(offset_of!(Task, auid) == 52);
const _: () = assert!(offset_of!(Task, comm) == 64);
const _: () = assert!(offset_of!(Task, tty) == 80);
const _: () = assert!(size_of::<ExecRecord>() == 4496);
const _: () = assert!(offset_of!(ExecRecord, task) == 16);
const _: () = assert!(offset_of!(ExecRecord, args_size) == 128);
const _: () = assert!(offset_of!(ExecRecord, filename_len) == 136);
const _: () = assert!(offset_of!(ExecRecord, filename) == 144);
const _: () = assert!(offset_of!(ExecRecord, args) == 400);
const _: () = assert!(size_of::<ForkRecord>() == 136);
const _: () = assert!(offset_of!(ForkRecord, parent_tid) == 128);
const _: () = assert!(size_of::<ExitRecord>() == 136);
const _: () = assert!(offset_of!(ExitRecord, exit_code) == 128);
const _: () = assert!(size_of::<Owner>() == 40);
const _: () = assert!(offset_of!(Owner, comm) == 24);
const _: () = assert!(size_of::<TcpRecord>() == 176);
const _: () = assert!(offset_of!(TcpRecord, owner) == 16);
const _: () = assert!(offset_of!(TcpRecord, netns) == 56);
const _: () = assert!(offset_of!(TcpRecord, family) == 64);
const _: () = assert!(offset_of!(TcpRecord, old_state) == 70);
const _: () = assert!(offset_of!(TcpRecord, direction) == 72);
const _: () = assert!(offset_of!(TcpRecord, reset_reason) == 76);
const _: () = assert!(offset_of!(TcpRecord, laddr) == 80);
const _: () = assert!(offset_of!(TcpRecord, raddr) == 96);
const _: () = assert!(offset_of!(TcpRecord, net_hdr_len) == 112);
const _: () = assert!(offset_of!(TcpRecord, net_hdr) == 116);
const _: () = assert!(offset_of!(TcpRecord, tcp_hdr) == 156);
const _: () = assert!(size_of::<ListenerKey>() == 8);
const _: () = assert!(size_of::<Listener>() == 48);

/// One record, copied out of a ring buffer.
pub(crate) enum Record {
    Exec(Box<ExecRecord>),
    Fork(ForkRecord),
    Exit(ExitRecord),
    Tcp(TcpRecord),
}

impl Record {
    /// When the event happened (`CLOCK_BOOTTIME` ns), to merge several ring buffers in order.
    pub(crate) fn ktime_ns(&self) -> u64 {
        match self {
            Self::Exec(r) => r.hdr.ktime_ns,
            Self::Fork(r) => r.hdr.ktime_ns,
            Self::Exit(r) => r.hdr.ktime_ns,
            Self::Tcp(r) => r.hdr.ktime_ns,
        }
    }
}

/// A ring buffer item that is not a whole record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RecordError {
    /// Shorter than the record its header names (or than a header).
    #[error("record of kind {kind} has {len} bytes, expected {expected}")]
    Short {
        kind: u32,
        len: usize,
        expected: usize,
    },
    /// A kind this build does not know.
    #[error("record of unknown kind {0}")]
    UnknownKind(u32),
}

/// The record structs, which may be read from any bytes.
///
/// # Safety
/// Implementors must be `#[repr(C)]` plain integers and byte arrays: valid for every bit pattern.
unsafe trait Plain: Copy {}
// SAFETY: all of these are #[repr(C)] integers and byte arrays (and nested such structs).
unsafe impl Plain for Header {}
// SAFETY: as above.
unsafe impl Plain for ExecRecord {}
// SAFETY: as above.
unsafe impl Plain for ForkRecord {}
// SAFETY: as above.
unsafe impl Plain for ExitRecord {}
// SAFETY: as above.
unsafe impl Plain for TcpRecord {}

fn read<T: Plain>(bytes: &[u8], kind: u32) -> Result<T, RecordError> {
    if bytes.len() < size_of::<T>() {
        return Err(RecordError::Short {
            kind,
            len: bytes.len(),
            expected: size_of::<T>(),
        });
    }
    // SAFETY: `bytes` holds at least size_of::<T>() readable bytes (checked above); T is
    // valid for any bit pattern (Plain); read_unaligned does not need the item to be aligned.
    Ok(unsafe { bytes.as_ptr().cast::<T>().read_unaligned() })
}

/// Copies a record out of a ring buffer item, by the kind in its header.
pub(crate) fn parse_record(bytes: &[u8]) -> Result<Record, RecordError> {
    let header: Header = read(bytes, 0)?;
    Ok(match header.kind {
        KIND_EXEC => Record::Exec(Box::new(read(bytes, header.kind)?)),
        KIND_FORK => Record::Fork(read(bytes, header.kind)?),
        KIND_EXIT => Record::Exit(read(bytes, header.kind)?),
        KIND_TCP_STATE | KIND_TCP_RESET => Record::Tcp(read(bytes, header.kind)?),
        kind => return Err(RecordError::UnknownKind(kind)),
    })
}

/// Bytes up to the first NUL, lossily as UTF-8.
pub(crate) fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// The kernel's "unset" value of login uids and session ids.
const UNSET_ID: u32 = u32::MAX;

impl Task {
    pub(crate) fn comm(&self) -> String {
        c_string(&self.comm)
    }

    /// The controlling terminal, if any.
    pub(crate) fn tty(&self) -> Option<String> {
        Some(c_string(&self.tty)).filter(|t| !t.is_empty())
    }

    /// The login uid, unless unset.
    pub(crate) fn auid(&self) -> Option<u32> {
        (self.auid != UNSET_ID).then_some(self.auid)
    }

    /// The audit session id, unless unset.
    pub(crate) fn sessionid(&self) -> Option<u32> {
        (self.sessionid != UNSET_ID).then_some(self.sessionid)
    }
}

impl ExecRecord {
    /// `bprm->filename`, or `None` when it could not be read.
    pub(crate) fn filename(&self) -> Option<String> {
        if self.hdr.flags & FLAG_FILENAME_FAILED != 0 || self.filename_len == 0 {
            return None;
        }
        let len = usize::from(self.filename_len).min(FILENAME_LEN);
        Some(c_string(&self.filename[..len]))
    }

    /// The argv bytes copied (NUL-separated), bounded by the buffer.
    pub(crate) fn argv(&self) -> &[u8] {
        if self.hdr.flags & FLAG_ARGS_READ_FAILED != 0 {
            return &[];
        }
        let len = usize::try_from(self.args_len)
            .unwrap_or(ARGS_LEN)
            .min(ARGS_LEN);
        &self.args[..len]
    }

    /// Whether argv was longer than what was copied.
    pub(crate) fn args_truncated(&self) -> bool {
        self.hdr.flags & FLAG_ARGS_TRUNCATED != 0
    }
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
