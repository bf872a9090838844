//! Enrichment: who ran an exec (user name) and from what (parent image and command line),
//! with bounded caches so a busy host costs bounded memory.

mod cache;
mod path;
mod processes;
pub(crate) mod procfs;
mod users;

pub(crate) use path::{basename, join_argv, resolve_exec_path};
pub(crate) use processes::KnownProcess;

use vigil_ocsf::{File, Process, User};

use crate::clock::{self, Clocks};
use crate::normalise::{ExecObservation, process_uid};
use processes::ProcessCache;
use users::UserNames;

/// What enrichment adds to an observation.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Enrichment {
    /// The process's user, when its uid is known.
    pub(crate) user: Option<User>,
    /// The parent, as far as it could be named.
    pub(crate) parent: Option<Process>,
}

/// Per-source enrichment state; one per capture thread, so no locking.
#[derive(Debug)]
pub(crate) struct Enricher {
    users: UserNames,
    processes: ProcessCache,
    hz: u64,
}

impl Enricher {
    pub(crate) fn new() -> Self {
        Self {
            users: UserNames::new(),
            processes: ProcessCache::new(),
            hz: clock::ticks_per_sec(),
        }
    }

    /// Clock ticks per second, for converting start times.
    pub(crate) fn hz(&self) -> u64 {
        self.hz
    }

    /// Names the user and parent of `obs`, then remembers `obs` as the image its pid runs.
    pub(crate) fn enrich(&mut self, obs: &ExecObservation, clocks: Clocks) -> Enrichment {
        let user = obs.ids.map(|ids| self.users.user(ids.uid));
        let parent = obs
            .ppid
            .map(|ppid| self.parent(ppid, obs.parent_start_ticks, clocks));
        self.processes.remember(
            obs.pid,
            KnownProcess {
                name: crate::normalise::process_name(obs),
                exe: obs.exe.clone(),
                cmd_line: obs.cmd_line.clone(),
                start_ticks: obs.start_ticks,
            },
        );
        Enrichment { user, parent }
    }

    fn parent(&mut self, ppid: u32, start_ticks: Option<u64>, clocks: Clocks) -> Process {
        let known = self.processes.lookup(ppid, start_ticks);
        let ticks = known.as_ref().and_then(|k| k.start_ticks).or(start_ticks);
        let mut parent = Process {
            pid: ppid,
            uid: ticks.map(|t| process_uid(ppid, t)),
            created_time: ticks.map(|t| clocks.boot_ns_to_ms(clock::ticks_to_boot_ns(t, self.hz))),
            ..Default::default()
        };
        if let Some(known) = known {
            parent.name = known.name;
            parent.cmd_line = known.cmd_line;
            parent.file = known.exe.as_deref().map(File::regular);
        }
        parent
    }
}
