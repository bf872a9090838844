//! Network Activity (class 4001).

use serde::{Deserialize, Serialize};

use crate::{Actor, Device, Metadata, class};

/// `activity_id` values of Network Activity, with their OCSF captions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum NetworkActivityId {
    /// The activity is unknown.
    Unknown = 0,
    /// A connection was opened (attempted, established or accepted).
    Open = 1,
    /// A connection was closed.
    Close = 2,
    /// A connection was reset.
    Reset = 3,
    /// A connection failed (timeout, no route to host, …).
    Fail = 4,
    /// A connection was refused (nothing listens on the port).
    Refuse = 5,
    /// Traffic on a connection.
    Traffic = 6,
    /// A socket started listening.
    Listen = 7,
    /// Another activity, named in `activity_name`.
    Other = 99,
}

impl NetworkActivityId {
    /// The OCSF caption.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unknown => "Unknown",
            Self::Open => "Open",
            Self::Close => "Close",
            Self::Reset => "Reset",
            Self::Fail => "Fail",
            Self::Refuse => "Refuse",
            Self::Traffic => "Traffic",
            Self::Listen => "Listen",
            Self::Other => "Other",
        }
    }
}

/// `connection_info.direction_id` values, with their OCSF captions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Direction {
    /// Who initiated is not known.
    Unknown = 0,
    /// A remote peer initiated the connection to this host.
    Inbound = 1,
    /// This host initiated the connection.
    Outbound = 2,
    /// Between hosts of the same network.
    Lateral = 3,
    /// Within this host.
    Local = 4,
}

impl Direction {
    /// The OCSF caption.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unknown => "Unknown",
            Self::Inbound => "Inbound",
            Self::Outbound => "Outbound",
            Self::Lateral => "Lateral",
            Self::Local => "Local",
        }
    }
}

/// `status_id` values of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum StatusId {
    /// The status is unknown.
    Unknown = 0,
    /// The activity succeeded.
    Success = 1,
    /// The activity failed.
    Failure = 2,
}

impl StatusId {
    /// The OCSF caption.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unknown => "Unknown",
            Self::Success => "Success",
            Self::Failure => "Failure",
        }
    }
}

/// `network_endpoint`: one end of a connection. OCSF requires at least one of `ip` and
/// `hostname` (among others).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkEndpoint {
    /// IP address, IPv4 dotted or IPv6 (IPv4-mapped IPv6 addresses are written as IPv4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Port; absent when not yet known (an unbound socket's connect attempt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

/// `network_connection_info`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionInfo {
    /// Direction ([`Direction`]), the one required attribute.
    pub direction_id: u8,
    /// Direction caption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    /// IANA protocol number (6 = TCP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_num: Option<u8>,
    /// Protocol name, lower case (`tcp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_name: Option<String>,
    /// IP version (4 or 6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_ver_id: Option<u8>,
    /// TCP flags of the segment the event is about (reset records: the incoming segment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_flags: Option<u8>,
}

impl ConnectionInfo {
    /// A TCP connection over IP version `ip_version` (4 or 6) in `direction`.
    pub fn tcp(direction: Direction, ip_version: u8) -> Self {
        Self {
            direction_id: direction as u8,
            direction: Some(direction.name().into()),
            protocol_num: Some(6),
            protocol_name: Some("tcp".into()),
            protocol_ver_id: Some(ip_version),
            tcp_flags: None,
        }
    }
}

/// `unmapped`: what Vigil reports on a Network Activity that OCSF has no attribute for. The
/// booleans are the strings `"true"`/`"false"`, as Sigma's `network_connection` fields expect.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkUnmapped {
    /// Sigma `Initiated`: `"true"` when this host initiated the connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initiated: Option<String>,
    /// Sigma `SourceIsIpv6`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_is_ipv6: Option<String>,
    /// Sigma `DestinationIsIpv6`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_is_ipv6: Option<String>,
    /// The kernel's TCP state after the event (`SYN_SENT`, `ESTABLISHED`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_state: Option<String>,
    /// The TCP state before the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_old_state: Option<String>,
    /// Why the kernel sent a reset (`NO_SOCKET`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_reset_reason: Option<String>,
    /// Inode number of the network namespace the socket lives in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<u32>,
}

/// A Network Activity event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkActivity {
    /// Activity ([`NetworkActivityId`]).
    pub activity_id: u8,
    /// Activity caption.
    pub activity_name: String,
    /// Always 4 (Network Activity).
    pub category_uid: u8,
    /// Always 4001.
    pub class_uid: u32,
    /// `class_uid * 100 + activity_id`.
    pub type_uid: u32,
    /// Severity (1 = Informational).
    pub severity_id: u8,
    /// Event time, milliseconds since the epoch.
    pub time: i64,
    /// Record metadata.
    pub metadata: Metadata,
    /// The host.
    pub device: Device,
    /// The process (and user) owning the socket, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor>,
    /// The initiator of the connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_endpoint: Option<NetworkEndpoint>,
    /// The responder of the connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_endpoint: Option<NetworkEndpoint>,
    /// Protocol and direction.
    pub connection_info: ConnectionInfo,
    /// Whether `src_endpoint` is known to be the initiator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_src_dst_assignment_known: Option<bool>,
    /// Outcome ([`StatusId`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_id: Option<u8>,
    /// Outcome caption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Outcome code from the source (an errno name such as `ECONNREFUSED`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<String>,
    /// What happened, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_detail: Option<String>,
    /// Source-specific attributes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unmapped: Option<NetworkUnmapped>,
}

