//! Records laid out by the offsets computed from `bpf/records.h` by hand, independently of the
//! Rust structs, then parsed.

use super::*;

fn put(b: &mut [u8], off: usize, v: &[u8]) {
    b[off..off + v.len()].copy_from_slice(v);
}

fn header(b: &mut [u8], kind: u32, flags: u32, ktime: u64) {
    put(b, 0, &kind.to_ne_bytes());
    put(b, 4, &flags.to_ne_bytes());
    put(b, 8, &ktime.to_ne_bytes());
}

/// A `struct vigil_task` at offset 16.
fn task(b: &mut [u8]) {
    put(b, 16, &222u64.to_ne_bytes()); // start_boottime_ns
    put(b, 24, &333u64.to_ne_bytes()); // parent_start_boottime_ns
    put(b, 32, &444u64.to_ne_bytes()); // cgroup_id
    // pid tid ppid uid gid euid egid auid sessionid
    for (i, v) in [10u32, 11, 9, 1000, 1001, 0, 27, 1000, u32::MAX]
        .iter()
        .enumerate()
    {
        put(b, 40 + 4 * i, &v.to_ne_bytes());
    }
    put(b, 80, b"echo\0"); // comm
    put(b, 96, b"pts/3\0"); // tty
}

fn raw_exec() -> Vec<u8> {
    let mut b = vec![0u8; 4496];
    header(&mut b, KIND_EXEC, FLAG_ARGS_TRUNCATED, 111);
    task(&mut b);
    put(&mut b, 128, &5000u32.to_ne_bytes()); // args_size
    put(&mut b, 132, &15u32.to_ne_bytes()); // args_len
    put(&mut b, 136, &10u16.to_ne_bytes()); // filename_len, with NUL
    put(&mut b, 144, b"/bin/echo\0"); // filename
    put(&mut b, 400, b"/bin/echo\0a b\0"); // args
    b
}

fn check_task(t: &Task) {
    assert_eq!(
        (t.start_boottime_ns, t.parent_start_boottime_ns, t.cgroup_id),
        (222, 333, 444)
    );
    assert_eq!((t.pid, t.tid, t.ppid), (10, 11, 9));
    assert_eq!((t.uid, t.gid, t.euid, t.egid), (1000, 1001, 0, 27));
    assert_eq!((t.auid(), t.sessionid()), (Some(1000), None));
    assert_eq!(t.comm(), "echo");
    assert_eq!(t.tty().as_deref(), Some("pts/3"));
}

#[test]
fn exec_record_parses_from_kernel_layout() {
    let raw = raw_exec();
    // Also at an odd address: ring buffer items need not be aligned for us.
    let mut shifted = vec![0u8];
    shifted.extend_from_slice(&raw);
    for bytes in [&raw[..], &shifted[1..]] {
        let Ok(Record::Exec(r)) = parse_record(bytes) else {
            panic!("not an exec record")
        };
        assert_eq!(r.hdr.ktime_ns, 111);
        check_task(&r.task);
        assert_eq!(r.args_size, 5000);
        assert_eq!(r.filename().as_deref(), Some("/bin/echo"));
        assert_eq!(r.argv(), b"/bin/echo\0a b\0\0");
        assert!(r.args_truncated());
    }
}

#[test]
fn failed_exec_reads_and_bogus_lengths_are_bounded() {
    let mut raw = raw_exec();
    put(
        &mut raw,
        4,
        &(FLAG_FILENAME_FAILED | FLAG_ARGS_READ_FAILED).to_ne_bytes(),
    );
    put(&mut raw, 132, &u32::MAX.to_ne_bytes());
    let Ok(Record::Exec(r)) = parse_record(&raw) else {
        panic!("not an exec record")
    };
    assert_eq!(r.filename(), None);
    assert_eq!(r.argv(), b"");
    put(&mut raw, 4, &0u32.to_ne_bytes());
    let Ok(Record::Exec(r)) = parse_record(&raw) else {
        panic!("not an exec record")
    };
    assert_eq!(r.argv().len(), ARGS_LEN, "clamped to the buffer");
}

