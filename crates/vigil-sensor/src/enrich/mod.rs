//! Enrichment: who a process runs as (user name), what it and its parents run (image and
//! command line, the ancestry), and which process owns a socket or acted on a file, with bounded
//! caches so a busy host costs bounded memory.
//!
//! The process cache is shared by every capture thread of a sensor ([`SharedProcesses`]): the
//! process source keeps it current (execs, forks, exits), and the other sources name their
//! actors from it, so a process that wrote a file and exited at once is still named by the
//! image its exec reported. The user and hash caches stay per thread.

mod cache;
mod hashes;
mod path;
mod processes;
pub(crate) mod procfs;
mod users;

pub(crate) use cache::BoundedCache;
pub(crate) use path::{basename, join_argv, resolve_exec_path, split_argv};
pub(crate) use processes::KnownProcess;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use vigil_ocsf::{Actor, File, Process, ProcessEntity, User};

use crate::clock::{self, Clocks};
use crate::normalise::{
    Account, ExecObservation, ExitObservation, ForkObservation, OwnerFacts, TaskFacts, image_name,
    process_uid,
};
use processes::ProcessCache;
use users::UserNames;

/// The process cache, shared by a sensor's capture threads.
#[derive(Debug, Clone)]
pub(crate) struct SharedProcesses(Arc<Mutex<ProcessCache>>);

impl SharedProcesses {
    pub(crate) fn new() -> Self {
        Self(Arc::new(Mutex::new(ProcessCache::new())))
    }

    /// The cache, locked. A thread that panicked while holding it left it consistent (every
    /// operation is a single map update), so a poisoned lock is taken over.
    fn lock(&self) -> MutexGuard<'_, ProcessCache> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// How many ancestors `process.ancestry` lists, direct parent first.
const MAX_ANCESTRY: usize = 8;
/// Longest command line of an `ancestry` entry, in bytes. Every event repeats the chain, and
/// the direct parent's full command line is in `parent_process` already.
const ANCESTRY_CMD_LINE: usize = 256;

/// What enrichment adds to a process event.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Enrichment {
    /// The process's user, when its uid is known.
    pub(crate) user: Option<User>,
    /// The parent, as far as it could be named.
    pub(crate) parent: Option<Process>,
    /// The parent chain, direct parent first.
    pub(crate) ancestry: Vec<ProcessEntity>,
    /// For forks and exits: the image the process was running, as the sensor last knew it.
    pub(crate) image: Option<KnownProcess>,
    /// For execs: SHA-256 of the new image.
    pub(crate) exe_sha256: Option<String>,
}

/// Per-source enrichment state; one per capture thread. Only the process cache is shared
/// (and locked briefly per lookup).
#[derive(Debug)]
pub(crate) struct Enricher {
    users: UserNames,
    processes: SharedProcesses,
    hashes: hashes::ExeHashes,
    hz: u64,
}

impl Enricher {
    pub(crate) fn new(processes: SharedProcesses) -> Self {
        Self {
            users: UserNames::new(),
            processes,
            hashes: hashes::ExeHashes::default(),
            hz: clock::ticks_per_sec(),
        }
    }

    /// Learns the processes running now from `/proc`; returns how many.
    pub(crate) fn seed_from_proc(&mut self) -> usize {
        self.processes.lock().seed_from_proc()
    }

    /// Clock ticks per second, for converting start times.
    pub(crate) fn hz(&self) -> u64 {
        self.hz
    }

    /// Names the user, parent and ancestry of an exec, then remembers its new image.
    pub(crate) fn exec(&mut self, obs: &ExecObservation, clocks: Clocks) -> Enrichment {
        // A process gone before /proc could be read (the proc connector's exec carries only
        // the pid) still has the parent its fork named.
        let mut task = obs.task.clone();
        if task.ppid.is_none() {
            let forked = self.processes.lock().lookup(task.pid, task.start_ticks);
            task.ppid = forked.and_then(|k| k.ppid);
        }
        self.processes.lock().remember(
            task.pid,
            KnownProcess {
                name: image_name(obs.exe.as_deref(), &task.comm),
                exe: obs.exe.clone(),
                cmd_line: obs.cmd_line.clone(),
                start_ticks: task.start_ticks,
                ppid: task.ppid,
                uid: task.ids.map(|ids| ids.uid),
                forked: false,
            },
        );
        let mut enrichment = self.lineage(&task, clocks);
        enrichment.exe_sha256 = self.hashes.of_pid(obs.task.pid);
        enrichment
    }

