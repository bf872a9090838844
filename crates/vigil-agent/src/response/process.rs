//! Kill, suspend and resume processes, each verified by reading /proc back.
//!
//! A tree kill first stops the whole tree with SIGSTOP (top down, re-scanning /proc until no new
//! child appears, so nothing forks its way out), then sends SIGKILL children first, then waits
//! until every process is gone or a zombie. A pid is remembered with its start time, so a pid
//! reused by a new process during the kill is not mistaken for a survivor, nor signalled.
//!
//! Pid 1, the agent itself and the agent's ancestors are refused: killing any of them would take
//! the agent (or the host) down with the target.

use std::collections::{HashMap, HashSet};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill as send};
use nix::unistd::Pid;
use serde::Serialize;

use super::procfs::{self, Stat};

/// How long a signal has to show its effect in /proc.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(3);
/// How many /proc scans a tree freeze may take before it gives up waiting for stability.
const MAX_FREEZE_ROUNDS: usize = 64;

/// Why a process action was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The pid is zero or negative (which `kill(2)` would read as a process group).
    #[error("{0} is not a process id: give a pid greater than 0")]
    InvalidPid(i32),
    /// The pid is one the agent must not touch.
    #[error("refusing to act on pid {pid}: {reason}")]
    Protected {
        /// The pid asked for.
        pid: i32,
        /// Why it is protected.
        reason: &'static str,
    },
    /// No such process.
    #[error("no process with pid {0} (it may already have exited)")]
    NotFound(i32),
    /// The kernel refused the signal.
    #[error("sending {signal} to pid {pid} failed: {source}")]
    Signal {
        /// The target.
        pid: i32,
        /// The signal's name.
        signal: &'static str,
        /// The errno.
        #[source]
        source: Errno,
    },
    /// The signal was sent but /proc does not show the expected state.
    #[error("pid {pid} is in state '{state}' {} ms after {signal}, not {expected}", VERIFY_TIMEOUT.as_millis())]
    NotVerified {
        /// The target.
        pid: i32,
        /// The signal sent.
        signal: &'static str,
        /// What was expected, in words.
        expected: &'static str,
        /// The state letter read from /proc.
        state: char,
    },
}

/// One process a kill was aimed at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KilledProcess {
    /// Its pid.
    pub pid: i32,
    /// Its parent when the kill started.
    pub ppid: i32,
    /// Its command name.
    pub comm: String,
}

/// What a kill did, as read back from /proc.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KillReport {
    /// The pid asked for.
    pub pid: i32,
    /// Whether the process's descendants were killed too.
    pub tree: bool,
    /// Every process SIGKILL was sent to, children before parents.
    pub killed: Vec<KilledProcess>,
    /// Whether every one of them is gone (or a zombie) now.
    pub verified: bool,
    /// Pids still alive when verification gave up (empty when `verified`).
    pub survivors: Vec<i32>,
}

/// The state of a process after suspend or resume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignalReport {
    /// The pid.
    pub pid: i32,
    /// Its command name.
    pub comm: String,
    /// The state letter read from /proc after the signal (`T` = stopped).
    pub state: char,
    /// Whether the state is the expected one.
    pub verified: bool,
}

/// Checks that `pid` may be acted on and returns its current stat.
fn target(pid: i32) -> Result<Stat, ProcessError> {
    if pid <= 0 {
        return Err(ProcessError::InvalidPid(pid));
    }
    if pid == 1 {
        return Err(ProcessError::Protected {
            pid,
            reason: "pid 1 is the init process; signalling it can bring the host down",
        });
    }
    if pid == std::process::id() as i32 {
        return Err(ProcessError::Protected {
            pid,
            reason: "it is the Vigil agent itself",
        });
    }
    if procfs::self_and_ancestors().contains(&pid) {
        return Err(ProcessError::Protected {
            pid,
            reason: "it is an ancestor of the Vigil agent, which would go down with it",
        });
    }
    procfs::stat(pid).ok_or(ProcessError::NotFound(pid))
}

fn signal(s: &Stat, sig: Signal) -> Result<(), ProcessError> {
    // The pid may have been reused since `s` was read; re-check its identity first.
    match procfs::stat(s.pid) {
        Some(now) if now.starttime == s.starttime => {}
        _ => return Ok(()),
    }
    match send(Pid::from_raw(s.pid), sig) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(source) => Err(ProcessError::Signal {
            pid: s.pid,
            signal: sig.as_str(),
            source,
        }),
    }
}

/// Whether the process `s` names is gone: no such pid, a new process under the same pid, or a
/// zombie.
fn is_gone(s: &Stat) -> bool {
    match procfs::stat(s.pid) {
        None => true,
        Some(now) => now.starttime != s.starttime || now.is_dead(),
    }
}

