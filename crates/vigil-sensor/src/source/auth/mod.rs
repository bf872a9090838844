//! Logins and authentications, from the authentication log (files or the journal) and the
//! login records (wtmp, btmp).
//!
//! - **Log lines**: the configured syslog files (`/var/log/auth.log`, `/var/log/secure`) are
//!   followed by path (`tail`: from their end at start, through rotation and truncation), or,
//!   when none of them exists at start and journald runs, the journal's `auth`/`authpriv`
//!   messages through a `journalctl` child (`journal`). Never both: rsyslog forwards the
//!   journal to those files, and a line must be read once. Every line is reported as a log
//!   line (OCSF Base Event); `syslog` splits its header, and `lines` finds the logons,
//!   failures, logoffs and account switches of sshd, sudo, su, login and PAM in it (OCSF
//!   Authentication).
//! - **Login records**: wtmp (sessions started and ended) and btmp (failed logins), followed
//!   the same way in records of `struct utmpx` (`utmp`).
//!
//! One capture thread (`listener`) waits on an inotify instance watching the files' directories
//! (`dirwatch`), the journal child's output and the stop signal, and checks every file once a
//! second whatever inotify says (a directory that does not exist yet, an overflowed queue).

mod dirwatch;
mod journal;
mod lines;
mod listener;
mod syslog;
mod tail;
mod utmp;

use std::io;
use std::path::{Path, PathBuf};

pub(crate) use listener::run;

use crate::{AuthConfig, SensorError, SourceKind};
use dirwatch::DirWatch;
use journal::{JOURNAL_SOCKET, JOURNALCTL, Journal};
use tail::{Framing, Tail};
use utmp::Sessions;

/// The sources opened for [`run`]; opening positions every file at its end, so what is written
/// after [`AuthWatch::open`] returns is read, and nothing before.
#[derive(Debug)]
pub(crate) struct AuthWatch {
    logs: Vec<Tail>,
    journal: Option<Journal>,
    wtmp: Option<(Tail, Sessions)>,
    btmp: Option<Tail>,
    dirs: DirWatch,
    /// The main source: `logfile`, `journald`, or `utmp` when only login records are read.
    pub(crate) kind: SourceKind,
    /// What the capability should say: what is read, and what is not and why.
    pub(crate) detail: String,
}

fn step(step: &'static str) -> impl FnOnce(io::Error) -> SensorError {
    move |source| SensorError::Auth { step, source }
}

impl AuthWatch {
    /// Opens the sources `config` names. Fails only when there is nothing to read at all.
    pub(crate) fn open(config: &AuthConfig) -> Result<Self, SensorError> {
        Self::open_with(config, Path::new(JOURNAL_SOCKET))
    }

