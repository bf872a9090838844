//! What `read(2)` returns from a `FAN_REPORT_DFID_NAME` group, parsed without copying: each
//! event is a `struct fanotify_event_metadata` followed by information records; a directory
//! entry event names the directory by file system id and file handle, then the entry's name.
//!
//! Layouts from `include/uapi/linux/fanotify.h` (checked against Linux 6.18).

/// `sizeof(struct fanotify_event_metadata)`.
const METADATA_LEN: usize = 24;
/// `FANOTIFY_METADATA_VERSION`.
const METADATA_VERSION: u8 = 3;
/// `struct fanotify_event_info_header` (4 bytes) + `__kernel_fsid_t` (8 bytes).
const FSID_END: usize = 12;
/// … + `struct file_handle`'s `handle_bytes` and `handle_type`.
const HANDLE_START: usize = FSID_END + 8;

/// `FAN_EVENT_INFO_TYPE_DFID_NAME`: the directory and the name of an entry in it.
const INFO_DFID_NAME: u8 = 2;
/// `FAN_EVENT_INFO_TYPE_OLD_DFID_NAME`: a rename's old directory and name.
const INFO_OLD_DFID_NAME: u8 = 10;
/// `FAN_EVENT_INFO_TYPE_NEW_DFID_NAME`: a rename's new directory and name.
const INFO_NEW_DFID_NAME: u8 = 12;

/// A directory as fanotify names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DirHandle<'a> {
    /// The file system id (8 bytes) then the `struct file_handle` (handle length, type, bytes),
    /// as the kernel wrote them: unique per directory, so it is the cache key as is.
    pub(crate) key: &'a [u8],
}

impl<'a> DirHandle<'a> {
    /// The file system id (`statfs.f_fsid`).
    pub(crate) fn fsid(&self) -> [u8; 8] {
        let mut fsid = [0; 8];
        fsid.copy_from_slice(&self.key[..8]);
        fsid
    }

    /// The `struct file_handle`, for `open_by_handle_at`.
    pub(crate) fn file_handle(&self) -> &'a [u8] {
        &self.key[8..]
    }
}

/// An entry of a directory: the directory and the entry's name (`.` for the directory itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry<'a> {
    pub(crate) dir: DirHandle<'a>,
    pub(crate) name: &'a [u8],
}

/// One event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Record<'a> {
    /// `FAN_*` bits; events the kernel merged have several.
    pub(crate) mask: u64,
    /// The acting process (0 when it is outside our pid namespace).
    pub(crate) pid: i32,
    /// A descriptor that came with the event (never in this reporting mode; closed by the
    /// caller if it ever does).
    pub(crate) fd: i32,
    /// Where the entry is (`DFID_NAME`).
    pub(crate) entry: Option<Entry<'a>>,
    /// A `FAN_RENAME`'s old place.
    pub(crate) old: Option<Entry<'a>>,
    /// A `FAN_RENAME`'s new place.
    pub(crate) new: Option<Entry<'a>>,
}

/// The buffer holds something this parser does not understand (the ABI is stable, so in
/// practice a kernel bug or a short read); the rest of the buffer is skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed {
    /// Byte offset of the event that could not be parsed.
    pub(crate) offset: usize,
}

/// The events in one buffer, in order. Yields at most one [`Malformed`], then stops.
#[derive(Debug)]
pub(crate) struct Records<'a> {
    buf: &'a [u8],
    off: usize,
}

