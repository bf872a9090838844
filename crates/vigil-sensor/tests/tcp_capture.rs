//! Kernel tests of TCP capture over real sockets: on loopback, and from another network
//! namespace through a veth pair. Traffic goes only to 127.0.0.0/8 and to the namespace the
//! test creates (and always deletes).
//!
//! They need root; without it each test says so and passes. eBPF sees every socket of every
//! namespace, so each test finds its events by the ports and addresses it created.

mod common;

use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};

use common::netns::Netns;
use common::*;
use vigil_sensor::vigil_ocsf::Event;
use vigil_sensor::vigil_ocsf::fieldmap::{FieldMaps, LogSource};
use vigil_sensor::{SourceKind, SourceMode};

fn is_tcp(event: &Event) -> bool {
    event.class_uid == 4001 && u64_at(event, "connection_info.protocol_num") == Some(6)
}

fn port(event: &Event, end: &str) -> Option<u16> {
    u64_at(event, &format!("{end}.port")).and_then(|p| u16::try_from(p).ok())
}

/// A TCP event in `state` (`unmapped.tcp_state`) to destination port `dport`.
fn state_to(state: &'static str, dport: u16) -> impl Fn(&Event) -> bool {
    move |e| {
        is_tcp(e)
            && str_at(e, "unmapped.tcp_state") == Some(state)
            && port(e, "dst_endpoint") == Some(dport)
    }
}

/// A TCP event from `old` to `new` to destination port `dport`.
fn transition_to(old: &'static str, new: &'static str, dport: u16) -> impl Fn(&Event) -> bool {
    move |e| state_to(new, dport)(e) && str_at(e, "unmapped.tcp_old_state") == Some(old)
}

/// A reset for a segment with no socket, to destination port `dport`.
fn reset_to(dport: u16) -> impl Fn(&Event) -> bool {
    move |e| {
        is_tcp(e)
            && str_at(e, "unmapped.tcp_reset_reason").is_some()
            && port(e, "dst_endpoint") == Some(dport)
    }
}

fn actor_pid(event: &Event) -> Option<u32> {
    u64_at(event, "actor.process.pid").and_then(|p| u32::try_from(p).ok())
}

fn assert_direction(event: &Event, inbound: bool) {
    let (id, name, initiated) = if inbound {
        (1, "Inbound", "false")
    } else {
        (2, "Outbound", "true")
    };
    assert_eq!(
        u64_at(event, "connection_info.direction_id"),
        Some(id),
        "{event:?}"
    );
    assert_eq!(str_at(event, "connection_info.direction"), Some(name));
    assert_eq!(str_at(event, "unmapped.initiated"), Some(initiated));
    assert_eq!(str_at(event, "connection_info.protocol_name"), Some("tcp"));
}

/// A free loopback port: bound, then released.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("local_addr: {e}"))
        .port()
}

#[test]
fn loopback_connect_and_accept_are_seen_from_both_ends() {
    skip_unless_root!();
    let mut h = Harness::start(SourceMode::Ebpf);
    let me = std::process::id();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let lport = listener.local_addr().map(|a| a.port()).unwrap_or_default();

    // The client is another process: the softirq that completes the handshake on loopback runs
    // in *its* context, so attributing SYN_RECV to `current` would name nc, not us.
    let mut nc = spawn(Command::new("nc").args(["-z", "-w", "2", "127.0.0.1", &lport.to_string()]));
    let nc_pid = nc.id();
    let (accepted, peer) = listener.accept().unwrap_or_else(|e| panic!("accept: {e}"));
    let _ = nc.wait();
    drop(accepted);
    let cport = peer.port();

    let events = h.wait_for_all(&[
        ("listen", &|e: &Event| {
            is_tcp(e)
                && u64_at(e, "activity_id") == Some(7)
                && port(e, "dst_endpoint") == Some(lport)
        }),
        ("SYN_SENT", &state_to("SYN_SENT", lport)),
        (
            "outbound ESTABLISHED",
            &transition_to("SYN_SENT", "ESTABLISHED", lport),
        ),
        ("SYN_RECV", &state_to("SYN_RECV", lport)),
        (
            "inbound ESTABLISHED",
            &transition_to("SYN_RECV", "ESTABLISHED", lport),
        ),
        ("client close", &|e: &Event| {
            is_tcp(e)
                && u64_at(e, "activity_id") == Some(2)
                && port(e, "src_endpoint") == Some(cport)
                && str_at(e, "connection_info.direction") == Some("Outbound")
        }),
    ]);
    let [listen, syn_sent, established, syn_recv, accepted, closed] = &events[..] else {
        unreachable!()
    };

    assert_eq!(str_at(listen, "metadata.log_name"), Some("ebpf"));
    assert_eq!(str_at(listen, "dst_endpoint.ip"), Some("127.0.0.1"));
    assert_eq!(
        actor_pid(listen),
        Some(me),
        "listen() runs in the owner's syscall"
    );

    for outbound in [syn_sent, established, closed] {
        assert_direction(outbound, false);
        assert_eq!(
            actor_pid(outbound),
            Some(nc_pid),
            "the connecting process: {outbound:?}"
        );
        // Named after its image (a path, not just comm). When the socket is closed as nc exits,
        // only the recently-exited cache knows the path, and under load the close can be
        // drained before that entry exists (a known enrichment race, tracked in the issue): the
        // close must still name the process, its path is checked when present.
        let path = str_at(outbound, "actor.process.file.path");
        if std::ptr::eq(outbound, closed) {
            assert!(path.is_none_or(|p| p.ends_with("/nc")), "{outbound:?}");
            assert_eq!(
                str_at(outbound, "actor.process.name"),
                Some("nc"),
                "{outbound:?}"
            );
        } else {
            assert!(path.is_some_and(|p| p.ends_with("/nc")), "{outbound:?}");
        }
        assert_eq!(str_at(outbound, "dst_endpoint.ip"), Some("127.0.0.1"));
    }
    assert_eq!(u64_at(syn_sent, "activity_id"), Some(1));
    assert_eq!(u64_at(established, "activity_id"), Some(1));
    assert_eq!(str_at(established, "status"), Some("Success"));
    assert_eq!(port(established, "src_endpoint"), Some(cport));

    for inbound in [syn_recv, accepted] {
        assert_direction(inbound, true);
        assert_eq!(u64_at(inbound, "activity_id"), Some(1));
        assert_eq!(str_at(inbound, "src_endpoint.ip"), Some("127.0.0.1"));
        assert_eq!(
            port(inbound, "src_endpoint"),
            Some(cport),
            "src is the remote client"
        );
        assert_eq!(str_at(inbound, "dst_endpoint.ip"), Some("127.0.0.1"));
        assert_eq!(
            actor_pid(inbound),
            Some(me),
            "the listener's owner, not the softirq's task"
        );
    }
    assert_sigma_network_connection_paths(established);
    assert_eq!(h.sensor.dropped(), 0);
    h.sensor.stop();
}

