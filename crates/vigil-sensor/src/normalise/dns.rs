//! DNS messages seen on the wire → OCSF DNS Activity (4003).
//!
//! A query (QR clear) is activity 1, Query; a response is activity 2, Response, with its answer
//! section, response code and, when the sensor saw the query too, the query's time. The
//! message is read with `simple-dns`; one it cannot read is still reported, as activity 6,
//! Traffic, with why (DNS tunnels and exploits send such messages). The header (id, flags,
//! opcode, response code) is read directly, so even those carry it when it is there.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use simple_dns::rdata::RData;
use simple_dns::{Packet, ResourceRecord};
use vigil_ocsf::{
    Actor, ConnectionInfo, Device, Direction, DnsActivity, DnsActivityId, DnsAnswer, DnsQuery,
    DnsUnmapped, Event, EventError, Metadata, NetworkEndpoint,
};

use super::OwnerFacts;

/// Answers reported per response at most (the rest are counted in `unmapped.size` only).
const MAX_ANSWERS: usize = 64;
/// Characters of one answer's data kept at most.
const MAX_RDATA: usize = 1024;
const HEADER_LEN: usize = 12;

/// One DNS message over UDP, as the packet socket saw it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DnsObservation {
    pub(crate) time_ms: i64,
    pub(crate) src: SocketAddr,
    pub(crate) dst: SocketAddr,
    /// Outbound: from this host; Inbound: to it; Local: both ends here (loopback).
    pub(crate) direction: Direction,
    /// The interface it was seen on.
    pub(crate) interface: Option<String>,
    /// The UDP payload.
    pub(crate) message: Vec<u8>,
    /// The process holding the client's socket (or the server's, for queries to this host).
    pub(crate) owner: Option<OwnerFacts>,
    /// For a response whose query was seen: when the query was.
    pub(crate) query_time_ms: Option<i64>,
}

/// The fixed header, read without the rest of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) id: u16,
    pub(crate) response: bool,
    opcode: u8,
    flags: [u8; 2],
}

impl Header {
    pub(crate) fn read(message: &[u8]) -> Option<Self> {
        let bytes = message.get(..HEADER_LEN)?;
        Some(Self {
            id: u16::from_be_bytes([bytes[0], bytes[1]]),
            response: bytes[2] & 0x80 != 0,
            opcode: (bytes[2] >> 3) & 0x0f,
            flags: [bytes[2], bytes[3]],
        })
    }

    fn rcode(self) -> u16 {
        u16::from(self.flags[1] & 0x0f)
    }

    /// OCSF `dns_answer.flag_ids` and captions of the header's flags.
    fn answer_flags(self) -> (Vec<u8>, Vec<String>) {
        let [a, b] = self.flags;
        let set = [
            (a & 0x04 != 0, 1, "Authoritative Answer"),
            (a & 0x02 != 0, 2, "Truncated Response"),
            (a & 0x01 != 0, 3, "Recursion Desired"),
            (b & 0x80 != 0, 4, "Recursion Available"),
            (b & 0x20 != 0, 5, "Authentic Data"),
            (b & 0x10 != 0, 6, "Checking Disabled"),
        ];
        set.into_iter()
            .filter(|(on, _, _)| *on)
            .map(|(_, id, name)| (id, name.to_owned()))
            .unzip()
    }

    /// OCSF `opcode_id` and caption.
    fn opcode(self) -> (u8, &'static str) {
        match self.opcode {
            0 => (0, "Query"),
            1 => (1, "Inverse Query"),
            2 => (2, "Status"),
            4 => (4, "Notify"),
            5 => (5, "Update"),
            6 => (6, "DSO Message"),
            _ => (99, "Other"),
        }
    }
}

/// The mnemonic of a record type (RFC 1035 and successors), `TYPEn` (RFC 3597) for others.
pub(crate) fn type_name(code: u16) -> String {
    let name = match code {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        12 => "PTR",
        13 => "HINFO",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        33 => "SRV",
        35 => "NAPTR",
        39 => "DNAME",
        41 => "OPT",
        43 => "DS",
        46 => "RRSIG",
        47 => "NSEC",
        48 => "DNSKEY",
        50 => "NSEC3",
        52 => "TLSA",
        64 => "SVCB",
        65 => "HTTPS",
        99 => "SPF",
        251 => "IXFR",
        252 => "AXFR",
        255 => "ANY",
        256 => "URI",
        257 => "CAA",
        _ => return format!("TYPE{code}"),
    };
    name.to_owned()
}

fn class_name(code: u16) -> String {
    match code & 0x7fff {
        1 => "IN".to_owned(),
        3 => "CH".to_owned(),
        4 => "HS".to_owned(),
        254 => "NONE".to_owned(),
        255 => "ANY".to_owned(),
        other => format!("CLASS{other}"),
    }
}

