//! What the packet socket hands over: an IPv4 or IPv6 packet (the socket is `SOCK_DGRAM`, so
//! the link-layer header is already gone) carrying a UDP datagram to or from port 53, and the
//! classic BPF program that lets only those through the kernel.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The DNS port.
pub(crate) const DNS_PORT: u16 = 53;

const ETH_P_IP: u32 = 0x0800;
const ETH_P_IPV6: u32 = 0x86DD;
const IPPROTO_UDP: u32 = 17;
const UDP_HEADER: usize = 8;
/// Bytes of a packet kept: a whole UDP datagram.
const SNAP_LEN: u32 = 65_535;
const IPV6_HEADER: usize = 40;

/// One UDP datagram to or from port 53.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Datagram<'a> {
    pub(crate) src: SocketAddr,
    pub(crate) dst: SocketAddr,
    /// The UDP payload: the DNS message (cut short when the packet was a first fragment).
    pub(crate) payload: &'a [u8],
}

/// Why a packet that passed the filter is not a readable UDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// Shorter than its headers say.
    Truncated,
    /// Not IPv4/IPv6 UDP (the filter should not have let it through).
    NotUdp,
}

/// Reads the IP and UDP headers of `packet`, which starts at the IP header.
pub(crate) fn parse(packet: &[u8]) -> Result<Datagram<'_>, FrameError> {
    let version = packet.first().ok_or(FrameError::Truncated)? >> 4;
    let (src, dst, udp) = match version {
        4 => {
            let ihl = usize::from(packet[0] & 0x0f) * 4;
            if ihl < 20 || packet.len() < ihl {
                return Err(FrameError::Truncated);
            }
            if u32::from(packet[9]) != IPPROTO_UDP {
                return Err(FrameError::NotUdp);
            }
            let total = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
            let end = total.clamp(ihl, packet.len());
            let addr = |at: usize| {
                IpAddr::V4(Ipv4Addr::new(
                    packet[at],
                    packet[at + 1],
                    packet[at + 2],
                    packet[at + 3],
                ))
            };
            (addr(12), addr(16), &packet[ihl..end])
        }
        6 => {
            if packet.len() < IPV6_HEADER {
                return Err(FrameError::Truncated);
            }
            // Extension headers are not followed: DNS over UDP does not use them.
            if u32::from(packet[6]) != IPPROTO_UDP {
                return Err(FrameError::NotUdp);
            }
            let payload_len = usize::from(u16::from_be_bytes([packet[4], packet[5]]));
            let end = (IPV6_HEADER + payload_len).min(packet.len());
            let addr = |at: usize| {
                let mut bytes = [0u8; 16];
                bytes.copy_from_slice(&packet[at..at + 16]);
                IpAddr::V6(Ipv6Addr::from(bytes))
            };
            (addr(8), addr(24), &packet[IPV6_HEADER..end])
        }
        _ => return Err(FrameError::NotUdp),
    };
    if udp.len() < UDP_HEADER {
        return Err(FrameError::Truncated);
    }
    let port = |at: usize| u16::from_be_bytes([udp[at], udp[at + 1]]);
    let udp_len = usize::from(port(4)).clamp(UDP_HEADER, udp.len());
    Ok(Datagram {
        src: SocketAddr::new(src, port(0)),
        dst: SocketAddr::new(dst, port(2)),
        payload: &udp[UDP_HEADER..udp_len],
    })
}

const fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

const fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// The socket filter: IPv4 (not a later fragment) or IPv6 UDP with source or destination port
/// 53, whole; everything else is dropped in the kernel. Offsets are from the IP header.
pub(crate) fn filter() -> Vec<libc::sock_filter> {
    use libc::{
        BPF_ABS, BPF_B, BPF_H, BPF_IND, BPF_JEQ, BPF_JMP, BPF_JSET, BPF_K, BPF_LD, BPF_LDX,
        BPF_MSH, BPF_RET, BPF_W,
    };
    let protocol = (libc::SKF_AD_OFF + libc::SKF_AD_PROTOCOL) as u32;
    let port = u32::from(DNS_PORT);
    vec![
        /* 0 */ stmt(BPF_LD | BPF_W | BPF_ABS, protocol),
        /* 1 */ jump(BPF_JMP | BPF_JEQ | BPF_K, ETH_P_IP, 0, 9), // → 11
        /* 2 */ stmt(BPF_LD | BPF_B | BPF_ABS, 9),
        /* 3 */ jump(BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_UDP, 0, 15), // → 19
        /* 4 */ stmt(BPF_LD | BPF_H | BPF_ABS, 6),
        /* 5 */
        jump(BPF_JMP | BPF_JSET | BPF_K, 0x1fff, 13, 0), // later fragment → 19
        /* 6 */ stmt(BPF_LDX | BPF_B | BPF_MSH, 0),
        /* 7 */ stmt(BPF_LD | BPF_H | BPF_IND, 0),
        /* 8 */ jump(BPF_JMP | BPF_JEQ | BPF_K, port, 9, 0), // → 18
        /* 9 */ stmt(BPF_LD | BPF_H | BPF_IND, 2),
        /* 10 */ jump(BPF_JMP | BPF_JEQ | BPF_K, port, 7, 8), // → 18 / 19
        /* 11 */ jump(BPF_JMP | BPF_JEQ | BPF_K, ETH_P_IPV6, 0, 7), // → 19
        /* 12 */ stmt(BPF_LD | BPF_B | BPF_ABS, 6),
        /* 13 */ jump(BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_UDP, 0, 5), // → 19
        /* 14 */ stmt(BPF_LD | BPF_H | BPF_ABS, 40),
        /* 15 */ jump(BPF_JMP | BPF_JEQ | BPF_K, port, 2, 0), // → 18
        /* 16 */ stmt(BPF_LD | BPF_H | BPF_ABS, 42),
        /* 17 */ jump(BPF_JMP | BPF_JEQ | BPF_K, port, 0, 1), // → 18 / 19
        /* 18 */ stmt(BPF_RET | BPF_K, SNAP_LEN),
        /* 19 */ stmt(BPF_RET | BPF_K, 0),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
        let mut udp = Vec::new();
        udp.extend_from_slice(&src_port.to_be_bytes());
        udp.extend_from_slice(&dst_port.to_be_bytes());
        udp.extend_from_slice(&u16::try_from(8 + payload.len()).unwrap().to_be_bytes());
        udp.extend_from_slice(&[0, 0]);
        udp.extend_from_slice(payload);
        udp
    }

    fn ipv4(udp: &[u8]) -> Vec<u8> {
        let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
        ip[2..4].copy_from_slice(&u16::try_from(20 + udp.len()).unwrap().to_be_bytes());
        ip.extend_from_slice(&[10, 0, 0, 5, 192, 0, 2, 53]);
        ip.extend_from_slice(udp);
        ip
    }

    #[test]
    fn ipv4_and_ipv6_datagrams_are_read() {
        let packet = ipv4(&udp(40000, 53, b"msg"));
        let d = parse(&packet).unwrap();
        assert_eq!(d.src, "10.0.0.5:40000".parse().unwrap());
        assert_eq!(d.dst, "192.0.2.53:53".parse().unwrap());
        assert_eq!(d.payload, b"msg");

        let body = udp(53, 5353, b"answer");
        let mut v6 = vec![0x60, 0, 0, 0];
        v6.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
        v6.extend_from_slice(&[17, 64]);
        v6.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        v6.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        v6.extend_from_slice(&body);
        // Trailing link-layer padding is not payload.
        v6.extend_from_slice(&[0, 0]);
        let d = parse(&v6).unwrap();
        assert_eq!(d.src, "[::1]:53".parse().unwrap());
        assert_eq!(d.dst.port(), 5353);
        assert_eq!(d.payload, b"answer");
    }

    #[test]
    fn short_and_foreign_packets_are_errors() {
        assert_eq!(parse(&[]), Err(FrameError::Truncated));
        assert_eq!(parse(&[0x45, 0, 0]), Err(FrameError::Truncated));
        let mut tcp = ipv4(&udp(1, 53, b""));
        tcp[9] = 6;
        assert_eq!(parse(&tcp), Err(FrameError::NotUdp));
        let packet = ipv4(&udp(1, 53, b""));
        assert_eq!(parse(&packet[..24]), Err(FrameError::Truncated));
        assert_eq!(parse(&[0x20; 40]), Err(FrameError::NotUdp));
    }

    #[test]
    fn every_filter_jump_lands_inside_the_program() {
        let program = filter();
        for (i, insn) in program.iter().enumerate() {
            let code = u32::from(insn.code);
            if code & 0x07 == libc::BPF_JMP {
                for skip in [insn.jt, insn.jf] {
                    assert!(i + 1 + usize::from(skip) < program.len(), "insn {i}");
                }
            }
        }
        assert_eq!(
            u32::from(program.last().unwrap().code),
            libc::BPF_RET | libc::BPF_K
        );
    }
}
