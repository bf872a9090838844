//! Following a growing file by path, as `tail -F` does: lines of a log, or fixed-size records
//! of wtmp/btmp.
//!
//! - **Start**: a file that exists when the sensor starts is read from its end (history is not
//!   replayed); a file that appears later is read from its start.
//! - **Rotation** (the path names another file: `mv auth.log auth.log.1`, then a new
//!   `auth.log`): the old file is read to its end, then the new one from its start. The old
//!   file stays open and is read first on every check until it has been quiet for
//!   [`RETIRE_AFTER`], so lines its writer adds before it reopens the log are not lost.
//! - **Truncation** (`copytruncate`, `: > file`): the file is read again from its start.
//! - **Partial lines** wait for their newline; one left at the end of a rotated or truncated
//!   file is reported as it is. A line longer than [`MAX_LINE`] is reported in pieces.
//!
//! A file deleted and re-created so fast that the new one gets the old one's inode number and
//! is already longer than the read position cannot be told from the old one: its start is
//! missed.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Longest line kept whole; longer ones are reported in pieces of this size.
pub(crate) const MAX_LINE: usize = 64 * 1024;
/// How long a rotated-away file is still read after it last grew.
pub(crate) const RETIRE_AFTER: Duration = Duration::from_secs(10);
/// Bytes read per `read(2)`.
const CHUNK: usize = 64 * 1024;
/// Most bytes read from one file per check, so one busy file cannot starve the others or
/// delay a stop.
const MAX_PER_CHECK: usize = 4 * 1024 * 1024;

/// How a file is cut into items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// Newline-terminated lines (the newline is not part of the item).
    Lines,
    /// Records of this many bytes.
    Records(usize),
}

/// What one check of a file found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Found {
    /// The items, in file order (a rotated-away file's before the new file's).
    pub(crate) items: Vec<Vec<u8>>,
    /// Bytes that could not be made an item: a partial record left at a rotation or
    /// truncation.
    pub(crate) lost: u64,
    /// Whether more is waiting (the per-check read limit was reached).
    pub(crate) more: bool,
}

/// One open file being read.
#[derive(Debug)]
struct Open {
    file: File,
    dev: u64,
    ino: u64,
    /// Bytes consumed (read) so far.
    offset: u64,
    /// The start of an item whose end has not been read yet.
    partial: Vec<u8>,
    /// When it last grew (for a retired file).
    grew: Instant,
}

