//! Kernel tests of file activity capture (fanotify): real processes create, write, rename,
//! chmod, chown and delete files in a directory the sensor watches, and the sensor must report
//! each as OCSF File System Activity with the right activity, paths and acting process.
//!
//! They need root (CAP_SYS_ADMIN, CAP_DAC_READ_SEARCH); without it each test says so and
//! passes. The filesystem mark sees every change on the file system, other tests' included, so
//! each test watches a directory of its own and looks only at events about it.

mod common;

use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use vigil_sensor::vigil_ocsf::Event;
use vigil_sensor::{FileConfig, SensorConfig, SourceMode};

/// A directory of this test's own, removed on drop.
struct TestDir(PathBuf);

impl TestDir {
    fn new(prefix: &str) -> Self {
        let dir = std::env::temp_dir().join(nonce(prefix));
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        let dir = std::fs::canonicalize(&dir).unwrap_or_else(|e| panic!("canonicalize: {e}"));
        Self(dir)
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A sensor watching `watched`, excluding `excluded`.
fn watching(watched: &Path, excluded: &[String]) -> Harness {
    let h = Harness::start_with(SensorConfig {
        mode: SourceMode::Auto,
        files: FileConfig {
            enabled: true,
            paths: vec![watched.to_owned()],
            exclude: excluded.iter().map(PathBuf::from).collect(),
        },
        ..Default::default()
    });
    let caps = h.sensor.capabilities();
    let file = caps
        .iter()
        .find(|c| c.name == "file")
        .unwrap_or_else(|| panic!("no file capability: {caps:?}"));
    assert_eq!(
        (file.source.as_str(), file.live),
        ("fanotify", true),
        "{file:?}"
    );
    let detail = file.detail.clone().unwrap_or_default();
    assert!(
        detail.contains(&watched.to_string_lossy().into_owned()),
        "{detail}"
    );
    h
}

/// A File System Activity of `activity` on `path` (and, for a rename, to `to`).
fn file_event<'a>(
    activity: u64,
    path: &'a str,
    to: Option<&'a str>,
) -> impl Fn(&Event) -> bool + 'a {
    move |e| {
        e.class_uid == 1001
            && u64_at(e, "activity_id") == Some(activity)
            && str_at(e, "file.path") == Some(path)
            && str_at(e, "file_result.path") == to
    }
}

/// Whether a file event is about `dir` or anything below it.
fn touches(event: &Event, dir: &str) -> bool {
    event.class_uid == 1001
        && ["file.path", "file_result.path"].iter().any(|p| {
            str_at(event, p).is_some_and(|path| path == dir || path.starts_with(&format!("{dir}/")))
        })
}

const CREATE: u64 = 1;
const UPDATE: u64 = 3;
const DELETE: u64 = 4;
const RENAME: u64 = 5;
const SET_ATTRIBUTES: u64 = 6;

/// One file system call the forked actor makes.
enum Op {
    Write(CString),
    Rename(CString, CString),
    Chmod(CString, libc::mode_t),
    Chown(CString, libc::uid_t, libc::gid_t),
    Mkdir(CString),
    Rmdir(CString),
    Unlink(CString),
}

fn c(path: &str) -> CString {
    CString::new(Path::new(path).as_os_str().as_bytes()).unwrap_or_else(|e| panic!("{e}"))
}

/// A fork of this test process that makes one call of its list per [`ForkedActor::step`] and
/// stays alive until dropped, so its pid, image and command line are known for sure.
struct ForkedActor {
    pid: libc::pid_t,
    commands: libc::c_int,
    acks: libc::c_int,
}

fn pipe() -> (libc::c_int, libc::c_int) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into a live array of two c_ints.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    (fds[0], fds[1])
}

