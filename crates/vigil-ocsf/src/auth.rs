//! Authentication (class 3002): logons, logoffs and account switches (`su`, `sudo`).

use serde::{Deserialize, Serialize};

use crate::{Actor, Device, Metadata, NetworkEndpoint, Session, StatusId, User, class};

/// `activity_id` values of Authentication, with their OCSF captions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum AuthActivityId {
    /// The activity is unknown.
    Unknown = 0,
    /// A user logged on, or tried to.
    Logon = 1,
    /// A user logged off.
    Logoff = 2,
    /// A Kerberos ticket-granting ticket was requested.
    AuthenticationTicket = 3,
    /// A Kerberos service ticket was requested.
    ServiceTicketRequest = 4,
    /// A Kerberos service ticket was renewed.
    ServiceTicketRenew = 5,
    /// Pre-authentication.
    Preauth = 6,
    /// A user (the actor) switched to another account (`user`): `su`, `sudo`.
    AccountSwitch = 7,
    /// Another activity, named in `activity_name`.
    Other = 99,
}

impl AuthActivityId {
    /// The OCSF caption.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unknown => "Unknown",
            Self::Logon => "Logon",
            Self::Logoff => "Logoff",
            Self::AuthenticationTicket => "Authentication Ticket",
            Self::ServiceTicketRequest => "Service Ticket Request",
            Self::ServiceTicketRenew => "Service Ticket Renew",
            Self::Preauth => "Preauth",
            Self::AccountSwitch => "Account Switch",
            Self::Other => "Other",
        }
    }
}

/// `logon_type_id` values, with their OCSF captions (6 is not defined).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum LogonType {
    /// The logon type is unknown.
    Unknown = 0,
    /// Used only by the System account.
    System = 1,
    /// At the console or a local terminal.
    Interactive = 2,
    /// From the network (an SSH authentication).
    Network = 3,
    /// A batch job (cron).
    Batch = 4,
    /// A service started by the service manager.
    OsService = 5,
    /// A workstation unlock.
    Unlock = 7,
    /// From the network with the credentials in clear text.
    NetworkCleartext = 8,
    /// A process cloned its token with new outbound credentials.
    NewCredentials = 9,
    /// A remote session with a terminal (a login recorded in wtmp with a remote host).
    RemoteInteractive = 10,
    /// Interactive, with cached credentials.
    CachedInteractive = 11,
    /// Remote interactive, with cached credentials.
    CachedRemoteInteractive = 12,
    /// Unlock, with cached credentials.
    CachedUnlock = 13,
    /// Another logon type, named in `logon_type`.
    Other = 99,
}

impl LogonType {
    /// The OCSF caption.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unknown => "Unknown",
            Self::System => "System",
            Self::Interactive => "Interactive",
            Self::Network => "Network",
            Self::Batch => "Batch",
            Self::OsService => "OS Service",
            Self::Unlock => "Unlock",
            Self::NetworkCleartext => "Network Cleartext",
            Self::NewCredentials => "New Credentials",
            Self::RemoteInteractive => "Remote Interactive",
            Self::CachedInteractive => "Cached Interactive",
            Self::CachedRemoteInteractive => "Cached Remote Interactive",
            Self::CachedUnlock => "Cached Unlock",
            Self::Other => "Other",
        }
    }
}

/// `auth_protocol_id` values Vigil uses. OCSF has no id for SSH's methods (`password`,
/// `publickey`, `keyboard-interactive`): they are `Other`, named in `auth_protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum AuthProtocol {
    /// The protocol is unknown.
    Unknown = 0,
    /// Kerberos.
    Kerberos = 2,
    /// Another protocol, named in `auth_protocol`.
    Other = 99,
}

/// `account_switch_type_id` values, with their OCSF captions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum AccountSwitchType {
    /// The switch type is unknown.
    Unknown = 0,
    /// A utility like `su` or `sudo` ran a process as another user.
    SubstituteUser = 1,
    /// Impersonation (Windows).
    Impersonate = 2,
    /// Another switch type.
    Other = 99,
}

impl AccountSwitchType {
    /// The OCSF caption.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unknown => "Unknown",
            Self::SubstituteUser => "Substitute User",
            Self::Impersonate => "Impersonate",
            Self::Other => "Other",
        }
    }
}

/// `service`: the service authenticated to (`sshd`, `sudo`, `login`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// Its name.
    pub name: String,
}

/// `unmapped`: what Vigil reports on an Authentication that OCSF has no attribute for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthUnmapped {
    /// The command `sudo` ran, or was asked to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// The working directory `sudo` was run in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
    /// For a login record (wtmp, btmp): its `ut_type` (`USER_PROCESS`, `DEAD_PROCESS`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utmp_type: Option<String>,
}