impl Open {
    fn at(path: &Path, from_end: bool) -> io::Result<Self> {
        let mut file = File::open(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        let offset = if from_end {
            file.seek(SeekFrom::End(0))?
        } else {
            0
        };
        Ok(Self {
            file,
            dev: meta.dev(),
            ino: meta.ino(),
            offset,
            partial: Vec::new(),
            grew: Instant::now(),
        })
    }

    /// Reads what was appended, cutting it into `found`, until the end of the file or until
    /// `budget` bytes have been read (then `found.more` is set).
    fn drain(&mut self, framing: Framing, found: &mut Found, budget: &mut usize) -> io::Result<()> {
        let mut buf = vec![0u8; CHUNK];
        while *budget > 0 {
            let n = match self.file.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            *budget = budget.saturating_sub(n);
            self.offset += n as u64;
            self.grew = Instant::now();
            cut(&mut self.partial, &buf[..n], framing, &mut found.items);
        }
        found.more = true;
        Ok(())
    }

    /// What is left of a file that will not be read any more.
    fn finish(&mut self, framing: Framing, found: &mut Found) {
        let rest = std::mem::take(&mut self.partial);
        if rest.is_empty() {
            return;
        }
        match framing {
            Framing::Lines => found.items.push(rest),
            Framing::Records(_) => found.lost += rest.len() as u64,
        }
    }
}

/// Appends the items completed by `data` to `items`, keeping an incomplete one in `partial`.
fn cut(partial: &mut Vec<u8>, mut data: &[u8], framing: Framing, items: &mut Vec<Vec<u8>>) {
    match framing {
        Framing::Lines => {
            while let Some(end) = data.iter().position(|&b| b == b'\n') {
                partial.extend_from_slice(&data[..end]);
                let mut line = std::mem::take(partial);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if line.len() > MAX_LINE {
                    items.extend(line.chunks(MAX_LINE).map(<[u8]>::to_vec));
                } else {
                    items.push(line);
                }
                data = &data[end + 1..];
            }
            partial.extend_from_slice(data);
            while partial.len() >= MAX_LINE {
                let rest = partial.split_off(MAX_LINE);
                items.push(std::mem::replace(partial, rest));
            }
        }
        Framing::Records(size) => {
            partial.extend_from_slice(data);
            let whole = partial.len() / size * size;
            if whole > 0 {
                let rest = partial.split_off(whole);
                items.extend(partial.chunks_exact(size).map(<[u8]>::to_vec));
                *partial = rest;
            }
        }
    }
}

/// A file followed by path.
#[derive(Debug)]
pub(crate) struct Tail {
    path: PathBuf,
    framing: Framing,
    current: Option<Open>,
    /// The file the path named before a rotation, still read for a while.
    retired: Option<Open>,
    /// The last error opening or reading (kind and text), logged once until it changes.
    error: Option<(io::ErrorKind, String)>,
}

impl Tail {
    /// Follows `path` from its current end (or, if it does not exist yet, from the start of
    /// the file that appears there).
    pub(crate) fn from_end(path: &Path, framing: Framing) -> Self {
        let mut tail = Self {
            path: path.to_owned(),
            framing,
            current: None,
            retired: None,
            error: None,
        };
        match Open::at(path, true) {
            Ok(open) => tail.current = Some(open),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => tail.failed(&error),
        }
        tail
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Whether a file is open at the path.
    pub(crate) fn is_open(&self) -> bool {
        self.current.is_some()
    }

    /// The read position in the current file (tests).
    #[cfg(test)]
    pub(crate) fn offset(&self) -> Option<u64> {
        self.current.as_ref().map(|o| o.offset)
    }

    /// Why the file cannot be read, if it cannot.
    pub(crate) fn error(&self) -> Option<&str> {
        self.error.as_ref().map(|(_, text)| text.as_str())
    }

    /// Reads whatever is new at the path.
    pub(crate) fn check(&mut self) -> Found {
        let mut found = Found::default();
        let mut budget = MAX_PER_CHECK;
        if let Some(retired) = self.retired.as_mut() {
            let drained = retired.drain(self.framing, &mut found, &mut budget);
            if drained.is_err() || retired.grew.elapsed() >= RETIRE_AFTER {
                retired.finish(self.framing, &mut found);
                self.retired = None;
            }
        }
        if let Some(current) = self.current.as_mut()
            && let Err(error) = current.drain(self.framing, &mut found, &mut budget)
        {
            self.failed(&error);
            return found;
        }
        let meta = match std::fs::metadata(&self.path) {
            Ok(meta) => meta,
            // Gone (being rotated): keep reading the open file until another appears.
            Err(error) if error.kind() == io::ErrorKind::NotFound => return found,
            Err(error) => {
                self.failed(&error);
                return found;
            }
        };
        match self.current.as_mut() {
            Some(current) if (current.dev, current.ino) == (meta.dev(), meta.ino()) => {
                if meta.len() < current.offset {
                    tracing::info!(path = %self.path.display(), "Log file truncated; reading it from its start");
                    current.finish(self.framing, &mut found);
                    if let Err(error) = current.file.seek(SeekFrom::Start(0)) {
                        self.failed(&error);
                        return found;
                    }
                    current.offset = 0;
                    self.read_current(&mut found, &mut budget);
                }
            }
            Some(_) => {
                tracing::info!(path = %self.path.display(), "Log file rotated; reading the new one from its start");
                if let Some(old) = self.current.take()
                    && let Some(mut older) = self.retired.replace(old)
                {
                    older.finish(self.framing, &mut found);
                }
                self.open_new(&mut found, &mut budget);
            }
            None => self.open_new(&mut found, &mut budget),
        }
        found
    }

    fn open_new(&mut self, found: &mut Found, budget: &mut usize) {
        match Open::at(&self.path, false) {
            Ok(open) => {
                self.current = Some(open);
                self.error = None;
                self.read_current(found, budget);
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => self.failed(&error),
        }
    }

    fn read_current(&mut self, found: &mut Found, budget: &mut usize) {
        if let Some(current) = self.current.as_mut()
            && let Err(error) = current.drain(self.framing, found, budget)
        {
            self.failed(&error);
        }
    }

    fn failed(&mut self, error: &io::Error) {
        if self.error.as_ref().map(|(kind, _)| *kind) != Some(error.kind()) {
            tracing::warn!(path = %self.path.display(), %error, "Cannot read a login log");
        }
        self.error = Some((error.kind(), error.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    struct Dir(PathBuf);

    impl Dir {
        fn new() -> Self {
            let dir = std::env::temp_dir().join(format!(
                "vigil-tail-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
            Self(dir)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn append(path: &Path, data: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        f.write_all(data.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
    }

    fn lines(found: Found) -> Vec<String> {
        found
            .items
            .into_iter()
            .map(|l| String::from_utf8_lossy(&l).into_owned())
            .collect()
    }

    #[test]
    fn starts_at_the_end_and_waits_for_whole_lines() {
        let dir = Dir::new();
        let path = dir.0.join("auth.log");
        append(&path, "old 1\nold 2\n");
        let mut tail = Tail::from_end(&path, Framing::Lines);
        assert_eq!(tail.offset(), Some(12));
        assert!(lines(tail.check()).is_empty());
        append(&path, "new 1\nnew");
        assert_eq!(lines(tail.check()), ["new 1"]);
        append(&path, " 2\r\n");
        assert_eq!(lines(tail.check()), ["new 2"]);
    }

    #[test]
    fn follows_rotation_and_truncation() {
        let dir = Dir::new();
        let path = dir.0.join("auth.log");
        append(&path, "");
        let mut tail = Tail::from_end(&path, Framing::Lines);
        append(&path, "a\nb\n");
        assert_eq!(lines(tail.check()), ["a", "b"]);
        // Rotation: lines written to the old file after the rename are still read, first.
        append(&path, "c\n");
        std::fs::rename(&path, dir.0.join("auth.log.1")).unwrap_or_else(|e| panic!("{e}"));
        append(&dir.0.join("auth.log.1"), "d\npartial");
        assert_eq!(lines(tail.check()), ["c", "d"]);
        append(&path, "e\n");
        assert_eq!(lines(tail.check()), ["e"]);
        append(&dir.0.join("auth.log.1"), " end\n");
        append(&path, "f\n");
        assert_eq!(lines(tail.check()), ["partial end", "f"]);
        // Truncation (noticed before the file is as long again as it was).
        std::fs::write(&path, "").unwrap_or_else(|e| panic!("{e}"));
        assert!(lines(tail.check()).is_empty());
        append(&path, "g\n");
        assert_eq!(lines(tail.check()), ["g"]);
        // Deleted: nothing, then a new file is read from its start.
        std::fs::remove_file(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(lines(tail.check()).is_empty());
        append(&path, "h\n");
        assert_eq!(lines(tail.check()), ["h"]);
    }

    #[test]
    fn a_file_that_appears_later_is_read_from_its_start() {
        let dir = Dir::new();
        let path = dir.0.join("secure");
        let mut tail = Tail::from_end(&path, Framing::Lines);
        assert!(!tail.is_open());
        assert!(lines(tail.check()).is_empty());
        append(&path, "first\n");
        assert_eq!(lines(tail.check()), ["first"]);
        assert!(tail.is_open());
    }

    #[test]
    fn records_are_cut_at_their_size_and_long_lines_in_pieces() {
        let dir = Dir::new();
        let path = dir.0.join("wtmp");
        append(&path, "");
        let mut tail = Tail::from_end(&path, Framing::Records(4));
        append(&path, "aaaabbbbcc");
        assert_eq!(lines(tail.check()), ["aaaa", "bbbb"]);
        append(&path, "cc");
        assert_eq!(lines(tail.check()), ["cccc"]);
        // A partial record left by a truncation is lost, and counted.
        append(&path, "dd");
        assert!(tail.check().items.is_empty());
        std::fs::write(&path, "").unwrap_or_else(|e| panic!("{e}"));
        let found = tail.check();
        assert_eq!((found.items.len(), found.lost), (0, 2));

        let long = "x".repeat(MAX_LINE + 10);
        let mut partial = Vec::new();
        let mut items = Vec::new();
        cut(
            &mut partial,
            format!("{long}\n").as_bytes(),
            Framing::Lines,
            &mut items,
        );
        assert_eq!(
            items.iter().map(Vec::len).collect::<Vec<_>>(),
            [MAX_LINE, 10]
        );
    }

    #[test]
    fn unreadable_paths_report_their_error() {
        let dir = Dir::new();
        let mut tail = Tail::from_end(&dir.0, Framing::Lines);
        assert_eq!(tail.error(), Some("not a regular file"));
        let _ = tail.check();
        assert!(!tail.is_open());
        assert_eq!(tail.error(), Some("not a regular file"));
    }
}