impl<'a> Records<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, off: 0 }
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.buf.get(self.off..)?;
        if rest.is_empty() {
            return None;
        }
        let offset = self.off;
        // Whatever happens, this event's bytes are consumed; a malformed one ends the buffer.
        let parsed = parse_event(rest);
        self.off = match parsed {
            Ok((_, len)) => self.off + len,
            Err(()) => self.buf.len(),
        };
        Some(
            parsed
                .map(|(record, _)| record)
                .map_err(|()| Malformed { offset }),
        )
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn i32_at(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// One event at the start of `b`, and its length.
fn parse_event(b: &[u8]) -> Result<(Record<'_>, usize), ()> {
    let len = usize::try_from(u32_at(b, 0).ok_or(())?).map_err(|_| ())?;
    let version = *b.get(4).ok_or(())?;
    let metadata_len = usize::from(u16_at(b, 6).ok_or(())?);
    if version != METADATA_VERSION
        || metadata_len < METADATA_LEN
        || len < metadata_len
        || len > b.len()
    {
        return Err(());
    }
    let mut record = Record {
        mask: u64_at(b, 8).ok_or(())?,
        fd: i32_at(b, 16).ok_or(())?,
        pid: i32_at(b, 20).ok_or(())?,
        entry: None,
        old: None,
        new: None,
    };
    let event = &b[..len];
    let mut at = metadata_len;
    while at < len {
        let info_len = usize::from(u16_at(event, at + 2).ok_or(())?);
        let info = event.get(at..at + info_len).ok_or(())?;
        if info_len < 4 {
            return Err(());
        }
        let slot = match info[0] {
            INFO_DFID_NAME => Some(&mut record.entry),
            INFO_OLD_DFID_NAME => Some(&mut record.old),
            INFO_NEW_DFID_NAME => Some(&mut record.new),
            // Other records (pidfd, error, plain fids) are not asked for; skip them.
            _ => None,
        };
        if let Some(slot) = slot {
            *slot = Some(parse_dfid_name(info).ok_or(())?);
        }
        at += info_len;
    }
    Ok((record, len))
}

/// A `struct fanotify_event_info_fid` followed by a NUL-terminated name.
fn parse_dfid_name(info: &[u8]) -> Option<Entry<'_>> {
    let handle_bytes = usize::try_from(u32_at(info, FSID_END)?).ok()?;
    let handle_end = HANDLE_START.checked_add(handle_bytes)?;
    let key = info.get(4..handle_end)?;
    let tail = info.get(handle_end..)?;
    let name_len = tail.iter().position(|&c| c == 0)?;
    Some(Entry {
        dir: DirHandle { key },
        name: &tail[..name_len],
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One info record of type `kind` for directory handle `handle` (fsid 1,2; type 1) and
    /// `name`, padded to 4 bytes as the kernel does.
    pub(crate) fn info(kind: u8, handle: &[u8], name: &str) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&1i32.to_ne_bytes());
        body.extend_from_slice(&2i32.to_ne_bytes());
        body.extend_from_slice(&u32::try_from(handle.len()).unwrap_or(0).to_ne_bytes());
        body.extend_from_slice(&1i32.to_ne_bytes());
        body.extend_from_slice(handle);
        body.extend_from_slice(name.as_bytes());
        body.push(0);
        while (body.len() + 4) % 4 != 0 {
            body.push(0);
        }
        let mut out = vec![kind, 0];
        out.extend_from_slice(&u16::try_from(body.len() + 4).unwrap_or(0).to_ne_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// One event with `mask`, `pid` and the info records `infos`.
    pub(crate) fn event(mask: u64, pid: i32, infos: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = infos.concat();
        let len = u32::try_from(METADATA_LEN + body.len()).unwrap_or(0);
        let mut out = Vec::new();
        out.extend_from_slice(&len.to_ne_bytes());
        out.push(METADATA_VERSION);
        out.push(0);
        out.extend_from_slice(&24u16.to_ne_bytes());
        out.extend_from_slice(&mask.to_ne_bytes());
        out.extend_from_slice(&(-1i32).to_ne_bytes());
        out.extend_from_slice(&pid.to_ne_bytes());
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn entry_and_rename_events_parse_in_order() {
        let mut buf = event(0x108, 42, &[info(INFO_DFID_NAME, &[7; 8], "f")]);
        buf.extend(event(
            0x1000_0000,
            43,
            &[
                info(INFO_OLD_DFID_NAME, &[7; 8], "f"),
                info(INFO_NEW_DFID_NAME, &[9; 8], "g"),
            ],
        ));
        let records: Vec<_> = Records::new(&buf).collect::<Result<_, _>>().unwrap();
        assert_eq!(records.len(), 2);
        let create = records[0];
        assert_eq!((create.mask, create.pid, create.fd), (0x108, 42, -1));
        let entry = create.entry.unwrap();
        assert_eq!(entry.name, b"f");
        assert_eq!(entry.dir.fsid()[..4], 1i32.to_ne_bytes());
        // handle_bytes, handle_type, then the handle itself.
        assert_eq!(entry.dir.file_handle().len(), 8 + 8);
        assert_eq!(&entry.dir.file_handle()[8..], &[7; 8]);
        let rename = records[1];
        assert!(rename.entry.is_none());
        assert_eq!(rename.old.map(|e| e.name), Some(&b"f"[..]));
        assert_eq!(rename.new.map(|e| e.name), Some(&b"g"[..]));
        assert_ne!(rename.old.map(|e| e.dir), rename.new.map(|e| e.dir));
        assert_eq!(
            rename.old.map(|e| e.dir),
            Some(entry.dir),
            "same directory, same key"
        );
    }

    #[test]
    fn an_overflow_has_no_entry() {
        let buf = event(0x4000, 0, &[]);
        let records: Vec<_> = Records::new(&buf).collect();
        assert_eq!(records.len(), 1);
        assert!(records[0].is_ok_and(|r| r.entry.is_none() && r.mask == 0x4000));
    }

    #[test]
    fn malformed_events_end_the_buffer_once() {
        let good = event(0x100, 1, &[info(INFO_DFID_NAME, &[1; 8], "a")]);
        // A wrong version, then a good event that must not be trusted.
        let mut bad = good.clone();
        bad[4] = 2;
        let mut buf = good.clone();
        buf.extend(&bad);
        buf.extend(&good);
        let records: Vec<_> = Records::new(&buf).collect();
        assert_eq!(records.len(), 2);
        assert!(records[0].is_ok());
        assert_eq!(records[1], Err(Malformed { offset: good.len() }));
        // A length past the end, and an info record running past its event.
        let mut short = good.clone();
        short.truncate(good.len() - 4);
        assert!(matches!(Records::new(&short).next(), Some(Err(_))));
        let mut overlong = good.clone();
        overlong[METADATA_LEN + 2] = 200;
        assert!(matches!(Records::new(&overlong).next(), Some(Err(_))));
        // A name without its NUL.
        let mut unterminated = event(0x100, 1, &[]);
        let mut inf = info(INFO_DFID_NAME, &[1; 8], "abc");
        let last = inf.len() - 4;
        inf.truncate(last);
        inf.extend_from_slice(b"abcd");
        let inf_len = u16::try_from(inf.len()).unwrap_or(0);
        inf[2..4].copy_from_slice(&inf_len.to_ne_bytes());
        unterminated.extend(&inf);
        let len = u32::try_from(unterminated.len()).unwrap_or(0);
        unterminated[..4].copy_from_slice(&len.to_ne_bytes());
        assert!(matches!(Records::new(&unterminated).next(), Some(Err(_))));
        assert_eq!(Records::new(&[]).next(), None);
    }
}