impl ForkedActor {
    fn start(ops: Vec<Op>) -> Self {
        let (commands_rd, commands_wr) = pipe();
        let (acks_rd, acks_wr) = pipe();
        // SAFETY: the child only makes async-signal-safe system calls (read, write, open,
        // close, rename, chmod, chown, mkdir, rmdir, unlink) on memory prepared before the fork,
        // then _exit, so forking this multi-threaded process is sound.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: see above; every pointer is to a NUL-terminated CString or a local byte.
            unsafe {
                // The parent's ends: with them open here, the child would never see EOF.
                libc::close(commands_wr);
                libc::close(acks_rd);
                for op in &ops {
                    let mut byte = 0u8;
                    if libc::read(commands_rd, (&raw mut byte).cast(), 1) != 1 {
                        libc::_exit(0);
                    }
                    let rc = match op {
                        Op::Write(path) => {
                            let fd = libc::open(
                                path.as_ptr(),
                                libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
                                0o644,
                            );
                            let wrote = libc::write(fd, b"x\n".as_ptr().cast(), 2);
                            if fd < 0 || wrote != 2 {
                                -1
                            } else {
                                libc::close(fd)
                            }
                        }
                        Op::Rename(from, to) => libc::rename(from.as_ptr(), to.as_ptr()),
                        Op::Chmod(path, mode) => libc::chmod(path.as_ptr(), *mode),
                        Op::Chown(path, uid, gid) => libc::chown(path.as_ptr(), *uid, *gid),
                        Op::Mkdir(path) => libc::mkdir(path.as_ptr(), 0o755),
                        Op::Rmdir(path) => libc::rmdir(path.as_ptr()),
                        Op::Unlink(path) => libc::unlink(path.as_ptr()),
                    };
                    let ack: u8 = if rc == 0 { b'+' } else { b'-' };
                    libc::write(acks_wr, (&raw const ack).cast(), 1);
                }
                let mut byte = 0u8;
                libc::read(commands_rd, (&raw mut byte).cast(), 1);
                libc::_exit(0);
            }
        }
        assert!(pid > 0, "fork: {}", std::io::Error::last_os_error());
        // SAFETY: closes the child's ends, which this process owns and no longer uses.
        unsafe {
            libc::close(commands_rd);
            libc::close(acks_wr);
        }
        Self {
            pid,
            commands: commands_wr,
            acks: acks_rd,
        }
    }

    fn pid(&self) -> u32 {
        u32::try_from(self.pid).unwrap_or_else(|_| unreachable!())
    }

    /// Makes the next call, and waits (at most [`EVENT_TIMEOUT`]) until it is done.
    fn step(&self, what: &str) {
        let go = b'.';
        let mut ack = 0u8;
        let mut ready = libc::pollfd {
            fd: self.acks,
            events: libc::POLLIN,
            revents: 0,
        };
        let timeout = i32::try_from(EVENT_TIMEOUT.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: one byte from and into live locals, on pipes this struct owns; one pollfd.
        let (sent, polled, got) = unsafe {
            let sent = libc::write(self.commands, (&raw const go).cast(), 1);
            let polled = libc::poll(&raw mut ready, 1, timeout);
            let got = if polled == 1 {
                libc::read(self.acks, (&raw mut ack).cast(), 1)
            } else {
                0
            };
            (sent, polled, got)
        };
        assert_eq!(
            (sent, polled, got, ack),
            (1, 1, 1, b'+'),
            "the actor could not {what}"
        );
    }
}

impl Drop for ForkedActor {
    fn drop(&mut self) {
        // SAFETY: closes our pipe ends, ends our own child (done or stuck) and reaps it.
        unsafe {
            libc::close(self.commands);
            libc::close(self.acks);
            libc::kill(self.pid, libc::SIGKILL);
            let mut status = 0;
            libc::waitpid(self.pid, &mut status, 0);
        }
    }
}

/// The acting process of a file event is the forked actor: this test binary, run by root.
fn assert_actor_is_the_fork(event: &Event, actor: &ForkedActor) {
    assert_eq!(str_at(event, "metadata.log_name"), Some("fanotify"));
    assert_eq!(
        u64_at(event, "actor.process.pid"),
        Some(u64::from(actor.pid()))
    );
    let binary = test_binary();
    assert_eq!(
        str_at(event, "actor.process.file.path"),
        Some(binary.as_str())
    );
    let name = binary.rsplit('/').next().unwrap_or_default();
    assert_eq!(str_at(event, "actor.process.name"), Some(name));
    let cmd_line = std::fs::read(format!("/proc/{}/cmdline", actor.pid()))
        .map(|raw| {
            String::from_utf8_lossy(&raw)
                .trim_end_matches('\0')
                .replace('\0', " ")
        })
        .unwrap_or_default();
    assert_eq!(
        str_at(event, "actor.process.cmd_line"),
        Some(cmd_line.as_str())
    );
    assert_eq!(
        str_at(event, "actor.process.uid"),
        Some(proc_uid(actor.pid()).as_str())
    );
    assert_eq!(str_at(event, "actor.user.name"), Some("root"));
    assert_eq!(
        u64_at(event, "actor.process.parent_process.pid"),
        Some(u64::from(std::process::id()))
    );
}

