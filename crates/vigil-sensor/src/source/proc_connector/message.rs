//! Proc connector wire format (`include/uapi/linux/{netlink,connector,cn_proc}.h`), parsed
//! from bytes without trusting lengths.
//!
//! A datagram holds netlink messages; each carries a `struct cn_msg` (20 bytes) whose payload is
//! a `struct proc_event`: `what` (u32), `cpu` (u32), `timestamp_ns` (u64, `CLOCK_MONOTONIC`),
//! then the event-specific union.

/// `CN_IDX_PROC` / `CN_VAL_PROC`: the connector id (and multicast group) of process events.
pub(crate) const CN_IDX_PROC: u32 = 1;
pub(crate) const CN_VAL_PROC: u32 = 1;
/// `enum proc_cn_mcast_op`.
pub(crate) const PROC_CN_MCAST_LISTEN: u32 = 1;
pub(crate) const PROC_CN_MCAST_IGNORE: u32 = 2;

const NLMSG_HDRLEN: usize = 16;
const CN_MSG_LEN: usize = 20;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_OVERRUN: u16 = 4;

const PROC_EVENT_NONE: u32 = 0;
const PROC_EVENT_FORK: u32 = 1;
const PROC_EVENT_EXEC: u32 = 2;
const PROC_EVENT_EXIT: u32 = 0x8000_0000;

/// One process event the sensor cares about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProcEvent {
    /// `PROC_EVENT_EXEC`: `tgid` now runs a new image.
    Exec {
        /// Thread that exec'd (the group leader after `de_thread`).
        pid: u32,
        /// Process id.
        tgid: u32,
        /// `CLOCK_MONOTONIC` nanoseconds.
        timestamp_ns: u64,
    },
    /// `PROC_EVENT_FORK`: a task was created; a new process when `child_pid == child_tgid`.
    Fork {
        /// The forking process.
        parent_tgid: u32,
        /// The new task.
        child_pid: u32,
        /// Its process.
        child_tgid: u32,
        /// `CLOCK_MONOTONIC` nanoseconds.
        timestamp_ns: u64,
    },
    /// `PROC_EVENT_EXIT`: a task ended; its process ended too when `pid == tgid` (the leader).
    Exit {
        /// The task.
        pid: u32,
        /// Its process.
        tgid: u32,
        /// The task's `exit_code`, a `wait(2)` status.
        exit_code: u32,
        /// The parent process.
        parent_tgid: u32,
        /// `CLOCK_MONOTONIC` nanoseconds.
        timestamp_ns: u64,
    },
    /// `PROC_EVENT_NONE`: the kernel's answer to a LISTEN/IGNORE request. Acks go to every
    /// listener, and since Linux 6.6 the kernel overwrites `seq`, so requests are matched by
    /// `ack`, which the kernel sets to the request's `ack + 1` on every version.
    Ack {
        /// `cn_msg.ack`: the request's `ack` plus one.
        ack: u32,
        /// 0, or the errno of a refused request.
        err: u32,
    },
    /// Any other event (uid change, comm change, …).
    Other {
        /// The `what` field.
        what: u32,
    },
}

fn u16_at(buf: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(buf.get(off..off + 2)?.try_into().ok()?))
}

fn u32_at(buf: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(buf.get(off..off + 4)?.try_into().ok()?))
}

fn u64_at(buf: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(buf.get(off..off + 8)?.try_into().ok()?))
}

/// The process events in one received datagram; malformed or foreign messages are skipped.
pub(crate) fn parse_datagram(buf: &[u8]) -> Vec<ProcEvent> {
    let mut events = Vec::new();
    let mut off = 0;
    while let Some(len) = u32_at(buf, off).and_then(|l| usize::try_from(l).ok()) {
        if len < NLMSG_HDRLEN || off + len > buf.len() {
            break;
        }
        let kind = u16_at(buf, off + 4).unwrap_or(0);
        if !matches!(kind, NLMSG_ERROR | NLMSG_OVERRUN)
            && let Some(event) = parse_cn_msg(&buf[off + NLMSG_HDRLEN..off + len])
        {
            events.push(event);
        }
        // NLMSG_ALIGN: messages start on 4-byte boundaries.
        off += (len + 3) & !3;
    }
    events
}