impl NetworkActivity {
    /// A new event of the given activity; endpoints, actor and status are set by the caller.
    pub fn new(
        activity: NetworkActivityId,
        time: i64,
        metadata: Metadata,
        device: Device,
        connection_info: ConnectionInfo,
    ) -> Self {
        Self {
            activity_id: activity as u8,
            activity_name: activity.name().into(),
            category_uid: 4,
            class_uid: class::NETWORK_ACTIVITY,
            type_uid: class::NETWORK_ACTIVITY * 100 + activity as u32,
            severity_id: 1,
            time,
            metadata,
            device,
            actor: None,
            src_endpoint: None,
            dst_endpoint: None,
            connection_info,
            is_src_dst_assignment_known: None,
            status_id: None,
            status: None,
            status_code: None,
            status_detail: None,
            unmapped: None,
        }
    }

    /// Sets the outcome.
    pub fn with_status(mut self, status: StatusId) -> Self {
        self.status_id = Some(status as u8);
        self.status = Some(status.name().into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Event, Process};

    #[test]
    fn outbound_open_serialises_sigma_paths() {
        let mut na = NetworkActivity::new(
            NetworkActivityId::Open,
            9,
            Metadata::vigil("test"),
            Device::default(),
            ConnectionInfo::tcp(Direction::Outbound, 4),
        )
        .with_status(StatusId::Success);
        na.actor = Some(Actor {
            process: Some(Process {
                pid: 5,
                name: "curl".into(),
                ..Default::default()
            }),
            user: None,
        });
        na.src_endpoint = Some(NetworkEndpoint {
            ip: Some("10.0.0.5".into()),
            port: Some(51514),
            hostname: None,
        });
        na.dst_endpoint = Some(NetworkEndpoint {
            ip: Some("192.0.2.10".into()),
            port: Some(4444),
            hostname: None,
        });
        na.unmapped = Some(NetworkUnmapped {
            initiated: Some("true".into()),
            ..Default::default()
        });
        let ev = Event::from_record(&na).unwrap();
        let s = |p: &str| ev.get(p).and_then(|v| v.as_str()).map(str::to_owned);
        let n = |p: &str| ev.get(p).and_then(|v| v.as_u64());
        assert_eq!(ev.class_uid, 4001);
        assert_eq!(n("type_uid"), Some(400101));
        assert_eq!(n("category_uid"), Some(4));
        assert_eq!(s("activity_name").as_deref(), Some("Open"));
        assert_eq!(n("connection_info.direction_id"), Some(2));
        assert_eq!(s("connection_info.protocol_name").as_deref(), Some("tcp"));
        assert_eq!(s("src_endpoint.ip").as_deref(), Some("10.0.0.5"));
        assert_eq!(n("dst_endpoint.port"), Some(4444));
        assert_eq!(s("unmapped.initiated").as_deref(), Some("true"));
        assert_eq!(s("actor.process.name").as_deref(), Some("curl"));
        assert_eq!(s("status").as_deref(), Some("Success"));
        assert!(ev.get("src_endpoint.hostname").is_none());
        assert!(ev.get("connection_info.tcp_flags").is_none());
    }

    #[test]
    fn captions_match_the_schema_enum() {
        let ids = [
            (NetworkActivityId::Unknown, 0, "Unknown"),
            (NetworkActivityId::Open, 1, "Open"),
            (NetworkActivityId::Close, 2, "Close"),
            (NetworkActivityId::Reset, 3, "Reset"),
            (NetworkActivityId::Fail, 4, "Fail"),
            (NetworkActivityId::Refuse, 5, "Refuse"),
            (NetworkActivityId::Traffic, 6, "Traffic"),
            (NetworkActivityId::Listen, 7, "Listen"),
            (NetworkActivityId::Other, 99, "Other"),
        ];
        for (id, value, name) in ids {
            assert_eq!((id as u8, id.name()), (value, name));
        }
        assert_eq!(Direction::Inbound as u8, 1);
        assert_eq!(Direction::Local.name(), "Local");
    }

    #[test]
    fn actorless_event_leaves_actor_out() {
        let na = NetworkActivity::new(
            NetworkActivityId::Refuse,
            1,
            Metadata::vigil("test"),
            Device::default(),
            ConnectionInfo::tcp(Direction::Inbound, 6),
        );
        let ev = Event::from_record(&na).unwrap();
        assert!(ev.get("actor").is_none());
        assert_eq!(ev.get("type_uid").and_then(|v| v.as_u64()), Some(400105));
    }
}