/// Sends SIGKILL to `pid` (and, with `tree`, to all its descendants, children first) and waits
/// until /proc shows every one gone or a zombie.
pub fn kill(pid: i32, tree: bool) -> Result<KillReport, ProcessError> {
    let root = target(pid)?;
    if root.is_dead() {
        return Ok(KillReport {
            pid,
            tree,
            killed: Vec::new(),
            verified: true,
            survivors: Vec::new(),
        });
    }
    let targets = if tree {
        freeze_tree(&root)?
    } else {
        vec![root]
    };
    // Children first: a parent killed first would let its children be re-parented out of reach.
    for s in targets.iter().rev() {
        signal(s, Signal::SIGKILL)?;
    }
    let deadline = Instant::now() + VERIFY_TIMEOUT;
    let mut survivors: Vec<&Stat> = targets.iter().collect();
    loop {
        survivors.retain(|s| !is_gone(s));
        if survivors.is_empty() || Instant::now() >= deadline {
            break;
        }
        sleep(Duration::from_millis(5));
    }
    Ok(KillReport {
        pid,
        tree,
        killed: targets
            .iter()
            .rev()
            .map(|s| KilledProcess {
                pid: s.pid,
                ppid: s.ppid,
                comm: s.comm.clone(),
            })
            .collect(),
        verified: survivors.is_empty(),
        survivors: survivors.iter().map(|s| s.pid).collect(),
    })
}

/// Stops `root` and every descendant, re-scanning until a scan finds no new process. Returns
/// them parents before children.
fn freeze_tree(root: &Stat) -> Result<Vec<Stat>, ProcessError> {
    let protected: HashSet<i32> = procfs::self_and_ancestors().into_iter().collect();
    signal(root, Signal::SIGSTOP)?;
    let mut found: Vec<Stat> = vec![root.clone()];
    let mut known: HashSet<(i32, u64)> = HashSet::from([(root.pid, root.starttime)]);
    for _ in 0..MAX_FREEZE_ROUNDS {
        let snapshot = procfs::all();
        let mut children: HashMap<i32, Vec<&Stat>> = HashMap::new();
        for s in &snapshot {
            children.entry(s.ppid).or_default().push(s);
        }
        let mut new = Vec::new();
        let mut queue: Vec<i32> = found.iter().map(|s| s.pid).collect();
        let mut seen: HashSet<i32> = queue.iter().copied().collect();
        while let Some(p) = queue.pop() {
            for c in children.get(&p).into_iter().flatten() {
                if protected.contains(&c.pid) || !seen.insert(c.pid) {
                    continue;
                }
                queue.push(c.pid);
                if known.insert((c.pid, c.starttime)) {
                    new.push((*c).clone());
                }
            }
        }
        if new.is_empty() {
            break;
        }
        for s in &new {
            signal(s, Signal::SIGSTOP)?;
        }
        found.extend(new);
    }
    Ok(found)
}

/// Stops a process with SIGSTOP and checks that /proc shows it stopped (`T`).
pub fn suspend(pid: i32) -> Result<SignalReport, ProcessError> {
    let s = target(pid)?;
    signal(&s, Signal::SIGSTOP)?;
    wait_state(&s, Signal::SIGSTOP, "stopped (T)", |c| {
        matches!(c, 'T' | 't')
    })
}

/// Continues a stopped process with SIGCONT and checks that /proc no longer shows it stopped.
pub fn resume(pid: i32) -> Result<SignalReport, ProcessError> {
    let s = target(pid)?;
    signal(&s, Signal::SIGCONT)?;
    wait_state(&s, Signal::SIGCONT, "running (not T)", |c| c != 'T')
}

fn wait_state(
    s: &Stat,
    sig: Signal,
    expected: &'static str,
    ok: impl Fn(char) -> bool,
) -> Result<SignalReport, ProcessError> {
    let deadline = Instant::now() + VERIFY_TIMEOUT;
    loop {
        let now = match procfs::stat(s.pid) {
            Some(now) if now.starttime == s.starttime => now,
            _ => return Err(ProcessError::NotFound(s.pid)),
        };
        if ok(now.state) {
            return Ok(SignalReport {
                pid: now.pid,
                comm: now.comm,
                state: now.state,
                verified: true,
            });
        }
        if Instant::now() >= deadline {
            return Err(ProcessError::NotVerified {
                pid: s.pid,
                signal: sig.as_str(),
                expected,
                state: now.state,
            });
        }
        sleep(Duration::from_millis(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_and_protected_pids_are_refused() {
        assert!(matches!(kill(0, false), Err(ProcessError::InvalidPid(0))));
        assert!(matches!(kill(-5, true), Err(ProcessError::InvalidPid(-5))));
        assert!(matches!(
            kill(1, true),
            Err(ProcessError::Protected { pid: 1, .. })
        ));
        let me = std::process::id() as i32;
        assert!(matches!(
            kill(me, false),
            Err(ProcessError::Protected { .. })
        ));
        assert!(matches!(suspend(me), Err(ProcessError::Protected { .. })));
        let parent = procfs::stat(me).unwrap().ppid;
        assert!(matches!(
            kill(parent, true),
            Err(ProcessError::Protected { .. })
        ));
    }

    #[test]
    fn missing_pid_is_not_found() {
        // pid_max is at most 2^22, so this pid cannot exist.
        assert!(matches!(
            kill(4_194_304 + 7, false),
            Err(ProcessError::NotFound(_))
        ));
    }
}
