//! Log records and login records → OCSF: every log line as a Base Event ([`log_event`]), and
//! what a line or a wtmp/btmp record says about a logon, logoff or account switch as
//! Authentication 3002 ([`auth_event`]).
//!
//! | what the record says                          | activity           | `user`            | `actor.user` |
//! |-----------------------------------------------|--------------------|-------------------|--------------|
//! | a logon succeeded or failed (sshd, login, PAM) | 1 Logon            | the account       |              |
//! | a session closed, a user disconnected          | 2 Logoff           | the account       |              |
//! | `su`/`sudo` ran (or refused) as another user    | 7 Account Switch   | the target (root) | the invoker  |

use vigil_ocsf::{
    AccountSwitchType, Actor, AuthActivityId, AuthUnmapped, Authentication, Device, Event,
    EventError, LogLine, LogonType, Metadata, NetworkEndpoint, Process, Service, Session, StatusId,
    SyslogHeader, User,
};

/// One log record: a line of a log file, or a journal entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogRecord {
    /// Where it was read: the file's path, or `journal`.
    pub(crate) log_name: String,
    /// The header's time stamp, or when it was read when it has none; ms since the epoch.
    pub(crate) time_ms: i64,
    pub(crate) hostname: Option<String>,
    /// The syslog tag's program (identifier): `sshd`, `sudo`, `CRON`.
    pub(crate) program: Option<String>,
    pub(crate) pid: Option<u32>,
    /// The facility's name, when the source says it (the journal).
    pub(crate) facility: Option<String>,
    /// The text after the header.
    pub(crate) message: String,
    /// The whole line.
    pub(crate) raw: String,
}

/// What kind of authentication a record reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthKind {
    Logon,
    Logoff,
    /// `su`, `sudo`: the actor became (or tried to become) `user`.
    AccountSwitch,
}

/// An account a record names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Account {
    pub(crate) name: String,
    /// The uid, when the record says it.
    pub(crate) uid: Option<u32>,
    /// False when the source said the account does not exist (`invalid user`): it is then
    /// not looked up.
    pub(crate) exists: bool,
}

impl Account {
    pub(crate) fn named(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            uid: None,
            exists: true,
        }
    }
}

/// The other end of a remote authentication.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Peer {
    pub(crate) ip: Option<String>,
    pub(crate) hostname: Option<String>,
    pub(crate) port: Option<u16>,
}

impl Peer {
    /// An address as a log names it: an IP address, else a host name. `None` when empty.
    pub(crate) fn address(text: &str, port: Option<u16>) -> Option<Self> {
        let text = text.trim();
        if text.is_empty() {
            return None;
        }
        let (ip, hostname) = match text.parse::<std::net::IpAddr>() {
            Ok(ip) => (Some(ip.to_string()), None),
            Err(_) => (None, Some(text.to_owned())),
        };
        Some(Self { ip, hostname, port })
    }
}

/// What a record says about an authentication, whatever its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AuthFacts {
    pub(crate) kind: AuthKind,
    pub(crate) success: bool,
    /// The outcome in the source's words (`Failed password`, `session opened`).
    pub(crate) detail: String,
    /// The account logged on to, off from, or switched to.
    pub(crate) user: Account,
    /// For an account switch: who switched.
    pub(crate) actor_user: Option<Account>,
    /// The authentication method (`password`, `publickey`).
    pub(crate) method: Option<String>,
    pub(crate) logon_type: Option<LogonType>,
    pub(crate) remote: Option<bool>,
    pub(crate) src: Option<Peer>,
    /// The service authenticated to (`sshd`, `sudo`, the PAM service).
    pub(crate) service: Option<String>,
    /// The terminal (`pts/0`, `tty1`).
    pub(crate) terminal: Option<String>,
    /// How many attempts the record stands for, when more than one.
    pub(crate) count: Option<u32>,
    /// `sudo`'s command and working directory.
    pub(crate) command: Option<String>,
    pub(crate) cwd: Option<String>,
    /// A login record's type (`USER_PROCESS`).
    pub(crate) utmp_type: Option<&'static str>,
    /// The process that wrote a login record (`ut_pid`); a log line's is in its header.
    pub(crate) pid: Option<u32>,
}

impl AuthFacts {
    /// Facts of `kind` about `user`; the caller fills in the rest.
    pub(crate) fn new(kind: AuthKind, success: bool, detail: &str, user: Account) -> Self {
        Self {
            kind,
            success,
            detail: detail.to_owned(),
            user,
            actor_user: None,
            method: None,
            logon_type: None,
            remote: None,
            src: None,
            service: None,
            terminal: None,
            count: None,
            command: None,
            cwd: None,
            utmp_type: None,
            pid: None,
        }
    }
}

/// An authentication, with where it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AuthObservation {
    pub(crate) facts: AuthFacts,
    /// When it happened, ms since the epoch.
    pub(crate) time_ms: i64,
    /// The log or login record file it was read from (`journal` for the journal).
    pub(crate) log_name: String,
    /// The log line it was read from; `None` for wtmp/btmp records.
    pub(crate) line: Option<LogRecord>,
}

