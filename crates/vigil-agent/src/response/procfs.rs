//! The few /proc readings the process actions need, parsed by hand (no extra dependency).

use std::fs;

/// Fields of `/proc/<pid>/stat` used here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stat {
    /// Process id.
    pub pid: i32,
    /// Command name (without the parentheses).
    pub comm: String,
    /// State letter: R, S, D, T, t, Z, X, …
    pub state: char,
    /// Parent process id.
    pub ppid: i32,
    /// Start time in clock ticks after boot; with the pid it names one process for good.
    pub starttime: u64,
}

impl Stat {
    /// Whether the process has exited (a zombie waiting for its parent, or dead).
    pub fn is_dead(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Parses the text of `/proc/<pid>/stat`. The command name may hold spaces and parentheses, so
/// the fields after it are found from the *last* `)`.
pub(crate) fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let pid = text.get(..open)?.trim().parse().ok()?;
    let comm = text.get(open + 1..close)?.to_owned();
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // rest[0] is field 3 (state); starttime is field 22.
    let state = rest.first()?.chars().next()?;
    let ppid = rest.get(1)?.parse().ok()?;
    let starttime = rest.get(19)?.parse().ok()?;
    Some(Stat {
        pid,
        comm,
        state,
        ppid,
        starttime,
    })
}

/// Reads `/proc/<pid>/stat`; `None` when the process does not exist (any more).
pub(crate) fn stat(pid: i32) -> Option<Stat> {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .as_deref()
        .and_then(parse_stat)
}

/// Every process id in /proc (thread-group leaders only).
pub(crate) fn pids() -> Vec<i32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// A snapshot of every readable process's stat.
pub(crate) fn all() -> Vec<Stat> {
    pids().into_iter().filter_map(stat).collect()
}

/// The real and effective uid of a process, from `/proc/<pid>/status`.
pub(crate) fn uids(pid: i32) -> Option<(u32, u32)> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_uids(&text)
}

pub(crate) fn parse_uids(status: &str) -> Option<(u32, u32)> {
    let line = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    let mut it = line.split_whitespace().map(|v| v.parse::<u32>());
    Some((it.next()?.ok()?, it.next()?.ok()?))
}

/// The agent's own pid and all its ancestors up to pid 1: processes a response must not touch.
pub(crate) fn self_and_ancestors() -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut out = vec![me];
    let mut cur = me;
    for _ in 0..256 {
        match stat(cur) {
            Some(s) if s.ppid > 0 && !out.contains(&s.ppid) => {
                out.push(s.ppid);
                cur = s.ppid;
            }
            _ => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_odd_command_name_parses() {
        let line = "4242 (a (b) c) S 17 4242 4242 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 1000 10 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
        let s = parse_stat(line).unwrap();
        assert_eq!(s.pid, 4242);
        assert_eq!(s.comm, "a (b) c");
        assert_eq!(s.state, 'S');
        assert_eq!(s.ppid, 17);
        assert_eq!(s.starttime, 987654);
        assert!(!s.is_dead());
    }

    #[test]
    fn garbage_stat_is_none() {
        assert_eq!(parse_stat(""), None);
        assert_eq!(parse_stat("12 (x) S"), None);
    }

    #[test]
    fn own_stat_and_ancestry_are_readable() {
        let me = std::process::id() as i32;
        assert_eq!(stat(me).unwrap().pid, me);
        let chain = self_and_ancestors();
        assert_eq!(chain[0], me);
        assert!(chain.len() >= 2);
    }

    #[test]
    fn uid_line_parses() {
        assert_eq!(
            parse_uids("Name:\tx\nUid:\t1000\t1001\t1000\t1000\n"),
            Some((1000, 1001))
        );
    }
}