/// One `struct cn_msg` carrying a `struct proc_event`.
fn parse_cn_msg(msg: &[u8]) -> Option<ProcEvent> {
    if u32_at(msg, 0)? != CN_IDX_PROC || u32_at(msg, 4)? != CN_VAL_PROC {
        return None;
    }
    let ack = u32_at(msg, 12)?;
    let data_len = usize::from(u16_at(msg, 16)?);
    let ev = msg.get(CN_MSG_LEN..CN_MSG_LEN + data_len)?;
    let what = u32_at(ev, 0)?;
    let timestamp_ns = u64_at(ev, 8)?;
    Some(match what {
        PROC_EVENT_EXEC => ProcEvent::Exec {
            pid: u32_at(ev, 16)?,
            tgid: u32_at(ev, 20)?,
            timestamp_ns,
        },
        // struct fork_proc_event: parent_pid, parent_tgid, child_pid, child_tgid.
        PROC_EVENT_FORK => ProcEvent::Fork {
            parent_tgid: u32_at(ev, 20)?,
            child_pid: u32_at(ev, 24)?,
            child_tgid: u32_at(ev, 28)?,
            timestamp_ns,
        },
        // struct exit_proc_event: process_pid, process_tgid, exit_code, exit_signal,
        // parent_pid, parent_tgid.
        PROC_EVENT_EXIT => ProcEvent::Exit {
            pid: u32_at(ev, 16)?,
            tgid: u32_at(ev, 20)?,
            exit_code: u32_at(ev, 24)?,
            parent_tgid: u32_at(ev, 36)?,
            timestamp_ns,
        },
        PROC_EVENT_NONE => ProcEvent::Ack {
            ack,
            err: u32_at(ev, 16)?,
        },
        what => ProcEvent::Other { what },
    })
}