#[test]
fn file_changes_by_a_process_are_reported_with_paths_and_actor() {
    skip_unless_root!();
    let dir = TestDir::new("vigil-files");
    let outside = TestDir::new("vigil-files-outside");
    let excluded = dir.path("excluded");
    let mut h = watching(&dir.0, std::slice::from_ref(&excluded));
    let (f, g) = (dir.path("f"), dir.path("g"));
    let (sub, sub2) = (dir.path("sub"), dir.path("sub2"));
    let (out_file, moved_in) = (format!("{}/in", outside.0.display()), dir.path("moved-in"));
    let (hidden, end) = (format!("{excluded}/h"), dir.path("end"));
    let actor = ForkedActor::start(vec![
        Op::Write(c(&f)),
        Op::Rename(c(&f), c(&g)),
        Op::Chmod(c(&g), 0o600),
        Op::Chown(c(&g), 1, 1),
        Op::Mkdir(c(&sub)),
        Op::Rename(c(&sub), c(&sub2)),
        Op::Rmdir(c(&sub2)),
        Op::Unlink(c(&g)),
        // Not reported: outside the watched directory, and under the excluded one.
        Op::Write(c(&out_file)),
        Op::Mkdir(c(&excluded)),
        Op::Write(c(&hidden)),
        Op::Unlink(c(&hidden)),
        // Reported: moved in from outside.
        Op::Rename(c(&out_file), c(&moved_in)),
        Op::Write(c(&end)),
    ]);

    actor.step("create and write f");
    let created = h.wait_for_all(&[
        ("create of f", &file_event(CREATE, &f, None)),
        ("update of f", &file_event(UPDATE, &f, None)),
    ]);
    for event in &created {
        assert_actor_is_the_fork(event, &actor);
        assert_eq!(u64_at(event, "file.type_id"), Some(1));
        assert_eq!(str_at(event, "file.name"), Some("f"));
        let parent = dir.0.to_string_lossy();
        assert_eq!(str_at(event, "file.parent_folder"), Some(parent.as_ref()));
        assert_eq!(str_at(event, "file.owner.name"), Some("root"));
    }
    assert_eq!(u64_at(&created[1], "file.size"), Some(2));
    assert_eq!(u64_at(&created[1], "type_uid"), Some(100_103));

    actor.step("rename f to g");
    let renamed = h.wait_for("rename of f to g", file_event(RENAME, &f, Some(&g)));
    assert_actor_is_the_fork(&renamed, &actor);
    assert_eq!(str_at(&renamed, "activity_name"), Some("Rename"));
    assert_eq!(str_at(&renamed, "file_result.name"), Some("g"));

    actor.step("chmod g");
    let chmod = h.wait_for("chmod of g", file_event(SET_ATTRIBUTES, &g, None));
    assert_actor_is_the_fork(&chmod, &actor);
    assert_eq!(str_at(&chmod, "unmapped.mode"), Some("0600"));

    actor.step("chown g");
    let chown = h.wait_for("chown of g", file_event(SET_ATTRIBUTES, &g, None));
    assert_eq!(str_at(&chown, "file.owner.uid"), Some("1"));
    assert_eq!(u64_at(&chown, "unmapped.gid"), Some(1));

    actor.step("mkdir sub");
    let mkdir = h.wait_for("mkdir of sub", file_event(CREATE, &sub, None));
    assert_eq!(u64_at(&mkdir, "file.type_id"), Some(2), "a folder");
    actor.step("rename sub");
    let moved = h.wait_for("rename of sub", file_event(RENAME, &sub, Some(&sub2)));
    assert_eq!(u64_at(&moved, "file_result.type_id"), Some(2));
    actor.step("rmdir sub2");
    h.wait_for("rmdir of sub2", file_event(DELETE, &sub2, None));

    actor.step("unlink g");
    let deleted = h.wait_for("delete of g", file_event(DELETE, &g, None));
    assert_actor_is_the_fork(&deleted, &actor);
    assert!(
        deleted.get("file.owner").is_none(),
        "a deleted file has no facts"
    );

    for what in [
        "write outside",
        "mkdir excluded",
        "write excluded",
        "unlink excluded",
    ] {
        actor.step(what);
    }
    actor.step("move a file in");
    actor.step("write the end marker");
    // One thread reads the events in order: all earlier reported events come before the marker.
    let seen = h.collect_until("the end marker", file_event(CREATE, &end, None));
    let moved_in_event = seen
        .iter()
        .find(|e| file_event(RENAME, &out_file, Some(&moved_in))(e))
        .unwrap_or_else(|| panic!("no rename from outside into the watched directory"));
    assert_actor_is_the_fork(moved_in_event, &actor);
    let leaked: Vec<&Event> = seen
        .iter()
        .filter(|e| {
            touches(e, &excluded)
                || (touches(e, &outside.0.to_string_lossy()) && !touches(e, &moved_in))
        })
        .collect();
    assert!(
        leaked.is_empty(),
        "events outside the watched paths: {leaked:#?}"
    );
    drop(actor);
    h.sensor.stop();
}

