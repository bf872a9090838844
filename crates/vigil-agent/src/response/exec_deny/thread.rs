//! The guard thread: reads permission events, decides, answers (always), reports denials.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::fanotify::PermEvent;
use super::{BlockedExec, HASH_CACHE_MAX, MAX_HASHED_SIZE, Shared, hash_reader};

/// The guard thread: answer every event until told to stop. Should deciding ever panic, the
/// guard keeps running and allows every exec from then on: an unanswered event would hold the
/// exec forever.
pub(super) fn run(shared: &Shared) {
    loop {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| serve(shared))) {
            Ok(()) => return,
            Err(_) => {
                tracing::error!("Exec guard failed; allowing every exec from now on");
                shared.failed.store(true, Ordering::Relaxed);
            }
        }
    }
}

fn serve(shared: &Shared) {
    let mut buf = vec![0u8; 64 * 1024];
    while !shared.stop.load(Ordering::Relaxed) {
        match shared.group.wait(Duration::from_millis(100)) {
            Ok(false) => continue,
            Ok(true) => {}
            Err(error) => {
                // Never give up: events left unread would hold execs until the group closes.
                shared.counters.errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%error, "Exec guard cannot poll its fanotify group");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        }
        let events = match shared.group.read(&mut buf) {
            Ok(e) => e,
            Err(error) => {
                shared.counters.errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%error, "Exec guard cannot read fanotify events");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        for ev in events {
            handle(shared, ev);
        }
    }
}

/// What a rule check decided.
enum Verdict {
    Allow,
    Deny {
        rule: String,
        sha256: Option<String>,
    },
}

fn handle(shared: &Shared, ev: PermEvent) {
    if ev.mask & libc::FAN_OPEN_EXEC_PERM == 0 || shared.failed.load(Ordering::Relaxed) {
        // Not ours to judge (no other permission event is requested); allow defensively.
        let _ = shared.group.respond(ev.file.as_fd(), true);
        return;
    }
    let verdict = match decide(shared, &ev.file) {
        Ok(v) => v,
        Err(error) => {
            shared.counters.errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%error, pid = ev.pid, "Exec guard could not decide; allowing");
            Verdict::Allow
        }
    };
    let allow = matches!(verdict, Verdict::Allow);
    if let Err(error) = shared.group.respond(ev.file.as_fd(), allow) {
        tracing::warn!(%error, pid = ev.pid, "Exec guard could not answer a permission event");
    }
    shared.counters.answered.fetch_add(1, Ordering::Relaxed);
    if let Verdict::Deny { rule, sha256 } = verdict {
        shared.counters.denied.fetch_add(1, Ordering::Relaxed);
        report(shared, &ev, rule, sha256);
    }
}

fn decide(shared: &Shared, file: &OwnedFd) -> io::Result<Verdict> {
    let f = File::from(file.try_clone()?);
    let m = f.metadata()?;
    let id = (m.dev(), m.ino());
    let (check_paths, check_hash, cached) = {
        let rules = shared.rules();
        if let Some(p) = rules.inodes.get(&id) {
            return Ok(Verdict::Deny {
                rule: format!("path:{}", p.display()),
                sha256: None,
            });
        }
        let key = (
            m.dev(),
            m.ino(),
            m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            m.ctime() * 1_000_000_000 + m.ctime_nsec(),
            m.size(),
        );
        (
            !rules.list.paths.is_empty(),
            !rules.list.sha256.is_empty(),
            rules
                .cache
                .get(&key)
                .cloned()
                .map(|h| (key, Some(h)))
                .unwrap_or((key, None)),
        )
    };
    if check_paths {
        let path = fd_path(file);
        let rules = shared.rules();
        if let Some(p) = path.filter(|p| rules.list.paths.contains(p)) {
            return Ok(Verdict::Deny {
                rule: format!("path:{}", p.display()),
                sha256: None,
            });
        }
    }
    if !check_hash || m.size() > MAX_HASHED_SIZE {
        return Ok(Verdict::Allow);
    }
    let (key, cached) = cached;
    let hash = match cached {
        Some(h) => h,
        None => {
            let h = hash_reader(&f)?;
            shared.counters.hashed.fetch_add(1, Ordering::Relaxed);
            let mut rules = shared.rules();
            if rules.cache.len() >= HASH_CACHE_MAX {
                rules.cache.clear();
            }
            rules.cache.insert(key, h.clone());
            h
        }
    };
    if shared.rules().list.sha256.contains(&hash) {
        return Ok(Verdict::Deny {
            rule: format!("sha256:{hash}"),
            sha256: Some(hash),
        });
    }
    Ok(Verdict::Allow)
}

/// The path an event's descriptor refers to.
fn fd_path(file: &OwnedFd) -> Option<PathBuf> {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()
}

/// Sends a blocked-exec report; never blocks (a full channel drops the report and counts it).
fn report(shared: &Shared, ev: &PermEvent, rule: String, sha256: Option<String>) {
    let sha256 = sha256.unwrap_or_else(|| {
        use std::io::{Seek, SeekFrom};
        ev.file
            .try_clone()
            .map(File::from)
            .and_then(|mut f| {
                f.seek(SeekFrom::Start(0))?;
                hash_reader(f)
            })
            .unwrap_or_default()
    });
    let stat = crate::response::procfs::stat(ev.pid);
    let blocked = BlockedExec {
        path: fd_path(&ev.file).unwrap_or_default(),
        pid: ev.pid,
        comm: stat.map(|s| s.comm).unwrap_or_default(),
        uid: crate::response::procfs::uids(ev.pid).map(|(r, _)| r),
        sha256,
        rule,
        time_ms: vigil_ocsf::now_ms(),
    };
    tracing::info!(path = %blocked.path.display(), pid = blocked.pid, rule = %blocked.rule, "Exec denied");
    if shared.reports.try_send(blocked).is_err() {
        shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
    }
}