impl AuthUnmapped {
    /// Whether nothing is set (then `unmapped` is left out).
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// An Authentication event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Authentication {
    /// Activity ([`AuthActivityId`]).
    pub activity_id: u8,
    /// Activity caption.
    pub activity_name: String,
    /// Always 3 (Identity & Access Management).
    pub category_uid: u8,
    /// Always 3002.
    pub class_uid: u32,
    /// `class_uid * 100 + activity_id`.
    pub type_uid: u32,
    /// Severity (1 = Informational).
    pub severity_id: u8,
    /// Event time, milliseconds since the epoch.
    pub time: i64,
    /// Record metadata; `log_name` is the log read, `log_provider` the program that logged.
    pub metadata: Metadata,
    /// The host.
    pub device: Device,
    /// The account authenticated (logon, logoff) or switched to (account switch).
    pub user: User,
    /// Who acted: the process that logged the record (`sshd[1234]`) and, for an account
    /// switch, the user who switched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor>,
    /// Outcome ([`StatusId`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_id: Option<u8>,
    /// Outcome caption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// What happened, in the source's words (`Failed password`, `Invalid user`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_detail: Option<String>,
    /// Protocol ([`AuthProtocol`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_protocol_id: Option<u8>,
    /// Protocol caption, or the method's own name for `Other` (`password`, `publickey`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_protocol: Option<String>,
    /// Logon type ([`LogonType`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logon_type_id: Option<u8>,
    /// Logon type caption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logon_type: Option<String>,
    /// For an account switch ([`AccountSwitchType`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_switch_type_id: Option<u8>,
    /// Account switch caption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_switch_type: Option<String>,
    /// Whether the authentication came over a remote connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_remote: Option<bool>,
    /// Where the user came from (client address, port, host name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_endpoint: Option<NetworkEndpoint>,
    /// The host authenticated to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_endpoint: Option<NetworkEndpoint>,
    /// The service authenticated to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Service>,
    /// The login session: its terminal (`pts/0`), its id when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<Session>,
    /// How many attempts the record stands for (`3 incorrect password attempts`, `message
    /// repeated 5 times`), when more than one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// The log message (the text after the syslog header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The record as read: the whole log line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_data: Option<String>,
    /// Source-specific attributes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unmapped: Option<AuthUnmapped>,
}

impl Authentication {
    /// A new event of the given activity and outcome about `user`; the rest is set by the
    /// caller.
    pub fn new(
        activity: AuthActivityId,
        status: StatusId,
        time: i64,
        metadata: Metadata,
        device: Device,
        user: User,
    ) -> Self {
        Self {
            activity_id: activity as u8,
            activity_name: activity.name().into(),
            category_uid: 3,
            class_uid: class::AUTHENTICATION,
            type_uid: class::AUTHENTICATION * 100 + activity as u32,
            severity_id: 1,
            time,
            metadata,
            device,
            user,
            actor: None,
            status_id: Some(status as u8),
            status: Some(status.name().into()),
            status_detail: None,
            auth_protocol_id: None,
            auth_protocol: None,
            logon_type_id: None,
            logon_type: None,
            account_switch_type_id: None,
            account_switch_type: None,
            is_remote: None,
            src_endpoint: None,
            dst_endpoint: None,
            service: None,
            session: None,
            count: None,
            message: None,
            raw_data: None,
            unmapped: None,
        }
    }

    /// Sets the logon type.
    pub fn with_logon_type(mut self, logon_type: LogonType) -> Self {
        self.logon_type_id = Some(logon_type as u8);
        self.logon_type = Some(logon_type.name().into());
        self
    }

    /// Sets the protocol: `Other` with the method's name (`password`, `publickey`).
    pub fn with_method(mut self, method: &str) -> Self {
        self.auth_protocol_id = Some(AuthProtocol::Other as u8);
        self.auth_protocol = Some(method.into());
        self
    }

