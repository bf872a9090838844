//! The systemd journal's authentication messages, from a `journalctl --follow --output=json`
//! child process.
//!
//! The child is asked for the facilities `auth` and `authpriv` only: the lines Debian's rsyslog
//! writes to `/var/log/auth.log` (and RHEL's, `authpriv` only, to `/var/log/secure`). It starts at
//! the journal's end (`--lines=0`, no history). If it ends (journald restarted, the child was
//! killed) it is started again after [`RESTART_AFTER`] from just after the last entry read
//! (`--after-cursor`), so nothing is lost or read twice. The child is killed and reaped when the
//! reader is dropped, and asked to die with the capture thread that started it
//! (`PR_SET_PDEATHSIG`), so it never outlives the sensor.
//!
//! Each entry becomes a [`LogRecord`] whose `raw` is the line rsyslog would have written for it
//! (RFC 3339 time in UTC, host, `identifier[pid]: message`), not the JSON document.

use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::syslog::rfc3339_utc;
use super::tail::MAX_LINE;
use crate::normalise::LogRecord;

/// The socket journald listens on; the journal is used only when it exists.
pub(crate) const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";
/// The program run.
pub(crate) const JOURNALCTL: &str = "journalctl";
/// `metadata.log_name` of journal records.
pub(crate) const LOG_NAME: &str = "journal";
/// How long after the child ended it is started again.
pub(crate) const RESTART_AFTER: Duration = Duration::from_secs(5);
/// Longest JSON document kept; a longer one is dropped (and counted).
const MAX_DOCUMENT: usize = 4 * MAX_LINE;

/// What one read of the child's output gave.
#[derive(Debug, Default)]
pub(crate) struct Entries {
    pub(crate) records: Vec<LogRecord>,
    /// Documents that were not journal entries (or too long).
    pub(crate) malformed: u64,
}

/// A running `journalctl` child and its output.
#[derive(Debug)]
pub(crate) struct Journal {
    program: PathBuf,
    child: Option<(Child, ChildStdout)>,
    partial: Vec<u8>,
    /// The last entry read, where a restarted child resumes.
    cursor: Option<String>,
    /// When to start the child again after it ended.
    restart_at: Option<Instant>,
    restart_after: Duration,
    /// The last spawn error, reported once.
    spawn_error: Option<String>,
}

impl Journal {
    /// Starts `program` (normally [`JOURNALCTL`]) following the journal's end.
    pub(crate) fn start(program: impl Into<PathBuf>) -> io::Result<Self> {
        let mut journal = Self {
            program: program.into(),
            child: None,
            partial: Vec::new(),
            cursor: None,
            restart_at: None,
            restart_after: RESTART_AFTER,
            spawn_error: None,
        };
        journal.spawn()?;
        Ok(journal)
    }

    fn spawn(&mut self) -> io::Result<()> {
        let mut command = Command::new(&self.program);
        command.args([
            "--follow",
            "--output=json",
            "--all",
            "--facility=auth,authpriv",
        ]);
        match &self.cursor {
            Some(cursor) => command
                .arg("--lines=all")
                .arg(format!("--after-cursor={cursor}")),
            None => command.arg("--lines=0"),
        };
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        // SAFETY: the closure runs in the child between fork and exec and only calls prctl(2),
        // which is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command.spawn()?;
        let Some(stdout) = child.stdout.take() else {
            stop(&mut child);
            return Err(io::Error::other("journalctl has no standard output"));
        };
        if let Err(error) = set_nonblocking(stdout.as_fd()) {
            stop(&mut child);
            return Err(error);
        }
        tracing::debug!(
            pid = child.id(),
            resume = self.cursor.is_some(),
            "Started journalctl"
        );
        self.child = Some((child, stdout));
        self.partial.clear();
        self.restart_at = None;
        self.spawn_error = None;
        Ok(())
    }