#[test]
fn fork_and_exit_records_parse() {
    let mut b = vec![0u8; 136];
    header(&mut b, KIND_FORK, 0, 5);
    task(&mut b);
    put(&mut b, 128, &77u32.to_ne_bytes()); // parent_tid
    let Ok(Record::Fork(r)) = parse_record(&b) else {
        panic!("not a fork record")
    };
    check_task(&r.task);
    assert_eq!(r.parent_tid, 77);

    header(&mut b, KIND_EXIT, 0, 6);
    put(&mut b, 128, &(3i32 << 8).to_ne_bytes()); // exit_code
    let Ok(Record::Exit(r)) = parse_record(&b) else {
        panic!("not an exit record")
    };
    assert_eq!((r.exit_code, r.hdr.ktime_ns), (768, 6));
}

#[test]
fn tcp_record_parses() {
    let mut b = vec![0u8; 176];
    header(&mut b, KIND_TCP_STATE, FLAG_TCP_OWNER, 9);
    put(&mut b, 16, &555u64.to_ne_bytes()); // owner.start_boottime_ns
    put(&mut b, 24, &42u32.to_ne_bytes()); // owner.pid
    put(&mut b, 28, &43u32.to_ne_bytes()); // owner.tid
    put(&mut b, 32, &1000u32.to_ne_bytes()); // owner.uid
    put(&mut b, 40, b"curl\0"); // owner.comm
    put(&mut b, 56, &4026531840u32.to_ne_bytes()); // netns
    put(&mut b, 60, &111i32.to_ne_bytes()); // sk_err
    put(&mut b, 64, &2u16.to_ne_bytes()); // family
    put(&mut b, 66, &40000u16.to_ne_bytes()); // lport
    put(&mut b, 68, &443u16.to_ne_bytes()); // rport
    b[70] = 2; // old_state SYN_SENT
    b[71] = 7; // new_state CLOSE
    b[72] = DIR_OUTBOUND;
    put(&mut b, 76, &1u32.to_ne_bytes()); // reset_reason
    put(&mut b, 80, &[127, 0, 0, 1]); // laddr
    put(&mut b, 96, &[10, 1, 2, 3]); // raddr
    put(&mut b, 112, &40u16.to_ne_bytes()); // net_hdr_len
    put(&mut b, 114, &20u16.to_ne_bytes()); // tcp_hdr_len
    b[116] = 0x45; // net_hdr[0]
    b[156 + 13] = 0x02; // tcp_hdr flags
    let Ok(Record::Tcp(r)) = parse_record(&b) else {
        panic!("not a tcp record")
    };
    assert_eq!(r.hdr.flags, FLAG_TCP_OWNER);
    assert_eq!((r.owner.pid, r.owner.tid, r.owner.uid), (42, 43, 1000));
    assert_eq!(r.owner.start_boottime_ns, 555);
    assert_eq!(c_string(&r.owner.comm), "curl");
    assert_eq!((r.netns, r.sk_err, r.family), (4026531840, 111, 2));
    assert_eq!((r.lport, r.rport), (40000, 443));
    assert_eq!(
        (r.old_state, r.new_state, r.direction),
        (2, 7, DIR_OUTBOUND)
    );
    assert_eq!(r.reset_reason, 1);
    assert_eq!(
        (&r.laddr[..4], &r.raddr[..4]),
        (&[127, 0, 0, 1][..], &[10, 1, 2, 3][..])
    );
    assert_eq!((r.net_hdr_len, r.tcp_hdr_len), (40, 20));
    assert_eq!((r.net_hdr[0], r.tcp_hdr[13]), (0x45, 0x02));
}

#[test]
fn short_and_unknown_records_are_errors() {
    assert_eq!(
        parse_record(&[0u8; 10]).err(),
        Some(RecordError::Short {
            kind: 0,
            len: 10,
            expected: 16
        })
    );
    let mut b = vec![0u8; 100];
    header(&mut b, KIND_EXEC, 0, 0);
    assert_eq!(
        parse_record(&b).err(),
        Some(RecordError::Short {
            kind: KIND_EXEC,
            len: 100,
            expected: 4496
        })
    );
    header(&mut b, 99, 0, 0);
    assert_eq!(parse_record(&b).err(), Some(RecordError::UnknownKind(99)));
}
