//! TCP observations → OCSF Network Activity.
//!
//! | what the source saw                          | activity | direction | status  |
//! |----------------------------------------------|----------|-----------|---------|
//! | → LISTEN (a socket listens)                  | Listen   | Inbound   |         |
//! | LISTEN → CLOSE (it stops)                    | Close    | Inbound   |         |
//! | → SYN_SENT (connect attempt)                 | Open     | Outbound  |         |
//! | SYN_SENT → ESTABLISHED                       | Open     | Outbound  | Success |
//! | → SYN_RECV (inbound handshake completing)    | Open     | Inbound   |         |
//! | SYN_RECV → ESTABLISHED (accepted)            | Open     | Inbound   | Success |
//! | SYN_SENT → CLOSE with ECONNREFUSED           | Refuse   | Outbound  | Failure |
//! | SYN_SENT → CLOSE otherwise (timeout, …)      | Fail     | Outbound  | Failure |
//! | any other → CLOSE                            | Close    | as known  |         |
//! | RST for a segment with no socket             | Refuse   | Inbound   | Failure |
//!
//! `unmapped.tcp_state`/`tcp_old_state` tell the rows sharing an activity apart. Endpoints are
//! oriented initiator → responder: for inbound connections `src_endpoint` is the remote peer.

use std::net::{IpAddr, SocketAddr};

use vigil_ocsf::{
    Actor, ConnectionInfo, Device, Direction, Event, EventError, Metadata, NetworkActivity,
    NetworkActivityId, NetworkEndpoint, NetworkUnmapped, StatusId,
};

use crate::SourceKind;

/// `include/net/tcp_states.h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TcpState {
    Established = 1,
    SynSent = 2,
    SynRecv = 3,
    FinWait1 = 4,
    FinWait2 = 5,
    TimeWait = 6,
    Close = 7,
    CloseWait = 8,
    LastAck = 9,
    Listen = 10,
    Closing = 11,
    NewSynRecv = 12,
}

impl TcpState {
    pub(crate) fn from_u8(state: u8) -> Option<Self> {
        use TcpState::*;
        [
            Established,
            SynSent,
            SynRecv,
            FinWait1,
            FinWait2,
            TimeWait,
            Close,
            CloseWait,
            LastAck,
            Listen,
            Closing,
            NewSynRecv,
        ]
        .into_iter()
        .find(|s| *s as u8 == state)
    }

    /// The kernel's name, as `ss` prints it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Established => "ESTABLISHED",
            Self::SynSent => "SYN_SENT",
            Self::SynRecv => "SYN_RECV",
            Self::FinWait1 => "FIN_WAIT1",
            Self::FinWait2 => "FIN_WAIT2",
            Self::TimeWait => "TIME_WAIT",
            Self::Close => "CLOSE",
            Self::CloseWait => "CLOSE_WAIT",
            Self::LastAck => "LAST_ACK",
            Self::Listen => "LISTEN",
            Self::Closing => "CLOSING",
            Self::NewSynRecv => "NEW_SYN_RECV",
        }
    }
}

/// What happened to a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TcpChange {
    /// The kernel moved it from `old` to `new`; `sk_err` is the socket's pending error.
    Transition {
        old: TcpState,
        new: TcpState,
        sk_err: i32,
    },
    /// The kernel answered a segment that matched no socket with RST.
    NoSocketReset {
        /// `enum sk_rst_reason`.
        reason: u32,
        /// Flags of the incoming segment, when its header was readable.
        tcp_flags: Option<u8>,
    },
    /// Polling found a new listening socket.
    Listening,
    /// Polling found a listening socket gone.
    ListenerClosed,
    /// Polling found a new connection.
    Connected,
    /// Polling found a connection gone.
    Disconnected,
}

/// The process owning a socket, as far as the source knows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct OwnerFacts {
    pub(crate) pid: u32,
    pub(crate) tid: Option<u32>,
    pub(crate) uid: Option<u32>,
    /// Process start in clock ticks since boot.
    pub(crate) start_ticks: Option<u64>,
    pub(crate) comm: Option<String>,
}