/// A `PROC_CN_MCAST_LISTEN`/`IGNORE` request: nlmsghdr + cn_msg + the u32 op. The kernel's
/// [`ProcEvent::Ack`] answer carries `ack + 1`.
pub(crate) fn mcast_request(op: u32, ack: u32, port_id: u32) -> Vec<u8> {
    let seq = 0u32;
    let total = NLMSG_HDRLEN + CN_MSG_LEN + 4;
    let mut buf = Vec::with_capacity(total);
    // struct nlmsghdr
    buf.extend_from_slice(&u32::try_from(total).unwrap_or(u32::MAX).to_ne_bytes());
    buf.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
    buf.extend_from_slice(&0u16.to_ne_bytes()); // flags
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&port_id.to_ne_bytes());
    // struct cn_msg
    buf.extend_from_slice(&CN_IDX_PROC.to_ne_bytes());
    buf.extend_from_slice(&CN_VAL_PROC.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&ack.to_ne_bytes());
    buf.extend_from_slice(&4u16.to_ne_bytes()); // len
    buf.extend_from_slice(&0u16.to_ne_bytes()); // flags
    buf.extend_from_slice(&op.to_ne_bytes());
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One netlink message as the kernel's `send_msg()` in `drivers/connector/cn_proc.c` builds
    /// it: nlmsghdr, cn_msg, proc_event (what, cpu, timestamp, union).
    fn kernel_message(what: u32, ack: u32, union: &[u8]) -> Vec<u8> {
        let mut ev = Vec::new();
        ev.extend_from_slice(&what.to_ne_bytes());
        ev.extend_from_slice(&1u32.to_ne_bytes()); // cpu
        ev.extend_from_slice(&123_456_789u64.to_ne_bytes());
        ev.extend_from_slice(union);
        ev.resize(40, 0); // sizeof(struct proc_event)
        let mut msg = Vec::new();
        let total = NLMSG_HDRLEN + CN_MSG_LEN + ev.len();
        msg.extend_from_slice(&(total as u32).to_ne_bytes());
        msg.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
        msg.extend_from_slice(&[0; 10]); // flags, seq, pid
        msg.extend_from_slice(&CN_IDX_PROC.to_ne_bytes());
        msg.extend_from_slice(&CN_VAL_PROC.to_ne_bytes());
        msg.extend_from_slice(&5u32.to_ne_bytes()); // seq: a per-cpu counter
        msg.extend_from_slice(&ack.to_ne_bytes());
        msg.extend_from_slice(&(ev.len() as u16).to_ne_bytes());
        msg.extend_from_slice(&0u16.to_ne_bytes());
        msg.extend_from_slice(&ev);
        msg
    }

    fn pair(a: u32, b: u32) -> Vec<u8> {
        [a.to_ne_bytes(), b.to_ne_bytes()].concat()
    }

    #[test]
    fn exec_fork_exit_and_ack_parse_from_one_datagram() {
        let mut datagram = kernel_message(PROC_EVENT_EXEC, 0, &pair(4242, 4242));
        let fork = [pair(100, 100), pair(4243, 4243)].concat();
        datagram.extend(kernel_message(PROC_EVENT_FORK, 0, &fork));
        let exit = [pair(4243, 4243), pair(9, 17), pair(100, 100)].concat();
        datagram.extend(kernel_message(PROC_EVENT_EXIT, 0, &exit));
        datagram.extend(kernel_message(PROC_EVENT_NONE, 77, &pair(0, 0)));
        datagram.extend(kernel_message(0x200, 0, &pair(1, 1))); // comm change
        assert_eq!(
            parse_datagram(&datagram),
            vec![
                ProcEvent::Exec {
                    pid: 4242,
                    tgid: 4242,
                    timestamp_ns: 123_456_789
                },
                ProcEvent::Fork {
                    parent_tgid: 100,
                    child_pid: 4243,
                    child_tgid: 4243,
                    timestamp_ns: 123_456_789
                },
                ProcEvent::Exit {
                    pid: 4243,
                    tgid: 4243,
                    exit_code: 9,
                    parent_tgid: 100,
                    timestamp_ns: 123_456_789
                },
                ProcEvent::Ack { ack: 77, err: 0 },
                ProcEvent::Other { what: 0x200 },
            ]
        );
    }

    #[test]
    fn truncated_and_foreign_messages_are_skipped() {
        let msg = kernel_message(PROC_EVENT_EXEC, 0, &pair(1, 1));
        assert!(parse_datagram(&msg[..msg.len() - 1]).is_empty());
        assert!(parse_datagram(&msg[..10]).is_empty());
        let mut foreign = msg.clone();
        foreign[16..20].copy_from_slice(&9u32.to_ne_bytes()); // another connector idx
        assert!(parse_datagram(&foreign).is_empty());
        let mut bogus_len = msg;
        bogus_len[0..4].copy_from_slice(&3u32.to_ne_bytes());
        assert!(parse_datagram(&bogus_len).is_empty());
    }

    #[test]
    fn listen_request_has_header_cn_msg_and_op() {
        let req = mcast_request(PROC_CN_MCAST_LISTEN, 9, 77);
        assert_eq!(req.len(), 40);
        assert_eq!(u32_at(&req, 0), Some(40));
        assert_eq!(u16_at(&req, 4), Some(NLMSG_DONE));
        assert_eq!(u32_at(&req, 12), Some(77));
        assert_eq!(u32_at(&req, 16), Some(CN_IDX_PROC));
        assert_eq!(u32_at(&req, 28), Some(9));
        assert_eq!(u16_at(&req, 32), Some(4));
        assert_eq!(u32_at(&req, 36), Some(PROC_CN_MCAST_LISTEN));
    }
}
