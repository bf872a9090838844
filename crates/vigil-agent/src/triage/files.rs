//! Phase 4: recently changed files in forensic-relevant directories, newest first: `find`
//! where it exists, else a built-in walk with the same depth cap and file-system boundary.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Serialize;

use super::{MAX_DEPTH, MAX_RECENT_FILES, PhaseResult, RECENT_WINDOW_S, host_path, under};

/// Directories searched (below the triage root).
pub const DIRS: &[&str] = &[
    "/etc",
    "/tmp",
    "/var/tmp",
    "/dev/shm",
    "/root",
    "/home",
    "/opt",
    "/usr/local/bin",
    "/usr/local/sbin",
    "/usr/bin",
    "/usr/sbin",
    "/var/spool/cron",
];

/// Lines of `find` output read before giving up on the rest (the newest are kept).
const MAX_SCANNED: usize = 200_000;

/// One recently changed file.
#[derive(Debug, Clone, Serialize)]
pub struct RecentFile {
    /// Path on the host.
    pub path: String,
    /// Last modification (ms since the epoch).
    pub mtime: i64,
    /// Size in bytes.
    pub size: u64,
    /// Owner uid.
    pub uid: u32,
    /// Permission bits, octal.
    pub mode: String,
}

pub(super) fn collect(root: &Path, builtin: bool) -> PhaseResult<RecentFile> {
    let since = vigil_ocsf::now_ms() - i64::try_from(RECENT_WINDOW_S * 1000).unwrap_or(i64::MAX);
    let dirs: Vec<PathBuf> = DIRS
        .iter()
        .map(|d| under(root, d))
        .filter(|d| d.is_dir())
        .collect();
    let (mut found, mut errors, mut scanned_out) = if !builtin && find_exists() {
        with_find(&dirs, root)
    } else {
        walk(&dirs, root, since)
    };
    found.retain(|f| f.mtime >= since);
    found.sort_by(|a, b| b.mtime.cmp(&a.mtime).then_with(|| a.path.cmp(&b.path)));
    if found.len() > MAX_RECENT_FILES {
        found.truncate(MAX_RECENT_FILES);
        scanned_out = true;
    }
    errors.dedup();
    if errors.is_empty() {
        Ok((found, scanned_out))
    } else {
        Err((found, errors.join("; ")))
    }
}

fn find_exists() -> bool {
    Command::new("find")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `find DIRS -xdev -maxdepth D -type f -mmin -M -printf …`.
fn with_find(dirs: &[PathBuf], root: &Path) -> (Vec<RecentFile>, Vec<String>, bool) {
    if dirs.is_empty() {
        return (Vec::new(), Vec::new(), false);
    }
    let minutes = RECENT_WINDOW_S / 60;
    let out = Command::new("find")
        .args(dirs)
        .args(["-xdev", "-maxdepth", &MAX_DEPTH.to_string(), "-type", "f"])
        .args(["-mmin", &format!("-{minutes}")])
        .args(["-printf", "%T@\\t%s\\t%U\\t%m\\t%p\\n"])
        .stdin(Stdio::null())
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => return (Vec::new(), vec![format!("cannot run find: {e}")], false),
    };
    let mut files = Vec::new();
    let mut truncated = false;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if files.len() >= MAX_SCANNED {
            truncated = true;
            break;
        }
        let mut f = line.splitn(5, '\t');
        let (Some(t), Some(size), Some(uid), Some(mode), Some(path)) =
            (f.next(), f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        let secs: f64 = t.parse().unwrap_or(0.0);
        files.push(RecentFile {
            path: host_path(root, Path::new(path)),
            mtime: (secs * 1000.0) as i64,
            size: size.parse().unwrap_or(0),
            uid: uid.parse().unwrap_or(u32::MAX),
            mode: mode.to_owned(),
        });
    }
    // find reports unreadable directories on stderr and exits 1; the rest is still good.
    let errors = String::from_utf8_lossy(&out.stderr)
        .lines()
        .take(10)
        .map(|l| l.trim_start_matches("find: ").to_owned())
        .collect();
    (files, errors, truncated)
}

/// The built-in walk: same directories, depth cap and file-system boundary as `find`.
fn walk(dirs: &[PathBuf], root: &Path, since: i64) -> (Vec<RecentFile>, Vec<String>, bool) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    let mut truncated = false;
    for dir in dirs {
        let Ok(top) = fs::metadata(dir) else { continue };
        let mut stack = vec![(dir.clone(), 0usize)];
        while let Some((d, depth)) = stack.pop() {
            let entries = match fs::read_dir(&d) {
                Ok(e) => e,
                Err(e) => {
                    errors.push(format!("{}: {e}", host_path(root, &d)));
                    continue;
                }
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(meta) = fs::symlink_metadata(&path) else {
                    continue;
                };
                if meta.dev() != top.dev() {
                    continue;
                }
                if meta.is_dir() {
                    if depth + 1 < MAX_DEPTH {
                        stack.push((path, depth + 1));
                    }
                    continue;
                }
                if !meta.is_file() {
                    continue;
                }
                let mtime = meta.mtime() * 1000 + meta.mtime_nsec() / 1_000_000;
                if mtime < since {
                    continue;
                }
                if files.len() >= MAX_SCANNED {
                    truncated = true;
                    break;
                }
                files.push(RecentFile {
                    path: host_path(root, &path),
                    mtime,
                    size: meta.len(),
                    uid: meta.uid(),
                    mode: format!("{:o}", meta.mode() & 0o7777),
                });
            }
        }
    }
    (files, errors, truncated)
}
