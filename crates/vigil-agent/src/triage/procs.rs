//! Phase 1: the process tree, from `/proc/[pid]/{stat,cmdline,status,exe,cwd}`.

use std::fs;

use serde::Serialize;

use super::{MAX_PROCESSES, PhaseResult, cut};

/// One process. The tree is given by `ppid`.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessNode {
    /// Process id.
    pub pid: u32,
    /// Parent process id.
    pub ppid: u32,
    /// Command name (`comm`).
    pub name: String,
    /// Command line, arguments joined by spaces (cut to 1 KiB).
    pub cmd_line: String,
    /// Executable (`exe` link); absent for kernel threads or when unreadable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
    /// Working directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Real and effective uid.
    pub uid: u32,
    /// Effective uid.
    pub euid: u32,
    /// State letter (`R`, `S`, `Z`, …).
    pub state: String,
    /// Start, clock ticks since boot.
    pub start_ticks: u64,
    /// Whether it is a kernel thread.
    pub kernel_thread: bool,
}

pub(crate) fn collect() -> PhaseResult<ProcessNode> {
    let dir = fs::read_dir("/proc").map_err(|e| (Vec::new(), format!("cannot list /proc: {e}")))?;
    let mut pids: Vec<u32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    let mut out = Vec::new();
    let mut truncated = false;
    for pid in pids {
        if out.len() >= MAX_PROCESSES {
            truncated = true;
            break;
        }
        // A process may exit while it is read: skip it.
        if let Some(node) = read(pid) {
            out.push(node);
        }
    }
    Ok((out, truncated))
}

fn read(pid: u32) -> Option<ProcessNode> {
    let base = format!("/proc/{pid}");
    let stat = fs::read_to_string(format!("{base}/stat")).ok()?;
    // comm may hold spaces and parentheses: it ends at the last ')'.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_owned();
    let rest: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
    let state = rest.first()?.to_string();
    let ppid = rest.get(1)?.parse().ok()?;
    let flags: u64 = rest.get(6)?.parse().ok()?;
    let start_ticks = rest.get(19)?.parse().ok()?;
    let cmd_line = fs::read(format!("{base}/cmdline"))
        .map(|b| {
            let text: Vec<String> = b
                .split(|&c| c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            cut(text.join(" "))
        })
        .unwrap_or_default();
    let (uid, euid) = fs::read_to_string(format!("{base}/status"))
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("Uid:"))?;
            let mut ids = line
                .split_whitespace()
                .skip(1)
                .filter_map(|v| v.parse().ok());
            Some((ids.next()?, ids.next()?))
        })
        .unwrap_or((u32::MAX, u32::MAX));
    let link = |what: &str| {
        fs::read_link(format!("{base}/{what}"))
            .ok()
            .map(|p| cut(p.display().to_string()))
    };
    Some(ProcessNode {
        pid,
        ppid,
        name,
        cmd_line,
        exe: link("exe"),
        cwd: link("cwd"),
        uid,
        euid,
        state,
        start_ticks,
        // PF_KTHREAD
        kernel_thread: flags & 0x0020_0000 != 0,
    })
}
