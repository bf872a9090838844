//! Reading one process's facts from `/proc/<pid>`.
//!
//! Everything here races with the process: it may exit, or exec again, between the event and
//! the read. Every reader returns `None` rather than failing, and callers fill what they can.

use std::fs;
use std::path::PathBuf;

use super::path::join_argv;

/// Longest command line read from `/proc/<pid>/cmdline`, matching the eBPF argv bound.
pub(crate) const MAX_CMDLINE: usize = 4096;

fn proc_path(pid: u32, file: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/{file}"))
}

/// `/proc/<pid>/exe`: the executable's path (` (deleted)` appended if it was unlinked).
pub(crate) fn read_exe(pid: u32) -> Option<String> {
    let target = fs::read_link(proc_path(pid, "exe")).ok()?;
    Some(target.to_string_lossy().into_owned())
}

/// `/proc/<pid>/cwd`.
pub(crate) fn read_cwd(pid: u32) -> Option<String> {
    let target = fs::read_link(proc_path(pid, "cwd")).ok()?;
    Some(target.to_string_lossy().into_owned())
}

/// `/proc/<pid>/cmdline` joined with spaces, bounded to [`MAX_CMDLINE`] bytes; `None` when
/// unreadable or empty (kernel threads, zombies). The flag is true when it was cut.
pub(crate) fn read_cmdline(pid: u32) -> Option<(String, bool)> {
    let mut raw = fs::read(proc_path(pid, "cmdline")).ok()?;
    let truncated = raw.len() > MAX_CMDLINE;
    raw.truncate(MAX_CMDLINE);
    let line = join_argv(&raw);
    (!line.is_empty()).then_some((line, truncated))
}

/// `/proc/<pid>/cmdline` as separate arguments, bounded like [`read_cmdline`].
pub(crate) fn read_argv(pid: u32) -> Vec<String> {
    let mut raw = fs::read(proc_path(pid, "cmdline")).unwrap_or_default();
    raw.truncate(MAX_CMDLINE);
    super::path::split_argv(&raw)
}

/// The fields of `/proc/<pid>/stat` the sensor uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stat {
    /// `comm`, without the parentheses.
    pub(crate) comm: String,
    /// Field 4.
    pub(crate) ppid: u32,
    /// Field 7: the controlling terminal's device number, 0 without one.
    pub(crate) tty_nr: u32,
    /// Field 22: start time in clock ticks since boot.
    pub(crate) start_ticks: u64,
}

pub(crate) fn read_stat(pid: u32) -> Option<Stat> {
    parse_stat(&fs::read_to_string(proc_path(pid, "stat")).ok()?)
}

/// Parses `/proc/<pid>/stat`. `comm` may hold spaces and parentheses, so the fixed fields are
/// counted from the *last* `)`.
pub(crate) fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_owned();
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // rest[0] is field 3 (state), so field N is rest[N - 3].
    let ppid = rest.get(1)?.parse().ok()?;
    let tty_nr = rest.get(4)?.parse::<i64>().ok()?;
    let start_ticks = rest.get(19)?.parse().ok()?;
    Some(Stat {
        comm,
        ppid,
        tty_nr: u32::try_from(tty_nr).unwrap_or(0),
        start_ticks,
    })
}

/// The name of a terminal from its `tty_nr` (`new_encode_dev` of the device number), for the
/// terminals sessions use: pseudo-terminals (`pts/N`, majors 136–143), virtual consoles (`ttyN`)
/// and serial ports (`ttySN`). `None` for 0 or other devices.
pub(crate) fn tty_name(tty_nr: u32) -> Option<String> {
    let major = (tty_nr >> 8) & 0xfff;
    let minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00);
    match major {
        136..=143 => Some(format!("pts/{}", (major - 136) * 256 + minor)),
        4 if minor < 64 => Some(format!("tty{minor}")),
        4 => Some(format!("ttyS{}", minor - 64)),
        _ => None,
    }
}

