//! Kill, suspend and resume on real processes this test starts (and only those, by pid).

use std::process::{Child, Command};
use std::thread::sleep;
use std::time::{Duration, Instant};

use vigil_agent::response::process;

/// A child process killed (by pid) and reaped on drop.
struct Proc(Child);

impl Proc {
    fn spawn(args: &[&str]) -> Self {
        Self(Command::new(args[0]).args(&args[1..]).spawn().unwrap())
    }

    fn pid(&self) -> i32 {
        self.0.id() as i32
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn stat_field(pid: i32) -> Option<(char, i32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest: Vec<&str> = text[text.rfind(')')? + 1..].split_whitespace().collect();
    Some((rest[0].chars().next()?, rest[1].parse().ok()?))
}

/// Pids of live processes whose command line contains `marker`.
fn live_with_marker(marker: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(marker))
                .unwrap_or(false)
        })
        .filter(|&pid| !matches!(stat_field(pid), Some(('Z', _)) | None))
        .collect()
}

/// Kills, by pid, any process left with `marker` (clean-up after a failed assertion).
struct MarkerCleanup(String);

impl Drop for MarkerCleanup {
    fn drop(&mut self) {
        for pid in live_with_marker(&self.0) {
            // SAFETY: plain kill(2) on a pid this test started (found by its unique marker).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// Live `sleep` processes whose command line contains `marker`.
fn sleeps_with_marker(marker: &str) -> usize {
    live_with_marker(marker)
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.starts_with(b"sleep\0"))
        })
        .count()
}

fn children_of(pid: i32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&p| matches!(stat_field(p), Some((_, pp)) if pp == pid))
        .collect()
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        sleep(Duration::from_millis(10));
    }
}

#[test]
fn kill_of_one_process_is_verified() {
    let mut p = Proc::spawn(&["sleep", "300"]);
    let report = process::kill(p.pid(), false).unwrap();
    assert!(report.verified, "{report:?}");
    assert_eq!(report.killed.len(), 1);
    assert_eq!(report.killed[0].pid, p.pid());
    assert_eq!(report.killed[0].comm, "sleep");
    let status = p.0.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["verified"], true);
}

#[test]
fn kill_of_a_tree_kills_children_first_and_all_of_them() {
    let marker = format!("31{}.5", std::process::id());
    let _cleanup = MarkerCleanup(marker.clone());
    let script = format!("sleep {marker} & sleep {marker} & (sleep {marker} & wait) & wait");
    let p = Proc::spawn(&["sh", "-c", &script]);
    wait_for("the tree to start", || sleeps_with_marker(&marker) == 3);
    let report = process::kill(p.pid(), true).unwrap();
    assert!(report.verified, "{report:?}");
    // sh, 2 sleeps, a subshell and its sleep.
    assert_eq!(report.killed.len(), 5, "{report:?}");
    assert_eq!(
        report.killed.last().unwrap().pid,
        p.pid(),
        "the root goes last"
    );
    wait_for("no survivor", || live_with_marker(&marker).is_empty());
}

#[test]
fn kill_of_a_tree_catches_processes_forked_during_the_kill() {
    let marker = format!("32{}.5", std::process::id());
    let _cleanup = MarkerCleanup(marker.clone());
    // Keeps forking for a while: children appear while the tree is being frozen.
    let script = format!("for i in $(seq 1 200); do sleep {marker} & sleep 0.01; done; wait");
    let p = Proc::spawn(&["sh", "-c", &script]);
    wait_for("forking to start", || sleeps_with_marker(&marker) >= 3);
    let report = process::kill(p.pid(), true).unwrap();
    assert!(report.verified, "{report:?}");
    assert!(report.killed.len() >= 4);
    sleep(Duration::from_millis(100));
    assert!(live_with_marker(&marker).is_empty(), "a child escaped");
    assert!(
        children_of(p.pid())
            .iter()
            .all(|&c| matches!(stat_field(c), Some(('Z', _)) | None))
    );
}

#[test]
fn suspend_and_resume_are_verified_from_proc() {
    let p = Proc::spawn(&["sleep", "300"]);
    let s = process::suspend(p.pid()).unwrap();
    assert!(s.verified);
    assert_eq!(s.state, 'T');
    assert_eq!(stat_field(p.pid()).unwrap().0, 'T');
    let r = process::resume(p.pid()).unwrap();
    assert!(r.verified);
    assert_ne!(r.state, 'T');
    assert_ne!(stat_field(p.pid()).unwrap().0, 'T');
}

#[test]
fn protected_pids_are_refused() {
    for pid in [0, -1, 1, std::process::id() as i32] {
        assert!(process::kill(pid, true).is_err(), "pid {pid}");
        assert!(process::suspend(pid).is_err(), "pid {pid}");
    }
    let e = process::kill(1, false).unwrap_err().to_string();
    assert!(e.contains("init"), "{e}");
}