    fn open_with(config: &AuthConfig, journal_socket: &Path) -> Result<Self, SensorError> {
        let mut notes = Vec::new();
        let absolute = |path: &PathBuf, notes: &mut Vec<String>| {
            let ok = path.is_absolute() && path.file_name().is_some();
            if !ok {
                notes.push(format!(
                    "{} ignored: not an absolute file path",
                    path.display()
                ));
            }
            ok
        };
        let logs: Vec<&PathBuf> = config
            .logs
            .iter()
            .filter(|p| absolute(p, &mut notes))
            .collect();
        let any_log = logs.iter().any(|p| p.exists());
        let mut journal = None;
        let mut parts = Vec::new();
        if config.journal && !any_log && journal_socket.exists() {
            match Journal::start(JOURNALCTL) {
                Ok(started) => {
                    journal = Some(started);
                    parts.push(format!(
                        "lines of the journal (facilities auth, authpriv){}",
                        if logs.is_empty() {
                            String::new()
                        } else {
                            format!(
                                "; no log file ({}) existed at start",
                                join(logs.iter().map(|p| p.as_path()))
                            )
                        }
                    ));
                }
                Err(error) => {
                    notes.push(format!("journal not read: cannot run journalctl: {error}"))
                }
            }
        }
        let mut tails = Vec::new();
        if journal.is_none() && !logs.is_empty() {
            tails = logs
                .iter()
                .map(|path| Tail::from_end(path, Framing::Lines))
                .collect();
            parts.push(format!("lines of {}", describe(&tails)));
            if config.journal && journal_socket.exists() {
                notes.push(
                    "the journal is not read: the log files are (rsyslog writes them from it)"
                        .into(),
                );
            }
        }
        let wtmp = config
            .wtmp
            .as_ref()
            .filter(|p| absolute(p, &mut notes))
            .map(|path| {
                let mut sessions = Sessions::new();
                if path.exists()
                    && let Err(error) = sessions.seed(path)
                {
                    notes.push(format!(
                        "open sessions not learned from {}: {error}",
                        path.display()
                    ));
                }
                let tail = Tail::from_end(path, Framing::Records(utmp::RECORD_SIZE));
                parts.push(format!(
                    "logons and logoffs from {}",
                    describe(std::slice::from_ref(&tail))
                ));
                (tail, sessions)
            });
        let btmp = config
            .btmp
            .as_ref()
            .filter(|p| absolute(p, &mut notes))
            .map(|path| {
                let tail = Tail::from_end(path, Framing::Records(utmp::RECORD_SIZE));
                parts.push(format!(
                    "failed logons from {}",
                    describe(std::slice::from_ref(&tail))
                ));
                tail
            });
        if parts.is_empty() {
            let why = if notes.is_empty() {
                "no log file, journal or login record file configured".to_owned()
            } else {
                notes.join("; ")
            };
            return Err(SensorError::Auth {
                step: "find something to read",
                source: io::Error::new(io::ErrorKind::NotFound, why),
            });
        }
        let mut dirs = DirWatch::new().map_err(step("create an inotify instance"))?;
        let followed = tails
            .iter()
            .chain(wtmp.iter().map(|(tail, _)| tail))
            .chain(btmp.iter());
        for tail in followed {
            if let Some((dir, _)) = dirwatch::split(tail.path()) {
                // A directory that does not exist yet is watched once it does (the loop retries).
                let _ = dirs.add(dir);
            }
        }
        let kind = if journal.is_some() {
            SourceKind::Journald
        } else if !tails.is_empty() {
            SourceKind::LogFile
        } else {
            SourceKind::Utmp
        };
        let mut detail = parts.join("; ");
        for note in notes {
            detail.push_str("; ");
            detail.push_str(&note);
        }
        Ok(Self {
            logs: tails,
            journal,
            wtmp,
            btmp,
            dirs,
            kind,
            detail,
        })
    }
}

fn join<'a>(paths: impl Iterator<Item = &'a Path>) -> String {
    paths
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `a, b (not there yet), c (unreadable: …)`.
fn describe(tails: &[Tail]) -> String {
    tails
        .iter()
        .map(|tail| {
            let path = tail.path().display();
            match (tail.is_open(), tail.error()) {
                (_, Some(error)) => format!("{path} (unreadable: {error})"),
                (true, None) => path.to_string(),
                (false, None) => format!("{path} (read once it appears)"),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("vigil-authwatch-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        dir
    }

    #[test]
    fn log_files_win_over_the_journal_and_missing_ones_are_awaited() {
        let dir = scratch("files");
        let present = dir.join("auth.log");
        std::fs::write(&present, "").unwrap_or_else(|e| panic!("{e}"));
        let config = AuthConfig {
            enabled: true,
            logs: vec![
                present.clone(),
                dir.join("secure"),
                PathBuf::from("relative.log"),
            ],
            journal: true,
            wtmp: None,
            btmp: Some(dir.join("btmp")),
        };
        // The directory stands in for journald's socket: it exists.
        let watch = AuthWatch::open_with(&config, &dir).unwrap_or_else(|e| panic!("{e}"));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(watch.kind, SourceKind::LogFile);
        assert!(watch.journal.is_none());
        assert_eq!(watch.logs.len(), 2);
        let detail = &watch.detail;
        assert!(
            detail.contains(&format!("lines of {}", present.display())),
            "{detail}"
        );
        assert!(detail.contains("secure (read once it appears)"), "{detail}");
        assert!(detail.contains("failed logons from"), "{detail}");
        assert!(detail.contains("relative.log ignored"), "{detail}");
        assert!(detail.contains("the journal is not read"), "{detail}");
    }

    #[test]
    fn nothing_to_read_is_an_error() {
        let config = AuthConfig::reading(Vec::<PathBuf>::new(), None, None);
        let error = AuthWatch::open_with(&config, Path::new("/nonexistent"))
            .err()
            .map(|e| e.to_string());
        assert!(
            error
                .as_deref()
                .is_some_and(|e| e.contains("nothing") || e.contains("find something")),
            "{error:?}"
        );
        let only_records = AuthConfig::reading(
            Vec::<PathBuf>::new(),
            Some(PathBuf::from("/nonexistent/wtmp")),
            None,
        );
        let watch = AuthWatch::open_with(&only_records, Path::new("/nonexistent"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(watch.kind, SourceKind::Utmp);
    }
}
