//! The capture thread: waits for the followed files to change (inotify), the journal child to
//! write, or a second to pass, and turns what was added into log line and authentication
//! observations.

use std::collections::HashSet;
use std::io;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use super::dirwatch::{self, Changes};
use super::tail::{Found, Tail};
use super::utmp::{self, Sessions};
use super::{AuthWatch, lines, syslog};
use crate::clock::Clocks;
use crate::normalise::{AuthFacts, AuthObservation, LogRecord, Observation};
use crate::source::{Emitter, Flow, Wake, wait_any};

/// Every file is checked at least this often, whatever inotify says.
const CHECK_EVERY_MS: i32 = 1000;

/// Runs until stop is raised, the sink closes, or waiting fails.
pub(crate) fn run(watch: AuthWatch, emitter: Emitter) {
    let AuthWatch {
        logs,
        journal,
        wtmp,
        btmp,
        dirs,
        ..
    } = watch;
    let mut reader = Reader {
        logs,
        wtmp,
        btmp,
        emitter,
    };
    let mut dirs = dirs;
    let mut journal = journal;
    loop {
        let journal_fd = journal.as_ref().and_then(|j| j.fd());
        let wake = wait_any(
            &[Some(dirs.as_fd()), journal_fd],
            reader.emitter.stop(),
            CHECK_EVERY_MS,
        );
        let changed = match wake {
            Ok(Wake::Stop) => return,
            Ok(Wake::Timeout) => None,
            Ok(Wake::Ready) => match dirs.changes() {
                Ok(Changes::Paths(paths)) => Some(paths),
                Ok(Changes::All) => None,
                Err(error) => {
                    tracing::warn!(%error, "Reading inotify failed; checking every file");
                    None
                }
            },
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => {
                tracing::error!(%error, "Waiting for login logs failed; login capture stops");
                return;
            }
        };
        if changed.is_none() {
            // A directory that did not exist (or went away) is watched once it is back.
            for path in reader.paths() {
                if let Some((dir, _)) = dirwatch::split(&path)
                    && !dirs.watches(dir)
                {
                    let _ = dirs.add(dir);
                }
            }
        }
        if reader.check(changed.as_ref()) == Flow::Stop {
            return;
        }
        if let Some(journal) = journal.as_mut() {
            let entries = journal.read();
            reader.dropped(entries.malformed);
            for record in entries.records {
                if reader.record(record) == Flow::Stop {
                    return;
                }
            }
        }
    }
}

/// The followed files and where their observations go.
struct Reader {
    logs: Vec<Tail>,
    wtmp: Option<(Tail, Sessions)>,
    btmp: Option<Tail>,
    emitter: Emitter,
}

/// Whether `tail` is among the changed paths (`None`: check everything).
fn due(tail: &Tail, changed: Option<&HashSet<PathBuf>>) -> bool {
    changed.is_none_or(|paths| paths.contains(tail.path()))
}

impl Reader {
    fn paths(&self) -> Vec<PathBuf> {
        self.logs
            .iter()
            .chain(self.wtmp.iter().map(|(tail, _)| tail))
            .chain(self.btmp.iter())
            .map(|tail| tail.path().to_owned())
            .collect()
    }

    fn dropped(&self, count: u64) {
        if count > 0 {
            self.emitter
                .stats()
                .dropped
                .fetch_add(count, Ordering::Relaxed);
        }
    }

    /// Reads the files that changed, until each has nothing more.
    fn check(&mut self, changed: Option<&HashSet<PathBuf>>) -> Flow {
        for index in 0..self.logs.len() {
            if !due(&self.logs[index], changed) {
                continue;
            }
            loop {
                let found = self.logs[index].check();
                let log_name = self.logs[index].path().to_string_lossy().into_owned();
                let more = found.more;
                if self.lines(found, &log_name) == Flow::Stop {
                    return Flow::Stop;
                }
                if !more || self.emitter.stop().is_raised() {
                    break;
                }
            }
        }
        if let Some((tail, _)) = self.wtmp.as_ref()
            && due(tail, changed)
            && self.records(true) == Flow::Stop
        {
            return Flow::Stop;
        }
        if let Some(tail) = self.btmp.as_ref()
            && due(tail, changed)
            && self.records(false) == Flow::Stop
        {
            return Flow::Stop;
        }
        Flow::Continue
    }

    fn lines(&mut self, found: Found, log_name: &str) -> Flow {
        self.dropped(found.lost);
        let read_ms = vigil_ocsf::now_ms();
        for line in found.items {
            let text = String::from_utf8_lossy(&line);
            if text.trim().is_empty() {
                continue;
            }
            if self.record(syslog::parse(&text, log_name, read_ms)) == Flow::Stop {
                return Flow::Stop;
            }
        }
        Flow::Continue
    }

    /// Reports a log record as a log line, and as an authentication when it is one.
    fn record(&mut self, record: LogRecord) -> Flow {
        let auth = lines::parse(&record).map(|facts| {
            Box::new(AuthObservation {
                facts,
                time_ms: record.time_ms,
                log_name: record.log_name.clone(),
                line: Some(record.clone()),
            })
        });
        let clocks = Clocks::now();
        if self.emitter.emit(&Observation::Log(record), clocks) == Flow::Stop {
            return Flow::Stop;
        }
        match auth {
            Some(auth) => self.emitter.emit(&Observation::Auth(auth), clocks),
            None => Flow::Continue,
        }
    }

    /// Reads new wtmp (`wtmp`) or btmp records.
    fn records(&mut self, wtmp: bool) -> Flow {
        loop {
            let (found, log_name) = match (wtmp, self.wtmp.as_mut(), self.btmp.as_mut()) {
                (true, Some((tail, _)), _) | (false, _, Some(tail)) => {
                    (tail.check(), tail.path().to_string_lossy().into_owned())
                }
                _ => return Flow::Continue,
            };
            self.dropped(found.lost);
            let more = found.more;
            for bytes in found.items {
                let Some(record) = utmp::decode(&bytes) else {
                    self.dropped(1);
                    continue;
                };
                let facts = match (wtmp, self.wtmp.as_mut()) {
                    (true, Some((_, sessions))) => sessions.wtmp(&record),
                    _ => utmp::btmp(&record),
                };
                let Some(facts) = facts else {
                    continue;
                };
                if self.login(facts, record.time_ms, &log_name) == Flow::Stop {
                    return Flow::Stop;
                }
            }
            if !more || self.emitter.stop().is_raised() {
                return Flow::Continue;
            }
        }
    }

    fn login(&mut self, facts: AuthFacts, time_ms: i64, log_name: &str) -> Flow {
        let time_ms = if time_ms > 0 {
            time_ms
        } else {
            vigil_ocsf::now_ms()
        };
        let obs = Box::new(AuthObservation {
            facts,
            time_ms,
            log_name: log_name.to_owned(),
            line: None,
        });
        self.emitter.emit(&Observation::Auth(obs), Clocks::now())
    }
}