/// The Base Event for one log line.
pub(crate) fn log_event(record: &LogRecord, device: &Device) -> Result<Event, EventError> {
    let mut metadata = Metadata::vigil(&record.log_name);
    metadata.log_provider = record.program.clone();
    let line = LogLine::new(
        record.time_ms,
        metadata,
        device.clone(),
        record.message.clone(),
        record.raw.clone(),
        SyslogHeader {
            hostname: record.hostname.clone(),
            pid: record.pid,
            facility: record.facility.clone(),
        },
    );
    Event::from_record(&line)
}

/// The Authentication event for `obs`. `user` and `actor_user` are its accounts as
/// enrichment resolved them (uid looked up by name).
pub(crate) fn auth_event(
    obs: &AuthObservation,
    user: User,
    actor_user: Option<User>,
    device: &Device,
) -> Result<Event, EventError> {
    let facts = &obs.facts;
    let line = obs.line.as_ref();
    let activity = match facts.kind {
        AuthKind::Logon => AuthActivityId::Logon,
        AuthKind::Logoff => AuthActivityId::Logoff,
        AuthKind::AccountSwitch => AuthActivityId::AccountSwitch,
    };
    let status = if facts.success {
        StatusId::Success
    } else {
        StatusId::Failure
    };
    let mut metadata = Metadata::vigil(&obs.log_name);
    metadata.log_provider = line.and_then(|l| l.program.clone());
    let mut record = Authentication::new(
        activity,
        status,
        obs.time_ms,
        metadata,
        device.clone(),
        user,
    );
    if let Some(logon_type) = facts.logon_type {
        record = record.with_logon_type(logon_type);
    }
    if let Some(method) = &facts.method {
        record = record.with_method(method);
    }
    if facts.kind == AuthKind::AccountSwitch {
        record = record.with_switch(AccountSwitchType::SubstituteUser);
    }
    record.status_detail = Some(facts.detail.clone()).filter(|d| !d.is_empty());
    record.is_remote = facts.remote;
    record.src_endpoint = facts
        .src
        .as_ref()
        .filter(|p| p.ip.is_some() || p.hostname.is_some())
        .map(|p| NetworkEndpoint {
            ip: p.ip.clone(),
            port: p.port,
            hostname: p.hostname.clone(),
        });
    record.dst_endpoint = line
        .and_then(|l| l.hostname.clone())
        .map(|hostname| NetworkEndpoint {
            hostname: Some(hostname),
            ..Default::default()
        });
    record.service = facts.service.clone().map(|name| Service { name });
    record.session = facts.terminal.clone().map(|terminal| Session {
        uid: None,
        terminal: Some(terminal),
    });
    let process = match line {
        Some(l) => l.pid.map(|pid| Process {
            pid,
            name: l.program.clone().unwrap_or_default(),
            ..Default::default()
        }),
        None => facts.pid.filter(|&pid| pid > 0).map(|pid| Process {
            pid,
            ..Default::default()
        }),
    };
    if process.is_some() || actor_user.is_some() {
        record.actor = Some(Actor {
            process,
            user: actor_user,
        });
    }
    record.count = facts.count;
    record.message = line.map(|l| l.message.clone());
    record.raw_data = line.map(|l| l.raw.clone());
    let unmapped = AuthUnmapped {
        command: facts.command.clone(),
        working_directory: facts.cwd.clone(),
        utmp_type: facts.utmp_type.map(str::to_owned),
    };
    record.unmapped = (!unmapped.is_empty()).then_some(unmapped);
    Event::from_record(&record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(ev: &Event, path: &str) -> Option<String> {
        ev.get(path).and_then(|v| v.as_str()).map(str::to_owned)
    }

    fn n(ev: &Event, path: &str) -> Option<u64> {
        ev.get(path).and_then(|v| v.as_u64())
    }

    fn line() -> LogRecord {
        LogRecord {
            log_name: "/var/log/auth.log".into(),
            time_ms: 42,
            hostname: Some("web01".into()),
            program: Some("sshd".into()),
            pid: Some(1234),
            facility: None,
            message: "Failed password for invalid user eve from 192.0.2.7 port 5555 ssh2".into(),
            raw: "2026-11-23T10:00:01Z web01 sshd[1234]: Failed password for invalid user eve \
                  from 192.0.2.7 port 5555 ssh2"
                .into(),
        }
    }

    fn named(name: &str) -> User {
        User {
            name: Some(name.into()),
            uid: String::new(),
            type_id: 0,
        }
    }

    #[test]
    fn ssh_failure_from_a_line() {
        let mut facts = AuthFacts::new(
            AuthKind::Logon,
            false,
            "Failed password",
            Account {
                name: "eve".into(),
                uid: None,
                exists: false,
            },
        );
        facts.method = Some("password".into());
        facts.logon_type = Some(LogonType::Network);
        facts.remote = Some(true);
        facts.src = Peer::address("192.0.2.7", Some(5555));
        facts.service = Some("sshd".into());
        let obs = AuthObservation {
            facts,
            time_ms: 42,
            log_name: "/var/log/auth.log".into(),
            line: Some(line()),
        };
        let ev = auth_event(&obs, named("eve"), None, &Device::default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ev.class_uid, 3002);
        assert_eq!(ev.time, 42);
        assert_eq!(n(&ev, "type_uid"), Some(300201));
        assert_eq!(n(&ev, "status_id"), Some(2));
        assert_eq!(s(&ev, "status_detail").as_deref(), Some("Failed password"));
        assert_eq!(s(&ev, "user.name").as_deref(), Some("eve"));
        assert_eq!(s(&ev, "src_endpoint.ip").as_deref(), Some("192.0.2.7"));
        assert_eq!(n(&ev, "src_endpoint.port"), Some(5555));
        assert_eq!(s(&ev, "dst_endpoint.hostname").as_deref(), Some("web01"));
        assert_eq!(s(&ev, "service.name").as_deref(), Some("sshd"));
        assert_eq!(n(&ev, "actor.process.pid"), Some(1234));
        assert_eq!(s(&ev, "actor.process.name").as_deref(), Some("sshd"));
        assert_eq!(s(&ev, "metadata.log_provider").as_deref(), Some("sshd"));
        assert_eq!(
            s(&ev, "metadata.log_name").as_deref(),
            Some("/var/log/auth.log")
        );
        assert_eq!(s(&ev, "raw_data"), Some(line().raw));
        assert_eq!(s(&ev, "message"), Some(line().message));
        assert_eq!(ev.get("is_remote").and_then(|v| v.as_bool()), Some(true));
        assert!(ev.get("session").is_none());
        assert!(ev.get("unmapped").is_none());
    }

    #[test]
    fn login_record_without_a_line() {
        let mut facts = AuthFacts::new(
            AuthKind::Logoff,
            true,
            "session ended",
            Account::named("bob"),
        );
        facts.terminal = Some("pts/3".into());
        facts.utmp_type = Some("DEAD_PROCESS");
        facts.pid = Some(0);
        let obs = AuthObservation {
            facts,
            time_ms: 7,
            log_name: "/var/log/wtmp".into(),
            line: None,
        };
        let ev = auth_event(&obs, named("bob"), None, &Device::default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(n(&ev, "activity_id"), Some(2));
        assert_eq!(s(&ev, "session.terminal").as_deref(), Some("pts/3"));
        assert_eq!(
            s(&ev, "unmapped.utmp_type").as_deref(),
            Some("DEAD_PROCESS")
        );
        assert!(ev.get("actor").is_none(), "pid 0 names no process");
        assert!(ev.get("raw_data").is_none());
        assert!(ev.get("metadata.log_provider").is_none());
        assert!(ev.get("dst_endpoint").is_none());
    }

    #[test]
    fn account_switch_names_the_invoker_as_actor() {
        let mut facts = AuthFacts::new(AuthKind::AccountSwitch, true, "", Account::named("root"));
        facts.actor_user = Some(Account::named("alice"));
        facts.command = Some("/usr/bin/id".into());
        let obs = AuthObservation {
            facts,
            time_ms: 7,
            log_name: "journal".into(),
            line: None,
        };
        let ev = auth_event(
            &obs,
            named("root"),
            Some(named("alice")),
            &Device::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(n(&ev, "type_uid"), Some(300207));
        assert_eq!(n(&ev, "account_switch_type_id"), Some(1));
        assert_eq!(s(&ev, "actor.user.name").as_deref(), Some("alice"));
        assert!(ev.get("actor.process").is_none());
        assert!(ev.get("status_detail").is_none());
        assert_eq!(s(&ev, "unmapped.command").as_deref(), Some("/usr/bin/id"));
    }

    #[test]
    fn log_line_carries_provider_and_header() {
        let ev = log_event(&line(), &Device::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ev.class_uid, 0);
        assert_eq!(ev.time, 42);
        assert_eq!(s(&ev, "metadata.log_provider").as_deref(), Some("sshd"));
        assert_eq!(n(&ev, "unmapped.syslog.pid"), Some(1234));
        assert_eq!(s(&ev, "unmapped.syslog.hostname").as_deref(), Some("web01"));
        assert_eq!(s(&ev, "message"), Some(line().message));
    }

    #[test]
    fn peers_are_ips_or_host_names() {
        let v6 = Peer::address("2001:db8::1", Some(22)).unwrap_or_default();
        assert_eq!(v6.ip.as_deref(), Some("2001:db8::1"));
        let host = Peer::address("bastion.example", None).unwrap_or_default();
        assert_eq!(
            (host.ip, host.hostname.as_deref()),
            (None, Some("bastion.example"))
        );
        assert_eq!(Peer::address("  ", None), None);
    }
}
