//! Parsers against lines in the forms the programs write them (OpenSSH 9, sudo 1.9, util-linux
//! su and login, Linux-PAM 1.5).

use super::*;
use crate::source::auth::syslog;

const READ: i64 = 1_795_500_000_000;

fn facts(line: &str) -> Option<AuthFacts> {
    parse(&syslog::parse(line, "/var/log/auth.log", READ))
}

fn must(line: &str) -> AuthFacts {
    facts(line).unwrap_or_else(|| panic!("no authentication in {line:?}"))
}

fn peer(ip: &str, port: Option<u16>) -> Option<Peer> {
    Some(Peer {
        ip: Some(ip.into()),
        hostname: None,
        port,
    })
}

#[test]
fn sshd_accepted_password_and_publickey() {
    let f = must(
        "2026-11-23T10:00:01.123456+00:00 web01 sshd[1234]: Accepted password for alice from \
         192.0.2.7 port 52222 ssh2",
    );
    assert_eq!((f.kind, f.success), (AuthKind::Logon, true));
    assert_eq!(f.user, Account::named("alice"));
    assert_eq!(f.method.as_deref(), Some("password"));
    assert_eq!(f.detail, "Accepted password");
    assert_eq!(f.src, peer("192.0.2.7", Some(52222)));
    assert_eq!(f.logon_type, Some(LogonType::Network));
    assert_eq!((f.remote, f.service.as_deref()), (Some(true), Some("sshd")));

    let f = must(
        "Nov 23 10:00:01 web01 sshd[1234]: Accepted publickey for bob from 2001:db8::5 port \
         40000 ssh2: ED25519 SHA256:Xyz0AbC",
    );
    assert_eq!(f.method.as_deref(), Some("publickey"));
    assert_eq!(f.user.name, "bob");
    assert_eq!(f.src, peer("2001:db8::5", Some(40000)));
    // OpenSSH 9.8+ logs the session half as sshd-session.
    let f = must(
        "2026-11-23T10:00:01Z h sshd-session[9]: Accepted keyboard-interactive/pam for carol \
         from 198.51.100.1 port 1 ssh2",
    );
    assert_eq!(f.method.as_deref(), Some("keyboard-interactive/pam"));
}

#[test]
fn sshd_failures() {
    let f = must(
        "2026-11-23T10:00:01Z h sshd[77]: Failed password for invalid user admin from \
         203.0.113.9 port 5555 ssh2",
    );
    assert_eq!((f.kind, f.success), (AuthKind::Logon, false));
    assert_eq!(
        f.user,
        Account {
            name: "admin".into(),
            uid: None,
            exists: false
        }
    );
    assert_eq!(f.detail, "Failed password (invalid user)");
    assert_eq!(f.src, peer("203.0.113.9", Some(5555)));

    let f = must(
        "2026-11-23T10:00:01Z h sshd[77]: Failed password for root from 203.0.113.9 port 22 ssh2",
    );
    assert!(f.user.exists);
    assert_eq!(f.detail, "Failed password");

    // User names are whatever the client sent, spaces included.
    let f = must(
        "2026-11-23T10:00:01Z h sshd[77]: Failed none for invalid user a from b from \
         203.0.113.9 port 22 ssh2",
    );
    assert_eq!(f.user.name, "a from b");
    assert_eq!(f.method.as_deref(), Some("none"));

    let f =
        must("2026-11-23T10:00:01Z h sshd[77]: Invalid user oracle from 203.0.113.9 port 40404");
    assert_eq!((f.success, f.detail.as_str()), (false, "Invalid user"));
    assert!(!f.user.exists);
    assert_eq!(f.src, peer("203.0.113.9", Some(40404)));

    let f = must(
        "2026-11-23T10:00:01Z h sshd[77]: error: maximum authentication attempts exceeded for \
         invalid user pi from 203.0.113.9 port 4 ssh2 [preauth]",
    );
    assert_eq!((f.success, f.user.name.as_str()), (false, "pi"));

    // rsyslog's repeat reduction.
    let f = must(
        "Nov 23 10:00:01 h sshd[77]: message repeated 5 times: [ Failed password for root from \
         203.0.113.9 port 22 ssh2]",
    );
    assert_eq!((f.count, f.success), (Some(5), false));
}

