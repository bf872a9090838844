//! Shared helpers of the agent's kernel and system tests: test network namespaces.
#![allow(dead_code)]

use std::fs::{self, File};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::Duration;

use vigil_agent::response::isolate::TABLE;

pub mod system;

/// Runs a command that must succeed.
pub fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace with a veth pair to the host namespace; removed on drop, even when the
/// test fails.
pub struct TestNet {
    pub ns: String,
    pub host_if: String,
    /// Host-side address kept reachable (the "fleet server").
    pub fleet: IpAddr,
    /// Host-side IPv6 fleet address.
    pub fleet6: IpAddr,
    /// Host-side address that isolation must cut off.
    pub other: IpAddr,
}

impl TestNet {
    /// A new namespace. Its number (and so its names and 10.252.N.0/24) is claimed atomically
    /// by `ip netns add`, which fails when the name exists: concurrent tests, or leftovers of
    /// a killed run, never share or delete each other's namespace.
    pub fn new(slot: u32) -> Self {
        let start = (std::process::id() * 4 + slot) % 200;
        let id = (0..200)
            .map(|k| (start + k) % 200 + 20)
            .find(|id| {
                Command::new("ip")
                    .args(["netns", "add", &format!("vigil-iso-{id}")])
                    .output()
                    .is_ok_and(|o| o.status.success())
            })
            .expect("a free test namespace number");
        let ns = format!("vigil-iso-{id}");
        let host_if = format!("vgiso{id}h");
        let ns_if = format!("vgiso{id}n");
        let net = Self {
            ns: ns.clone(),
            host_if: host_if.clone(),
            fleet: format!("10.252.{id}.1").parse().unwrap(),
            fleet6: format!("fd52:{id}::1").parse().unwrap(),
            other: format!("10.252.{id}.3").parse().unwrap(),
        };
        // A veth left by a killed run under this number.
        let _ = Command::new("ip").args(["link", "del", &host_if]).output();
        run(&[
            "ip", "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if, "netns", &ns,
        ]);
        run(&[
            "ip",
            "addr",
            "add",
            &format!("10.252.{id}.1/24"),
            "dev",
            &host_if,
        ]);
        run(&[
            "ip",
            "addr",
            "add",
            &format!("10.252.{id}.3/24"),
            "dev",
            &host_if,
        ]);
        run(&[
            "ip",
            "-6",
            "addr",
            "add",
            &format!("fd52:{id}::1/64"),
            "dev",
            &host_if,
            "nodad",
        ]);
        run(&["ip", "link", "set", &host_if, "up"]);
        run(&[
            "ip",
            "-n",
            &ns,
            "addr",
            "add",
            &format!("10.252.{id}.2/24"),
            "dev",
            &ns_if,
        ]);
        run(&[
            "ip",
            "-n",
            &ns,
            "-6",
            "addr",
            "add",
            &format!("fd52:{id}::2/64"),
            "dev",
            &ns_if,
            "nodad",
        ]);
        run(&["ip", "-n", &ns, "link", "set", &ns_if, "up"]);
        run(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        net
    }

    /// Runs `f` on a fresh thread that has entered the namespace. Panics (before `f` runs) if
    /// the thread is not in a different network namespace from the host's.
    pub fn inside<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/var/run/netns/{}", self.ns);
        std::thread::spawn(move || {
            let host = fs::read_link("/proc/thread-self/ns/net").unwrap();
            let ns = File::open(&path).unwrap();
            // SAFETY: `ns` is an open namespace file; setns only changes this thread's netns.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            let now = fs::read_link("/proc/thread-self/ns/net").unwrap();
            assert_ne!(now, host, "the thread did not leave the host's namespace");
            f()
        })
        .join()
        .unwrap()
    }

    pub fn nft_in_ns(&self, args: &[&str]) -> String {
        let mut full = vec!["ip", "netns", "exec", &self.ns, "nft"];
        full.extend_from_slice(args);
        let out = Command::new("ip").args(&full[1..]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
    }
}

pub fn reachable(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(700)).is_ok()
}

pub fn host_has_vigil_table() -> bool {
    let out = Command::new("nft")
        .args(["list", "tables"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).contains(TABLE)
}
