//! Which process holds a socket: the `socket:[<inode>]` links under `/proc/<pid>/fd`.
//!
//! A full walk reads one link per open file of every process, so it is bounded (at most
//! [`MAX_PROCESSES`] processes) and stops as soon as every wanted inode is found. Processes
//! whose fds we cannot read (other pid namespaces, some init processes) stay unknown.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::os::unix::fs::MetadataExt;

use crate::enrich::procfs;

/// Processes examined per walk at most.
const MAX_PROCESSES: usize = 16_384;

/// The process holding a socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketOwner {
    /// Process id.
    pub pid: u32,
    /// Real uid.
    pub uid: u32,
    /// Start in clock ticks since boot.
    pub start_ticks: u64,
    /// Command name.
    pub comm: String,
}

/// The owners of `inodes` that could be found. When several processes share a socket (a fork
/// after `listen`), the lowest pid, usually the one that opened it, wins.
pub fn socket_owners(inodes: &HashSet<u64>) -> HashMap<u64, SocketOwner> {
    let mut found = HashMap::new();
    if inodes.is_empty() {
        return found;
    }
    let mut pids = procfs::list_pids();
    pids.sort_unstable();
    for pid in pids.into_iter().take(MAX_PROCESSES) {
        let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        let mut owner = None;
        for fd in fds.filter_map(Result::ok) {
            let Some(inode) = fs::read_link(fd.path())
                .ok()
                .and_then(|target| socket_inode(&target.to_string_lossy()))
            else {
                continue;
            };
            if !inodes.contains(&inode) || found.contains_key(&inode) {
                continue;
            }
            if owner.is_none() {
                owner = read_owner(pid);
            }
            if let Some(owner) = &owner {
                found.insert(inode, owner.clone());
            }
        }
        if found.len() == inodes.len() {
            break;
        }
    }
    found
}

fn read_owner(pid: u32) -> Option<SocketOwner> {
    let stat = procfs::read_stat(pid)?;
    let uid = procfs::read_ids(pid).map_or(0, |ids| ids.uid);
    Some(SocketOwner {
        pid,
        uid,
        start_ticks: stat.start_ticks,
        comm: stat.comm,
    })
}

/// `socket:[12345]` → 12345.
pub(crate) fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The inode number of this process's network namespace, the one `/proc/net` shows.
pub(crate) fn own_netns() -> Option<u32> {
    let inode = fs::metadata("/proc/self/ns/net").ok()?.ino();
    u32::try_from(inode).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_links_name_inodes() {
        assert_eq!(socket_inode("socket:[12345]"), Some(12345));
        assert_eq!(socket_inode("pipe:[12345]"), None);
        assert_eq!(socket_inode("socket:[x]"), None);
        assert_eq!(socket_inode("/dev/null"), None);
    }

    #[test]
    fn our_own_listener_is_found() -> std::io::Result<()> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let text = fs::read_to_string("/proc/net/tcp")?;
        let inode = super::super::table::parse_table(&text)
            .into_iter()
            .find(|e| e.local.port() == port)
            .map(|e| e.inode);
        let Some(inode) = inode else {
            panic!("listener on {port} not in /proc/net/tcp");
        };
        let owners = socket_owners(&HashSet::from([inode]));
        assert_eq!(owners.get(&inode).map(|o| o.pid), Some(std::process::id()));
        assert!(own_netns().is_some());
        Ok(())
    }
}
