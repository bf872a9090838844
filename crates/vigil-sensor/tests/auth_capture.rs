//! Kernel tests of login capture: authentication lines logged through the host's syslog daemon,
//! lines appended to a log file the test owns (and rotated, and truncated), and login records
//! written to wtmp/btmp files by glibc must come out as OCSF Authentication events and log
//! lines (Base Events), each Authentication valid against the OCSF schema.
//!
//! They need root (the sensor's process capture); without it each test says so and passes. The
//! syslog test runs an rsyslogd of its own (`common::syslog`; scripts/setup installs rsyslog);
//! without rsyslogd it says so and passes. Each test looks only for its own markers (a random
//! user name).

mod common;

use std::ffi::CString;
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use common::ocsf_schema::assert_valid;
use common::syslog::Syslogd;
use common::*;
use vigil_sensor::vigil_ocsf::Event;
use vigil_sensor::{AuthConfig, FileConfig, SensorConfig, SourceMode};

/// A sensor reading exactly `auth`, and its `auth` capability's detail.
fn reading(auth: AuthConfig) -> (Harness, String) {
    let h = Harness::start_with(SensorConfig {
        mode: SourceMode::Auto,
        files: FileConfig::disabled(),
        auth,
        ..Default::default()
    });
    let caps = h.sensor.capabilities();
    let cap = caps
        .iter()
        .find(|c| c.name == "auth")
        .unwrap_or_else(|| panic!("no auth capability: {caps:?}"));
    assert!(cap.live, "{cap:?}");
    let detail = cap.detail.clone().unwrap_or_default();
    (h, detail)
}

/// A directory of this test's own, removed on drop.
struct TestDir(PathBuf);

