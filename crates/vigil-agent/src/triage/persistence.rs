//! Phase 3: where software pins itself to run again — cron (system and per-user), systemd
//! units and timers, XDG autostart, rc.local, profile.d, init.d and shell rc files — with each
//! file's owner, mode, time and the start of its text.

use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{MAX_PERSISTENCE, MAX_TEXT, PhaseResult, host_path, under};

/// One file in a persistence location.
#[derive(Debug, Clone, Serialize)]
pub struct PersistenceItem {
    /// `cron`, `systemd`, `autostart`, `rc_local`, `profile_d`, `init_d`, `shell_rc`.
    pub kind: &'static str,
    /// Path on the host.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification (ms since the epoch).
    pub mtime: i64,
    /// Owner uid.
    pub uid: u32,
    /// Permission bits, octal.
    pub mode: String,
    /// The start of the file (1 KiB), for text files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

/// Files that are persistence locations themselves.
const FILES: &[(&str, &str)] = &[
    ("cron", "/etc/crontab"),
    ("cron", "/etc/anacrontab"),
    ("rc_local", "/etc/rc.local"),
];

/// Directories whose files are persistence locations, and how deep to look.
const DIRS: &[(&str, &str, usize)] = &[
    ("cron", "/etc/cron.d", 1),
    ("cron", "/etc/cron.hourly", 1),
    ("cron", "/etc/cron.daily", 1),
    ("cron", "/etc/cron.weekly", 1),
    ("cron", "/etc/cron.monthly", 1),
    ("cron", "/var/spool/cron/crontabs", 1),
    ("systemd", "/etc/systemd/system", 2),
    ("systemd", "/etc/systemd/user", 2),
    ("autostart", "/etc/xdg/autostart", 1),
    ("profile_d", "/etc/profile.d", 1),
    ("init_d", "/etc/init.d", 1),
];

/// Per-user files and directories (under `/root` and each `/home/*`).
const USER_FILES: &[&str] = &[
    ".bashrc",
    ".bash_profile",
    ".bash_login",
    ".profile",
    ".zshrc",
    ".bash_logout",
];
const USER_DIRS: &[(&str, &str, usize)] = &[
    ("autostart", ".config/autostart", 1),
    ("systemd", ".config/systemd/user", 2),
];

struct Walk {
    items: Vec<PersistenceItem>,
    errors: Vec<String>,
    truncated: bool,
}

impl Walk {
    fn add(&mut self, root: &Path, kind: &'static str, path: &Path) {
        if self.items.len() >= MAX_PERSISTENCE {
            self.truncated = true;
            return;
        }
        // Never follow a link out of the file; a dangling link is still worth listing.
        let meta = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                self.errors.push(format!("{}: {e}", host_path(root, path)));
                return;
            }
        };
        if meta.is_dir() {
            return;
        }
        let content = meta.is_file().then(|| read_start(path)).flatten();
        self.items.push(PersistenceItem {
            kind,
            path: host_path(root, path),
            size: meta.len(),
            mtime: meta.mtime() * 1000 + meta.mtime_nsec() / 1_000_000,
            uid: meta.uid(),
            mode: format!("{:o}", meta.mode() & 0o7777),
            content,
        });
    }

    fn dir(&mut self, root: &Path, kind: &'static str, dir: &Path, depth: usize) {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                self.errors.push(format!("{}: {e}", host_path(root, dir)));
                return;
            }
        };
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            let is_dir = fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir());
            if is_dir {
                if depth > 1 {
                    self.dir(root, kind, &p, depth - 1);
                }
            } else {
                self.add(root, kind, &p);
            }
        }
    }
}

/// The first [`MAX_TEXT`] bytes, when they are text.
fn read_start(path: &Path) -> Option<String> {
    let mut buf = Vec::with_capacity(MAX_TEXT);
    fs::File::open(path)
        .ok()?
        .take(MAX_TEXT as u64)
        .read_to_end(&mut buf)
        .ok()?;
    if buf.contains(&0) {
        return None;
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

pub(super) fn collect(root: &Path) -> PhaseResult<PersistenceItem> {
    let mut w = Walk {
        items: Vec::new(),
        errors: Vec::new(),
        truncated: false,
    };
    for (kind, file) in FILES {
        w.add(root, kind, &under(root, file));
    }
    for (kind, dir, depth) in DIRS {
        w.dir(root, kind, &under(root, dir), *depth);
    }
    let mut homes = vec![under(root, "/root")];
    if let Ok(entries) = fs::read_dir(under(root, "/home")) {
        let mut more: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        more.sort();
        homes.extend(more);
    }
    for home in homes {
        for f in USER_FILES {
            w.add(root, "shell_rc", &home.join(f));
        }
        for (kind, dir, depth) in USER_DIRS {
            w.dir(root, kind, &home.join(dir), *depth);
        }
    }
    if w.errors.is_empty() {
        Ok((w.items, w.truncated))
    } else {
        Err((w.items, w.errors.join("; ")))
    }
}
