//! The capture thread: reads fanotify events, keeps those under the watched paths, and turns
//! each into file observations for the emitter.
//!
//! Work per event, cheapest first: the sensor's own process is skipped on its pid; the
//! directory is looked up by handle in the cache (named through the kernel on a miss); the
//! cached verdict for the directory rejects most events before any allocation. Only reported
//! events cost a path, an `lstat` and an actor lookup.

use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;

use super::FileWatch;
use super::dirs::{DirCache, Unnamed};
use super::moves::{Moves, Rename, Side};
use super::record::{Entry, Record, Records};
use super::scope::Scope;
use crate::clock::Clocks;
use crate::normalise::{FileChange, FileFacts, FileObservation, Observation};
use crate::source::{Emitter, Flow, Wake, wait_readable};

/// Bytes read per `read(2)`: a few hundred events.
const READ_BUFFER: usize = 64 * 1024;
/// How long a `MOVED_FROM` waits for its `MOVED_TO` when nothing else arrives.
const MOVE_PAIR_TIMEOUT_MS: i32 = 50;

/// Runs until stop is raised, the sink closes, or reading fails.
pub(crate) fn run(watch: FileWatch, emitter: Emitter) {
    let FileWatch {
        group, dirs, scope, ..
    } = watch;
    let mut reader = Reader {
        scope,
        dirs,
        moves: Moves::default(),
        own_pid: i32::try_from(std::process::id()).unwrap_or(-1),
        emitter,
        overflows: 0,
        unnamed: 0,
    };
    let mut buf = vec![0u8; READ_BUFFER];
    loop {
        let timeout = if reader.moves.is_holding() {
            MOVE_PAIR_TIMEOUT_MS
        } else {
            -1
        };
        match wait_readable(Some(group.as_fd()), reader.emitter.stop(), timeout) {
            Ok(Wake::Ready) => {}
            Ok(Wake::Timeout) => {
                if let Some(rename) = reader.moves.flush()
                    && reader.rename(rename) == Flow::Stop
                {
                    return;
                }
                continue;
            }
            Ok(Wake::Stop) => return,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => {
                tracing::error!(%error, "Polling the fanotify group failed; file capture stops");
                return;
            }
        }
        loop {
            let n = match group.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    tracing::error!(%error, "Reading the fanotify group failed; file capture stops");
                    return;
                }
            };
            let clocks = Clocks::now();
            let time_ms = vigil_ocsf::now_ms();
            for record in Records::new(&buf[..n]) {
                let flow = match record {
                    Ok(record) => reader.record(&record, time_ms, clocks),
                    Err(malformed) => {
                        // The rest of this read cannot be split into events: count it once.
                        reader
                            .emitter
                            .stats()
                            .dropped
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::error!(
                            offset = malformed.offset,
                            "Fanotify event layout not understood; the rest of the read is lost"
                        );
                        Flow::Continue
                    }
                };
                if flow == Flow::Stop {
                    return;
                }
            }
            if reader.emitter.stop().is_raised() {
                return;
            }
        }
    }
}

/// The reader's state.
struct Reader {
    scope: Scope,
    dirs: DirCache,
    moves: Moves,
    own_pid: i32,
    emitter: Emitter,
    overflows: u64,
    unnamed: u64,
}

/// The changes a (possibly merged) event mask stands for, in the order they must have happened:
/// an entry that exists now was deleted *before* it was created again; one that is gone was
/// created (written, changed) first.
fn changes(mask: u64, exists: bool) -> Vec<FileChange> {
    let has = |bit: u64| mask & bit != 0;
    let mut out = Vec::with_capacity(2);
    if exists && has(libc::FAN_DELETE) {
        out.push(FileChange::Delete);
    }
    if has(libc::FAN_CREATE) {
        out.push(FileChange::Create);
    }
    if has(libc::FAN_CLOSE_WRITE) {
        out.push(FileChange::Update);
    }
    if has(libc::FAN_ATTRIB) {
        out.push(FileChange::Attributes);
    }
    if !exists && has(libc::FAN_DELETE) {
        out.push(FileChange::Delete);
    }
    out
}

impl Reader {
    fn record(&mut self, record: &Record<'_>, time_ms: i64, clocks: Clocks) -> Flow {
        if record.fd >= 0 {
            // SAFETY: the kernel handed us this descriptor with the event; nothing else owns it.
            drop(unsafe {
                <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(record.fd)
            });
        }
        let mask = record.mask;
        if mask & libc::FAN_Q_OVERFLOW != 0 {
            self.overflow();
            return Flow::Continue;
        }
        let flow = if record.pid == self.own_pid {
            Flow::Continue
        } else {
            self.changed(record, time_ms, clocks)
        };
        // A directory moved: every cached path at or below it is stale.
        let moved = libc::FAN_RENAME | libc::FAN_MOVED_FROM | libc::FAN_MOVED_TO;
        if mask & libc::FAN_ONDIR != 0 && mask & moved != 0 {
            self.dirs.clear();
        }
        flow
    }

    fn overflow(&mut self) {
        self.overflows += 1;
        self.emitter.stats().dropped.fetch_add(1, Ordering::Relaxed);
        // A directory rename may have been among the lost events.
        self.dirs.clear();
        if self.overflows == 1 {
            tracing::warn!("Fanotify queue overflow: file events were lost");
        } else {
            tracing::debug!(overflows = self.overflows, "Fanotify queue overflow");
        }
    }