impl TestDir {
    fn new(prefix: &str) -> Self {
        let dir = std::env::temp_dir().join(nonce(prefix));
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        Self(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn is_auth(event: &Event) -> bool {
    event.class_uid == 3002
}

/// A log line (Base Event) whose message holds `marker`.
fn is_line_with(marker: &str) -> impl Fn(&Event) -> bool + '_ {
    move |e| e.class_uid == 0 && str_at(e, "message").is_some_and(|m| m.contains(marker))
}

/// An Authentication about `user`.
fn auth_of(user: &str) -> impl Fn(&Event) -> bool + '_ {
    move |e| is_auth(e) && str_at(e, "user.name") == Some(user)
}

fn assert_recent(event: &Event) {
    let now = vigil_sensor::vigil_ocsf::now_ms();
    assert!(
        (event.time - now).abs() < 60_000,
        "time {} vs now {now}",
        event.time
    );
}

#[test]
fn sshd_lines_through_syslog_become_logons() {
    skip_unless_root!();
    let Some(syslogd) = Syslogd::start("logons") else {
        eprintln!(
            "skipping sshd_lines_through_syslog_become_logons: rsyslogd is not installed \
             (scripts/setup installs it)"
        );
        return;
    };
    let auth_log = syslogd.auth_log();
    let auth_log_name = auth_log.display().to_string();
    let (mut h, detail) = reading(AuthConfig::reading([&auth_log], None, None));
    assert!(detail.contains(&auth_log_name), "{detail}");
    let pid = std::process::id();

    let intruder = nonce("vigil-intruder");
    let failed =
        format!("Failed password for invalid user {intruder} from 127.0.0.77 port 5555 ssh2");
    syslogd.log("sshd", Some(pid), &failed);
    let found = h.wait_for_all(&[
        ("the failed logon", &auth_of(&intruder)),
        ("its log line", &is_line_with(&failed)),
    ]);
    let (auth, line) = (&found[0], &found[1]);
    assert_valid(auth);
    assert_eq!(u64_at(auth, "activity_id"), Some(1), "Logon");
    assert_eq!(u64_at(auth, "type_uid"), Some(300201));
    assert_eq!(u64_at(auth, "status_id"), Some(2), "Failure");
    assert_eq!(str_at(auth, "status"), Some("Failure"));
    assert_eq!(
        str_at(auth, "status_detail"),
        Some("Failed password (invalid user)")
    );
    assert!(auth.get("user.uid").is_none(), "an invalid user has no uid");
    assert_eq!(str_at(auth, "src_endpoint.ip"), Some("127.0.0.77"));
    assert_eq!(u64_at(auth, "src_endpoint.port"), Some(5555));
    assert_eq!(str_at(auth, "auth_protocol"), Some("password"));
    assert_eq!(u64_at(auth, "auth_protocol_id"), Some(99));
    assert_eq!(u64_at(auth, "logon_type_id"), Some(3), "Network");
    assert_eq!(auth.get("is_remote").and_then(|v| v.as_bool()), Some(true));
    assert_eq!(str_at(auth, "service.name"), Some("sshd"));
    assert_eq!(u64_at(auth, "actor.process.pid"), Some(u64::from(pid)));
    assert_eq!(str_at(auth, "actor.process.name"), Some("sshd"));
    assert_eq!(
        str_at(auth, "metadata.log_name"),
        Some(auth_log_name.as_str())
    );
    assert_eq!(str_at(auth, "metadata.log_provider"), Some("sshd"));
    assert_eq!(str_at(auth, "message"), Some(failed.as_str()));
    let raw = str_at(auth, "raw_data").unwrap_or_default();
    assert!(
        raw.ends_with(&format!("sshd[{pid}]: {failed}")),
        "raw_data is the whole line: {raw}"
    );
    assert!(str_at(auth, "dst_endpoint.hostname").is_some());
    assert_recent(auth);

    assert_eq!(u64_at(line, "category_uid"), Some(0));
    assert_eq!(u64_at(line, "type_uid"), Some(99));
    assert_eq!(str_at(line, "message"), Some(failed.as_str()));
    assert_eq!(str_at(line, "raw_data"), Some(raw));
    assert_eq!(
        str_at(line, "metadata.log_name"),
        Some(auth_log_name.as_str())
    );
    assert_eq!(str_at(line, "metadata.log_provider"), Some("sshd"));
    assert_eq!(u64_at(line, "unmapped.syslog.pid"), Some(u64::from(pid)));
    assert!(str_at(line, "unmapped.syslog.hostname").is_some());
    assert_eq!(line.time, auth.time);

    let insider = nonce("vigil-insider");
    syslogd.log(
        "sshd",
        Some(pid),
        &format!(
            "Accepted publickey for {insider} from 127.0.0.77 port 5556 ssh2: ED25519 \
             SHA256:k3bJ0oPzlV1f6a3zq8l2Ykq6bQ"
        ),
    );
    let accepted = h.wait_for("the accepted logon", auth_of(&insider));
    assert_valid(&accepted);
    assert_eq!(u64_at(&accepted, "activity_id"), Some(1));
    assert_eq!(u64_at(&accepted, "status_id"), Some(1), "Success");
    assert_eq!(str_at(&accepted, "auth_protocol"), Some("publickey"));
    assert_eq!(u64_at(&accepted, "src_endpoint.port"), Some(5556));
}

fn append(path: &Path, text: &str) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    file.write_all(text.as_bytes())
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// Every event up to the log line ending in `last` (which carries `marker`).
fn until(h: &mut Harness, marker: &str, last: &str) -> Vec<Event> {
    h.collect_until(last, |e| {
        is_line_with(marker)(e) && str_at(e, "message").is_some_and(|m| m.ends_with(last))
    })
}

/// The messages of the log lines among `events` that carry `marker`, in order.
fn messages(events: &[Event], marker: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| is_line_with(marker)(e))
        .filter_map(|e| str_at(e, "message").map(str::to_owned))
        .collect()
}

