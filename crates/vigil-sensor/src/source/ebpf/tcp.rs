//! TCP records → observations, and the parsing of the raw IP/TCP headers that reset records
//! carry.
//!
//! A reset record is written when the kernel answers a segment that matched no socket; its
//! headers are those of the *incoming* segment (see `bpf/tcp.bpf.c`), so the segment's source
//! is the remote peer and its destination is this host.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use vigil_ocsf::Direction;

use super::record::{
    DIR_INBOUND, DIR_OUTBOUND, FLAG_TCP_HDR_FAILED, FLAG_TCP_OWNER, KIND_TCP_RESET, Owner,
    TcpRecord, c_string,
};
use crate::clock::{self, Clocks};
use crate::normalise::{OwnerFacts, TcpChange, TcpObservation, TcpState};

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const IPPROTO_TCP: u8 = 6;

/// The observation a TCP record stands for; `None` when it cannot be read.
pub(crate) fn observe_tcp(record: &TcpRecord, clocks: Clocks, hz: u64) -> Option<TcpObservation> {
    let time_ms = clocks.boot_ns_to_ms(record.hdr.ktime_ns);
    let netns = (record.netns != 0).then_some(record.netns);
    if record.hdr.kind == KIND_TCP_RESET {
        if record.hdr.flags & FLAG_TCP_HDR_FAILED != 0 {
            tracing::debug!("Skipped a reset record whose headers could not be read");
            return None;
        }
        let net_len = usize::from(record.net_hdr_len).min(record.net_hdr.len());
        let tcp_len = usize::from(record.tcp_hdr_len).min(record.tcp_hdr.len());
        let segment = parse_segment(&record.net_hdr[..net_len], &record.tcp_hdr[..tcp_len])?;
        return Some(TcpObservation {
            time_ms,
            change: TcpChange::NoSocketReset {
                reason: record.reset_reason,
                tcp_flags: Some(segment.flags),
            },
            direction: Direction::Inbound,
            local: segment.dst,
            remote: Some(segment.src),
            netns,
            owner: None,
        });
    }
    let change = TcpChange::Transition {
        old: TcpState::from_u8(record.old_state)?,
        new: TcpState::from_u8(record.new_state)?,
        sk_err: record.sk_err,
    };
    let local = socket_addr(record.family, &record.laddr, record.lport)?;
    let remote = socket_addr(record.family, &record.raddr, record.rport)?;
    let owner = (record.hdr.flags & FLAG_TCP_OWNER != 0).then(|| owner(&record.owner, hz));
    Some(TcpObservation {
        time_ms,
        change,
        direction: direction(record.direction),
        local,
        remote: Some(remote),
        netns,
        owner,
    })
}

fn direction(raw: u8) -> Direction {
    match raw {
        DIR_INBOUND => Direction::Inbound,
        DIR_OUTBOUND => Direction::Outbound,
        _ => Direction::Unknown,
    }
}

fn owner(owner: &Owner, hz: u64) -> OwnerFacts {
    let comm = c_string(&owner.comm);
    OwnerFacts {
        pid: owner.pid,
        tid: Some(owner.tid),
        uid: Some(owner.uid),
        start_ticks: (owner.start_boottime_ns != 0)
            .then(|| clock::boot_ns_to_ticks(owner.start_boottime_ns, hz)),
        comm: (!comm.is_empty()).then_some(comm),
    }
}

/// An address of `family` from its 16-byte slot (IPv4 in the first 4 bytes, network order).
fn socket_addr(family: u16, addr: &[u8; 16], port: u16) -> Option<SocketAddr> {
    let ip = match family {
        AF_INET => IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3])),
        AF_INET6 => IpAddr::V6(Ipv6Addr::from(*addr)),
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// What the headers of one TCP segment say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment {
    pub(crate) src: SocketAddr,
    pub(crate) dst: SocketAddr,
    /// The flags byte (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10, …).
    pub(crate) flags: u8,
}

