//! A throw-away network namespace joined to the host by a veth pair, for tests that need
//! traffic from another host. Dropping it (also while a test panics) deletes the namespace and
//! the veth pair.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::Ipv4Addr;
use std::process::{Command, Output, Stdio};
use std::time::Instant;

/// `vigil-t-<random>` with `10.251.<x>.1/30` on the host end and `10.251.<x>.2/30` inside.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
    host_if: String,
    ns_if: String,
    pub host_addr: Ipv4Addr,
    pub ns_addr: Ipv4Addr,
}

fn ip(args: &[&str]) -> Output {
    Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("running ip {args:?}: {error}"))
}

fn ip_ok(args: &[&str]) {
    let out = ip(args);
    assert!(
        out.status.success(),
        "ip {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    /// Creates the namespace and the veth pair, both ends up, and `lo` up inside.
    pub fn create() -> Self {
        let random = RandomState::new().hash_one(Instant::now());
        let tag = format!("{:06x}", random & 0xff_ffff);
        let x = u8::try_from(1 + (random >> 24) % 250).unwrap_or(1);
        // The guard exists before the first command, so a failing step still cleans up.
        let ns = Self {
            name: format!("vigil-t-{tag}"),
            host_if: format!("vgl{tag}h"),
            ns_if: format!("vgl{tag}n"),
            host_addr: Ipv4Addr::new(10, 251, x, 1),
            ns_addr: Ipv4Addr::new(10, 251, x, 2),
        };
        let host_cidr = format!("{}/30", ns.host_addr);
        let ns_cidr = format!("{}/30", ns.ns_addr);
        ip_ok(&["netns", "add", &ns.name]);
        ip_ok(&[
            "link",
            "add",
            &ns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &ns.ns_if,
            "netns",
            &ns.name,
        ]);
        ip_ok(&["addr", "add", &host_cidr, "dev", &ns.host_if]);
        ip_ok(&["link", "set", &ns.host_if, "up"]);
        ip_ok(&["-n", &ns.name, "addr", "add", &ns_cidr, "dev", &ns.ns_if]);
        ip_ok(&["-n", &ns.name, "link", "set", &ns.ns_if, "up"]);
        ip_ok(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }

    /// Runs `program args…` inside the namespace and returns its output.
    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|error| panic!("running {program} in {}: {error}", self.name))
    }

    /// The inode of the namespace, as eBPF records report it.
    pub fn inode(&self) -> Option<u64> {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(format!("/run/netns/{}", self.name))
            .ok()
            .map(|m| m.ino())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace destroys the veth end inside it and with it the pair; the
        // link delete covers a namespace that was never fully set up.
        let _ = ip(&["netns", "del", &self.name]);
        let _ = ip(&["link", "del", &self.host_if]);
    }
}