#[test]
fn own_log_file_is_followed_through_rotation_and_truncation() {
    skip_unless_root!();
    let dir = TestDir::new("vigil-authlog");
    let log = dir.path("auth.log");
    let marker = nonce("rot");
    append(
        &log,
        &format!("Nov 23 10:00:00 host sshd[1]: history {marker} (before start)\n"),
    );
    let (mut h, detail) = reading(AuthConfig::reading([&log], None, None));
    assert!(detail.contains(&log.display().to_string()), "{detail}");

    let line = |n: u32| format!("2026-11-23T10:00:0{n}.5Z testhost app[{n}]: {marker} line {n}");
    let user = nonce("vigil-rot");
    let ssh = format!(
        "2026-11-23T10:00:09Z testhost sshd[4242]: Failed password for {user} from 192.0.2.10 \
         port 2222 ssh2 {marker}"
    );
    // A partial line waits for its end.
    append(&log, &format!("{}\n{}", line(0), &line(1)[..20]));
    append(
        &log,
        &format!(
            "{}\n{ssh}\nnot syslog at all {marker} line 2\n",
            &line(1)[20..]
        ),
    );
    // Rotation: the writer adds one more line to the renamed file before it reopens the log.
    std::fs::rename(&log, dir.path("auth.log.1")).unwrap_or_else(|e| panic!("rename: {e}"));
    append(&dir.path("auth.log.1"), &format!("{}\n", line(3)));
    append(&log, &format!("{}\n{}\n", line(4), line(5)));
    let events = until(&mut h, &marker, &format!("{marker} line 5"));
    let expected: Vec<String> = vec![
        format!("{marker} line 0"),
        format!("{marker} line 1"),
        format!("Failed password for {user} from 192.0.2.10 port 2222 ssh2 {marker}"),
        format!("not syslog at all {marker} line 2"),
        format!("{marker} line 3"),
        format!("{marker} line 4"),
        format!("{marker} line 5"),
    ];
    assert_eq!(
        messages(&events, &marker),
        expected,
        "every line once, in order, none from before the start"
    );
    let plain = events
        .iter()
        .find(|e| is_line_with("not syslog at all")(e))
        .unwrap_or_else(|| panic!("the line without a header"));
    assert!(plain.get("metadata.log_provider").is_none());
    assert_eq!(
        str_at(plain, "raw_data"),
        Some(format!("not syslog at all {marker} line 2").as_str())
    );

    // Truncation: read again from the start, nothing read twice.
    std::fs::write(&log, "").unwrap_or_else(|e| panic!("truncate: {e}"));
    append(&log, &format!("{}\n", line(6)));
    let after = until(&mut h, &marker, &format!("{marker} line 6"));
    assert_eq!(messages(&after, &marker), [format!("{marker} line 6")]);

    // The sshd line was an authentication too, named after the file it came from; it is
    // reported right after its log line.
    let auth = events
        .iter()
        .find(|e| auth_of(&user)(e))
        .unwrap_or_else(|| panic!("no authentication for the sshd line"));
    assert_valid(auth);
    let log_name = log.display().to_string();
    assert_eq!(str_at(auth, "metadata.log_name"), Some(log_name.as_str()));
    assert_eq!(u64_at(auth, "status_id"), Some(2));
    assert_eq!(str_at(auth, "user.name"), Some(user.as_str()));
    assert_eq!(auth.time, 1_795_428_009_000, "time from the line's header");
    assert_eq!(str_at(auth, "dst_endpoint.hostname"), Some("testhost"));
}