    /// The child's output, to wait on; `None` while it is not running.
    pub(crate) fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.child.as_ref().map(|(_, stdout)| stdout.as_fd())
    }

    /// The running child's pid.
    #[cfg(test)]
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|(child, _)| child.id())
    }

    /// Reads every complete entry the child has written, and starts it again when it is due.
    pub(crate) fn read(&mut self) -> Entries {
        let mut entries = Entries::default();
        if self.child.is_none() {
            self.restart_if_due();
        }
        let mut buf = vec![0u8; 64 * 1024];
        while let Some((_, stdout)) = self.child.as_mut() {
            match stdout.read(&mut buf) {
                Ok(0) => {
                    self.ended();
                    break;
                }
                Ok(n) => self.take(&buf[..n], &mut entries),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    tracing::warn!(%error, "Reading journalctl failed");
                    self.ended();
                    break;
                }
            }
        }
        entries
    }

    fn take(&mut self, data: &[u8], entries: &mut Entries) {
        let mut data = data;
        while let Some(end) = data.iter().position(|&b| b == b'\n') {
            self.partial.extend_from_slice(&data[..end]);
            data = &data[end + 1..];
            let document = std::mem::take(&mut self.partial);
            if document.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match entry(&document) {
                Some((record, cursor)) => {
                    if cursor.is_some() {
                        self.cursor = cursor;
                    }
                    entries.records.push(record);
                }
                None => entries.malformed += 1,
            }
        }
        self.partial.extend_from_slice(data);
        if self.partial.len() > MAX_DOCUMENT {
            self.partial.clear();
            entries.malformed += 1;
        }
    }

    fn ended(&mut self) {
        if let Some((mut child, _)) = self.child.take() {
            let status = stop(&mut child);
            tracing::warn!(?status, "journalctl ended; starting it again shortly");
        }
        self.restart_at = Some(Instant::now() + self.restart_after);
    }

    fn restart_if_due(&mut self) {
        if self.restart_at.is_some_and(|at| Instant::now() >= at)
            && let Err(error) = self.spawn()
        {
            let text = error.to_string();
            if self.spawn_error.as_deref() != Some(&text) {
                tracing::warn!(%error, "Cannot start journalctl again");
            }
            self.spawn_error = Some(text);
            self.restart_at = Some(Instant::now() + self.restart_after);
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        if let Some((mut child, _)) = self.child.take() {
            let _ = stop(&mut child);
        }
    }
}

/// Kills (if still running) and reaps the child.
fn stop(child: &mut Child) -> Option<std::process::ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    let _ = child.kill();
    child.wait().ok()
}

fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL on a descriptor we own; no pointers.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One `--output=json` document → its record and cursor; `None` if it is not an entry.
pub(crate) fn entry(document: &[u8]) -> Option<(LogRecord, Option<String>)> {
    let fields: Map<String, Value> = serde_json::from_slice(document).ok()?;
    let field = |name: &str| fields.get(name).and_then(text);
    let message = field("MESSAGE")?;
    let time_ms = field("__REALTIME_TIMESTAMP")
        .and_then(|us| us.parse::<i64>().ok())
        .map_or_else(vigil_ocsf::now_ms, |us| us / 1000);
    let hostname = field("_HOSTNAME");
    let program = field("SYSLOG_IDENTIFIER").or_else(|| field("_COMM"));
    let pid = field("SYSLOG_PID")
        .or_else(|| field("_PID"))
        .and_then(|pid| pid.parse().ok());
    let facility = field("SYSLOG_FACILITY")
        .and_then(|f| f.parse().ok())
        .and_then(facility_name)
        .map(str::to_owned);
    let mut raw = format!(
        "{} {}",
        rfc3339_utc(time_ms),
        hostname.as_deref().unwrap_or("-")
    );
    if let Some(program) = &program {
        raw.push(' ');
        raw.push_str(program);
        if let Some(pid) = pid {
            raw.push_str(&format!("[{pid}]"));
        }
        raw.push(':');
    }
    raw.push(' ');
    raw.push_str(&message);
    let record = LogRecord {
        log_name: LOG_NAME.to_owned(),
        time_ms,
        hostname,
        program,
        pid,
        facility,
        message: message.trim().to_owned(),
        raw,
    };
    Some((record, field("__CURSOR")))
}

/// A journal field's text: a string, or an array of bytes (fields that are not UTF-8).
fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => {
            let bytes: Option<Vec<u8>> = items
                .iter()
                .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect();
            Some(String::from_utf8_lossy(&bytes?).into_owned())
        }
        _ => None,
    }
}

