//! A throw-away network lab for scan tests: a target namespace joined to the host by a veth
//! pair, and scanner namespaces joined to the target by veth pairs of their own. Dropping the
//! lab (also while a test panics) stops every process it started, by pid, and deletes every
//! namespace (which destroys their veth pairs).
//!
//! Addresses: each lab claims a number `<n>` (150..=249) by creating its target namespace
//! `vigil-scan-<n>-t` (`ip netns add` fails for a name that exists, so concurrent labs — test
//! processes run in parallel, and the eBPF sensor of each sees the others' traffic — never
//! share addresses). The host link is `10.253.<n>.0/30` (host `.1`, target `.2`, the only
//! addresses the host itself gets); the scanned address is `10.<n>.0.1`, on the target's
//! loopback; scanner `k` (from 1) is `10.<n>.<k>.2` and up on a `/24` link whose target end is
//! `10.<n>.<k>.1`. Nothing outside these namespaces is ever sent a packet.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::Ipv4Addr;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

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

/// True when every program is on the PATH; otherwise prints which is missing and why the
/// test skips.
pub fn have_tools(test: &str, tools: &[&str]) -> bool {
    for tool in tools {
        let found = std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(tool).is_file()));
        if !found {
            eprintln!("skipping {test}: `{tool}` is not installed (scripts/setup installs it)");
            return false;
        }
    }
    true
}

/// One scanner namespace.
#[derive(Debug)]
pub struct Scanner {
    pub ns: String,
    /// Its first address; more follow it (see [`Lab::add_scanner`]).
    pub addr: Ipv4Addr,
    /// The lab's scanned address.
    pub target: Ipv4Addr,
}

impl Scanner {
    /// The `i`-th address of this scanner (0 is [`Scanner::addr`]).
    pub fn addr_n(&self, i: u8) -> Ipv4Addr {
        let [a, b, c, d] = self.addr.octets();
        Ipv4Addr::new(a, b, c, d + i)
    }
}

/// The lab; see the module documentation.
#[derive(Debug)]
pub struct Lab {
    tag: String,
    /// The lab's number (see the module documentation).
    pub net: u8,
    /// The address scanners scan, on the target's loopback.
    pub target: Ipv4Addr,
    pub target_ns: String,
    host_if: String,
    pub host_addr: Ipv4Addr,
    /// The target's end of the host link (where a server in the target listens).
    pub target_link_addr: Ipv4Addr,
    namespaces: Vec<String>,
    children: Vec<Child>,
}

impl Lab {
    /// Creates the target namespace and its host link, `lo` up with the lab's target address on it.
    pub fn create() -> Self {
        let random = RandomState::new().hash_one(Instant::now());
        let net = (0..100u64)
            .map(|k| u8::try_from(150 + (random + k) % 100).unwrap_or(150))
            .find(|n| {
                ip(&["netns", "add", &format!("vigil-scan-{n}-t")])
                    .status
                    .success()
            })
            .expect("a free scan lab number");
        let tag = net.to_string();
        // The guard exists before the next command, so a failing step still cleans up.
        let mut lab = Self {
            net,
            target: Ipv4Addr::new(10, net, 0, 1),
            target_ns: format!("vigil-scan-{tag}-t"),
            host_if: format!("vgs{tag}h"),
            host_addr: Ipv4Addr::new(10, 253, net, 1),
            target_link_addr: Ipv4Addr::new(10, 253, net, 2),
            namespaces: Vec::new(),
            children: Vec::new(),
            tag,
        };
        let t = lab.target_ns.clone();
        lab.namespaces.push(t.clone());
        // A host link left by a killed run under this number.
        let _ = ip(&["link", "del", &lab.host_if]);
        ip_ok(&[
            "link",
            "add",
            &lab.host_if,
            "type",
            "veth",
            "peer",
            "name",
            "up0",
            "netns",
            &t,
        ]);
        ip_ok(&[
            "addr",
            "add",
            &format!("{}/30", lab.host_addr),
            "dev",
            &lab.host_if,
        ]);
        ip_ok(&["link", "set", &lab.host_if, "up"]);
        ip_ok(&[
            "-n",
            &t,
            "addr",
            "add",
            &format!("{}/30", lab.target_link_addr),
            "dev",
            "up0",
        ]);
        ip_ok(&["-n", &t, "link", "set", "up0", "up"]);
        ip_ok(&["-n", &t, "link", "set", "lo", "up"]);
        ip_ok(&[
            "-n",
            &t,
            "addr",
            "add",
            &format!("{}/32", lab.target),
            "dev",
            "lo",
        ]);
        lab
    }

