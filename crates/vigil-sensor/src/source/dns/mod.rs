//! DNS queries and responses over UDP, from a packet socket.
//!
//! These kernels have no kprobes or fentry (shared/KERNEL.md), so the resolver's calls cannot
//! be hooked; every DNS message crosses an interface though, loopback included. One
//! `AF_PACKET`/`SOCK_DGRAM` socket on all interfaces carries a classic BPF filter (`frame`)
//! that passes only IPv4/IPv6 UDP to or from port 53, so the kernel drops everything else before
//! it is copied; what passes is read here, paired (a response with its query, by client
//! address, server address and message id), attributed to the local process holding the
//! client's socket (or the server's, for queries to this host) through `/proc/net/udp{,6}` and
//! `/proc/<pid>/fd`, and handed to the emitter. The socket's own drop counter
//! (`PACKET_STATISTICS`) is added to the source's drops.
//!
//! The asking process is known only while its socket is open: a query answered and its
//! socket closed before this thread reads the query (a local caching resolver can answer in
//! microseconds) has no actor. Responses to the same socket pair with the query and share its
//! actor.
//!
//! Loopback traffic is seen twice by a packet socket (leaving and arriving); only the arriving
//! copy is read. DNS over TCP, DoT and DoH are not seen (their content is a stream or
//! encrypted); their connections are in the TCP capture.

mod frame;

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use vigil_ocsf::Direction;

use super::proc_net::{SocketOwner, parse_table, socket_owners};
use super::{Emitter, Flow, Wake, wait_readable};
use crate::SensorError;
use crate::clock::Clocks;
use crate::normalise::{DnsHeader, DnsObservation, Observation, OwnerFacts};

/// Receive buffer asked for: room for bursts while the thread is busy.
const RECEIVE_BUFFER: libc::c_int = 4 << 20;
/// Queries remembered for pairing at most; the oldest goes first.
const MAX_PENDING: usize = 4096;
/// How long a query waits for its response at most.
const PENDING_MS: i64 = 30_000;
/// Socket owners remembered at most (inode → process).
const MAX_OWNERS: usize = 4096;
/// How often the kernel's drop counter is read when nothing arrives.
const STATS_INTERVAL_MS: i32 = 1000;

/// The filtered, bound packet socket; what it captures goes to [`run`].
#[derive(Debug)]
pub(crate) struct DnsWatch {
    socket: OwnedFd,
    /// What the capability says.
    pub(crate) detail: String,
}

fn step(step: &'static str) -> impl FnOnce(io::Error) -> SensorError {
    move |source| SensorError::Dns { step, source }
}

