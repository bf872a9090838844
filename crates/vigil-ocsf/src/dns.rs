//! DNS Activity (class 4003): queries and responses seen on the wire.

use serde::{Deserialize, Serialize};

use crate::{Actor, ConnectionInfo, Device, Metadata, NetworkEndpoint, class};

/// `activity_id` values of DNS Activity, with their OCSF captions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum DnsActivityId {
    /// The activity is unknown.
    Unknown = 0,
    /// A query was sent.
    Query = 1,
    /// A response was sent.
    Response = 2,
    /// DNS traffic that is neither (a message that could not be read).
    Traffic = 6,
}

impl DnsActivityId {
    /// The OCSF caption.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unknown => "Unknown",
            Self::Query => "Query",
            Self::Response => "Response",
            Self::Traffic => "Traffic",
        }
    }
}

/// The OCSF caption of a DNS response code (`rcode_id`), `None` for codes OCSF does not list
/// (reported as 99, Other).
pub fn rcode_name(rcode: u16) -> Option<&'static str> {
    Some(match rcode {
        0 => "NoError",
        1 => "FormError",
        2 => "ServError",
        3 => "NXDomain",
        4 => "NotImp",
        5 => "Refused",
        6 => "YXDomain",
        7 => "YXRRSet",
        8 => "NXRRSet",
        9 => "NotAuth",
        10 => "NotZone",
        11 => "DSOTYPENI",
        16 => "BADSIG_VERS",
        17 => "BADKEY",
        18 => "BADTIME",
        19 => "BADMODE",
        20 => "BADNAME",
        21 => "BADALG",
        22 => "BADTRUNC",
        23 => "BADCOOKIE",
        _ => return None,
    })
}

/// `dns_query`: the question.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsQuery {
    /// The name asked about, without the root's trailing dot.
    pub hostname: String,
    /// The record type asked for (`A`, `AAAA`, `TXT`, …; `TYPE65280` for unnamed ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
    /// The class (`IN`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// The opcode caption (`Query`, `Status`, `Notify`, `Update`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opcode: Option<String>,
    /// The opcode (0 Query, 1 Inverse Query, 2 Status, 4 Notify, 5 Update, 6 DSO; 99 Other).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opcode_id: Option<u8>,
    /// The message id, which pairs a response with its query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packet_uid: Option<u16>,
}

/// `dns_answer`: one resource record of the answer section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsAnswer {
    /// The record's data in presentation form (`192.0.2.1`, `mail.example.org`, `10 mx.example`).
    pub rdata: String,
    /// The record type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
    /// The class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// Time to live, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u32>,
    /// The message id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packet_uid: Option<u16>,
    /// Header flags of the response (1 Authoritative Answer, 2 Truncated, 3 Recursion Desired,
    /// 4 Recursion Available, 5 Authentic Data, 6 Checking Disabled).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flag_ids: Vec<u8>,
    /// Their captions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
}

/// `unmapped`: what Vigil reports on DNS Activity that OCSF has no attribute for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsUnmapped {
    /// The answers as one string, `;`-separated, as Sysmon's `QueryResults` (Sigma's
    /// `dns_query` field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_results: Option<String>,
    /// The interface the packet was seen on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Why the message could not be read, for Traffic events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub malformed: Option<String>,
    /// The message's size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u32>,
}