#[test]
fn sshd_sessions_and_disconnects() {
    let f = must(
        "2026-11-23T10:00:01Z h sshd[77]: pam_unix(sshd:session): session opened for user \
         alice(uid=1000) by (uid=0)",
    );
    assert_eq!((f.kind, f.success), (AuthKind::Logon, true));
    assert_eq!(f.user.uid, Some(1000));
    assert_eq!(f.actor_user, None);
    assert_eq!(f.detail, "session opened");
    assert_eq!(f.logon_type, Some(LogonType::Network));

    let f = must(
        "2026-11-23T10:00:01Z h sshd[77]: pam_unix(sshd:session): session closed for user alice",
    );
    assert_eq!((f.kind, f.user.name.as_str()), (AuthKind::Logoff, "alice"));

    let f =
        must("2026-11-23T10:00:01Z h sshd[77]: Disconnected from user alice 192.0.2.7 port 52222");
    assert_eq!((f.kind, f.success), (AuthKind::Logoff, true));
    assert_eq!(f.src, peer("192.0.2.7", Some(52222)));

    let f = must(
        "2026-11-23T10:00:01Z h sshd[77]: pam_unix(sshd:auth): authentication failure; \
         logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.9  user=root",
    );
    assert_eq!((f.kind, f.success), (AuthKind::Logon, false));
    assert_eq!(f.src, peer("203.0.113.9", None));
    assert_eq!(f.terminal, None, "tty=ssh is no terminal");
    assert_eq!(f.remote, Some(true));
}

#[test]
fn sshd_lines_that_are_not_authentications() {
    for line in [
        "2026-11-23T10:00:01Z h sshd[77]: Server listening on 0.0.0.0 port 22.",
        "2026-11-23T10:00:01Z h sshd[77]: Received disconnect from 192.0.2.7 port 5:11: bye",
        "2026-11-23T10:00:01Z h sshd[77]: Connection closed by 192.0.2.7 port 5 [preauth]",
        // PAM without `user=` does not know the account.
        "2026-11-23T10:00:01Z h sshd[77]: pam_unix(sshd:auth): authentication failure; \
         logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.9",
        "2026-11-23T10:00:01Z h sshd[77]: Accepted",
        "2026-11-23T10:00:01Z h sshd[77]: Failed password for",
        "2026-11-23T10:00:01Z h sshd[77]: Disconnected from user",
        "2026-11-23T10:00:01Z h sshd[77]: message repeated x times: [ y]",
    ] {
        assert_eq!(facts(line), None, "{line}");
    }
}

#[test]
fn sudo_command_and_refusals() {
    let f = must(
        "2026-11-23T10:00:01Z h sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; \
         COMMAND=/usr/bin/systemctl restart ssh ; echo",
    );
    assert_eq!((f.kind, f.success), (AuthKind::AccountSwitch, true));
    assert_eq!(f.user.name, "root");
    assert_eq!(f.actor_user, Some(Account::named("alice")));
    assert_eq!(f.terminal.as_deref(), Some("pts/0"));
    assert_eq!(f.cwd.as_deref(), Some("/home/alice"));
    assert_eq!(
        f.command.as_deref(),
        Some("/usr/bin/systemctl restart ssh ; echo")
    );
    assert_eq!(f.detail, "");

    let f = must(
        "Nov 23 10:00:01 h sudo:    alice : 3 incorrect password attempts ; TTY=pts/0 ; \
         PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id",
    );
    assert_eq!((f.success, f.count), (false, Some(3)));
    assert_eq!(f.detail, "3 incorrect password attempts");

    let f = must(
        "2026-11-23T10:00:01Z h sudo:      eve : user NOT in sudoers ; TTY=pts/1 ; PWD=/tmp ; \
         USER=root ; COMMAND=/bin/sh",
    );
    assert_eq!(
        (f.success, f.detail.as_str()),
        (false, "user NOT in sudoers")
    );
    assert_eq!(f.count, None);

    let f = must(
        "2026-11-23T10:00:01Z h sudo: pam_unix(sudo:auth): authentication failure; \
         logname=alice uid=1000 euid=0 tty=/dev/pts/0 ruser=alice rhost=  user=alice",
    );
    assert_eq!((f.kind, f.success), (AuthKind::AccountSwitch, false));
    assert_eq!(f.user.name, "alice");
    assert_eq!(f.actor_user, Some(Account::named("alice")));
    assert_eq!(f.terminal.as_deref(), Some("pts/0"));

    let f = must(
        "2026-11-23T10:00:01Z h sudo: pam_unix(sudo:session): session opened for user \
         root(uid=0) by alice(uid=1000)",
    );
    assert_eq!((f.kind, f.user.uid), (AuthKind::AccountSwitch, Some(0)));
    assert_eq!(
        f.actor_user,
        Some(Account {
            name: "alice".into(),
            uid: Some(1000),
            exists: true
        })
    );
    let f =
        must("2026-11-23T10:00:01Z h sudo: pam_unix(sudo:session): session closed for user root");
    assert_eq!(f.kind, AuthKind::Logoff);

    assert_eq!(
        facts(
            "2026-11-23T10:00:01Z h sudo: unable to resolve host web01: Name or service not known"
        ),
        None
    );
    assert_eq!(
        facts("2026-11-23T10:00:01Z h sudo: pam_unix(sudo:auth): conversation failed"),
        None
    );
}