    /// Sets the account switch type.
    pub fn with_switch(mut self, switch: AccountSwitchType) -> Self {
        self.account_switch_type_id = Some(switch as u8);
        self.account_switch_type = Some(switch.name().into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Event, Process};

    #[test]
    fn failed_ssh_password_serialises_ocsf_paths() {
        let user = User {
            name: Some("alice".into()),
            uid: String::new(),
            type_id: 0,
        };
        let mut auth = Authentication::new(
            AuthActivityId::Logon,
            StatusId::Failure,
            7,
            Metadata::vigil("/var/log/auth.log"),
            Device::default(),
            user,
        )
        .with_logon_type(LogonType::Network)
        .with_method("password");
        auth.src_endpoint = Some(NetworkEndpoint {
            ip: Some("192.0.2.7".into()),
            port: Some(52222),
            hostname: None,
        });
        auth.service = Some(Service {
            name: "sshd".into(),
        });
        auth.actor = Some(Actor {
            process: Some(Process {
                pid: 1234,
                name: "sshd".into(),
                ..Default::default()
            }),
            user: None,
        });
        auth.is_remote = Some(true);
        let ev = Event::from_record(&auth).unwrap();
        let s = |p: &str| ev.get(p).and_then(|v| v.as_str()).map(str::to_owned);
        let n = |p: &str| ev.get(p).and_then(|v| v.as_u64());
        assert_eq!(ev.class_uid, 3002);
        assert_eq!(n("type_uid"), Some(300201));
        assert_eq!(n("category_uid"), Some(3));
        assert_eq!(s("activity_name").as_deref(), Some("Logon"));
        assert_eq!(s("status").as_deref(), Some("Failure"));
        assert_eq!(n("status_id"), Some(2));
        assert_eq!(n("logon_type_id"), Some(3));
        assert_eq!(n("auth_protocol_id"), Some(99));
        assert_eq!(s("auth_protocol").as_deref(), Some("password"));
        assert_eq!(s("user.name").as_deref(), Some("alice"));
        assert!(ev.get("user.uid").is_none(), "an unknown uid is left out");
        assert_eq!(n("src_endpoint.port"), Some(52222));
        assert_eq!(s("service.name").as_deref(), Some("sshd"));
        assert_eq!(n("actor.process.pid"), Some(1234));
        assert!(ev.get("unmapped").is_none());
        assert!(ev.get("account_switch_type_id").is_none());
    }

    #[test]
    fn captions_match_the_schema_enums() {
        let activities = [
            (AuthActivityId::Unknown, 0, "Unknown"),
            (AuthActivityId::Logon, 1, "Logon"),
            (AuthActivityId::Logoff, 2, "Logoff"),
            (
                AuthActivityId::AuthenticationTicket,
                3,
                "Authentication Ticket",
            ),
            (
                AuthActivityId::ServiceTicketRequest,
                4,
                "Service Ticket Request",
            ),
            (
                AuthActivityId::ServiceTicketRenew,
                5,
                "Service Ticket Renew",
            ),
            (AuthActivityId::Preauth, 6, "Preauth"),
            (AuthActivityId::AccountSwitch, 7, "Account Switch"),
            (AuthActivityId::Other, 99, "Other"),
        ];
        for (id, value, name) in activities {
            assert_eq!((id as u8, id.name()), (value, name));
        }
        let logons = [
            (LogonType::Unknown, 0, "Unknown"),
            (LogonType::System, 1, "System"),
            (LogonType::Interactive, 2, "Interactive"),
            (LogonType::Network, 3, "Network"),
            (LogonType::Batch, 4, "Batch"),
            (LogonType::OsService, 5, "OS Service"),
            (LogonType::Unlock, 7, "Unlock"),
            (LogonType::NetworkCleartext, 8, "Network Cleartext"),
            (LogonType::NewCredentials, 9, "New Credentials"),
            (LogonType::RemoteInteractive, 10, "Remote Interactive"),
            (LogonType::CachedInteractive, 11, "Cached Interactive"),
            (
                LogonType::CachedRemoteInteractive,
                12,
                "Cached Remote Interactive",
            ),
            (LogonType::CachedUnlock, 13, "Cached Unlock"),
            (LogonType::Other, 99, "Other"),
        ];
        for (id, value, name) in logons {
            assert_eq!((id as u8, id.name()), (value, name));
        }
        let switches = [
            (AccountSwitchType::Unknown, 0, "Unknown"),
            (AccountSwitchType::SubstituteUser, 1, "Substitute User"),
            (AccountSwitchType::Impersonate, 2, "Impersonate"),
            (AccountSwitchType::Other, 99, "Other"),
        ];
        for (id, value, name) in switches {
            assert_eq!((id as u8, id.name()), (value, name));
        }
        assert_eq!(AuthProtocol::Other as u8, 99);
        assert_eq!(AuthProtocol::Kerberos as u8, 2);
    }

    #[test]
    fn account_switch_names_both_users() {
        let root = User {
            name: Some("root".into()),
            uid: "0".into(),
            type_id: 2,
        };
        let mut auth = Authentication::new(
            AuthActivityId::AccountSwitch,
            StatusId::Success,
            1,
            Metadata::vigil("journal"),
            Device::default(),
            root,
        )
        .with_switch(AccountSwitchType::SubstituteUser);
        auth.actor = Some(Actor {
            process: None,
            user: Some(User {
                name: Some("alice".into()),
                uid: "1000".into(),
                type_id: 1,
            }),
        });
        auth.unmapped = Some(AuthUnmapped {
            command: Some("/usr/bin/id".into()),
            ..Default::default()
        });
        let ev = Event::from_record(&auth).unwrap();
        let s = |p: &str| ev.get(p).and_then(|v| v.as_str()).map(str::to_owned);
        assert_eq!(ev.get("type_uid").and_then(|v| v.as_u64()), Some(300207));
        assert_eq!(s("user.uid").as_deref(), Some("0"));
        assert_eq!(s("actor.user.name").as_deref(), Some("alice"));
        assert_eq!(s("account_switch_type").as_deref(), Some("Substitute User"));
        assert_eq!(s("unmapped.command").as_deref(), Some("/usr/bin/id"));
        assert!(AuthUnmapped::default().is_empty());
    }
}
