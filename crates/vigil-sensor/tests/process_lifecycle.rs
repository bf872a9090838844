//! Kernel tests of the process lifecycle: forks and exits of real processes, and processes that
//! were running before the sensor started.
//!
//! They need root; without it each test says so and passes. The sensor sees every process on
//! the host, so each test finds its events by the pids it created.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use vigil_sensor::SourceMode;
use vigil_sensor::vigil_ocsf::Event;

/// Forks this test process; the child exits at once with `code`. Returns the child's pid, not
/// yet reaped (its `/proc/<pid>/stat` stays readable until [`reap`]).
fn fork_and_exit(code: i32) -> u32 {
    // SAFETY: the child only calls _exit, which is async-signal-safe, so forking a
    // multi-threaded process is sound here.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: ends the child without running the parent's atexit handlers or destructors.
        unsafe { libc::_exit(code) };
    }
    assert!(pid > 0, "fork: {}", std::io::Error::last_os_error());
    u32::try_from(pid).unwrap_or_else(|_| unreachable!())
}

/// Waits for `pid` and returns its raw wait status.
fn reap(pid: u32) -> i32 {
    let mut status = 0;
    let pid = libc::pid_t::try_from(pid).unwrap_or_else(|_| unreachable!());
    // SAFETY: waits for our own child, writing its status into a live c_int.
    let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(rc, pid, "waitpid: {}", std::io::Error::last_os_error());
    status
}

fn of_pid(pid: u32, kind: fn(&Event) -> bool) -> impl Fn(&Event) -> bool {
    move |event| kind(event) && pid_of(event) == Some(pid)
}

fn assert_forked_from_this_test(fork: &Event, log_name: &str) {
    let me = u64::from(std::process::id());
    assert_eq!(str_at(fork, "metadata.log_name"), Some(log_name));
    assert_eq!(str_at(fork, "launch_type"), Some("Fork"));
    assert_eq!(u64_at(fork, "process.parent_process.pid"), Some(me));
    assert_eq!(u64_at(fork, "actor.process.pid"), Some(me));
    // The child runs the image it inherited until it execs.
    let binary = test_binary();
    assert_eq!(str_at(fork, "process.file.path"), Some(binary.as_str()));
    assert_eq!(
        str_at(fork, "process.parent_process.file.path"),
        Some(binary.as_str())
    );
    assert_eq!(str_at(fork, "process.user.name"), Some("root"));
}

#[test]
fn ebpf_reports_fork_and_exit_code_of_a_child() {
    skip_unless_root!();
    let mut h = Harness::start(SourceMode::Ebpf);
    let child = fork_and_exit(5);
    let uid = proc_uid(child); // a zombie at worst until reaped: stat is still there
    let events = h.wait_for_all(&[
        ("fork of the child", &of_pid(child, is_fork)),
        ("exit of the child", &of_pid(child, is_exit)),
    ]);
    assert_eq!(reap(child), 5 << 8);
    let (fork, exit) = (&events[0], &events[1]);

    assert_forked_from_this_test(fork, "ebpf");
    assert_eq!(u64_at(fork, "launch_type_id"), Some(2));
    assert_eq!(u64_at(fork, "process.tid"), Some(u64::from(child)));
    assert_eq!(str_at(fork, "process.uid"), Some(uid.as_str()));

    assert_eq!(u64_at(exit, "type_uid"), Some(100_702));
    assert_eq!(i64_at(exit, "exit_code"), Some(5));
    assert!(exit.get("unmapped").is_none(), "no signal");
    assert_eq!(str_at(exit, "process.uid"), str_at(fork, "process.uid"));
    // Named after the image it inherited at the fork: the cache followed the lifecycle.
    assert_eq!(
        str_at(exit, "process.file.path"),
        Some(test_binary().as_str())
    );
    let ended = i64_at(exit, "process.terminated_time").unwrap_or_default();
    assert!(
        ended >= fork.time,
        "terminated {ended} before forked {}",
        fork.time
    );
    h.sensor.stop();
}

#[test]
fn ebpf_reports_exec_exit_code_and_killing_signal() {
    skip_unless_root!();
    let mut h = Harness::start(SourceMode::Ebpf);

    let mut seven = spawn(Command::new("/bin/sh").args(["-c", "exit 7"]));
    let mut sleeper = spawn(Command::new("/bin/sleep").arg("30"));
    let (seven_pid, sleeper_pid) = (seven.id(), sleeper.id());
    let events = h.wait_for_all(&[
        ("exit 7", &of_pid(seven_pid, is_exit)),
        ("fork of sleep", &of_pid(sleeper_pid, is_fork)),
        ("exec of sleep", &pid_is(sleeper_pid)),
    ]);
    let _ = sleeper.kill(); // SIGKILL
    let killed = h.wait_for("exit of the killed sleep", of_pid(sleeper_pid, is_exit));
    let _ = (seven.wait(), sleeper.wait());

    let (seven, fork, killed) = (&events[0], &events[1], &killed);
    assert_eq!(i64_at(seven, "exit_code"), Some(7));
    assert_eq!(str_at(seven, "process.cmd_line"), Some("/bin/sh -c exit 7"));
    assert_forked_from_this_test(fork, "ebpf");
    assert_eq!(i64_at(killed, "exit_code"), Some(128 + 9));
    assert_eq!(u64_at(killed, "unmapped.signal"), Some(9));
    assert_eq!(str_at(killed, "unmapped.signal_name"), Some("SIGKILL"));
    assert_eq!(str_at(killed, "process.name"), Some("sleep"));
    assert_eq!(str_at(killed, "process.cmd_line"), Some("/bin/sleep 30"));
    assert_eq!(
        u64_at(killed, "process.parent_process.pid"),
        Some(u64::from(std::process::id()))
    );
    h.sensor.stop();
}

