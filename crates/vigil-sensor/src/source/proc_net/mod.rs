//! TCP sockets by polling `/proc/net/tcp` and `/proc/net/tcp6`: the fallback when the eBPF TCP
//! program cannot load, and the socket-inode → process join used elsewhere.
//!
//! A documented, lossy fallback. Every [`poller::POLL_INTERVAL_MS`] the socket table is read and
//! compared with the previous reading: new and gone listening sockets, and connections that
//! reached ESTABLISHED and later went away, are reported, with the owning process found through
//! `/proc/<pid>/fd`. It cannot see what lives shorter than the interval, connection attempts
//! that never complete (refused or timed-out connects, SYNs to closed ports, half-open scans),
//! or other network namespaces than the sensor's; event times are those of the reading.
//!
//! `table` parses the files, `owners` joins sockets to processes, `poller` diffs and reports.

mod owners;
mod poller;
mod table;

use std::collections::HashSet;
use std::net::SocketAddr;

pub(crate) use owners::own_netns;
pub use owners::{SocketOwner, socket_owners};
pub(crate) use poller::{Snapshot, run};
pub use table::{SocketEntry, parse_table};

/// What a capability says about this source.
pub(crate) const DETAIL: &str = "polling /proc/net/tcp{,6} every 1 s: lossy; misses sockets \
    shorter-lived than the interval, connection attempts that never complete (refused or \
    timed-out connects, SYNs to closed ports, half-open scans) and other network namespaces";

/// A listening socket of the sensor's network namespace and, if found, its process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListeningSocket {
    pub(crate) local: SocketAddr,
    pub(crate) owner: Option<SocketOwner>,
}

/// The listening sockets right now, with their owners where `/proc` tells.
pub(crate) fn listening_sockets() -> Vec<ListeningSocket> {
    let mut entries = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(table) {
            entries.extend(
                table::parse_table(&text)
                    .into_iter()
                    .filter(|e| e.state == 10),
            );
        }
    }
    let inodes: HashSet<u64> = entries
        .iter()
        .map(|e| e.inode)
        .filter(|&i| i != 0)
        .collect();
    let owners = owners::socket_owners(&inodes);
    entries
        .into_iter()
        .map(|e| ListeningSocket {
            local: e.local,
            owner: owners.get(&e.inode).cloned(),
        })
        .collect()
}