/// One TCP observation. `local` is this host's end, `remote` the peer's.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TcpObservation {
    pub(crate) time_ms: i64,
    pub(crate) change: TcpChange,
    pub(crate) direction: Direction,
    pub(crate) local: SocketAddr,
    pub(crate) remote: Option<SocketAddr>,
    /// Network namespace inode, when known.
    pub(crate) netns: Option<u32>,
    pub(crate) owner: Option<OwnerFacts>,
}

/// How one change reads in OCSF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Classified {
    pub(crate) activity: NetworkActivityId,
    pub(crate) status: Option<StatusId>,
    pub(crate) status_code: Option<String>,
    pub(crate) detail: &'static str,
}

const ECONNREFUSED: i32 = 111;
const TCP_FLAG_SYN: u8 = 0x02;
const TCP_FLAG_ACK: u8 = 0x10;

/// The table in the module documentation; `None` for changes that are not reported.
pub(crate) fn classify(change: &TcpChange) -> Option<Classified> {
    use NetworkActivityId as A;
    use TcpState as S;
    let plain = |activity, detail| Classified {
        activity,
        status: None,
        status_code: None,
        detail,
    };
    let failed = |activity, code: Option<String>, detail| Classified {
        activity,
        status: Some(StatusId::Failure),
        status_code: code,
        detail,
    };
    let ok = |detail| Classified {
        activity: A::Open,
        status: Some(StatusId::Success),
        status_code: None,
        detail,
    };
    Some(match *change {
        TcpChange::Transition { old, new, sk_err } => match (old, new) {
            (_, S::Listen) => plain(A::Listen, "listening"),
            (S::Listen, S::Close) => plain(A::Close, "listener closed"),
            (_, S::SynSent) => plain(A::Open, "connect attempt (SYN sent)"),
            (S::SynSent, S::Established) => ok("connection established"),
            (_, S::SynRecv) => plain(A::Open, "inbound connection attempt (handshake completing)"),
            (S::SynRecv, S::Established) => ok("inbound connection accepted"),
            (S::SynSent, S::Close) if sk_err == ECONNREFUSED => failed(
                A::Refuse,
                Some(errno_name(sk_err)),
                "connection refused (RST received)",
            ),
            (S::SynSent, S::Close) if sk_err != 0 => {
                failed(A::Fail, Some(errno_name(sk_err)), "connect failed")
            }
            (S::SynSent, S::Close) => failed(A::Fail, None, "connect abandoned before completion"),
            (S::Close, S::Close) => return None,
            (_, S::Close) => plain(A::Close, "connection closed"),
            _ => return None,
        },
        TcpChange::NoSocketReset { reason, tcp_flags } => {
            let syn = tcp_flags.is_some_and(|f| f & (TCP_FLAG_SYN | TCP_FLAG_ACK) == TCP_FLAG_SYN);
            let detail = if syn {
                "SYN to a closed port answered with RST"
            } else {
                "segment without a socket answered with RST"
            };
            failed(
                A::Refuse,
                Some(reset_reason_name(reason).to_owned()),
                detail,
            )
        }
        TcpChange::Listening => plain(A::Listen, "listening (seen by polling)"),
        TcpChange::ListenerClosed => plain(A::Close, "listener closed (seen by polling)"),
        TcpChange::Connected => ok("connection seen established (polling)"),
        TcpChange::Disconnected => plain(A::Close, "connection gone (seen by polling)"),
    })
}

fn errno_name(errno: i32) -> String {
    format!("{:?}", nix::errno::Errno::from_raw(errno))
}