#[test]
fn every_kind_of_authentication_line_is_valid_ocsf() {
    skip_unless_root!();
    let dir = TestDir::new("vigil-authkinds");
    let log = dir.path("secure");
    let (mut h, _) = reading(AuthConfig::reading([&log], None, None));
    let u = nonce("vk");
    let messages = [
        (
            "sudo",
            format!("{u} : TTY=pts/0 ; PWD=/home/{u} ; USER=root ; COMMAND=/usr/bin/id"),
        ),
        (
            "sudo",
            format!(
                "{u} : 3 incorrect password attempts ; TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/true"
            ),
        ),
        (
            "sudo",
            format!(
                "pam_unix(sudo:auth): authentication failure; logname={u} uid=1000 euid=0 tty=/dev/pts/0 ruser={u} rhost=  user={u}"
            ),
        ),
        ("su", format!("(to root) {u} on pts/0")),
        ("su", format!("FAILED SU (to root) {u} on pts/0")),
        (
            "su",
            format!("pam_unix(su:session): session opened for user root(uid=0) by {u}(uid=1000)"),
        ),
        (
            "login",
            format!("FAILED LOGIN 1 FROM tty1 FOR {u}, Authentication failure"),
        ),
        ("login", format!("LOGIN ON tty1 BY {u}")),
        (
            "sshd",
            format!("pam_unix(sshd:session): session opened for user {u}(uid=1000) by (uid=0)"),
        ),
        (
            "sshd",
            format!("Disconnected from user {u} 192.0.2.7 port 52222"),
        ),
        (
            "sshd",
            format!("Invalid user {u} from 2001:db8::7 port 40000"),
        ),
        (
            "sshd",
            format!(
                "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=bastion.example  user={u}"
            ),
        ),
        (
            "CRON",
            format!("pam_unix(cron:session): session closed for user {u}"),
        ),
        (
            "sshd",
            format!(
                "message repeated 3 times: [ Failed password for {u} from 192.0.2.7 port 22 ssh2]"
            ),
        ),
    ];
    let mut text = String::new();
    for (n, (program, message)) in messages.iter().enumerate() {
        text.push_str(&format!(
            "Nov 23 10:00:{n:02} testhost {program}[{}]: {message}\n",
            100 + n
        ));
    }
    append(&log, &text);
    let mut found = Vec::new();
    while found.len() < messages.len() {
        let event = h.wait_for("an authentication of the test's user", |e| {
            is_auth(e) && str_at(e, "message").is_some_and(|m| m.contains(&u))
        });
        assert_valid(&event);
        found.push(event);
    }
    let activity = |n: usize| u64_at(&found[n], "activity_id");
    let status = |n: usize| u64_at(&found[n], "status_id");
    assert_eq!(
        (activity(0), status(0)),
        (Some(7), Some(1)),
        "sudo: Account Switch"
    );
    assert_eq!(str_at(&found[0], "actor.user.name"), Some(u.as_str()));
    assert_eq!(str_at(&found[0], "user.name"), Some("root"));
    assert_eq!(
        str_at(&found[0], "user.uid"),
        Some("0"),
        "looked up by name"
    );
    assert_eq!(str_at(&found[0], "unmapped.command"), Some("/usr/bin/id"));
    assert_eq!((status(1), u64_at(&found[1], "count")), (Some(2), Some(3)));
    assert_eq!(
        (activity(6), status(6)),
        (Some(1), Some(2)),
        "login failure"
    );
    assert_eq!(activity(9), Some(2), "sshd disconnect: Logoff");
    assert_eq!(str_at(&found[10], "src_endpoint.ip"), Some("2001:db8::7"));
    assert_eq!(
        str_at(&found[11], "src_endpoint.hostname"),
        Some("bastion.example")
    );
    assert_eq!(u64_at(&found[12], "logon_type_id"), Some(4), "cron: Batch");
    assert_eq!(u64_at(&found[13], "count"), Some(3));
}

