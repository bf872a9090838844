//! The polling thread: reads the socket table every [`POLL_INTERVAL_MS`], diffs it against the
//! previous reading, and reports new and gone listeners and connections.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;

use vigil_ocsf::Direction;

use super::owners::{SocketOwner, own_netns, socket_owners};
use super::table::{SocketEntry, parse_table};
use crate::clock::Clocks;
use crate::normalise::{Observation, OwnerFacts, TcpChange, TcpObservation};
use crate::source::{Emitter, Flow, Wake, wait_readable};

/// How often the table is read.
pub(crate) const POLL_INTERVAL_MS: i32 = 1000;

const TABLES: [&str; 2] = ["/proc/net/tcp", "/proc/net/tcp6"];

/// `TCP_LISTEN`.
const LISTEN: u8 = 10;
/// States of a connection that has been established and not yet fully closed: ESTABLISHED,
/// FIN_WAIT1, FIN_WAIT2, CLOSE_WAIT, LAST_ACK, CLOSING. TIME_WAIT sockets are already closed.
const CONNECTED: [u8; 6] = [1, 4, 5, 8, 9, 11];

/// One reading of the table, reduced to what the diff needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Snapshot {
    /// Listening address → socket inode.
    listeners: HashMap<SocketAddr, u64>,
    /// (local, remote) → socket inode.
    connections: HashMap<(SocketAddr, SocketAddr), u64>,
}

impl Snapshot {
    pub(crate) fn from_entries(entries: &[SocketEntry]) -> Self {
        let mut snapshot = Self::default();
        for entry in entries {
            if entry.state == LISTEN {
                snapshot.listeners.insert(entry.local, entry.inode);
            } else if CONNECTED.contains(&entry.state) {
                snapshot
                    .connections
                    .insert((entry.local, entry.remote), entry.inode);
            }
        }
        snapshot
    }

    /// Reads both tables now; an error only when neither can be read.
    pub(crate) fn read() -> io::Result<Self> {
        let mut entries = Vec::new();
        let mut last_error = None;
        let mut read_any = false;
        for table in TABLES {
            match std::fs::read_to_string(table) {
                Ok(text) => {
                    read_any = true;
                    entries.extend(parse_table(&text));
                }
                Err(error) => last_error = Some(error),
            }
        }
        match (read_any, last_error) {
            (false, Some(error)) => Err(error),
            _ => Ok(Self::from_entries(&entries)),
        }
    }

    fn inodes(&self) -> impl Iterator<Item = u64> + '_ {
        self.listeners
            .values()
            .chain(self.connections.values())
            .copied()
            .filter(|&inode| inode != 0)
    }

    /// Whether something listens on `local`'s port, on its address or on the wildcard.
    fn listens_for(&self, local: &SocketAddr) -> bool {
        self.listeners.keys().any(|l| {
            l.port() == local.port()
                && (l.ip().is_unspecified() || l.ip().to_canonical() == local.ip().to_canonical())
        })
    }
}

/// One difference between two readings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    pub(crate) change: TcpChange,
    pub(crate) direction: Direction,
    pub(crate) local: SocketAddr,
    pub(crate) remote: Option<SocketAddr>,
    pub(crate) inode: u64,
}

/// What changed from `prev` to `next`. A connection is inbound when its local port is listened
/// on (in either reading), else outbound.
pub(crate) fn diff(prev: &Snapshot, next: &Snapshot) -> Vec<Change> {
    let mut changes = Vec::new();
    let listener = |change, local: SocketAddr, inode| Change {
        change,
        direction: Direction::Inbound,
        local,
        remote: None,
        inode,
    };
    for (local, &inode) in &next.listeners {
        if !prev.listeners.contains_key(local) {
            changes.push(listener(TcpChange::Listening, *local, inode));
        }
    }
    for (local, &inode) in &prev.listeners {
        if !next.listeners.contains_key(local) {
            changes.push(listener(TcpChange::ListenerClosed, *local, inode));
        }
    }
    let direction = |local: &SocketAddr| {
        if next.listens_for(local) || prev.listens_for(local) {
            Direction::Inbound
        } else {
            Direction::Outbound
        }
    };
    let connection = |change, (local, remote): (SocketAddr, SocketAddr), inode| Change {
        change,
        direction: direction(&local),
        local,
        remote: Some(remote),
        inode,
    };
    for (key, &inode) in &next.connections {
        if !prev.connections.contains_key(key) {
            changes.push(connection(TcpChange::Connected, *key, inode));
        }
    }
    for (key, &inode) in &prev.connections {
        if !next.connections.contains_key(key) {
            changes.push(connection(TcpChange::Disconnected, *key, inode));
        }
    }
    changes
}