    /// A new process runs its parent's image: remembers it so, and names it and its parents.
    pub(crate) fn fork(&mut self, obs: &ForkObservation, clocks: Clocks) -> Enrichment {
        let task = &obs.task;
        let inherited = task
            .ppid
            .and_then(|ppid| self.processes.lock().lookup(ppid, task.parent_start_ticks));
        let uid = task
            .ids
            .map(|ids| ids.uid)
            .or(inherited.as_ref().and_then(|k| k.uid));
        let image = KnownProcess {
            name: inherited
                .as_ref()
                .map_or_else(|| task.comm.clone(), |k| k.name.clone()),
            exe: inherited.as_ref().and_then(|k| k.exe.clone()),
            cmd_line: inherited.and_then(|k| k.cmd_line),
            start_ticks: task.start_ticks,
            ppid: task.ppid,
            uid,
            forked: true,
        };
        self.processes.lock().remember(task.pid, image.clone());
        let mut enrichment = self.lineage(task, clocks);
        enrichment.image = Some(image);
        enrichment
    }

    /// Names an exiting process by what it was running, then forgets it.
    pub(crate) fn exit(&mut self, obs: &ExitObservation, clocks: Clocks) -> Enrichment {
        let task = &obs.task;
        let image = self.processes.lock().lookup(task.pid, task.start_ticks);
        let mut enrichment = self.lineage(task, clocks);
        enrichment.image = image;
        self.processes.lock().forget(task.pid, task.start_ticks);
        enrichment
    }

    /// The OCSF `user` of an account a log or login record names (uid looked up by name).
    pub(crate) fn account(&mut self, account: &Account) -> User {
        self.users.named(&account.name, account.uid, account.exists)
    }

    /// The socket owner as an OCSF actor: its process (image from the cache or `/proc`) and user.
    pub(crate) fn owner(&mut self, owner: &OwnerFacts, clocks: Clocks) -> Actor {
        let known = self.processes.lock().lookup(owner.pid, owner.start_ticks);
        let user = owner.uid.map(|uid| self.users.user(uid));
        let comm = owner.comm.clone().unwrap_or_default();
        let process = Process {
            pid: owner.pid,
            tid: owner.tid,
            uid: owner.start_ticks.map(|t| process_uid(owner.pid, t)),
            name: known
                .as_ref()
                .map(|k| k.name.clone())
                .filter(|n| !n.is_empty())
                .unwrap_or(comm),
            cmd_line: known.as_ref().and_then(|k| k.cmd_line.clone()),
            file: known.and_then(|k| k.exe).as_deref().map(File::regular),
            user: user.clone(),
            created_time: owner.start_ticks.map(|t| self.ticks_to_ms(t, clocks)),
            ..Default::default()
        };
        Actor {
            process: Some(process),
            user,
        }
    }

    /// The process that acted on a file, known only by its pid: named from the process cache
    /// (kept current by the process source, so a process that has exited since is still named by
    /// its last exec), else from `/proc/<pid>`; with its user and parent. Its `uid` and user are
    /// as of its exec (or the `/proc` read that found it): a later `setuid` is not seen.
    pub(crate) fn file_actor(&mut self, pid: u32, clocks: Clocks) -> Actor {
        let mut known = self.processes.lock().lookup(pid, None);
        // A forked process may have exec'd before the process source told the cache: while it
        // lives, `/proc` settles it (one readlink; a re-read only when the image differs).
        if let Some(cached) = known.as_ref().filter(|k| k.forked)
            && let Some(live) = procfs::read_exe(pid)
            && cached.exe.as_deref() != Some(live.as_str())
        {
            known = self.processes.lock().refresh(pid).or(known);
        }
        let Some(known) = known else {
            return Actor {
                process: Some(Process {
                    pid,
                    ..Default::default()
                }),
                user: None,
            };
        };
        let user = known.uid.map(|uid| self.users.user(uid));
        let parent = known.ppid.map(|ppid| self.parent(ppid, None, clocks));
        let process = Process {
            pid,
            uid: known.start_ticks.map(|t| process_uid(pid, t)),
            name: known.name,
            cmd_line: known.cmd_line,
            file: known.exe.as_deref().map(File::regular),
            user: user.clone(),
            created_time: known.start_ticks.map(|t| self.ticks_to_ms(t, clocks)),
            parent_process: parent.map(Box::new),
            ..Default::default()
        };
        Actor {
            process: Some(process),
            user,
        }
    }

