//! Log off a throwaway user created (and deleted) by this test, whose processes it starts with
//! `setpriv`. Skipped, saying why, where `useradd` or `setpriv` is missing.

use std::path::Path;
use std::process::{Child, Command};
use std::thread::sleep;
use std::time::{Duration, Instant};

use vigil_agent::response::logoff::{self, LogoffError};

struct TestUser {
    name: String,
    uid: u32,
    gid: u32,
    children: Vec<Child>,
}

impl TestUser {
    fn create() -> Option<Self> {
        for tool in ["/usr/sbin/useradd", "/usr/sbin/userdel", "/usr/bin/setpriv"] {
            if !Path::new(tool).exists() {
                eprintln!("SKIP: {tool} is missing (needs the passwd and util-linux packages)");
                return None;
            }
        }
        let name = format!("vgl{}", std::process::id());
        let _ = Command::new("userdel").arg(&name).output();
        let out = Command::new("useradd")
            .args(["-M", "-N", "-s", "/usr/sbin/nologin", &name])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "useradd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let user = nix::unistd::User::from_name(&name).unwrap().unwrap();
        Some(Self {
            name,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            children: Vec::new(),
        })
    }

    /// Starts `args` as the user.
    fn spawn(&mut self, args: &[&str]) -> i32 {
        let child = Command::new("setpriv")
            .arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--clear-groups")
            .args(args)
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        self.children.push(child);
        pid
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("userdel").arg(&self.name).output();
    }
}

fn uid_of(pid: i32) -> Option<u32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[test]
fn logoff_ends_every_process_of_the_user() {
    let Some(mut user) = TestUser::create() else {
        return;
    };
    let plain = user.spawn(&["sleep", "300"]);
    // Ignores SIGHUP (and its sleep inherits that), so only SIGKILL ends it.
    let stubborn = user.spawn(&["sh", "-c", "trap '' HUP; sleep 300 & wait"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while uid_of(plain) != Some(user.uid) || uid_of(stubborn) != Some(user.uid) {
        assert!(
            Instant::now() < deadline,
            "processes did not start as the user"
        );
        sleep(Duration::from_millis(10));
    }
    sleep(Duration::from_millis(100));

    let report = logoff::logoff(&user.name).unwrap();
    assert!(report.verified, "{report:?}");
    assert_eq!(report.uid, user.uid);
    assert!(report.hung_up.contains(&plain), "{report:?}");
    assert!(report.hung_up.contains(&stubborn), "{report:?}");
    assert!(
        report.killed.contains(&stubborn),
        "SIGHUP-proof process needs SIGKILL: {report:?}"
    );
    assert!(!report.loginctl.is_empty());

    for c in &mut user.children {
        let status = c.wait().unwrap();
        assert!(!status.success());
    }
    user.children.clear();
}

#[test]
fn root_and_unknown_users_are_refused() {
    let e = logoff::logoff("root").unwrap_err();
    assert!(matches!(e, LogoffError::Protected { uid: 0, .. }));
    assert!(e.to_string().contains("kill the agent"));
    assert!(matches!(
        logoff::logoff("vigil-nobody-here"),
        Err(LogoffError::UnknownUser(_))
    ));
}
