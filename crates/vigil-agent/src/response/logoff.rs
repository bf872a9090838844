//! Log a user off: end their login sessions and every process they run.
//!
//! When systemd-logind is running, `loginctl terminate-user` ends the sessions the way the
//! system expects (it also stops the user's systemd instance). In every case the agent then
//! sends SIGHUP to every process whose real or effective uid is the user's, gives them a moment
//! to exit, sends SIGKILL to what is left (re-scanning, since processes may fork meanwhile), and
//! verifies from /proc that none is left. Root is refused: logging root off would kill the
//! agent and the host's services.

use std::path::Path;
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, User};
use serde::Serialize;

use super::procfs;

/// How long processes get to exit after SIGHUP before SIGKILL.
const HUP_GRACE: Duration = Duration::from_millis(500);
/// How long SIGKILL rounds go on before the result is reported as unverified.
const KILL_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a user could not be logged off.
#[derive(Debug, thiserror::Error)]
pub enum LogoffError {
    /// The name is not a user of this host.
    #[error("no user named {0:?} on this host")]
    UnknownUser(String),
    /// The user database could not be read.
    #[error("cannot look up user {user:?}: {source}")]
    Lookup {
        /// The name asked for.
        user: String,
        /// The errno.
        #[source]
        source: nix::errno::Errno,
    },
    /// Root (or the agent's own user) is refused.
    #[error("refusing to log off {user:?} (uid {uid}): {reason}")]
    Protected {
        /// The name.
        user: String,
        /// Its uid.
        uid: u32,
        /// Why.
        reason: &'static str,
    },
}

/// What a logoff did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogoffReport {
    /// The user name.
    pub user: String,
    /// Its uid.
    pub uid: u32,
    /// What `loginctl terminate-user` did: `"terminated"`, `"unavailable: …"` or `"failed: …"`.
    pub loginctl: String,
    /// Processes sent SIGHUP.
    pub hung_up: Vec<i32>,
    /// Processes still there after the grace period, sent SIGKILL.
    pub killed: Vec<i32>,
    /// Whether no process of the user is left (zombies aside).
    pub verified: bool,
    /// Pids still running when verification gave up.
    pub survivors: Vec<i32>,
}

/// Ends `user`'s sessions and processes; see the module documentation.
pub fn logoff(user: &str) -> Result<LogoffReport, LogoffError> {
    let found = User::from_name(user)
        .map_err(|source| LogoffError::Lookup {
            user: user.to_owned(),
            source,
        })?
        .ok_or_else(|| LogoffError::UnknownUser(user.to_owned()))?;
    let uid = found.uid.as_raw();
    let protected = |reason| LogoffError::Protected {
        user: user.to_owned(),
        uid,
        reason,
    };
    if uid == 0 {
        return Err(protected(
            "logging root off would kill the agent and the host's services",
        ));
    }
    if nix::unistd::getuid().as_raw() == uid || nix::unistd::geteuid().as_raw() == uid {
        return Err(protected("the Vigil agent runs as this user"));
    }
    let loginctl = terminate_sessions(&found.name);

    let hung_up = user_processes(uid);
    for &pid in &hung_up {
        let _ = kill(Pid::from_raw(pid), Signal::SIGHUP);
    }
    let grace = Instant::now() + HUP_GRACE;
    while Instant::now() < grace && !user_processes(uid).is_empty() {
        sleep(Duration::from_millis(10));
    }
    let mut killed = Vec::new();
    let deadline = Instant::now() + KILL_TIMEOUT;
    let survivors = loop {
        let left = user_processes(uid);
        if left.is_empty() || Instant::now() >= deadline {
            break left;
        }
        for &pid in &left {
            if !killed.contains(&pid) {
                killed.push(pid);
            }
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        sleep(Duration::from_millis(10));
    };
    Ok(LogoffReport {
        user: found.name,
        uid,
        loginctl,
        hung_up,
        killed,
        verified: survivors.is_empty(),
        survivors,
    })
}

/// Live (non-zombie) processes whose real or effective uid is `uid`, never the agent itself.
fn user_processes(uid: u32) -> Vec<i32> {
    let me = std::process::id() as i32;
    procfs::pids()
        .into_iter()
        .filter(|&pid| pid != me && pid > 1)
        .filter(|&pid| matches!(procfs::uids(pid), Some((r, e)) if r == uid || e == uid))
        .filter(|&pid| procfs::stat(pid).is_some_and(|s| !s.is_dead()))
        .collect()
}

/// Whether systemd-logind can be asked: systemd is the init system (`/run/systemd/system`
/// exists, as `sd_booted()` checks) and `loginctl` is installed.
pub fn logind_available() -> bool {
    Path::new("/run/systemd/system").is_dir() && loginctl().is_some()
}

fn loginctl() -> Option<&'static str> {
    ["/usr/bin/loginctl", "/bin/loginctl"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
}

fn terminate_sessions(user: &str) -> String {
    let Some(bin) = loginctl().filter(|_| logind_available()) else {
        return "unavailable: systemd-logind is not running; ending the user's processes directly"
            .into();
    };
    match Command::new(bin).args(["terminate-user", user]).output() {
        Ok(out) if out.status.success() => "terminated".into(),
        Ok(out) => format!("failed: {}", String::from_utf8_lossy(&out.stderr).trim()),
        Err(e) => format!("failed: cannot run {bin}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_refused() {
        assert!(matches!(
            logoff("root"),
            Err(LogoffError::Protected { uid: 0, .. })
        ));
    }

    #[test]
    fn unknown_user_is_an_error() {
        assert!(matches!(
            logoff("vigil-no-such-user-4711"),
            Err(LogoffError::UnknownUser(_))
        ));
    }
}