/// A DNS Activity event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DnsActivity {
    /// Activity ([`DnsActivityId`]).
    pub activity_id: u8,
    /// Activity caption.
    pub activity_name: String,
    /// Always 4 (Network Activity).
    pub category_uid: u8,
    /// Always 4003.
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
    /// The local process that sent the query or owns the socket the response went to, when
    /// known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor>,
    /// The client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_endpoint: Option<NetworkEndpoint>,
    /// The server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_endpoint: Option<NetworkEndpoint>,
    /// Protocol (udp) and direction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_info: Option<ConnectionInfo>,
    /// The question.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<DnsQuery>,
    /// The answer section of a response.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub answers: Vec<DnsAnswer>,
    /// Response code of a response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rcode_id: Option<u16>,
    /// Its caption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rcode: Option<String>,
    /// When the query was sent (responses whose query was seen), milliseconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_time: Option<i64>,
    /// When the response came (responses), milliseconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_time: Option<i64>,
    /// Outcome: 1 Success (NoError), 2 Failure (another rcode, or unreadable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_id: Option<u8>,
    /// Outcome caption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// What went wrong, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_detail: Option<String>,
    /// Source-specific attributes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unmapped: Option<DnsUnmapped>,
}

impl DnsActivity {
    /// A new event of the given activity; the rest is set by the caller.
    pub fn new(activity: DnsActivityId, time: i64, metadata: Metadata, device: Device) -> Self {
        Self {
            activity_id: activity as u8,
            activity_name: activity.name().into(),
            category_uid: 4,
            class_uid: class::DNS_ACTIVITY,
            type_uid: class::DNS_ACTIVITY * 100 + activity as u32,
            severity_id: 1,
            time,
            metadata,
            device,
            actor: None,
            src_endpoint: None,
            dst_endpoint: None,
            connection_info: None,
            query: None,
            answers: Vec::new(),
            rcode_id: None,
            rcode: None,
            query_time: None,
            response_time: None,
            status_id: None,
            status: None,
            status_detail: None,
            unmapped: None,
        }
    }

    /// Sets the response code: `rcode_id` (99 for codes OCSF does not list, named in
    /// `rcode`), and the status it implies.
    pub fn with_rcode(mut self, rcode: u16) -> Self {
        let (id, name) = match rcode_name(rcode) {
            Some(name) => (rcode, name.to_owned()),
            None => (99, format!("RCODE{rcode}")),
        };
        self.rcode_id = Some(id);
        self.rcode = Some(name);
        let status = if rcode == 0 {
            crate::StatusId::Success
        } else {
            crate::StatusId::Failure
        };
        self.status_id = Some(status as u8);
        self.status = Some(status.name().into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Event;

    #[test]
    fn a_response_serialises_the_ocsf_paths() {
        let mut dns = DnsActivity::new(
            DnsActivityId::Response,
            5,
            Metadata::vigil("packet"),
            Device::default(),
        )
        .with_rcode(3);
        dns.query = Some(DnsQuery {
            hostname: "nope.example".into(),
            r#type: Some("A".into()),
            class: Some("IN".into()),
            opcode: Some("Query".into()),
            opcode_id: Some(0),
            packet_uid: Some(7),
        });
        let ev = Event::from_record(&dns).unwrap();
        let s = |p: &str| ev.get(p).and_then(|v| v.as_str()).map(str::to_owned);
        let n = |p: &str| ev.get(p).and_then(|v| v.as_u64());
        assert_eq!((ev.class_uid, n("type_uid")), (4003, Some(400302)));
        assert_eq!(s("query.hostname").as_deref(), Some("nope.example"));
        assert_eq!(s("query.type").as_deref(), Some("A"));
        assert_eq!(
            (n("rcode_id"), s("rcode").as_deref()),
            (Some(3), Some("NXDomain"))
        );
        assert_eq!(s("status").as_deref(), Some("Failure"));
        assert!(ev.get("answers").is_none());
    }

    #[test]
    fn unlisted_rcodes_are_other() {
        let dns = DnsActivity::new(
            DnsActivityId::Response,
            5,
            Metadata::vigil("packet"),
            Device::default(),
        )
        .with_rcode(12);
        assert_eq!(
            (dns.rcode_id, dns.rcode.as_deref()),
            (Some(99), Some("RCODE12"))
        );
        assert_eq!(rcode_name(0), Some("NoError"));
        assert_eq!(DnsActivityId::Traffic as u8, 6);
    }
}
