//! File quarantine: a root-only vault (`<data_dir>/quarantine`, 0700) that regular files are
//! moved into, each with a JSON manifest (0600) of what is needed to put it back exactly.
//!
//! Vault layout: `<id>.bin` holds the file's bytes (owned by root, mode 0400, so a set-uid bit or
//! an owner's write access does not come along), `<id>.json` its [`QuarantineEntry`]. The id is a
//! UUID. Moving is a rename when the file is on the vault's file system, otherwise a copy,
//! fsync and removal of the original. The manifest is written before the file moves, so a crash
//! in between never leaves a vault file whose origin is unknown.
//!
//! Restoring never overwrites: the file is linked into place (`link(2)` fails if the name
//! exists), with owner, mode and modification time set beforehand, and its hash checked against
//! the manifest.

use std::fs::{self, File, FileTimes};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::persist;

/// The vault's directory name inside the data directory.
pub const VAULT_DIR: &str = "quarantine";

/// Why a file could not be quarantined or restored.
#[derive(Debug, thiserror::Error)]
pub enum QuarantineError {
    /// Relative paths depend on the agent's working directory.
    #[error("give an absolute path: {} is relative", .0.display())]
    RelativePath(PathBuf),
    /// Nothing at that path.
    #[error("{} does not exist", .0.display())]
    NotFound(PathBuf),
    /// The path is not something the vault takes.
    #[error("refusing to quarantine {}: {reason}", path.display())]
    Refused {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: &'static str,
    },
    /// The id is not a UUID.
    #[error("{0:?} is not a quarantine id (ids are the UUIDs that quarantine returns)")]
    InvalidId(String),
    /// No vault item with that id.
    #[error("nothing in the vault has id {0} (see the list of quarantined files)")]
    UnknownId(String),
    /// Restoring would overwrite a file.
    #[error("cannot restore {id}: {} exists; move it away first", path.display())]
    TargetExists {
        /// The vault id.
        id: String,
        /// The original path.
        path: PathBuf,
    },
    /// The directory the file came from is gone.
    #[error("cannot restore {id}: directory {} does not exist any more; recreate it first", path.display())]
    ParentMissing {
        /// The vault id.
        id: String,
        /// The missing directory.
        path: PathBuf,
    },
    /// The vault item does not match its manifest.
    #[error("vault item {id} is damaged: {reason}")]
    Corrupt {
        /// The vault id.
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// A file system operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was attempted.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> QuarantineError {
    let path = path.to_owned();
    move |source| QuarantineError::Io {
        action,
        path,
        source,
    }
}

/// A quarantined file's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuarantineEntry {
    /// The vault id (a UUID).
    pub id: String,
    /// Where the file was, absolute, with its directory's symlinks resolved.
    pub original_path: PathBuf,
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Permission bits, including set-uid, set-gid and sticky (`st_mode & 0o7777`).
    pub mode: u32,
    /// Modification time, seconds since the epoch.
    pub mtime_sec: i64,
    /// Nanoseconds part of the modification time.
    pub mtime_nsec: u32,
    /// How many hard links the file had; more than one means its content is still reachable
    /// through the other names.
    pub links: u64,
    /// When it was quarantined, ms since the epoch.
    pub quarantined_ms: i64,
}

/// The quarantine vault of one agent.
#[derive(Debug, Clone)]
pub struct Vault {
    dir: PathBuf,
}