#[test]
fn su_switches() {
    let f = must("Nov 23 10:00:01 h su[500]: (to root) alice on pts/0");
    assert_eq!((f.kind, f.success), (AuthKind::AccountSwitch, true));
    assert_eq!(f.user.name, "root");
    assert_eq!(f.actor_user, Some(Account::named("alice")));
    assert_eq!(f.terminal.as_deref(), Some("pts/0"));

    let f = must("Nov 23 10:00:01 h su[500]: FAILED SU (to root) alice on pts/0");
    assert_eq!((f.success, f.detail.as_str()), (false, "FAILED SU"));

    let f = must(
        "Nov 23 10:00:01 h su[500]: pam_unix(su:auth): authentication failure; logname=alice \
         uid=1000 euid=0 tty=/dev/pts/0 ruser=alice rhost=  user=root",
    );
    assert_eq!((f.kind, f.success), (AuthKind::AccountSwitch, false));
    assert_eq!(f.user.name, "root");
    assert_eq!(f.actor_user, Some(Account::named("alice")));
    assert_eq!(f.src, None);

    let f = must(
        "Nov 23 10:00:01 h su[500]: pam_unix(su:session): session opened for user root(uid=0) \
         by alice(uid=1000)",
    );
    assert_eq!((f.kind, f.success), (AuthKind::AccountSwitch, true));
    assert_eq!(f.actor_user.map(|a| a.uid), Some(Some(1000)));
    let f = must(
        "Nov 23 10:00:01 h su[500]: pam_unix(su-l:session): session opened for user root by \
         alice(uid=1000)",
    );
    assert_eq!((f.user.uid, f.service.as_deref()), (None, Some("su-l")));
}

#[test]
fn login_failures_and_logons() {
    let f = must(
        "Nov 23 10:00:01 h login[600]: FAILED LOGIN 1 FROM tty1 FOR alice, Authentication failure",
    );
    assert_eq!((f.kind, f.success), (AuthKind::Logon, false));
    assert_eq!(f.user.name, "alice");
    assert_eq!(f.terminal.as_deref(), Some("tty1"));
    assert_eq!(f.detail, "Authentication failure");
    assert_eq!(
        (f.logon_type, f.remote),
        (Some(LogonType::Interactive), Some(false))
    );

    let f = must(
        "Nov 23 10:00:01 h login[600]: FAILED LOGIN 2 FROM 192.0.2.9 FOR bob, User not known to \
         the underlying authentication module",
    );
    assert_eq!(f.src, peer("192.0.2.9", None));
    assert_eq!(f.logon_type, Some(LogonType::RemoteInteractive));

    let f = must(
        "Nov 23 10:00:01 h login[600]: FAILED LOGIN (1) on '/dev/tty2' FOR 'carol', \
         Authentication failure",
    );
    assert_eq!(
        (f.user.name.as_str(), f.terminal.as_deref()),
        ("carol", Some("tty2"))
    );

    let f = must("Nov 23 10:00:01 h login[600]: LOGIN ON tty1 BY dave");
    assert_eq!((f.success, f.user.name.as_str()), (true, "dave"));
    let f = must("Nov 23 10:00:01 h login[600]: ROOT LOGIN  on '/dev/tty1'");
    assert_eq!(
        (f.user.name.as_str(), f.terminal.as_deref()),
        ("root", Some("tty1"))
    );
}

