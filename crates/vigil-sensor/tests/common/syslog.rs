//! A private syslog daemon for the login-capture tests: an `rsyslogd` of the test's own, on a
//! socket and writing an auth log in a directory of the test's own, so the tests depend on
//! neither the host's syslog daemon nor its configuration (a /dev/log left behind by a daemon
//! that is gone swallows `logger`'s messages without an error).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long rsyslogd may take to open its socket.
const START_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Syslogd {
    child: Child,
    dir: PathBuf,
}

impl Syslogd {
    /// Starts rsyslogd in the foreground (it stays this test's child, stopped by pid on drop)
    /// with `auth,authpriv.*` written to [`Syslogd::auth_log`]. `None` when rsyslogd is not
    /// installed (scripts/setup installs it).
    pub fn start(test: &str) -> Option<Self> {
        let binary = ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
            .into_iter()
            .find(|p| Path::new(p).exists())?;
        let dir = std::env::temp_dir().join(super::nonce(&format!("vigil-syslog-{test}")));
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        let socket = dir.join("log");
        // The log exists before the sensor starts, as a host's does: rsyslogd appends to it.
        std::fs::write(dir.join("auth.log"), "").unwrap_or_else(|e| panic!("auth.log: {e}"));
        let config = dir.join("rsyslog.conf");
        std::fs::write(
            &config,
            format!(
                "module(load=\"imuxsock\" SysSock.Use=\"off\")\n\
                 input(type=\"imuxsock\" Socket=\"{}\")\n\
                 auth,authpriv.* action(type=\"omfile\" file=\"{}\")\n",
                socket.display(),
                dir.join("auth.log").display()
            ),
        )
        .unwrap_or_else(|e| panic!("writing {}: {e}", config.display()));
        let child = Command::new(binary)
            .arg("-n")
            .arg("-f")
            .arg(&config)
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {binary}: {e}"));
        let mut daemon = Self { child, dir };
        let started = Instant::now();
        while !socket.exists() {
            if let Ok(Some(status)) = daemon.child.try_wait() {
                panic!("rsyslogd exited before opening its socket: {status}");
            }
            assert!(
                started.elapsed() < START_TIMEOUT,
                "rsyslogd did not open {} within {START_TIMEOUT:?}",
                socket.display()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Some(daemon)
    }

    /// The file rsyslogd writes authentication messages to.
    pub fn auth_log(&self) -> PathBuf {
        self.dir.join("auth.log")
    }

    /// Logs `message` at authpriv.info through `logger`, as `tag[pid]` (logger's own pid when
    /// `pid` is `None`). A refused socket fails the test instead of losing the message.
    pub fn log(&self, tag: &str, pid: Option<u32>, message: &str) {
        let id = match pid {
            Some(pid) => format!("--id={pid}"),
            None => "--id".to_owned(),
        };
        let status = Command::new("logger")
            .arg("--socket-errors=on")
            .arg("-u")
            .arg(self.dir.join("log"))
            .args(["-p", "authpriv.info", "-t", tag, &id, "--", message])
            .stdout(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("running logger: {e}"));
        assert!(status.success(), "logger: {status}");
    }
}

impl Drop for Syslogd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
