//! Renames. With `FAN_RENAME` (Linux 5.17+) one event carries both names. Older kernels
//! report `FAN_MOVED_FROM` and `FAN_MOVED_TO` as two events without a cookie to tie them: the
//! kernel queues them back to back, so a `MOVED_FROM` is held until the same process's next
//! event; a `MOVED_TO` from it completes the rename. A side that finds no partner (another
//! process's event came between, or the reader timed out) is reported alone.

use crate::normalise::{FileChange, FileObservation};

/// How many events of other processes may pass before a held `MOVED_FROM` is given up.
const MAX_INTERLEAVED: u32 = 64;

/// One name of a renamed entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Side {
    pub(crate) pid: u32,
    /// The path, `None` when its directory could not be named.
    pub(crate) path: Option<String>,
    /// Whether activity at `path` is reported.
    pub(crate) reported: bool,
    pub(crate) is_dir: bool,
}

/// A rename as far as it is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rename {
    Both { from: Side, to: Side },
    FromOnly(Side),
    ToOnly(Side),
}

impl Rename {
    /// The observation to report: when either name is watched, `path` the old name (or the
    /// only one known) and the new name in the change.
    pub(crate) fn observation(self, time_ms: i64) -> Option<FileObservation> {
        let (pid, is_dir, path, to) = match self {
            Rename::Both { from, to } if from.reported || to.reported => {
                match (from.path, to.path) {
                    (Some(old), new) => (from.pid, from.is_dir, old, new),
                    (None, Some(new)) => (to.pid, to.is_dir, new.clone(), Some(new)),
                    (None, None) => return None,
                }
            }
            Rename::FromOnly(from) if from.reported => (from.pid, from.is_dir, from.path?, None),
            Rename::ToOnly(to) if to.reported => {
                let new = to.path?;
                (to.pid, to.is_dir, new.clone(), Some(new))
            }
            _ => return None,
        };
        let facts = to.as_deref().and_then(crate::normalise::FileFacts::of);
        Some(FileObservation {
            time_ms,
            pid,
            change: FileChange::Rename { to },
            path,
            is_dir,
            facts,
        })
    }
}

/// Pairs `MOVED_FROM` with `MOVED_TO`.
#[derive(Debug, Default)]
pub(crate) struct Moves {
    held: Option<(Side, u32)>,
}

impl Moves {
    /// Whether a `MOVED_FROM` waits for its partner.
    pub(crate) fn is_holding(&self) -> bool {
        self.held.is_some()
    }

    /// A `MOVED_FROM`: held; returns an earlier one given up.
    pub(crate) fn moved_from(&mut self, from: Side) -> Option<Rename> {
        self.held
            .replace((from, 0))
            .map(|(old, _)| Rename::FromOnly(old))
    }

    /// A `MOVED_TO`: the rename, complete if it follows its process's `MOVED_FROM`; and an
    /// unrelated held `MOVED_FROM`, given up, when it is the same process's.
    pub(crate) fn moved_to(&mut self, to: Side) -> (Option<Rename>, Rename) {
        match self.held.take() {
            Some((from, _)) if from.pid == to.pid && from.is_dir == to.is_dir => {
                (None, Rename::Both { from, to })
            }
            Some((from, seen)) if from.pid != to.pid => {
                self.held = Some((from, seen + 1));
                (None, Rename::ToOnly(to))
            }
            Some((from, _)) => (Some(Rename::FromOnly(from)), Rename::ToOnly(to)),
            None => (None, Rename::ToOnly(to)),
        }
    }

    /// Any other event, of process `pid`: a held `MOVED_FROM` of the same process (or held
    /// too long) is given up.
    pub(crate) fn other(&mut self, pid: u32) -> Option<Rename> {
        let (from, seen) = self.held.take()?;
        if from.pid == pid || seen >= MAX_INTERLEAVED {
            return Some(Rename::FromOnly(from));
        }
        self.held = Some((from, seen + 1));
        None
    }

    /// Gives up a held `MOVED_FROM` (the reader saw no event for a while).
    pub(crate) fn flush(&mut self) -> Option<Rename> {
        self.held.take().map(|(from, _)| Rename::FromOnly(from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(pid: u32, path: &str, reported: bool) -> Side {
        Side {
            pid,
            path: Some(path.into()),
            reported,
            is_dir: false,
        }
    }

    fn names(rename: Rename) -> Option<(String, Option<String>)> {
        let obs = rename.observation(1)?;
        match obs.change {
            FileChange::Rename { to } => Some((obs.path, to)),
            other => panic!("not a rename: {other:?}"),
        }
    }

    #[test]
    fn from_then_to_of_one_process_pair() {
        let mut moves = Moves::default();
        assert_eq!(moves.moved_from(side(5, "/tmp/a", true)), None);
        assert!(moves.is_holding());
        let (given_up, rename) = moves.moved_to(side(5, "/etc/b", true));
        assert_eq!(given_up, None);
        assert!(!moves.is_holding());
        assert_eq!(
            names(rename),
            Some(("/tmp/a".into(), Some("/etc/b".into())))
        );
    }

    #[test]
    fn a_rename_into_the_watched_paths_is_reported_from_outside() {
        let both = Rename::Both {
            from: side(5, "/var/tmp/x", false),
            to: side(5, "/etc/cron.d/x", true),
        };
        assert_eq!(
            names(both),
            Some(("/var/tmp/x".into(), Some("/etc/cron.d/x".into())))
        );
        let neither = Rename::Both {
            from: side(5, "/var/a", false),
            to: side(5, "/var/b", false),
        };
        assert_eq!(names(neither), None);
    }

    #[test]
    fn other_processes_may_interleave_but_not_forever() {
        let mut moves = Moves::default();
        moves.moved_from(side(5, "/tmp/a", true));
        assert_eq!(moves.other(6), None);
        let (given_up, rename) = moves.moved_to(side(6, "/tmp/z", true));
        assert_eq!(given_up, None);
        assert_eq!(rename, Rename::ToOnly(side(6, "/tmp/z", true)));
        assert_eq!(
            names(rename),
            Some(("/tmp/z".into(), Some("/tmp/z".into()))),
            "a lone new name is both"
        );
        let (_, rename) = moves.moved_to(side(5, "/tmp/b", true));
        assert!(matches!(rename, Rename::Both { .. }));

        moves.moved_from(side(5, "/tmp/a", true));
        for _ in 0..MAX_INTERLEAVED {
            assert_eq!(moves.other(6), None);
        }
        assert_eq!(
            moves.other(6),
            Some(Rename::FromOnly(side(5, "/tmp/a", true)))
        );
    }

    #[test]
    fn the_same_process_moving_on_gives_the_held_name_up() {
        let mut moves = Moves::default();
        moves.moved_from(side(5, "/tmp/a", true));
        let given_up = moves.other(5).unwrap_or_else(|| panic!("given up"));
        assert_eq!(names(given_up), Some(("/tmp/a".into(), None)));
        moves.moved_from(side(5, "/tmp/a", true));
        assert!(moves.moved_from(side(5, "/tmp/c", true)).is_some());
        assert!(moves.flush().is_some());
        assert_eq!(moves.flush(), None);
    }
}