impl Vault {
    /// Opens (creating it if needed, mode 0700) the vault under `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, QuarantineError> {
        let dir = data_dir.join(VAULT_DIR);
        persist::private_dir(&dir).map_err(io_err("create the vault", &dir))?;
        let dir = fs::canonicalize(&dir).map_err(io_err("resolve the vault", &dir))?;
        Ok(Self { dir })
    }

    /// The vault directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn data_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.bin"))
    }

    fn manifest_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Moves the regular file at `path` into the vault and returns its manifest. Symbolic links
    /// (not followed), directories, devices, pipes, sockets and anything inside the vault are
    /// refused.
    pub fn quarantine(&self, path: &Path) -> Result<QuarantineEntry, QuarantineError> {
        if !path.is_absolute() {
            return Err(QuarantineError::RelativePath(path.to_owned()));
        }
        let refused = |reason| QuarantineError::Refused {
            path: path.to_owned(),
            reason,
        };
        let meta = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(QuarantineError::NotFound(path.to_owned()));
            }
            Err(e) => return Err(io_err("inspect", path)(e)),
        };
        let ft = meta.file_type();
        if ft.is_symlink() {
            return Err(refused(
                "it is a symbolic link (not followed); quarantine the file it points to by its own path",
            ));
        }
        if ft.is_dir() {
            return Err(refused(
                "it is a directory; quarantine the files in it one by one",
            ));
        }
        if !ft.is_file() {
            return Err(refused("it is not a regular file (device, pipe or socket)"));
        }
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(refused("it has no file name"));
        };
        let parent = fs::canonicalize(parent).map_err(io_err("resolve the directory of", path))?;
        if parent.starts_with(&self.dir) {
            return Err(refused("it is inside the quarantine vault"));
        }
        let original_path = parent.join(name);

        let id = uuid::Uuid::new_v4().to_string();
        let mut entry = QuarantineEntry {
            id: id.clone(),
            original_path: original_path.clone(),
            sha256: String::new(),
            size: meta.len(),
            uid: meta.uid(),
            gid: meta.gid(),
            mode: meta.mode() & 0o7777,
            mtime_sec: meta.mtime(),
            mtime_nsec: u32::try_from(meta.mtime_nsec()).unwrap_or(0),
            links: meta.nlink(),
            quarantined_ms: vigil_ocsf::now_ms(),
        };
        let manifest = self.manifest_path(&id);
        persist::write_json(&manifest, &entry).map_err(io_err("write the manifest", &manifest))?;
        let data = self.data_path(&id);
        if let Err(e) = move_file(&original_path, &data, meta.ino()) {
            let _ = persist::remove_if_exists(&manifest);
            return Err(e);
        }
        // What counts is what is in the vault now: hash and describe that.
        let moved = fs::symlink_metadata(&data).map_err(io_err("inspect", &data))?;
        if moved.ino() != meta.ino() && moved.dev() == meta.dev() {
            tracing::warn!(path = %original_path.display(), "File was replaced while being quarantined; the vault holds the replacement");
        }
        entry.sha256 = sha256_file(&data)?;
        entry.size = moved.len();
        persist::write_json(&manifest, &entry).map_err(io_err("write the manifest", &manifest))?;
        // Neuter the vault copy: root-owned and read-only, no set-uid bit.
        std::os::unix::fs::lchown(&data, Some(0), Some(0)).map_err(io_err("chown", &data))?;
        fs::set_permissions(&data, fs::Permissions::from_mode(0o400))
            .map_err(io_err("chmod", &data))?;
        persist::sync_parent(&data);
        Ok(entry)
    }

    /// Puts a quarantined file back where it was, byte-identical, with its owner, mode and
    /// modification time. Refuses to overwrite anything at the original path.
    pub fn restore(&self, id: &str) -> Result<QuarantineEntry, QuarantineError> {
        let entry = self.get(id)?;
        let target = &entry.original_path;
        let exists = |_| QuarantineError::TargetExists {
            id: id.to_owned(),
            path: target.clone(),
        };
        if fs::symlink_metadata(target).is_ok() {
            return Err(exists(()));
        }
        let parent = target.parent().unwrap_or(Path::new("/"));
        let parent_meta = fs::metadata(parent).map_err(|_| QuarantineError::ParentMissing {
            id: id.to_owned(),
            path: parent.to_owned(),
        })?;
        let data = self.data_path(id);
        let sha = sha256_file(&data)?;
        if sha != entry.sha256 {
            return Err(QuarantineError::Corrupt {
                id: id.to_owned(),
                reason: format!(
                    "content hash {sha} differs from the manifest's {}",
                    entry.sha256
                ),
            });
        }
        let vault_dev = fs::metadata(&self.dir)
            .map_err(io_err("inspect", &self.dir))?
            .dev();
        // The file that gets linked into place: the vault file itself on the same file system,
        // else a copy next to the target.
        let staged = if vault_dev == parent_meta.dev() {
            data.clone()
        } else {
            let tmp = parent.join(format!(".vigil-restore-{id}"));
            let _ = fs::remove_file(&tmp);
            copy_synced(&data, &tmp)?;
            tmp
        };
        let result =
            set_metadata(&staged, &entry).and_then(|()| match fs::hard_link(&staged, target) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(exists(())),
                Err(e) => Err(io_err("restore", target)(e)),
            });
        if let Err(e) = result {
            if staged == data {
                let _ = std::os::unix::fs::lchown(&data, Some(0), Some(0));
                let _ = fs::set_permissions(&data, fs::Permissions::from_mode(0o400));
            } else {
                let _ = fs::remove_file(&staged);
            }
            return Err(e);
        }
        if staged != data {
            fs::remove_file(&staged).map_err(io_err("remove", &staged))?;
        }
        fs::remove_file(&data).map_err(io_err("remove", &data))?;
        persist::sync_parent(target);
        let manifest = self.manifest_path(id);
        persist::remove_if_exists(&manifest).map_err(io_err("remove", &manifest))?;
        Ok(entry)
    }

    /// The manifest of one quarantined file.
    pub fn get(&self, id: &str) -> Result<QuarantineEntry, QuarantineError> {
        // Parsing as a UUID also keeps `id` from naming anything outside the vault.
        let uuid =
            uuid::Uuid::parse_str(id).map_err(|_| QuarantineError::InvalidId(id.to_owned()))?;
        let id = uuid.hyphenated().to_string();
        let manifest = self.manifest_path(&id);
        let entry: QuarantineEntry = persist::read_json(&manifest)
            .map_err(|e| QuarantineError::Corrupt {
                id: id.clone(),
                reason: format!("manifest {}: {e}", manifest.display()),
            })?
            .ok_or_else(|| QuarantineError::UnknownId(id.clone()))?;
        if !self.data_path(&id).exists() {
            return Err(QuarantineError::Corrupt {
                id,
                reason: "the manifest exists but the file does not (interrupted quarantine?)"
                    .into(),
            });
        }
        Ok(entry)
    }

    /// Every quarantined file, oldest first. Unreadable manifests are skipped with a warning.
    pub fn list(&self) -> Result<Vec<QuarantineEntry>, QuarantineError> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.dir).map_err(io_err("list", &self.dir))? {
            let path = e.map_err(io_err("list", &self.dir))?.path();
            if path.extension().and_then(|x| x.to_str()) != Some("json") {
                continue;
            }
            match persist::read_json::<QuarantineEntry>(&path) {
                Ok(Some(entry)) if !entry.sha256.is_empty() => out.push(entry),
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "Unreadable quarantine manifest")
                }
            }
        }
        out.sort_by_key(|e| e.quarantined_ms);
        Ok(out)
    }
}