    /// The OCSF user for `uid`, named through the user cache.
    pub(crate) fn user(&mut self, uid: u32) -> User {
        self.users.user(uid)
    }

    fn lineage(&mut self, task: &TaskFacts, clocks: Clocks) -> Enrichment {
        let user = task.ids.map(|ids| self.users.user(ids.uid));
        let parent = task
            .ppid
            .map(|ppid| self.parent(ppid, task.parent_start_ticks, clocks));
        let ancestry = match &parent {
            Some(parent) => {
                let mut ancestry = vec![entity(parent)];
                let above = self
                    .processes
                    .lock()
                    .ancestors(parent.pid, MAX_ANCESTRY - 1);
                for (pid, known) in above {
                    ancestry.push(self.known_entity(pid, known, clocks));
                }
                ancestry
            }
            None => Vec::new(),
        };
        Enrichment {
            user,
            parent,
            ancestry,
            image: None,
            exe_sha256: None,
        }
    }

    fn parent(&mut self, ppid: u32, start_ticks: Option<u64>, clocks: Clocks) -> Process {
        let known = self.processes.lock().lookup(ppid, start_ticks);
        let ticks = known.as_ref().and_then(|k| k.start_ticks).or(start_ticks);
        let mut parent = Process {
            pid: ppid,
            uid: ticks.map(|t| process_uid(ppid, t)),
            created_time: ticks.map(|t| self.ticks_to_ms(t, clocks)),
            ..Default::default()
        };
        if let Some(known) = known {
            parent.name = known.name;
            parent.cmd_line = known.cmd_line;
            parent.file = known.exe.as_deref().map(File::regular);
        }
        parent
    }

    fn known_entity(&self, pid: u32, known: KnownProcess, clocks: Clocks) -> ProcessEntity {
        ProcessEntity {
            pid,
            uid: known.start_ticks.map(|t| process_uid(pid, t)),
            name: known.name,
            cmd_line: known.cmd_line.as_deref().map(short_cmd_line),
            path: known.exe,
            created_time: known.start_ticks.map(|t| self.ticks_to_ms(t, clocks)),
        }
    }

    fn ticks_to_ms(&self, ticks: u64, clocks: Clocks) -> i64 {
        clocks.boot_ns_to_ms(clock::ticks_to_boot_ns(ticks, self.hz))
    }
}

fn entity(process: &Process) -> ProcessEntity {
    ProcessEntity {
        pid: process.pid,
        uid: process.uid.clone(),
        name: process.name.clone(),
        cmd_line: process.cmd_line.as_deref().map(short_cmd_line),
        path: process.file.as_ref().map(|f| f.path.clone()),
        created_time: process.created_time,
    }
}

/// `cmd_line` cut to [`ANCESTRY_CMD_LINE`] bytes, on a character boundary.
fn short_cmd_line(cmd_line: &str) -> String {
    let mut end = cmd_line.len().min(ANCESTRY_CMD_LINE);
    while !cmd_line.is_char_boundary(end) {
        end -= 1;
    }
    cmd_line[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ancestry_command_lines_are_cut_on_a_character_boundary() {
        assert_eq!(short_cmd_line("bash -c x"), "bash -c x");
        let long = format!("{}é", "a".repeat(ANCESTRY_CMD_LINE - 1));
        assert_eq!(short_cmd_line(&long), "a".repeat(ANCESTRY_CMD_LINE - 1));
        assert_eq!(short_cmd_line(&"b".repeat(1000)).len(), ANCESTRY_CMD_LINE);
    }
}
