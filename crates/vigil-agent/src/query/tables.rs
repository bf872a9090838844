//! Filling the live tables, each row in the column order of [`super::TABLES`].

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

/// Most files the `file` and `hash` tables list per query.
const MAX_FILES: usize = 10_000;
/// Files larger than this are not hashed.
const MAX_HASHED: u64 = 64 * 1024 * 1024;

/// Where the query told `file` / `hash` to look.
#[derive(Debug, Default)]
pub(super) struct PathConstraints {
    paths: BTreeSet<String>,
    dirs: BTreeSet<String>,
}

impl PathConstraints {
    /// `path = '…'`, `directory = '…'` and `path LIKE '/dir/%'` in the query text.
    pub(super) fn of(sql: &str) -> Self {
        let mut c = Self::default();
        let re = regex::Regex::new(r"(?i)\b(path|directory)\s*(=|like)\s*'([^']*)'")
            .expect("a valid pattern");
        for cap in re.captures_iter(sql) {
            let (field, op, value) = (&cap[1], &cap[2], cap[3].to_owned());
            if !value.starts_with('/') {
                continue;
            }
            match (
                field.to_ascii_lowercase().as_str(),
                op.to_ascii_lowercase().as_str(),
            ) {
                ("path", "=") => {
                    c.paths.insert(value);
                }
                ("directory", "=") => {
                    c.dirs.insert(value);
                }
                ("path", "like") => {
                    if let Some(dir) = value.strip_suffix("/%") {
                        c.dirs.insert(dir.to_owned());
                    }
                }
                _ => {}
            }
        }
        c
    }

    pub(super) fn is_empty(&self) -> bool {
        self.paths.is_empty() && self.dirs.is_empty()
    }

    fn files(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = self.paths.iter().map(PathBuf::from).collect();
        for d in &self.dirs {
            if let Ok(entries) = fs::read_dir(d) {
                out.extend(entries.flatten().map(|e| e.path()));
            }
        }
        out.sort();
        out.dedup();
        out.truncate(MAX_FILES);
        out
    }
}

/// The rows of `table`, read now (blocking work off the async threads).
pub(super) async fn fill(table: &'static str, c: &PathConstraints) -> Vec<Vec<Value>> {
    let files = c.files();
    tokio::task::spawn_blocking(move || fill_blocking(table, &files))
        .await
        .unwrap_or_default()
}