/// Runs until stop is raised or the sink closes. `baseline` is the reading taken at start:
/// what existed then is not reported.
pub(crate) fn run(baseline: Snapshot, mut emitter: Emitter) {
    let netns = own_netns();
    let mut prev = baseline;
    let mut owners: HashMap<u64, SocketOwner> = socket_owners(&prev.inodes().collect());
    let mut failing = false;
    loop {
        match wait_readable(None, emitter.stop(), POLL_INTERVAL_MS) {
            Ok(Wake::Stop) => return,
            Ok(Wake::Ready | Wake::Timeout) => {}
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => {
                tracing::error!(%error, "Waiting between socket table reads failed; polling stops");
                return;
            }
        }
        let next = match Snapshot::read() {
            Ok(next) => {
                failing = false;
                next
            }
            Err(error) => {
                if !failing {
                    tracing::warn!(%error, "Cannot read /proc/net/tcp; retrying");
                }
                failing = true;
                continue;
            }
        };
        let changes = diff(&prev, &next);
        let wanted: HashSet<u64> = changes
            .iter()
            .map(|c| c.inode)
            .filter(|inode| *inode != 0 && !owners.contains_key(inode))
            .collect();
        owners.extend(socket_owners(&wanted));
        let clocks = Clocks::now();
        let time_ms = vigil_ocsf::now_ms();
        for change in changes {
            let owner = owners.get(&change.inode).map(|o| OwnerFacts {
                pid: o.pid,
                tid: None,
                uid: Some(o.uid),
                start_ticks: Some(o.start_ticks),
                comm: Some(o.comm.clone()),
            });
            let obs = Observation::Tcp(TcpObservation {
                time_ms,
                change: change.change,
                direction: change.direction,
                local: change.local,
                remote: change.remote,
                netns,
                owner,
            });
            if emitter.emit(&obs, clocks) == Flow::Stop {
                return;
            }
        }
        let live: HashSet<u64> = next.inodes().collect();
        owners.retain(|inode, _| live.contains(inode));
        prev = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(local: &str, remote: &str, state: u8, inode: u64) -> SocketEntry {
        let addr = |s: &str| s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
        SocketEntry {
            local: addr(local),
            remote: addr(remote),
            state,
            uid: 0,
            inode,
        }
    }

    fn sorted(mut changes: Vec<Change>) -> Vec<(TcpChange, Direction, String)> {
        changes.sort_by_key(|c| (c.local, c.remote));
        changes
            .into_iter()
            .map(|c| (c.change, c.direction, c.local.to_string()))
            .collect()
    }

    #[test]
    fn new_listeners_and_connections_are_reported_once() {
        let before = Snapshot::from_entries(&[entry("0.0.0.0:22", "0.0.0.0:0", LISTEN, 1)]);
        let after = Snapshot::from_entries(&[
            entry("0.0.0.0:22", "0.0.0.0:0", LISTEN, 1),
            entry("127.0.0.1:8080", "0.0.0.0:0", LISTEN, 2),
            entry("10.0.0.1:22", "10.0.0.9:50000", 1, 3), // inbound to the wildcard listener
            entry("10.0.0.1:40000", "192.0.2.1:443", 1, 4), // outbound
            entry("10.0.0.1:40001", "192.0.2.1:443", 2, 5), // SYN_SENT: not yet
            entry("10.0.0.1:40002", "192.0.2.1:443", 6, 0), // TIME_WAIT: already closed
        ]);
        assert_eq!(
            sorted(diff(&before, &after)),
            vec![
                (
                    TcpChange::Connected,
                    Direction::Inbound,
                    "10.0.0.1:22".into()
                ),
                (
                    TcpChange::Connected,
                    Direction::Outbound,
                    "10.0.0.1:40000".into()
                ),
                (
                    TcpChange::Listening,
                    Direction::Inbound,
                    "127.0.0.1:8080".into()
                ),
            ]
        );
        assert!(diff(&after, &after).is_empty());
    }

    #[test]
    fn gone_sockets_are_reported_closed() {
        let before = Snapshot::from_entries(&[
            entry("127.0.0.1:8080", "0.0.0.0:0", LISTEN, 2),
            entry("127.0.0.1:8080", "127.0.0.1:50000", 1, 3),
            entry("127.0.0.1:50000", "127.0.0.1:8080", 1, 4),
        ]);
        let after = Snapshot::from_entries(&[entry("127.0.0.1:50000", "127.0.0.1:8080", 6, 0)]);
        assert_eq!(
            sorted(diff(&before, &after)),
            vec![
                (
                    TcpChange::ListenerClosed,
                    Direction::Inbound,
                    "127.0.0.1:8080".into()
                ),
                (
                    TcpChange::Disconnected,
                    Direction::Inbound,
                    "127.0.0.1:8080".into()
                ),
                (
                    TcpChange::Disconnected,
                    Direction::Outbound,
                    "127.0.0.1:50000".into()
                ),
            ]
        );
    }

    #[test]
    fn dual_stack_listener_covers_mapped_ipv4() {
        let snapshot = Snapshot::from_entries(&[entry("[::]:80", "[::]:0", LISTEN, 1)]);
        let local = "[::ffff:10.0.0.1]:80"
            .parse()
            .unwrap_or_else(|_| unreachable!());
        assert!(snapshot.listens_for(&local));
        let other = "[::ffff:10.0.0.1]:81"
            .parse()
            .unwrap_or_else(|_| unreachable!());
        assert!(!snapshot.listens_for(&other));
    }
}
