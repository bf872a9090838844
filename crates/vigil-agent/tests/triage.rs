//! The triage package on this host, against a process tree, a cron entry and a listening
//! socket the test set up, with the file-system phases pointed at a test root.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use vigil_agent::triage::{self, Package, TriageOptions};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("skipping triage tests: they read every process's /proc entries (root)");
    }
    root
}

/// A test root with a cron entry, a per-user crontab, a shell rc file and a recent file.
fn test_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let w = |rel: &str, text: &str| {
        let p = root.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    w(
        "etc/cron.d/vigil-test",
        "*/5 * * * * root /usr/local/bin/beacon --quiet\n",
    );
    w(
        "var/spool/cron/crontabs/alice",
        "@reboot /home/alice/.x/run\n",
    );
    w("home/alice/.bashrc", "alias ls='ls --color'\n");
    w("tmp/dropped.bin", "payload");
    root
}

/// Every file and directory under `dir` with its size, mode and times.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u64, u32, i64, i64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            out.insert(
                e.path(),
                (m.len(), m.mode(), m.mtime_nsec(), m.ctime_nsec()),
            );
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    out
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn collect(root: &Path, builtin_walk: bool) -> Package {
    triage::collect(&TriageOptions {
        root: root.to_owned(),
        builtin_walk,
    })
}

#[test]
fn triage_sees_the_process_tree_the_cron_entry_and_the_listening_socket() {
    if !is_root() {
        return;
    }
    let root = test_root();
    // sh with a child of its own: `sleep` stays while sh waits for it.
    let tree = Kill(
        Command::new("/bin/sh")
            .args(["-c", "/bin/sleep 30; true vigil-triage-tree"])
            .spawn()
            .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Let sh fork its child.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let before = snapshot(root.path());
    let mut grandchild = None;

    for builtin in [false, true] {
        let pkg = collect(root.path(), builtin);
        let p = &pkg.phases;
        assert_eq!(pkg.schema, triage::SCHEMA);
        for (name, error) in [
            ("processes", &p.processes.error),
            ("connections", &p.connections.error),
            ("persistence", &p.persistence.error),
            ("recent_files", &p.recent_files.error),
        ] {
            assert!(error.is_none(), "{name} failed: {error:?}");
        }

        let sh = p
            .processes
            .items
            .iter()
            .find(|n| n.pid == tree.0.id())
            .expect("the test's shell");
        assert!(sh.cmd_line.contains("vigil-triage-tree"), "{sh:?}");
        let child = p
            .processes
            .items
            .iter()
            .find(|n| n.ppid == sh.pid)
            .expect("the shell's child");
        assert_eq!(child.name, "sleep");
        grandchild = Some(child.pid);
        assert_eq!(child.exe.as_deref(), Some("/usr/bin/sleep"));

        let sock = p
            .connections
            .items
            .iter()
            .find(|c| c.protocol == "tcp" && c.local_port == port && c.state == "LISTEN")
            .expect("the test's listening socket");
        assert_eq!(sock.pid, Some(std::process::id()), "{sock:?}");
        let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
        assert_eq!(sock.command.as_deref(), Some(comm.trim()));

        let cron = p
            .persistence
            .items
            .iter()
            .find(|i| i.path == "/etc/cron.d/vigil-test")
            .expect("the cron entry");
        assert_eq!(cron.kind, "cron");
        assert!(
            cron.content
                .as_deref()
                .unwrap()
                .contains("/usr/local/bin/beacon")
        );
        let kinds: Vec<(&str, &str)> = p
            .persistence
            .items
            .iter()
            .map(|i| (i.kind, i.path.as_str()))
            .collect();
        assert!(
            kinds.contains(&("cron", "/var/spool/cron/crontabs/alice")),
            "{kinds:?}"
        );
        assert!(
            kinds.contains(&("shell_rc", "/home/alice/.bashrc")),
            "{kinds:?}"
        );

        assert!(
            p.recent_files
                .items
                .iter()
                .any(|f| f.path == "/tmp/dropped.bin"),
            "recent files ({}): {:?}",
            if builtin { "built-in walk" } else { "find" },
            p.recent_files.items
        );
        let json = serde_json::to_vec(&pkg).unwrap();
        assert!(json.len() < triage::MAX_PACKAGE_BYTES);
    }
    drop(listener);
    if let Some(pid) = grandchild.and_then(|p| i32::try_from(p).ok()) {
        // The shell's child, started by this test: stopped by its pid.
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    assert_eq!(
        before,
        snapshot(root.path()),
        "triage changed nothing under the test root"
    );
}

#[test]
fn a_failing_phase_records_its_error_and_the_others_complete() {
    if !is_root() {
        return;
    }
    let root = test_root();
    // Where a directory of cron entries belongs, a file: the persistence phase cannot list it.
    let cron_d = root.path().join("etc/cron.d");
    std::fs::remove_dir_all(&cron_d).unwrap();
    std::fs::write(&cron_d, "not a directory").unwrap();
    let pkg = collect(root.path(), false);
    let p = &pkg.phases;
    let error = p
        .persistence
        .error
        .as_deref()
        .expect("the persistence phase failed");
    assert!(error.contains("/etc/cron.d"), "{error}");
    assert!(
        p.persistence
            .items
            .iter()
            .any(|i| i.path == "/var/spool/cron/crontabs/alice"),
        "what could be read is kept"
    );
    assert!(p.processes.error.is_none() && !p.processes.items.is_empty());
    assert!(p.connections.error.is_none());
    assert!(p.recent_files.error.is_none());
}