/// Parses an IPv4 or IPv6 header (by its version nibble) and the fixed TCP header. `None` when
/// either is too short, the version is unknown, or the IP header does not carry TCP (IPv6
/// extension headers are not followed).
pub(crate) fn parse_segment(net: &[u8], tcp: &[u8]) -> Option<Segment> {
    let (src_ip, dst_ip) = match net.first()? >> 4 {
        4 => {
            let header: &[u8; 20] = net.get(..20)?.try_into().ok()?;
            if header[9] != IPPROTO_TCP {
                return None;
            }
            let ip = |at: usize| {
                Ipv4Addr::new(header[at], header[at + 1], header[at + 2], header[at + 3])
            };
            (IpAddr::V4(ip(12)), IpAddr::V4(ip(16)))
        }
        6 => {
            let header: &[u8; 40] = net.get(..40)?.try_into().ok()?;
            if header[6] != IPPROTO_TCP {
                return None;
            }
            let ip = |at: usize| -> Option<Ipv6Addr> {
                let bytes: [u8; 16] = header.get(at..at + 16)?.try_into().ok()?;
                Some(Ipv6Addr::from(bytes))
            };
            (IpAddr::V6(ip(8)?), IpAddr::V6(ip(24)?))
        }
        _ => return None,
    };
    let port = |at: usize| -> Option<u16> {
        Some(u16::from_be_bytes(tcp.get(at..at + 2)?.try_into().ok()?))
    };
    Some(Segment {
        src: SocketAddr::new(src_ip, port(0)?),
        dst: SocketAddr::new(dst_ip, port(2)?),
        flags: *tcp.get(13)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TCP header from `sport` to `dport` with `flags`.
    fn tcp_header(sport: u16, dport: u16, flags: u8) -> [u8; 20] {
        let mut h = [0u8; 20];
        h[..2].copy_from_slice(&sport.to_be_bytes());
        h[2..4].copy_from_slice(&dport.to_be_bytes());
        h[12] = 5 << 4; // data offset: 5 words
        h[13] = flags;
        h
    }

    #[test]
    fn ipv4_syn_parses_source_as_the_remote_peer() {
        let mut ip = [0u8; 40];
        ip[0] = 0x45; // version 4, IHL 5
        ip[9] = IPPROTO_TCP;
        ip[12..16].copy_from_slice(&[10, 251, 7, 2]);
        ip[16..20].copy_from_slice(&[10, 251, 7, 1]);
        let segment = parse_segment(&ip, &tcp_header(51000, 9, 0x02));
        assert_eq!(
            segment,
            Some(Segment {
                src: "10.251.7.2:51000"
                    .parse()
                    .unwrap_or_else(|_| unreachable!()),
                dst: "10.251.7.1:9".parse().unwrap_or_else(|_| unreachable!()),
                flags: 0x02,
            })
        );
        // Only 20 bytes of IP header copied is still enough for IPv4.
        assert!(parse_segment(&ip[..20], &tcp_header(1, 2, 0x02)).is_some());
    }

    #[test]
    fn ipv6_syn_parses() {
        let mut ip = [0u8; 40];
        ip[0] = 0x60;
        ip[6] = IPPROTO_TCP; // next header
        ip[23] = 1; // src ::1
        ip[24] = 0xfd;
        ip[39] = 2; // dst fd00::2
        let segment = parse_segment(&ip, &tcp_header(40000, 443, 0x02))
            .unwrap_or_else(|| panic!("not parsed"));
        assert_eq!(segment.src.to_string(), "[::1]:40000");
        assert_eq!(segment.dst.to_string(), "[fd00::2]:443");
    }

    #[test]
    fn short_foreign_or_non_tcp_headers_are_rejected() {
        let mut ip = [0u8; 40];
        ip[0] = 0x45;
        ip[9] = 17; // UDP
        assert_eq!(parse_segment(&ip, &tcp_header(1, 2, 0)), None);
        ip[9] = IPPROTO_TCP;
        assert_eq!(parse_segment(&ip[..19], &tcp_header(1, 2, 0)), None);
        assert_eq!(parse_segment(&ip, &tcp_header(1, 2, 0)[..13]), None);
        ip[0] = 0x65; // IPv6 with only 20 bytes
        assert_eq!(parse_segment(&ip[..20], &tcp_header(1, 2, 0)), None);
        ip[0] = 0x00;
        assert_eq!(parse_segment(&ip, &tcp_header(1, 2, 0)), None);
        assert_eq!(parse_segment(&[], &[]), None);
    }

    #[test]
    fn socket_addresses_come_from_their_family() {
        let mut raw = [0u8; 16];
        raw[..4].copy_from_slice(&[127, 0, 0, 1]);
        assert_eq!(
            socket_addr(AF_INET, &raw, 80)
                .map(|a| a.to_string())
                .as_deref(),
            Some("127.0.0.1:80")
        );
        assert_eq!(
            socket_addr(AF_INET6, &raw, 80)
                .map(|a| a.to_string())
                .as_deref(),
            Some("[7f00:1::]:80")
        );
        assert_eq!(socket_addr(1, &raw, 80), None);
        assert_eq!(direction(DIR_INBOUND), Direction::Inbound);
        assert_eq!(direction(0), Direction::Unknown);
    }
}