/// A login record as glibc writes it to wtmp/btmp.
fn login_record(path: &Path, kind: i16, line: &str, user: &str, host: &str, ip: Option<Ipv4Addr>) {
    unsafe extern "C" {
        fn updwtmpx(file: *const libc::c_char, ut: *const libc::utmpx);
    }
    // SAFETY: an all-zero utmpx is a valid value (integers and arrays of integers).
    let mut ut: libc::utmpx = unsafe { std::mem::zeroed() };
    let fill = |dst: &mut [libc::c_char], src: &str| {
        for (d, s) in dst.iter_mut().zip(src.bytes()) {
            *d = libc::c_char::from_ne_bytes([s]);
        }
    };
    ut.ut_type = kind;
    ut.ut_pid = i32::try_from(std::process::id()).unwrap_or(0);
    fill(&mut ut.ut_line, line);
    fill(&mut ut.ut_id, &line[line.len().saturating_sub(4)..]);
    fill(&mut ut.ut_user, user);
    fill(&mut ut.ut_host, host);
    if let Some(ip) = ip {
        ut.ut_addr_v6[0] = i32::from_ne_bytes(ip.octets());
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    #[allow(clippy::useless_conversion)]
    {
        ut.ut_tv.tv_sec = i32::try_from(now.as_secs()).unwrap_or(0).into();
        ut.ut_tv.tv_usec = i32::try_from(now.subsec_micros()).unwrap_or(0).into();
    }
    let file = CString::new(path.as_os_str().as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    // SAFETY: both pointers are to live values for the duration of the call.
    unsafe { updwtmpx(file.as_ptr(), &ut) };
}

#[test]
fn login_records_become_logons_logoffs_and_failures() {
    skip_unless_root!();
    let dir = TestDir::new("vigil-utmp");
    let (wtmp, btmp) = (dir.path("wtmp"), dir.path("btmp"));
    std::fs::write(&wtmp, "").unwrap_or_else(|e| panic!("{e}"));
    let (mut h, detail) = reading(AuthConfig::reading(
        Vec::<PathBuf>::new(),
        Some(wtmp.clone()),
        Some(btmp.clone()),
    ));
    assert!(detail.contains("logons and logoffs from"), "{detail}");
    let caps = h.sensor.capabilities();
    assert!(
        caps.iter().any(|c| c.name == "auth" && c.source == "utmp"),
        "{caps:?}"
    );
    let pid = u64::from(std::process::id());

    let user = nonce("vw");
    let ip = Ipv4Addr::new(192, 0, 2, 55);
    login_record(
        &wtmp,
        libc::USER_PROCESS,
        "pts/97",
        &user,
        "192.0.2.55",
        Some(ip),
    );
    let logon = h.wait_for("the wtmp logon", auth_of(&user));
    assert_valid(&logon);
    assert_eq!(u64_at(&logon, "activity_id"), Some(1));
    assert_eq!(u64_at(&logon, "status_id"), Some(1));
    assert_eq!(str_at(&logon, "session.terminal"), Some("pts/97"));
    assert_eq!(str_at(&logon, "src_endpoint.ip"), Some("192.0.2.55"));
    assert_eq!(
        u64_at(&logon, "logon_type_id"),
        Some(10),
        "Remote Interactive"
    );
    assert_eq!(u64_at(&logon, "actor.process.pid"), Some(pid));
    assert_eq!(str_at(&logon, "unmapped.utmp_type"), Some("USER_PROCESS"));
    let wtmp_name = wtmp.display().to_string();
    assert_eq!(
        str_at(&logon, "metadata.log_name"),
        Some(wtmp_name.as_str())
    );
    assert_recent(&logon);

    // The logout record names only the terminal; the user comes from the session.
    login_record(&wtmp, libc::DEAD_PROCESS, "pts/97", "", "", None);
    let logoff = h.wait_for("the wtmp logoff", |e| {
        auth_of(&user)(e) && u64_at(e, "activity_id") == Some(2)
    });
    assert_valid(&logoff);
    assert_eq!(u64_at(&logoff, "type_uid"), Some(300202));
    assert_eq!(str_at(&logoff, "session.terminal"), Some("pts/97"));
    assert_eq!(str_at(&logoff, "src_endpoint.ip"), Some("192.0.2.55"));

    // btmp did not exist at start: it is read from its start once it appears (glibc appends
    // only to a login record file that exists).
    std::fs::write(&btmp, "").unwrap_or_else(|e| panic!("{e}"));
    let guesser = nonce("vb");
    login_record(
        &btmp,
        libc::LOGIN_PROCESS,
        "ssh:notty",
        &guesser,
        "203.0.113.5",
        Some(Ipv4Addr::new(203, 0, 113, 5)),
    );
    let failed = h.wait_for("the btmp failure", auth_of(&guesser));
    assert_valid(&failed);
    assert_eq!(u64_at(&failed, "activity_id"), Some(1));
    assert_eq!(u64_at(&failed, "status_id"), Some(2));
    assert_eq!(str_at(&failed, "service.name"), Some("sshd"));
    assert_eq!(str_at(&failed, "src_endpoint.ip"), Some("203.0.113.5"));
    assert!(failed.get("session").is_none(), "ssh:notty is no terminal");
}

#[test]
fn disabled_login_capture_says_so() {
    skip_unless_root!();
    let h = Harness::start_with(SensorConfig {
        mode: SourceMode::Auto,
        files: FileConfig::disabled(),
        auth: AuthConfig::disabled(),
        ..Default::default()
    });
    let caps = h.sensor.capabilities();
    let auth = caps
        .iter()
        .find(|c| c.name == "auth")
        .unwrap_or_else(|| panic!("no auth capability: {caps:?}"));
    assert!(!auth.live);
    assert_eq!(auth.detail.as_deref(), Some("disabled by configuration"));
}