/// A name without the root's trailing dot (`example.org`, `.` for the root itself).
fn name_text(name: &impl std::fmt::Display) -> String {
    let text = name.to_string();
    let trimmed = text.strip_suffix('.').unwrap_or(&text);
    if trimmed.is_empty() {
        ".".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// The record's data in presentation form.
fn rdata_text(record: &ResourceRecord<'_>) -> String {
    let mut text = match &record.rdata {
        RData::A(a) => Ipv4Addr::from(a.address).to_string(),
        RData::AAAA(a) => Ipv6Addr::from(a.address).to_string(),
        RData::CNAME(n) => name_text(&n.0),
        RData::NS(n) => name_text(&n.0),
        RData::PTR(n) => name_text(&n.0),
        RData::MX(mx) => format!("{} {}", mx.preference, name_text(&mx.exchange)),
        RData::SRV(srv) => format!(
            "{} {} {} {}",
            srv.priority,
            srv.weight,
            srv.port,
            name_text(&srv.target)
        ),
        RData::SOA(soa) => format!(
            "{} {} {} {} {} {} {}",
            name_text(&soa.mname),
            name_text(&soa.rname),
            soa.serial,
            soa.refresh,
            soa.retry,
            soa.expire,
            soa.minimum
        ),
        RData::TXT(txt) => String::try_from(txt.clone()).unwrap_or_default(),
        other => format!("{other:?}"),
    };
    if text.len() > MAX_RDATA {
        let mut end = MAX_RDATA;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

fn endpoint(addr: SocketAddr) -> NetworkEndpoint {
    let ip = match addr.ip() {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or_else(|| v6.to_string(), |v4| v4.to_string()),
        v4 => v4.to_string(),
    };
    NetworkEndpoint {
        ip: Some(ip),
        port: Some(addr.port()),
        hostname: None,
    }
}

/// The DNS Activity of one observed message.
pub(crate) fn dns_event(
    obs: &DnsObservation,
    actor: Option<Actor>,
    device: &Device,
) -> Result<Event, EventError> {
    let header = Header::read(&obs.message);
    let parsed = Packet::parse(&obs.message);
    let activity = match (&parsed, header) {
        (Ok(_), Some(h)) if h.response => DnsActivityId::Response,
        (Ok(_), Some(_)) => DnsActivityId::Query,
        _ => DnsActivityId::Traffic,
    };
    let mut record = DnsActivity::new(
        activity,
        obs.time_ms,
        Metadata::vigil("packet"),
        device.clone(),
    );
    record.actor = actor;
    // The client is the source: the sender of a query, the receiver of a response.
    let (client, server) = match header {
        Some(h) if h.response => (obs.dst, obs.src),
        _ => (obs.src, obs.dst),
    };
    record.src_endpoint = Some(endpoint(client));
    record.dst_endpoint = Some(endpoint(server));
    let ip_version = match client.ip() {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => 6,
        _ => 4,
    };
    record.connection_info = Some(ConnectionInfo {
        direction_id: obs.direction as u8,
        direction: Some(obs.direction.name().into()),
        protocol_num: Some(17),
        protocol_name: Some("udp".into()),
        protocol_ver_id: Some(ip_version),
        tcp_flags: None,
    });
    let mut unmapped = DnsUnmapped {
        interface: obs.interface.clone(),
        size: u32::try_from(obs.message.len()).ok(),
        ..Default::default()
    };
    // A message that parses has a header: the parse reads it too.
    match (parsed, header) {
        (Ok(packet), Some(header)) => {
            if let Some(question) = packet.questions.first() {
                let (opcode_id, opcode) = header.opcode();
                record.query = Some(DnsQuery {
                    hostname: name_text(&question.qname),
                    r#type: Some(type_name(question.qtype.into())),
                    class: Some(class_name(question.qclass.into())),
                    opcode: Some(opcode.to_owned()),
                    opcode_id: Some(opcode_id),
                    packet_uid: Some(header.id),
                });
            }
            if header.response {
                record = record.with_rcode(header.rcode());
                record.query_time = obs.query_time_ms;
                record.response_time = Some(obs.time_ms);
                let (flag_ids, flags) = header.answer_flags();
                record.answers = packet
                    .answers
                    .iter()
                    .take(MAX_ANSWERS)
                    .map(|rr| DnsAnswer {
                        rdata: rdata_text(rr),
                        r#type: Some(type_name(rr.rdata.type_code().into())),
                        class: Some(class_name(rr.class as u16)),
                        ttl: Some(rr.ttl),
                        packet_uid: Some(header.id),
                        flag_ids: flag_ids.clone(),
                        flags: flags.clone(),
                    })
                    .collect();
                if !record.answers.is_empty() {
                    let results: Vec<&str> =
                        record.answers.iter().map(|a| a.rdata.as_str()).collect();
                    unmapped.query_results = Some(results.join(";"));
                }
            }
        }
        (parsed, header) => {
            let why = match (parsed, header) {
                (Err(error), Some(_)) => format!("not a readable DNS message: {error}"),
                _ => "shorter than a DNS header".to_owned(),
            };
            record.status_id = Some(vigil_ocsf::StatusId::Failure as u8);
            record.status = Some(vigil_ocsf::StatusId::Failure.name().into());
            record.status_detail = Some(why.clone());
            unmapped.malformed = Some(why);
        }
    }
    record.unmapped = Some(unmapped);
    Event::from_record(&record)
}

#[cfg(test)]
#[path = "dns_tests.rs"]
mod tests;