/// The syslog facility's name (RFC 5424 numbering).
fn facility_name(code: u8) -> Option<&'static str> {
    const NAMES: [&str; 24] = [
        "kern",
        "user",
        "mail",
        "daemon",
        "auth",
        "syslog",
        "lpr",
        "news",
        "uucp",
        "cron",
        "authpriv",
        "ftp",
        "ntp",
        "security",
        "console",
        "solaris-cron",
        "local0",
        "local1",
        "local2",
        "local3",
        "local4",
        "local5",
        "local6",
        "local7",
    ];
    NAMES.get(usize::from(code)).copied()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::source::{StopSignal, wait_readable};

    #[test]
    fn entries_become_syslog_records() {
        let doc = br#"{"__CURSOR":"s=1;i=2","__REALTIME_TIMESTAMP":"1795428001123456","_HOSTNAME":"web01","SYSLOG_IDENTIFIER":"sshd","_PID":"1234","SYSLOG_FACILITY":"10","MESSAGE":"Accepted publickey for alice from 192.0.2.7 port 52222 ssh2","_COMM":"sshd"}"#;
        let (record, cursor) = entry(doc).unwrap_or_else(|| panic!("entry"));
        assert_eq!(cursor.as_deref(), Some("s=1;i=2"));
        assert_eq!(record.time_ms, 1_795_428_001_123);
        assert_eq!(record.program.as_deref(), Some("sshd"));
        assert_eq!(record.pid, Some(1234));
        assert_eq!(record.facility.as_deref(), Some("authpriv"));
        assert_eq!(record.log_name, "journal");
        assert_eq!(
            record.raw,
            "2026-11-23T10:00:01.123000+00:00 web01 sshd[1234]: Accepted publickey for alice \
             from 192.0.2.7 port 52222 ssh2"
        );
        // A message that is not UTF-8 comes as bytes; no identifier falls back to _COMM.
        let doc = br#"{"MESSAGE":[104,105,255],"_COMM":"su","__REALTIME_TIMESTAMP":"1000"}"#;
        let (record, cursor) = entry(doc).unwrap_or_else(|| panic!("entry"));
        assert_eq!(record.message, "hi\u{fffd}");
        assert_eq!((record.program.as_deref(), cursor), (Some("su"), None));
        assert_eq!(record.time_ms, 1);
        for bad in [&b"{}"[..], b"[1]", b"not json", br#"{"MESSAGE":7}"#] {
            assert!(entry(bad).is_none());
        }
        assert_eq!(facility_name(4), Some("auth"));
        assert_eq!(facility_name(99), None);
    }

    /// A stand-in for journalctl: prints its arguments as one entry, then waits or exits.
    fn fake(dir: &std::path::Path, then: &str) -> PathBuf {
        let path = dir.join(format!("journalctl-{then}"));
        let script = format!(
            "#!/bin/sh\nprintf '{{\"MESSAGE\":\"args %s\",\"__CURSOR\":\"c-%s\",\"SYSLOG_IDENTIFIER\":\"fake\"}}\\n' \"$*\" \"$$\"\n{then}\n"
        );
        std::fs::write(&path, script).unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("{e}"));
        path
    }

    fn read_one(journal: &mut Journal) -> LogRecord {
        let stop = StopSignal::new().unwrap_or_else(|e| panic!("{e}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let _ = wait_readable(journal.fd(), &stop, 50);
            if let Some(record) = journal.read().records.pop() {
                return record;
            }
        }
        panic!("no entry from the fake journalctl");
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vigil-journal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        dir
    }

    #[test]
    fn the_child_is_killed_and_reaped_on_drop() {
        let dir = scratch("drop");
        let mut journal =
            Journal::start(fake(&dir, "exec sleep 600")).unwrap_or_else(|e| panic!("{e}"));
        let record = read_one(&mut journal);
        assert!(record.message.contains("--lines=0"), "{}", record.message);
        assert!(record.message.contains("--facility=auth,authpriv"));
        let pid = journal.pid().unwrap_or_else(|| panic!("running"));
        let pid = i32::try_from(pid).unwrap_or(i32::MAX);
        // SAFETY: signal 0 only checks that the process exists.
        assert_eq!(unsafe { libc::kill(pid, 0) }, 0);
        drop(journal);
        // SAFETY: as above; the child was reaped, so its pid is gone.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        let _ = std::fs::remove_dir_all(&dir);
        assert!(!alive, "journalctl child {pid} outlived its reader");
    }

    #[test]
    fn an_ended_child_is_restarted_after_the_last_cursor() {
        let dir = scratch("restart");
        let mut journal = Journal::start(fake(&dir, "exit 0")).unwrap_or_else(|e| panic!("{e}"));
        journal.restart_after = Duration::ZERO;
        let first = read_one(&mut journal);
        assert!(first.message.contains("--lines=0"));
        let second = read_one(&mut journal);
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            second.message.contains("--after-cursor=c-") && second.message.contains("--lines=all"),
            "{}",
            second.message
        );
    }
}