    /// Adds scanner namespace `k` (1..=250) with `addresses` addresses `10.<n>.<k>.2…`, routed
    /// to the lab's target through the target namespace.
    pub fn add_scanner(&mut self, k: u8, addresses: u8) -> Scanner {
        let ns = format!("vigil-scan-{}-s{k}", self.tag);
        ip_ok(&["netns", "add", &ns]);
        self.namespaces.push(ns.clone());
        let t = self.target_ns.clone();
        let t_if = format!("sc{k}");
        ip_ok(&[
            "-n", &t, "link", "add", &t_if, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ]);
        ip_ok(&[
            "-n",
            &t,
            "addr",
            "add",
            &format!("10.{}.{k}.1/24", self.net),
            "dev",
            &t_if,
        ]);
        ip_ok(&["-n", &t, "link", "set", &t_if, "up"]);
        for i in 0..addresses.max(1) {
            let addr = format!("10.{}.{k}.{}/24", self.net, 2 + u16::from(i));
            ip_ok(&["-n", &ns, "addr", "add", &addr, "dev", "eth0"]);
        }
        ip_ok(&["-n", &ns, "link", "set", "eth0", "up"]);
        ip_ok(&["-n", &ns, "link", "set", "lo", "up"]);
        ip_ok(&[
            "-n",
            &ns,
            "route",
            "add",
            &format!("{}/32", self.target),
            "via",
            &format!("10.{}.{k}.1", self.net),
        ]);
        Scanner {
            ns,
            addr: Ipv4Addr::new(10, self.net, k, 2),
            target: self.target,
        }
    }

    /// A command that runs `program` inside namespace `ns`.
    pub fn command(ns: &str, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, program]);
        cmd
    }

    /// Runs `program args…` inside `ns` to completion.
    pub fn run(ns: &str, program: &str, args: &[&str]) -> Output {
        Self::command(ns, program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|error| panic!("running {program} in {ns}: {error}"))
    }

    /// Starts `program args…` inside `ns` in the background; the lab stops it on drop.
    pub fn spawn(&mut self, ns: &str, program: &str, args: &[&str]) {
        let child = Self::command(ns, program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("starting {program} in {ns}: {error}"));
        self.children.push(child);
    }

    /// Opens TCP listeners on `ports` of the target (OpenBSD `nc -lk`), and waits until they
    /// accept.
    pub fn listen(&mut self, ports: &[u16]) {
        let ns = self.target_ns.clone();
        for port in ports {
            self.spawn(&ns, "nc", &["-lk", &port.to_string()]);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for port in ports {
            loop {
                let sport = format!(":{port}");
                let out = Self::run(&ns, "ss", &["-Htln", "sport", "=", &sport]);
                if !out.stdout.is_empty() {
                    break;
                }
                assert!(Instant::now() < deadline, "nc never listened on {port}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.children {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        // Deleting a namespace destroys the veth ends inside it and with them the pairs; the
        // link delete covers a lab that was never fully set up.
        for ns in self.namespaces.iter().rev() {
            let _ = ip(&["netns", "del", ns]);
        }
        let _ = ip(&["link", "del", &self.host_if]);
    }
}