/// Every attribute the Sigma `network_connection` map reads is on the event (host names are
/// not resolved).
fn assert_sigma_network_connection_paths(event: &Event) {
    let maps = FieldMaps::builtin().unwrap_or_else(|e| panic!("{e}"));
    let logsource = LogSource {
        category: Some("network_connection".into()),
        product: Some("linux".into()),
        service: None,
    };
    let map = maps
        .for_logsource(&logsource)
        .unwrap_or_else(|| panic!("no network_connection map"));
    assert_eq!(map.class_uid, event.class_uid);
    for field in [
        "Image",
        "CommandLine",
        "ProcessId",
        "ProcessGuid",
        "User",
        "Protocol",
        "Initiated",
        "SourceIp",
        "SourcePort",
        "SourceIsIpv6",
        "DestinationIp",
        "DestinationPort",
        "DestinationIsIpv6",
    ] {
        let paths = map
            .paths(field)
            .unwrap_or_else(|| panic!("{field} not mapped"));
        assert!(
            paths.iter().any(|p| event.get(p).is_some()),
            "Sigma {field} ({paths:?}) missing from {event:?}"
        );
    }
}

#[test]
fn connect_to_a_closed_loopback_port_is_refused_both_ways() {
    skip_unless_root!();
    let mut h = Harness::start(SourceMode::Ebpf);
    let port_ = closed_port();
    let refused = TcpStream::connect(("127.0.0.1", port_));
    assert_eq!(
        refused.err().map(|e| e.kind()),
        Some(std::io::ErrorKind::ConnectionRefused)
    );
    let events = h.wait_for_all(&[
        (
            "outbound refused",
            &transition_to("SYN_SENT", "CLOSE", port_),
        ),
        ("reset for the closed port", &reset_to(port_)),
    ]);
    let (outbound, reset) = (&events[0], &events[1]);

    assert_eq!(u64_at(outbound, "activity_id"), Some(5));
    assert_eq!(str_at(outbound, "activity_name"), Some("Refuse"));
    assert_eq!(str_at(outbound, "status_code"), Some("ECONNREFUSED"));
    assert_direction(outbound, false);
    assert_eq!(actor_pid(outbound), Some(std::process::id()));
    let cport = port(outbound, "src_endpoint");
    assert!(cport.is_some(), "the port was chosen by then");

    assert_eq!(u64_at(reset, "activity_id"), Some(5));
    assert_direction(reset, true);
    assert!(reset.get("actor").is_none(), "nobody owns a closed port");
    assert_eq!(
        str_at(reset, "unmapped.tcp_reset_reason"),
        Some("NO_SOCKET")
    );
    // The segment the tracepoint hands over is the incoming SYN, not our RST: SYN is set and its
    // source is the connecting socket.
    assert_eq!(u64_at(reset, "connection_info.tcp_flags"), Some(0x02));
    assert_eq!(port(reset, "src_endpoint"), cport);
    assert_eq!(str_at(reset, "src_endpoint.ip"), Some("127.0.0.1"));
    h.sensor.stop();
}

