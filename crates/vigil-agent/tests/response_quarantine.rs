//! Quarantine and restore on real files: byte-identical round trips with owner, mode and
//! modification time, on the vault's file system (rename) and across file systems (copy).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use vigil_agent::response::quarantine::{QuarantineError, Vault};

fn sha256(path: &Path) -> String {
    hex::encode(Sha256::digest(fs::read(path).unwrap()))
}

/// A file with awkward metadata: set-uid bit, a non-root owner, an old mtime.
fn make_file(path: &Path) {
    let content: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
    fs::write(path, content).unwrap();
    std::os::unix::fs::chown(path, Some(1234), Some(5678)).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o4751)).unwrap();
    let mtime = UNIX_EPOCH + Duration::new(1_600_000_000, 123_456_789);
    fs::File::open(path)
        .unwrap()
        .set_times(fs::FileTimes::new().set_modified(mtime))
        .unwrap();
}

fn round_trip(data_dir: &Path, files_dir: &Path) {
    let file = files_dir.join("suspicious.bin");
    make_file(&file);
    let before = fs::metadata(&file).unwrap();
    let hash = sha256(&file);

    let vault = Vault::open(data_dir).unwrap();
    assert_eq!(
        fs::metadata(vault.dir()).unwrap().permissions().mode() & 0o7777,
        0o700
    );
    let entry = vault.quarantine(&file).unwrap();
    assert!(!file.exists(), "the file must be gone while quarantined");
    assert_eq!(entry.sha256, hash);
    assert_eq!(entry.size, before.len());
    assert_eq!((entry.uid, entry.gid, entry.mode), (1234, 5678, 0o4751));
    assert_eq!(
        entry.original_path,
        fs::canonicalize(files_dir).unwrap().join("suspicious.bin")
    );

    let stored = vault.dir().join(format!("{}.bin", entry.id));
    let m = fs::metadata(&stored).unwrap();
    assert_eq!(
        (m.uid(), m.mode() & 0o7777),
        (0, 0o400),
        "vault copy is neutered"
    );
    let manifest = vault.dir().join(format!("{}.json", entry.id));
    assert_eq!(fs::metadata(&manifest).unwrap().mode() & 0o777, 0o600);
    assert_eq!(vault.list().unwrap(), vec![entry.clone()]);

    let restored = vault.restore(&entry.id).unwrap();
    assert_eq!(restored, entry);
    let after = fs::metadata(&file).unwrap();
    assert_eq!(sha256(&file), hash, "restore is byte-identical");
    assert_eq!(after.mode() & 0o7777, 0o4751);
    assert_eq!((after.uid(), after.gid()), (1234, 5678));
    assert_eq!(
        (after.mtime(), after.mtime_nsec()),
        (before.mtime(), before.mtime_nsec())
    );
    assert!(vault.list().unwrap().is_empty());
    assert!(!stored.exists() && !manifest.exists());
}

#[test]
fn quarantine_then_restore_is_byte_identical_on_one_file_system() {
    let data = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    round_trip(data.path(), files.path());
}

#[test]
fn quarantine_then_restore_is_byte_identical_across_file_systems() {
    let shm = Path::new("/dev/shm");
    let files = tempfile::tempdir().unwrap();
    if !shm.is_dir()
        || fs::metadata(shm).unwrap().dev() == fs::metadata(files.path()).unwrap().dev()
    {
        eprintln!("SKIP: /dev/shm is missing or on the same file system as the temp dir");
        return;
    }
    let data = tempfile::tempdir_in(shm).unwrap();
    round_trip(data.path(), files.path());
}

#[test]
fn restore_never_overwrites() {
    let data = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let file = files.path().join("a.txt");
    fs::write(&file, b"original").unwrap();
    let vault = Vault::open(data.path()).unwrap();
    let entry = vault.quarantine(&file).unwrap();
    fs::write(&file, b"newcomer").unwrap();
    let err = vault.restore(&entry.id).unwrap_err();
    assert!(matches!(err, QuarantineError::TargetExists { .. }), "{err}");
    assert!(err.to_string().contains("move it away first"));
    assert_eq!(fs::read(&file).unwrap(), b"newcomer");
    assert_eq!(vault.list().unwrap().len(), 1, "still in the vault");
    fs::remove_file(&file).unwrap();
    vault.restore(&entry.id).unwrap();
    assert_eq!(fs::read(&file).unwrap(), b"original");
}

#[test]
fn symlinks_directories_and_the_vault_are_refused() {
    let data = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let vault = Vault::open(data.path()).unwrap();
    let target = files.path().join("target");
    fs::write(&target, b"keep me").unwrap();
    let link = files.path().join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();

    let err = vault.quarantine(&link).unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");
    assert!(link.symlink_metadata().is_ok() && target.exists());

    let err = vault.quarantine(files.path()).unwrap_err();
    assert!(err.to_string().contains("directory"), "{err}");

    let err = vault.quarantine(vault.dir()).unwrap_err();
    assert!(matches!(err, QuarantineError::Refused { .. }), "{err}");

    let entry = vault.quarantine(&target).unwrap();
    let inside = vault.dir().join(format!("{}.bin", entry.id));
    let err = vault.quarantine(&inside).unwrap_err();
    assert!(
        err.to_string().contains("inside the quarantine vault"),
        "{err}"
    );

    let err = vault.quarantine(&files.path().join("missing")).unwrap_err();
    assert!(matches!(err, QuarantineError::NotFound(_)), "{err}");
}
