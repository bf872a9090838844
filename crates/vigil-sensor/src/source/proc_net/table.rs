//! `/proc/net/tcp` and `/proc/net/tcp6`: the kernel's TCP socket table of the reader's network
//! namespace, one socket per line.
//!
//! ```text
//!   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
//!    0: 0100007F:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 …
//! ```
//! Addresses are the raw `__be32` words printed as host-order hex (`%08X`), so on a
//! little-endian host 127.0.0.1 reads `0100007F`; IPv6 addresses are four such words. Ports are
//! host-order hex, the state is `TCP_*` in hex.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// One line of the table (the UDP tables `/proc/net/udp{,6}` share the format).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketEntry {
    /// Local address.
    pub local: SocketAddr,
    /// Remote address (unspecified for listeners and unconnected UDP sockets).
    pub remote: SocketAddr,
    /// `TCP_*` of `include/net/tcp_states.h`.
    pub state: u8,
    /// Owner uid.
    pub uid: u32,
    /// The socket's inode: the `socket:[N]` links in `/proc/<pid>/fd` name it. 0 for sockets
    /// no file refers to (TIME_WAIT, not yet accepted).
    pub inode: u64,
}

/// Parses a whole table; the header and malformed lines are skipped.
pub fn parse_table(text: &str) -> Vec<SocketEntry> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<SocketEntry> {
    let mut fields = line.split_whitespace();
    let _slot = fields.next()?.strip_suffix(':')?;
    let local = parse_endpoint(fields.next()?)?;
    let remote = parse_endpoint(fields.next()?)?;
    let state = u8::from_str_radix(fields.next()?, 16).ok()?;
    // tx_queue:rx_queue, tr:tm->when, retrnsmt
    let mut fields = fields.skip(3);
    let uid = fields.next()?.parse().ok()?;
    let _timeout = fields.next()?;
    let inode = fields.next()?.parse().ok()?;
    Some(SocketEntry {
        local,
        remote,
        state,
        uid,
        inode,
    })
}

fn parse_endpoint(text: &str) -> Option<SocketAddr> {
    let (addr, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let hex = addr.get(8 * i..8 * i + 8)?;
        Some(u32::from_str_radix(hex, 16).ok()?.to_ne_bytes())
    };
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[4 * i..4 * i + 4].copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a host-order hex word the way the kernel prints the network-order address.
    fn word(bytes: [u8; 4]) -> String {
        format!("{:08X}", u32::from_ne_bytes(bytes))
    }

    #[test]
    fn ipv4_table_parses_listeners_and_connections() {
        let text = format!(
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
             \x20  0: {}:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000   106        0 5544 1 000000002981d8b7 100 0 0 10 0\n\
             \x20  1: {}:D431 {}:0050 01 00000000:00000000 00:00000000 00000000  1000        0 777 1 0 20 4 30 10 -1\n\
             garbage\n",
            word([127, 0, 0, 1]),
            word([10, 0, 0, 5]),
            word([192, 0, 2, 10]),
        );
        let entries = parse_table(&text);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].local.to_string(), "127.0.0.1:3000");
        assert_eq!(entries[0].remote.to_string(), "0.0.0.0:0");
        assert_eq!(
            (entries[0].state, entries[0].uid, entries[0].inode),
            (10, 106, 5544)
        );
        assert_eq!(entries[1].local.to_string(), "10.0.0.5:54321");
        assert_eq!(entries[1].remote.to_string(), "192.0.2.10:80");
        assert_eq!(
            (entries[1].state, entries[1].uid, entries[1].inode),
            (1, 1000, 777)
        );
    }

    #[test]
    fn ipv6_addresses_are_four_words() {
        let loopback = format!(
            "{}{}{}{}",
            word([0; 4]),
            word([0; 4]),
            word([0; 4]),
            word([0, 0, 0, 1])
        );
        let mapped = format!(
            "{}{}{}{}",
            word([0; 4]),
            word([0; 4]),
            word([0, 0, 0xff, 0xff]),
            word([127, 0, 0, 1])
        );
        let line = format!(
            "   0: {loopback}:1F90 {mapped}:C350 0A 00000000:00000000 00:00000000 00000000     0        0 42 1 0 100 0 0 10 0"
        );
        let entries = parse_table(&line);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].local.to_string(), "[::1]:8080");
        assert_eq!(entries[0].remote.to_string(), "[::ffff:127.0.0.1]:50000");
    }

    #[test]
    fn malformed_endpoints_are_rejected() {
        assert_eq!(parse_endpoint("0100007F"), None);
        assert_eq!(parse_endpoint("0100007:0050"), None);
        assert_eq!(parse_endpoint("0100007F:GGGG"), None);
        assert_eq!(parse_endpoint("XX00007F:0050"), None);
    }

    #[test]
    fn this_hosts_tables_parse() {
        for path in ["/proc/net/tcp", "/proc/net/tcp6"] {
            let Ok(text) = std::fs::read_to_string(path) else {
                continue;
            };
            let lines = text.lines().count().saturating_sub(1);
            assert_eq!(parse_table(&text).len(), lines, "{path}");
        }
    }
}