    fn changed(&mut self, record: &Record<'_>, time_ms: i64, clocks: Clocks) -> Flow {
        let pid = u32::try_from(record.pid).unwrap_or(0);
        let mask = record.mask;
        let is_dir = mask & libc::FAN_ONDIR != 0;
        if mask & libc::FAN_RENAME != 0 {
            let (Some(old), Some(new)) = (record.old, record.new) else {
                return Flow::Continue;
            };
            let from = self.side(pid, old, is_dir);
            let to = self.side(pid, new, is_dir);
            return self.rename_with(Rename::Both { from, to }, time_ms, clocks);
        }
        let Some(entry) = record.entry else {
            return Flow::Continue;
        };
        if mask & libc::FAN_MOVED_FROM != 0 {
            let from = self.side(pid, entry, is_dir);
            return match self.moves.moved_from(from) {
                Some(given_up) => self.rename_with(given_up, time_ms, clocks),
                None => Flow::Continue,
            };
        }
        if mask & libc::FAN_MOVED_TO != 0 {
            let to = self.side(pid, entry, is_dir);
            let (given_up, rename) = self.moves.moved_to(to);
            if let Some(given_up) = given_up
                && self.rename_with(given_up, time_ms, clocks) == Flow::Stop
            {
                return Flow::Stop;
            }
            return self.rename_with(rename, time_ms, clocks);
        }
        if let Some(given_up) = self.moves.other(pid)
            && self.rename_with(given_up, time_ms, clocks) == Flow::Stop
        {
            return Flow::Stop;
        }
        let name = String::from_utf8_lossy(entry.name);
        let path = match self.dirs.resolve(entry.dir, &self.scope) {
            Ok(dir) => {
                let path = dir.reported_entry(&name, &self.scope);
                if is_dir && mask & libc::FAN_CREATE != 0 && name != "." {
                    let new_dir = dir.entry(&name);
                    self.dirs.learn(entry.dir.fsid(), &new_dir, &self.scope);
                }
                path
            }
            Err(why) => {
                self.unnamed(&why);
                None
            }
        };
        let Some(path) = path else {
            return Flow::Continue;
        };
        let facts = FileFacts::of(&path);
        for change in changes(mask, facts.is_some()) {
            let obs = FileObservation {
                time_ms,
                pid,
                change,
                path: path.clone(),
                is_dir,
                facts,
            };
            if self.emitter.emit(&Observation::File(obs), clocks) == Flow::Stop {
                return Flow::Stop;
            }
        }
        Flow::Continue
    }

    /// One name of a renamed entry.
    fn side(&mut self, pid: u32, entry: Entry<'_>, is_dir: bool) -> Side {
        let name = String::from_utf8_lossy(entry.name);
        match self.dirs.resolve(entry.dir, &self.scope) {
            Ok(dir) => {
                let reported = dir.reported_entry(&name, &self.scope).is_some();
                Side {
                    pid,
                    path: Some(dir.entry(&name)),
                    reported,
                    is_dir,
                }
            }
            Err(why) => {
                self.unnamed(&why);
                Side {
                    pid,
                    path: None,
                    reported: false,
                    is_dir,
                }
            }
        }
    }

    fn rename(&mut self, rename: Rename) -> Flow {
        self.rename_with(rename, vigil_ocsf::now_ms(), Clocks::now())
    }

    fn rename_with(&mut self, rename: Rename, time_ms: i64, clocks: Clocks) -> Flow {
        match rename.observation(time_ms) {
            Some(obs) => self.emitter.emit(&Observation::File(obs), clocks),
            None => Flow::Continue,
        }
    }

    /// An event whose directory could not be named is lost (it may have been under a watched
    /// path): counted as dropped.
    fn unnamed(&mut self, why: &Unnamed) {
        self.unnamed += 1;
        self.emitter.stats().dropped.fetch_add(1, Ordering::Relaxed);
        match why {
            Unnamed::Failed(error) => {
                tracing::debug!(%error, unnamed = self.unnamed, "Cannot name a directory of a file event");
            }
            Unnamed::Gone | Unnamed::UnknownFilesystem => {
                tracing::debug!(
                    unnamed = self.unnamed,
                    ?why,
                    "A file event's directory is gone"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use FileChange::*;

    #[test]
    fn merged_masks_unfold_in_the_order_they_happened() {
        let create_write = libc::FAN_CREATE | libc::FAN_CLOSE_WRITE;
        assert_eq!(changes(create_write, true), [Create, Update]);
        let touched = create_write | libc::FAN_ATTRIB;
        assert_eq!(changes(touched, true), [Create, Update, Attributes]);
        // Created, written and removed before the event was read.
        let fleeting = create_write | libc::FAN_DELETE;
        assert_eq!(changes(fleeting, false), [Create, Update, Delete]);
        // Removed, then created again (an editor's save): it exists now.
        let replaced = libc::FAN_DELETE | libc::FAN_CREATE;
        assert_eq!(changes(replaced, true), [Delete, Create]);
        assert_eq!(changes(libc::FAN_DELETE, false), [Delete]);
        assert_eq!(changes(libc::FAN_ATTRIB, true), [Attributes]);
        assert!(changes(libc::FAN_ONDIR, true).is_empty());
    }
}