fn fill_blocking(table: &str, files: &[PathBuf]) -> Vec<Vec<Value>> {
    match table {
        "processes" => crate::triage::procs::collect()
            .map_or_else(|(items, _)| items, |(items, _)| items)
            .into_iter()
            .map(|p| {
                vec![
                    json!(p.pid),
                    json!(p.ppid),
                    json!(p.name),
                    json!(p.cmd_line),
                    json!(p.exe),
                    json!(p.cwd),
                    json!(p.uid),
                    json!(p.euid),
                    json!(p.state),
                    json!(p.start_ticks),
                ]
            })
            .collect(),
        "process_open_sockets" | "listening_ports" => {
            let conns = crate::triage::net::collect().map_or_else(|(c, _)| c, |(c, _)| c);
            if table == "process_open_sockets" {
                conns
                    .into_iter()
                    .filter(|c| c.pid.is_some())
                    .map(|c| {
                        vec![
                            json!(c.pid),
                            json!(c.command),
                            json!(c.protocol),
                            json!(c.local_ip),
                            json!(c.local_port),
                            json!(c.remote_ip),
                            json!(c.remote_port),
                            json!(c.state),
                            json!(c.inode),
                        ]
                    })
                    .collect()
            } else {
                conns
                    .into_iter()
                    .filter(|c| c.state == "LISTEN" || c.state == "UNCONN")
                    .map(|c| {
                        vec![
                            json!(c.pid),
                            json!(c.command),
                            json!(c.protocol),
                            json!(c.local_ip),
                            json!(c.local_port),
                            json!(c.inode),
                        ]
                    })
                    .collect()
            }
        }
        "users" => fs::read_to_string("/etc/passwd")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() >= 7).then(|| {
                    vec![
                        json!(f[2].parse::<i64>().ok()),
                        json!(f[3].parse::<i64>().ok()),
                        json!(f[0]),
                        json!(f[4]),
                        json!(f[5]),
                        json!(f[6]),
                    ]
                })
            })
            .collect(),
        "logged_in_users" => utmp(),
        "crontab" => crontab(),
        "systemd_units" => systemd_units(),
        "kernel_modules" => fs::read_to_string("/proc/modules")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() >= 6).then(|| {
                    vec![
                        json!(f[0]),
                        json!(f[1].parse::<i64>().ok()),
                        json!(f[3].trim_end_matches(',')),
                        json!(f[4]),
                        json!(f[5]),
                    ]
                })
            })
            .collect(),
        "file" => files
            .iter()
            .filter_map(|p| {
                let m = fs::symlink_metadata(p).ok()?;
                let kind = if m.is_dir() {
                    "directory"
                } else if m.is_symlink() {
                    "symlink"
                } else if m.is_file() {
                    "regular"
                } else {
                    "other"
                };
                Some(vec![
                    json!(p.display().to_string()),
                    json!(p.parent().map(|d| d.display().to_string())),
                    json!(p.file_name().map(|n| n.to_string_lossy().into_owned())),
                    json!(kind),
                    json!(m.len()),
                    json!(m.mtime()),
                    json!(m.uid()),
                    json!(m.gid()),
                    json!(format!("{:o}", m.mode() & 0o7777)),
                ])
            })
            .collect(),
        "hash" => files
            .iter()
            .filter_map(|p| {
                let m = fs::metadata(p).ok()?;
                if !m.is_file() || m.len() > MAX_HASHED {
                    return None;
                }
                let sha = crate::response::quarantine::sha256_file(p).ok()?;
                Some(vec![
                    json!(p.display().to_string()),
                    json!(sha),
                    json!(m.len()),
                ])
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn crontab() -> Vec<Vec<Value>> {
    let mut files = vec![PathBuf::from("/etc/crontab")];
    for dir in ["/etc/cron.d", "/var/spool/cron/crontabs"] {
        if let Ok(entries) = fs::read_dir(dir) {
            let mut more: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            more.sort();
            files.extend(more);
        }
    }
    let mut rows = Vec::new();
    for f in files {
        let Ok(text) = fs::read_to_string(&f) else {
            continue;
        };
        for line in text.lines().map(str::trim) {
            if !line.is_empty() && !line.starts_with('#') {
                rows.push(vec![json!(f.display().to_string()), json!(line)]);
            }
        }
    }
    rows
}

fn systemd_units() -> Vec<Vec<Value>> {
    let mut rows = Vec::new();
    for dir in [
        "/etc/systemd/system",
        "/run/systemd/system",
        "/usr/lib/systemd/system",
        "/lib/systemd/system",
    ] {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        let mut names: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        names.sort();
        for p in names {
            let Some(name) = p.file_name().map(|n| n.to_string_lossy().into_owned()) else {
                continue;
            };
            let Some((_, kind)) = name.rsplit_once('.') else {
                continue;
            };
            if matches!(
                kind,
                "service" | "timer" | "socket" | "target" | "path" | "mount"
            ) {
                rows.push(vec![
                    json!(name),
                    json!(kind),
                    json!(p.display().to_string()),
                ]);
            }
        }
    }
    rows
}

/// `/var/run/utmp`: glibc's `struct utmp` on x86-64, 384 bytes per record.
fn utmp() -> Vec<Vec<Value>> {
    const RECORD: usize = 384;
    let Ok(bytes) = fs::read(Path::new("/var/run/utmp")) else {
        return Vec::new();
    };
    let text = |b: &[u8]| {
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        String::from_utf8_lossy(&b[..end]).into_owned()
    };
    bytes
        .chunks_exact(RECORD)
        .filter_map(|r| {
            let kind = i16::from_ne_bytes([r[0], r[1]]);
            let kind = match kind {
                6 => "login",
                7 => "user",
                8 => "dead",
                _ => return None,
            };
            let pid = i32::from_ne_bytes(r[4..8].try_into().ok()?);
            let tty = text(&r[8..40]);
            let user = text(&r[44..76]);
            let host = text(&r[76..332]);
            let secs = i32::from_ne_bytes(r[340..344].try_into().ok()?);
            Some(vec![
                json!(kind),
                json!(user),
                json!(tty),
                json!(host),
                json!(pid),
                json!(secs),
            ])
        })
        .collect()
}