#[test]
fn a_shell_script_is_reported_step_by_step_with_its_processes() {
    skip_unless_root!();
    let dir = TestDir::new("vigil-files-sh");
    let mut h = watching(&dir.0, &[]);
    let script = "echo x > f; mv f g; chmod 600 g; rm g; read _";
    let mut sh = Command::new("/bin/sh")
        .args(["-c", script])
        .current_dir(&dir.0)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning sh: {e}"));
    let sh_pid = u64::from(sh.id());
    let (f, g) = (dir.path("f"), dir.path("g"));
    let exec_of = |cmd: &'static str| {
        move |e: &Event| {
            is_exec(e)
                && u64_at(e, "process.parent_process.pid") == Some(sh_pid)
                && str_at(e, "process.cmd_line") == Some(cmd)
        }
    };
    let (mv, chmod, rm) = (exec_of("mv f g"), exec_of("chmod 600 g"), exec_of("rm g"));
    let events = h.wait_for_all(&[
        ("create of f", &file_event(CREATE, &f, None)),
        ("update of f", &file_event(UPDATE, &f, None)),
        ("rename of f to g", &file_event(RENAME, &f, Some(&g))),
        ("chmod of g", &file_event(SET_ATTRIBUTES, &g, None)),
        ("delete of g", &file_event(DELETE, &g, None)),
        ("exec of mv", &mv),
        ("exec of chmod", &chmod),
        ("exec of rm", &rm),
    ]);
    let _ = sh.stdin.as_mut().map(|stdin| stdin.write_all(b"\n"));
    let _ = sh.wait();

    // The shell itself wrote f; it was alive (blocked in `read`) when its events were read. Its
    // image is named as its exec named it (`/bin/sh`), or as `/proc` does if the file event
    // came first (the link resolved).
    let sh_path = std::fs::canonicalize("/bin/sh").map(|p| p.to_string_lossy().into_owned());
    let sh_path = sh_path.unwrap_or_else(|e| panic!("/bin/sh: {e}"));
    for event in &events[..2] {
        assert_eq!(u64_at(event, "actor.process.pid"), Some(sh_pid));
        let path = str_at(event, "actor.process.file.path").unwrap_or_default();
        assert!(path == "/bin/sh" || path == sh_path, "actor image {path}");
        assert_eq!(
            str_at(event, "actor.process.cmd_line"),
            Some(format!("/bin/sh -c {script}").as_str())
        );
    }
    // Each later change was made by the command the shell ran for it.
    for (file, exec) in [(2, 5), (3, 6), (4, 7)] {
        let pid = u64_at(&events[exec], "process.pid");
        assert!(pid.is_some());
        assert_eq!(
            u64_at(&events[file], "actor.process.pid"),
            pid,
            "{:?}",
            events[file]
        );
    }
    // (The mode chmod set is not checked here: `rm` may have run before the event was read,
    // leaving nothing to stat. The forked actor's test checks it step by step.)
    h.sensor.stop();
}