/// `enum sk_rst_reason` of Linux 6.18 (`include/net/rstreason.h`).
pub(crate) fn reset_reason_name(reason: u32) -> &'static str {
    const NAMES: [&str; 25] = [
        "NOT_SPECIFIED",
        "NO_SOCKET",
        "TCP_INVALID_ACK_SEQUENCE",
        "TCP_RFC7323_PAWS",
        "TCP_TOO_OLD_ACK",
        "TCP_ACK_UNSENT_DATA",
        "TCP_FLAGS",
        "TCP_OLD_ACK",
        "TCP_ABORT_ON_DATA",
        "TCP_TIMEWAIT_SOCKET",
        "INVALID_SYN",
        "TCP_ABORT_ON_CLOSE",
        "TCP_ABORT_ON_LINGER",
        "TCP_ABORT_ON_MEMORY",
        "TCP_STATE",
        "TCP_KEEPALIVE_TIMEOUT",
        "TCP_DISCONNECT_WITH_DATA",
        "MPTCP_RST_EUNSPEC",
        "MPTCP_RST_EMPTCP",
        "MPTCP_RST_ERESOURCE",
        "MPTCP_RST_EPROHIBIT",
        "MPTCP_RST_EWQ2BIG",
        "MPTCP_RST_EBADPERF",
        "MPTCP_RST_EMIDDLEBOX",
        "ERROR",
    ];
    usize::try_from(reason)
        .ok()
        .and_then(|i| NAMES.get(i).copied())
        .unwrap_or("UNKNOWN")
}

fn endpoint(addr: SocketAddr) -> NetworkEndpoint {
    NetworkEndpoint {
        ip: Some(addr.ip().to_canonical().to_string()),
        port: (addr.port() != 0).then_some(addr.port()),
        hostname: None,
    }
}

fn is_v6(addr: &SocketAddr) -> bool {
    matches!(addr.ip().to_canonical(), IpAddr::V6(_))
}

fn flag(value: bool) -> String {
    value.to_string()
}

/// The Network Activity event for `obs`, or `None` when the change is not reported. `actor` is
/// the socket's owner as enrichment found it.
pub(crate) fn network_event(
    obs: &TcpObservation,
    actor: Option<Actor>,
    device: &Device,
    source: SourceKind,
) -> Result<Option<Event>, EventError> {
    let Some(classified) = classify(&obs.change) else {
        return Ok(None);
    };
    let remote = obs
        .remote
        .filter(|r| !(r.ip().is_unspecified() && r.port() == 0));
    let (src, dst) = match obs.direction {
        Direction::Inbound => (remote, Some(obs.local)),
        _ => (Some(obs.local), remote),
    };
    let mut info = ConnectionInfo::tcp(obs.direction, if is_v6(&obs.local) { 6 } else { 4 });
    if let TcpChange::NoSocketReset { tcp_flags, .. } = obs.change {
        info.tcp_flags = tcp_flags;
    }
    let mut record = NetworkActivity::new(
        classified.activity,
        obs.time_ms,
        Metadata::vigil(source.as_str()),
        device.clone(),
        info,
    );
    if let Some(status) = classified.status {
        record = record.with_status(status);
    }
    record.status_code = classified.status_code;
    record.status_detail = Some(classified.detail.to_owned());
    record.actor = actor;
    record.src_endpoint = src.map(endpoint);
    record.dst_endpoint = dst.map(endpoint);
    record.is_src_dst_assignment_known = Some(obs.direction != Direction::Unknown);
    let (state, old_state, reset_reason) = match obs.change {
        TcpChange::Transition { old, new, .. } => (Some(new), Some(old), None),
        TcpChange::NoSocketReset { reason, .. } => (None, None, Some(reason)),
        _ => (None, None, None),
    };
    record.unmapped = Some(NetworkUnmapped {
        initiated: match obs.direction {
            Direction::Outbound => Some(flag(true)),
            Direction::Inbound => Some(flag(false)),
            _ => None,
        },
        source_is_ipv6: src.map(|a| flag(is_v6(&a))),
        destination_is_ipv6: dst.map(|a| flag(is_v6(&a))),
        tcp_state: state.map(|s| s.name().to_owned()),
        tcp_old_state: old_state.map(|s| s.name().to_owned()),
        tcp_reset_reason: reset_reason.map(|r| reset_reason_name(r).to_owned()),
        netns: obs.netns,
    });
    Event::from_record(&record).map(Some)
}

#[cfg(test)]
#[path = "network_tests.rs"]
mod tests;