/// `/proc/<pid>/loginuid`, unless unset (`4294967295`).
pub(crate) fn read_loginuid(pid: u32) -> Option<u32> {
    read_audit_id(pid, "loginuid")
}

/// `/proc/<pid>/sessionid`, unless unset.
pub(crate) fn read_sessionid(pid: u32) -> Option<u32> {
    read_audit_id(pid, "sessionid")
}

fn read_audit_id(pid: u32, file: &str) -> Option<u32> {
    let id: u32 = fs::read_to_string(proc_path(pid, file))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (id != u32::MAX).then_some(id)
}

/// Every pid under `/proc` (processes only: `/proc` lists thread-group leaders), unordered.
pub(crate) fn list_pids() -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .collect()
}

/// Real and effective ids from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ids {
    pub(crate) uid: u32,
    pub(crate) euid: u32,
    pub(crate) gid: u32,
    pub(crate) egid: u32,
}

pub(crate) fn read_ids(pid: u32) -> Option<Ids> {
    parse_status_ids(&fs::read_to_string(proc_path(pid, "status")).ok()?)
}

/// Parses the `Uid:` and `Gid:` lines (real, effective, saved, fs) of `/proc/<pid>/status`.
pub(crate) fn parse_status_ids(text: &str) -> Option<Ids> {
    let pair = |key: &str| -> Option<(u32, u32)> {
        let line = text.lines().find_map(|l| l.strip_prefix(key))?;
        let mut ids = line.split_whitespace().map(str::parse::<u32>);
        Some((ids.next()?.ok()?, ids.next()?.ok()?))
    };
    let (uid, euid) = pair("Uid:")?;
    let (gid, egid) = pair("Gid:")?;
    Some(Ids {
        uid,
        euid,
        gid,
        egid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_hostile_comm_parses_from_last_paren() {
        let line = "4242 (a) b (c) S 17 4242 17 0 -1 4194560 99 0 0 0 1 2 0 0 20 0 1 0 \
                    987654 1000 100 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0";
        let stat = parse_stat(line);
        assert_eq!(
            stat,
            Some(Stat {
                comm: "a) b (c".into(),
                ppid: 17,
                tty_nr: 0,
                start_ticks: 987_654
            })
        );
        assert_eq!(parse_stat("1 (x) S"), None);
    }

    #[test]
    fn tty_numbers_name_terminals() {
        assert_eq!(tty_name(34816).as_deref(), Some("pts/0")); // major 136, minor 0
        assert_eq!(tty_name(34819).as_deref(), Some("pts/3"));
        // pts/300: major 137, minor 44.
        assert_eq!(tty_name((137 << 8) | 44).as_deref(), Some("pts/300"));
        assert_eq!(tty_name(1025).as_deref(), Some("tty1"));
        assert_eq!(tty_name(1088).as_deref(), Some("ttyS0"));
        assert_eq!(tty_name(0), None);
        assert_eq!(tty_name(5 << 8), None);
    }

    #[test]
    fn status_ids_read_real_and_effective() {
        let text = "Name:\tsu\nUid:\t1000\t0\t0\t0\nGid:\t1000\t27\t27\t27\n";
        assert_eq!(
            parse_status_ids(text),
            Some(Ids {
                uid: 1000,
                euid: 0,
                gid: 1000,
                egid: 27
            })
        );
        assert_eq!(parse_status_ids("Name:\tx\n"), None);
    }

    #[test]
    fn own_process_is_readable() {
        let me = std::process::id();
        let stat = read_stat(me);
        assert!(stat.is_some_and(|s| s.ppid > 0 || me == 1));
        assert!(read_exe(me).is_some_and(|e| e.starts_with('/')));
        assert!(read_cmdline(me).is_some());
        assert!(read_ids(me).is_some());
        assert!(list_pids().contains(&me));
    }
}