/// Moves `from` (expected inode `ino`) to `to`: rename, or across file systems copy + fsync +
/// remove.
fn move_file(from: &Path, to: &Path, ino: u64) -> Result<(), QuarantineError> {
    match fs::rename(from, to) {
        Ok(()) => {
            persist::sync_parent(from);
            persist::sync_parent(to);
            Ok(())
        }
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            copy_synced(from, to)?;
            // Remove the original only if it is still the file that was copied.
            match fs::symlink_metadata(from) {
                Ok(m) if m.ino() == ino => {}
                _ => {
                    let _ = fs::remove_file(to);
                    return Err(QuarantineError::Refused {
                        path: from.to_owned(),
                        reason: "it was replaced while being copied into the vault",
                    });
                }
            }
            fs::remove_file(from).map_err(io_err("remove", from))?;
            persist::sync_parent(from);
            Ok(())
        }
        Err(e) => Err(io_err("move into the vault", from)(e)),
    }
}

/// Copies `from` (not following a symlink) to the new file `to` (0600) and fsyncs it.
fn copy_synced(from: &Path, to: &Path) -> Result<(), QuarantineError> {
    let mut src = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(from)
        .map_err(io_err("open", from))?;
    let mut dst = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .map_err(io_err("create", to))?;
    io::copy(&mut src, &mut dst).map_err(io_err("copy to", to))?;
    dst.sync_all().map_err(io_err("fsync", to))?;
    Ok(())
}

/// Owner, then mode (chown clears set-uid bits), then modification time.
fn set_metadata(path: &Path, e: &QuarantineEntry) -> Result<(), QuarantineError> {
    std::os::unix::fs::lchown(path, Some(e.uid), Some(e.gid)).map_err(io_err("chown", path))?;
    fs::set_permissions(path, fs::Permissions::from_mode(e.mode)).map_err(io_err("chmod", path))?;
    let mtime = if e.mtime_sec >= 0 {
        UNIX_EPOCH + Duration::new(e.mtime_sec.unsigned_abs(), e.mtime_nsec)
    } else {
        UNIX_EPOCH - Duration::from_secs(e.mtime_sec.unsigned_abs())
            + Duration::from_nanos(u64::from(e.mtime_nsec))
    };
    File::open(path)
        .and_then(|f| f.set_times(FileTimes::new().set_modified(mtime)))
        .map_err(io_err("set the modification time of", path))?;
    Ok(())
}

/// SHA-256 of a file's content, lowercase hex (symlinks not followed).
pub fn sha256_file(path: &Path) -> Result<String, QuarantineError> {
    let mut f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(io_err("open", path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(io_err("read", path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_ids_are_refused_before_touching_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let v = Vault::open(dir.path()).unwrap();
        assert!(matches!(
            v.restore("../../etc/passwd"),
            Err(QuarantineError::InvalidId(_))
        ));
        assert!(matches!(
            v.restore(&uuid::Uuid::new_v4().to_string()),
            Err(QuarantineError::UnknownId(_))
        ));
    }

    #[test]
    fn relative_paths_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let v = Vault::open(dir.path()).unwrap();
        assert!(matches!(
            v.quarantine(Path::new("x.bin")),
            Err(QuarantineError::RelativePath(_))
        ));
    }
}