fn check(result: libc::c_int) -> io::Result<()> {
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn set_option<T>(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` is a live `T` of the size passed; the kernel copies it.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast::<libc::c_void>(),
            libc::socklen_t::try_from(size_of::<T>()).unwrap_or(0),
        )
    })
}

impl DnsWatch {
    /// Opens the socket: created without a protocol (so nothing queues before the filter is
    /// on), filtered, then bound to every protocol on every interface.
    pub(crate) fn open() -> Result<Self, SensorError> {
        // SAFETY: plain syscall; the result is checked.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                0,
            )
        };
        if raw < 0 {
            return Err(step("open a packet socket (needs CAP_NET_RAW)")(
                io::Error::last_os_error(),
            ));
        }
        // SAFETY: `raw` is a fresh descriptor nothing else owns.
        let socket = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut program = frame::filter();
        let fprog = libc::sock_fprog {
            len: u16::try_from(program.len()).unwrap_or(0),
            filter: program.as_mut_ptr(),
        };
        set_option(&socket, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)
            .map_err(step("attach the port-53 filter"))?;
        if set_option(
            &socket,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            &RECEIVE_BUFFER,
        )
        .is_err()
        {
            let _ = set_option(&socket, libc::SOL_SOCKET, libc::SO_RCVBUF, &RECEIVE_BUFFER);
        }
        // SAFETY: an all-zero sockaddr_ll is valid; the fields that matter are set below.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: `addr` is a live sockaddr_ll of the size passed.
        check(unsafe {
            libc::bind(
                socket.as_raw_fd(),
                (&raw const addr).cast::<libc::sockaddr>(),
                libc::socklen_t::try_from(size_of::<libc::sockaddr_ll>()).unwrap_or(0),
            )
        })
        .map_err(step("bind the packet socket"))?;
        Ok(Self {
            socket,
            detail: "DNS over UDP port 53 on every interface (packet socket with a port filter); \
                     DNS over TCP, TLS or HTTPS is not read"
                .to_owned(),
        })
    }
}

/// A query waiting for its response.
#[derive(Debug)]
struct Pending {
    time_ms: i64,
    owner: Option<OwnerFacts>,
}

type PairKey = (SocketAddr, SocketAddr, u16);

/// What the capture thread remembers between packets.
#[derive(Default)]
struct State {
    pending: HashMap<PairKey, Pending>,
    order: VecDeque<(i64, PairKey)>,
    owners: HashMap<u64, SocketOwner>,
    interfaces: HashMap<i32, Option<String>>,
}

impl State {
    fn remember(&mut self, key: PairKey, pending: Pending) {
        while self.order.len() >= MAX_PENDING
            || self
                .order
                .front()
                .is_some_and(|(t, _)| pending.time_ms - t > PENDING_MS)
        {
            let Some((_, old)) = self.order.pop_front() else {
                break;
            };
            self.pending.remove(&old);
        }
        self.order.push_back((pending.time_ms, key));
        self.pending.insert(key, pending);
    }

    fn interface(&mut self, index: i32) -> Option<String> {
        self.interfaces
            .entry(index)
            .or_insert_with(|| interface_name(index))
            .clone()
    }

    /// The process holding the UDP socket bound to `local`, if one does.
    fn owner(&mut self, local: SocketAddr) -> Option<OwnerFacts> {
        let inode = udp_inode(local)?;
        if !self.owners.contains_key(&inode) {
            if self.owners.len() >= MAX_OWNERS {
                self.owners.clear();
            }
            let found = socket_owners(&HashSet::from([inode]));
            self.owners.extend(found);
        }
        self.owners.get(&inode).map(|o| OwnerFacts {
            pid: o.pid,
            tid: None,
            uid: Some(o.uid),
            start_ticks: Some(o.start_ticks),
            comm: Some(o.comm.clone()),
        })
    }
}

fn interface_name(index: i32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    let index = u32::try_from(index).ok()?;
    // SAFETY: `buf` has IF_NAMESIZE bytes, as if_indextoname requires.
    let name = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if name.is_null() {
        return None;
    }
    // SAFETY: on success if_indextoname wrote a NUL-terminated name into `buf`.
    let name = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

/// The inode of the UDP socket bound to `local` (its address, or any address), from
/// `/proc/net/udp` and `/proc/net/udp6` (a dual-stack socket carries IPv4 too).
fn udp_inode(local: SocketAddr) -> Option<u64> {
    let mapped = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let want = mapped(local.ip());
    let mut wildcard = None;
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for entry in parse_table(&text) {
            if entry.local.port() != local.port() || entry.inode == 0 {
                continue;
            }
            let ip = mapped(entry.local.ip());
            if ip == want {
                return Some(entry.inode);
            }
            if ip.is_unspecified() {
                wildcard.get_or_insert(entry.inode);
            }
        }
    }
    wildcard
}

/// The kernel's count of packets the socket dropped since the last call (reading resets it).
fn kernel_drops(socket: &OwnedFd) -> u64 {
    let mut stats = libc::tpacket_stats {
        tp_packets: 0,
        tp_drops: 0,
    };
    let mut len = libc::socklen_t::try_from(size_of::<libc::tpacket_stats>()).unwrap_or(0);
    // SAFETY: `stats` is a live tpacket_stats and `len` its size.
    let result = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            (&raw mut stats).cast::<libc::c_void>(),
            &raw mut len,
        )
    };
    if result < 0 {
        0
    } else {
        u64::from(stats.tp_drops)
    }
}

/// Reads DNS messages until stop is raised or the sink closes.
pub(crate) fn run(watch: DnsWatch, mut emitter: Emitter) {
    let mut state = State::default();
    let mut buf = vec![0u8; 65_536];
    loop {
        match wait_readable(
            Some(watch.socket.as_fd()),
            emitter.stop(),
            STATS_INTERVAL_MS,
        ) {
            Ok(Wake::Stop) => return,
            Ok(Wake::Timeout | Wake::Ready) => {}
            Err(error) => {
                tracing::error!(%error, "DNS capture: poll failed; stopping");
                return;
            }
        }
        loop {
            // SAFETY: an all-zero sockaddr_ll is valid for recvfrom to fill.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut from_len =
                libc::socklen_t::try_from(size_of::<libc::sockaddr_ll>()).unwrap_or(0);
            // SAFETY: `buf` and `from` are live and their sizes passed.
            let n = unsafe {
                libc::recvfrom(
                    watch.socket.as_raw_fd(),
                    buf.as_mut_ptr().cast::<libc::c_void>(),
                    buf.len(),
                    libc::MSG_TRUNC,
                    (&raw mut from).cast::<libc::sockaddr>(),
                    &raw mut from_len,
                )
            };
            if n < 0 {
                let error = io::Error::last_os_error();
                match error.kind() {
                    io::ErrorKind::WouldBlock => break,
                    io::ErrorKind::Interrupted => continue,
                    _ => {
                        tracing::error!(%error, "DNS capture: receive failed; stopping");
                        return;
                    }
                }
            }
            let len = usize::try_from(n).unwrap_or(0).min(buf.len());
            let Some(obs) = observe(&mut state, &from, &buf[..len]) else {
                continue;
            };
            if emitter.emit(&Observation::Dns(Box::new(obs)), Clocks::now()) == Flow::Stop {
                return;
            }
        }
        let drops = kernel_drops(&watch.socket);
        if drops > 0 {
            emitter
                .stats()
                .dropped
                .fetch_add(drops, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(drops, "DNS capture: the packet socket dropped packets");
        }
    }
}

/// One received packet as an observation; `None` for copies that are not read (the leaving
/// copy of loopback traffic, frames for other hosts).
fn observe(state: &mut State, from: &libc::sockaddr_ll, packet: &[u8]) -> Option<DnsObservation> {
    let loopback = from.sll_hatype == libc::ARPHRD_LOOPBACK;
    let leaving = from.sll_pkttype == libc::PACKET_OUTGOING;
    if (loopback && leaving) || from.sll_pkttype == libc::PACKET_OTHERHOST {
        return None;
    }
    let datagram = match frame::parse(packet) {
        Ok(datagram) => datagram,
        Err(error) => {
            tracing::debug!(?error, "DNS capture: a packet past the filter is not UDP");
            return None;
        }
    };
    let time_ms = vigil_ocsf::now_ms();
    let header = DnsHeader::read(datagram.payload);
    let response = header.is_some_and(|h| h.response)
        || (header.is_none() && datagram.src.port() == frame::DNS_PORT);
    let (client, server) = if response {
        (datagram.dst, datagram.src)
    } else {
        (datagram.src, datagram.dst)
    };
    // Who initiated: a query leaving this host, or a response arriving, is this host's.
    let direction = if loopback {
        Direction::Local
    } else if leaving != response {
        Direction::Outbound
    } else {
        Direction::Inbound
    };
    let key = header.map(|h| (client, server, h.id));
    let mut query_time_ms = None;
    let mut owner = None;
    if response && let Some(pending) = key.and_then(|k| state.pending.remove(&k)) {
        query_time_ms = Some(pending.time_ms);
        owner = pending.owner;
    }
    if owner.is_none() {
        owner = match direction {
            Direction::Inbound => state.owner(server),
            Direction::Local => state.owner(client).or_else(|| state.owner(server)),
            _ => state.owner(client),
        };
    }
    if !response && let Some(key) = key {
        state.remember(
            key,
            Pending {
                time_ms,
                owner: owner.clone(),
            },
        );
    }
    Some(DnsObservation {
        time_ms,
        src: datagram.src,
        dst: datagram.dst,
        direction,
        interface: state.interface(from.sll_ifindex),
        message: datagram.payload.to_vec(),
        owner,
        query_time_ms,
    })
}