#[test]
fn pam_of_other_services() {
    let f = must(
        "2026-11-23T10:17:01Z h CRON[900]: pam_unix(cron:session): session opened for user \
         root(uid=0) by (uid=0)",
    );
    assert_eq!(
        (f.kind, f.logon_type),
        (AuthKind::Logon, Some(LogonType::Batch))
    );
    assert_eq!(f.service.as_deref(), Some("cron"));

    let f = must(
        "2026-11-23T10:17:01Z h vsftpd[1]: pam_unix(vsftpd:auth): authentication failure; \
         logname= uid=0 euid=0 tty=ftp ruser=alice rhost=::ffff:192.0.2.8 user=alice",
    );
    assert_eq!((f.kind, f.success), (AuthKind::Logon, false));
    assert_eq!(
        f.src.and_then(|p| p.ip).as_deref(),
        Some("::ffff:192.0.2.8")
    );
    assert_eq!((f.logon_type, f.remote), (None, Some(true)));
    assert_eq!(f.terminal.as_deref(), Some("ftp"));

    let f = must(
        "2026-11-23T10:17:01Z h gdm-password][1]: pam_sss(gdm-password:auth): authentication \
         failure; logname= uid=0 euid=0 tty=:0 ruser= rhost= user=erin",
    );
    assert_eq!(f.logon_type, Some(LogonType::Interactive));
    assert_eq!(f.src, None);
}

#[test]
fn unrelated_and_broken_lines_say_nothing() {
    for line in [
        "",
        "no header at all: pam_unix(sshd:auth): authentication failure; user=x",
        "2026-11-23T10:00:01Z h CRON[1]: (root) CMD (run-parts /etc/cron.hourly)",
        "2026-11-23T10:00:01Z h systemd-logind[1]: New session 4 of user alice.",
        "2026-11-23T10:00:01Z h kernel: pam_unix(",
        "2026-11-23T10:00:01Z h x[1]: pam_unix(a:b): c",
        "2026-11-23T10:00:01Z h x[1]: pam_unix(a:session): session opened for user (uid=x",
        "2026-11-23T10:00:01Z h su[1]: (to root",
        "2026-11-23T10:00:01Z h sudo: : TTY=x",
        "2026-11-23T10:00:01Z h login[1]: FAILED LOGIN",
        "2026-11-23T10:00:01Z h login[1]: LOGIN ON tty1",
    ] {
        assert_eq!(facts(line), None, "{line}");
    }
}

#[test]
fn arbitrary_text_never_panics() {
    let pieces = [
        "Accepted ",
        "Failed ",
        " for ",
        " from ",
        " port ",
        "invalid user ",
        "(to ",
        ") ",
        " on ",
        "FAILED LOGIN ",
        " FOR ",
        ", ",
        "pam_unix(",
        ":auth): ",
        ":session): ",
        "authentication failure;",
        " user=",
        "session opened for user ",
        "(uid=",
        " by ",
        " : ",
        " ; ",
        "COMMAND=",
        "USER=",
        "message repeated ",
        " times: [",
        "]",
        "é",
        "\u{0}",
        "",
    ];
    let programs = ["sshd", "sudo", "su", "login", "CRON"];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..20_000 {
        let mut message = String::new();
        for _ in 0..6 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            message.push_str(pieces[(state % pieces.len() as u64) as usize]);
        }
        let program = programs[(state >> 32) as usize % programs.len()];
        let line = format!("2026-11-23T10:00:01Z h {program}[1]: {message}");
        let _ = facts(&line);
    }
}