#[test]
fn connection_attempts_from_another_network_namespace() {
    skip_unless_root!();
    let ns = Netns::create();
    // Listening before the sensor starts: its owner is only known from the /proc seed.
    let listener = TcpListener::bind((ns.host_addr, 0)).unwrap_or_else(|e| panic!("bind: {e}"));
    let open = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    let closed = {
        let l = TcpListener::bind((ns.host_addr, 0)).unwrap_or_else(|e| panic!("bind: {e}"));
        l.local_addr().map(|a| a.port()).unwrap_or_default()
    };
    let mut h = Harness::start(SourceMode::Ebpf);
    let host = ns.host_addr.to_string();
    let to_open = ns.run("nc", &["-z", "-w", "1", &host, &open.to_string()]);
    assert!(to_open.status.success(), "nc to the open port: {to_open:?}");
    let to_closed = ns.run("nc", &["-z", "-w", "1", &host, &closed.to_string()]);
    assert!(!to_closed.status.success(), "the closed port answered");

    let ns_ip = ns.ns_addr.to_string();
    let events = h.wait_for_all(&[
        ("SYN_RECV from the namespace", &state_to("SYN_RECV", open)),
        ("SYN_SENT inside the namespace", &state_to("SYN_SENT", open)),
        ("reset for the closed port", &reset_to(closed)),
    ]);
    let (syn_recv, syn_sent, reset) = (&events[0], &events[1], &events[2]);

    assert_direction(syn_recv, true);
    assert_eq!(str_at(syn_recv, "src_endpoint.ip"), Some(ns_ip.as_str()));
    assert_eq!(str_at(syn_recv, "dst_endpoint.ip"), Some(host.as_str()));
    assert_eq!(
        actor_pid(syn_recv),
        Some(std::process::id()),
        "the seeded listener owner"
    );
    assert_eq!(
        str_at(syn_recv, "actor.process.file.path"),
        Some(test_binary().as_str())
    );

    // eBPF sees every namespace: nc's own connect is recorded too, with its namespace.
    assert_eq!(str_at(syn_sent, "src_endpoint.ip"), Some(ns_ip.as_str()));
    assert_eq!(u64_at(syn_sent, "unmapped.netns"), ns.inode());
    assert_ne!(
        u64_at(syn_sent, "unmapped.netns"),
        u64_at(syn_recv, "unmapped.netns")
    );

    assert_eq!(str_at(reset, "activity_name"), Some("Refuse"));
    assert_direction(reset, true);
    assert_eq!(str_at(reset, "src_endpoint.ip"), Some(ns_ip.as_str()));
    assert_eq!(str_at(reset, "dst_endpoint.ip"), Some(host.as_str()));
    assert_eq!(u64_at(reset, "connection_info.tcp_flags"), Some(0x02));
    drop(listener);
    h.sensor.stop();
}

#[test]
fn proc_net_polling_reports_listeners_and_connections() {
    skip_unless_root!();
    let mut h = Harness::start(SourceMode::ProcConnector);
    assert_eq!(h.sensor.network_source(), Some(SourceKind::ProcNet));
    let me = std::process::id();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let lport = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    let client =
        TcpStream::connect(("127.0.0.1", lport)).unwrap_or_else(|e| panic!("connect: {e}"));
    let (server, _) = listener.accept().unwrap_or_else(|e| panic!("accept: {e}"));
    let cport = client.local_addr().map(|a| a.port()).unwrap_or_default();

    let opened = |inbound: bool| {
        move |e: &Event| {
            is_tcp(e)
                && u64_at(e, "activity_id") == Some(1)
                && port(e, "dst_endpoint") == Some(lport)
                && port(e, "src_endpoint") == Some(cport)
                && u64_at(e, "connection_info.direction_id") == Some(if inbound { 1 } else { 2 })
        }
    };
    let events = h.wait_for_all(&[
        ("listen", &|e: &Event| {
            is_tcp(e)
                && u64_at(e, "activity_id") == Some(7)
                && port(e, "dst_endpoint") == Some(lport)
        }),
        ("client side", &opened(false)),
        ("server side", &opened(true)),
    ]);
    for event in &events {
        assert_eq!(str_at(event, "metadata.log_name"), Some("proc_net"));
        assert_eq!(
            actor_pid(event),
            Some(me),
            "owner found through /proc/<pid>/fd: {event:?}"
        );
    }
    drop((client, server));
    let closed = h.wait_for("close seen by polling", |e| {
        is_tcp(e) && u64_at(e, "activity_id") == Some(2) && port(e, "src_endpoint") == Some(cport)
    });
    assert_eq!(str_at(&closed, "metadata.log_name"), Some("proc_net"));
    h.sensor.stop();
}

#[test]
fn netns_guard_removes_the_namespace() {
    skip_unless_root!();
    let name = {
        let ns = Netns::create();
        ns.name.clone()
    };
    let listed = Command::new("ip")
        .args(["netns", "list"])
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    assert!(!listed.contains(&name), "{name} left behind: {listed}");
}