#[test]
fn ebpf_does_not_report_threads_as_processes() {
    skip_unless_root!();
    let mut h = Harness::start(SourceMode::Ebpf);
    let me = std::process::id();
    // SAFETY: gettid has no preconditions.
    let thread_tid = std::thread::spawn(|| unsafe { libc::gettid() })
        .join()
        .unwrap_or_else(|_| panic!("thread panicked"));
    let thread_tid = u32::try_from(thread_tid).unwrap_or_else(|_| unreachable!());
    // Records travel in order: everything about the thread comes before the marker's fork.
    let marker = fork_and_exit(0);
    let seen = h.collect_until("fork of the marker child", of_pid(marker, is_fork));
    reap(marker);
    for event in &seen {
        assert_ne!(
            pid_of(event),
            Some(thread_tid),
            "a thread was reported: {event:?}"
        );
        if is_exit(event) {
            assert_ne!(
                pid_of(event),
                Some(me),
                "a thread's exit ended this process"
            );
        }
    }
    h.sensor.stop();
}

/// `sh -c script`, started now, blocked in `read` until a line arrives on its stdin.
fn waiting_shell(script: &str) -> std::process::Child {
    let child = Command::new("/bin/sh")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|error| panic!("spawning sh: {error}"));
    // Let it exec and block in read before the sensor starts.
    std::thread::sleep(Duration::from_millis(100));
    child
}

fn release(child: &mut std::process::Child) {
    let stdin = child.stdin.as_mut().unwrap_or_else(|| unreachable!());
    stdin
        .write_all(b"go\n")
        .unwrap_or_else(|error| panic!("writing to sh: {error}"));
}

#[test]
fn process_started_before_the_sensor_is_a_known_parent_with_ancestry() {
    skip_unless_root!();
    let nonce = nonce("vigil-preexisting");
    let script = format!("read x; /bin/echo {nonce}; exit 4");
    let mut shell = waiting_shell(&script);
    let shell_pid = shell.id();
    let mut h = Harness::start(SourceMode::Ebpf);
    release(&mut shell);
    let echo = h.wait_for("echo of the pre-existing shell", cmd_line_contains(&nonce));
    let exit = h.wait_for("exit of the pre-existing shell", of_pid(shell_pid, is_exit));
    let _ = shell.wait();

    let sh = std::fs::canonicalize("/bin/sh").map(|p| p.to_string_lossy().into_owned());
    let sh = sh.unwrap_or_else(|error| panic!("/bin/sh: {error}"));
    let cmd_line = format!("/bin/sh -c {script}");
    assert_eq!(
        u64_at(&echo, "process.parent_process.pid"),
        Some(u64::from(shell_pid))
    );
    assert_eq!(
        str_at(&echo, "process.parent_process.cmd_line"),
        Some(cmd_line.as_str())
    );
    assert_eq!(
        str_at(&echo, "process.parent_process.file.path"),
        Some(sh.as_str())
    );
    let ancestry = echo
        .get("process.ancestry")
        .and_then(|v| v.as_array())
        .cloned()
        .unwrap_or_default();
    assert!(ancestry.len() >= 2, "ancestry {ancestry:?}");
    let pid = |i: usize| ancestry[i].get("pid").and_then(|v| v.as_u64());
    let path = |i: usize| {
        ancestry[i]
            .get("path")
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    assert_eq!(pid(0), Some(u64::from(shell_pid)), "direct parent first");
    assert_eq!(
        pid(1),
        Some(u64::from(std::process::id())),
        "then its parent"
    );
    assert_eq!(path(1), Some(test_binary()));

    assert_eq!(i64_at(&exit, "exit_code"), Some(4));
    assert_eq!(str_at(&exit, "process.cmd_line"), Some(cmd_line.as_str()));
    h.sensor.stop();
}

#[test]
fn process_started_before_the_sensor_is_named_when_it_exits() {
    skip_unless_root!();
    // Nothing makes the sensor look this shell up while it is alive, and a zombie's
    // /proc/<pid>/cmdline and exe are gone: only the start-up seed can name it.
    let script = "read x; exit 3";
    let mut shell = waiting_shell(script);
    let shell_pid = shell.id();
    let mut h = Harness::start(SourceMode::Ebpf);
    release(&mut shell);
    let exit = h.wait_for("exit of the pre-existing shell", of_pid(shell_pid, is_exit));
    let _ = shell.wait();

    let sh = std::fs::canonicalize("/bin/sh").map(|p| p.to_string_lossy().into_owned());
    assert_eq!(i64_at(&exit, "exit_code"), Some(3));
    assert_eq!(
        str_at(&exit, "process.cmd_line"),
        Some(format!("/bin/sh -c {script}").as_str())
    );
    assert_eq!(
        str_at(&exit, "process.file.path").map(str::to_owned),
        sh.ok()
    );
    h.sensor.stop();
}

#[test]
fn proc_connector_reports_fork_and_exit() {
    skip_unless_root!();
    let mut h = Harness::start(SourceMode::ProcConnector);
    let child = fork_and_exit(6);
    let events = h.wait_for_all(&[
        ("fork of the child", &of_pid(child, is_fork)),
        ("exit of the child", &of_pid(child, is_exit)),
    ]);
    reap(child);
    let (fork, exit) = (&events[0], &events[1]);
    assert_forked_from_this_test(fork, "proc_connector");
    assert_eq!(i64_at(exit, "exit_code"), Some(6));
    assert_eq!(str_at(exit, "metadata.log_name"), Some("proc_connector"));
    assert_eq!(
        str_at(exit, "process.file.path"),
        Some(test_binary().as_str())
    );
    h.sensor.stop();
}
