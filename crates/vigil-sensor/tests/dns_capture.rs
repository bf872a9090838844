//! Kernel tests of DNS capture: queries to a small UDP responder the test starts on a loopback
//! address of its own (127.0.53.x, port 53), sent by `dig` and by the test itself, must come out
//! as OCSF DNS Activity: the query with its asking process, the response paired with it (its
//! answers, response code and timing), and a message that is not DNS as Traffic with why. Every
//! event is checked against the OCSF schema by the harness.
//!
//! They need root (a packet socket needs CAP_NET_RAW); without it each test says so and passes.
//! The `dig` test needs dig (scripts/setup installs bind9-dnsutils); without it, it says so and
//! passes.

mod common;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use common::*;
use simple_dns::rdata::{A, RData};
use simple_dns::{CLASS, Name, Packet, Question, RCODE, ResourceRecord, TYPE};
use vigil_sensor::vigil_ocsf::Event;
use vigil_sensor::{AuthConfig, FileConfig, SensorConfig, SourceMode};

/// The address every `found.` name resolves to.
const ANSWER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 77);

/// A DNS server on 127.0.53.x:53 answering `found.*` with [`ANSWER`], `nx.*` with NXDOMAIN
/// and anything else with REFUSED; messages it cannot read get no answer. A held responder
/// keeps its answers until [`Responder::release`]: the asking process is attributed only while
/// its socket is open, and a client answered at once (dig exits right after) could close it
/// before the sensor reads the query. Stopped on drop.
struct Responder {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    held: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Responder {
    fn start(held: bool) -> Self {
        let first = 20 + (std::process::id() % 200) as u8;
        let socket = (0..=230u8)
            .map(|i| Ipv4Addr::new(127, 0, 53, first.wrapping_add(i).max(2)))
            .find_map(|ip| UdpSocket::bind((ip, 53)).ok())
            .unwrap_or_else(|| panic!("no free 127.0.53.x:53"));
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = socket.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let stop = Arc::new(AtomicBool::new(false));
        let held = Arc::new(AtomicBool::new(held));
        let (stopped, holding) = (Arc::clone(&stop), Arc::clone(&held));
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            let mut waiting = Vec::new();
            while !stopped.load(Ordering::SeqCst) {
                if let Ok((n, peer)) = socket.recv_from(&mut buf)
                    && let Some(reply) = answer(&buf[..n])
                {
                    waiting.push((reply, peer));
                }
                if !holding.load(Ordering::SeqCst) {
                    for (reply, peer) in waiting.drain(..) {
                        let _ = socket.send_to(&reply, peer);
                    }
                }
            }
        });
        Self {
            addr,
            stop,
            held,
            thread: Some(thread),
        }
    }

    /// Answers what was held, and from now on at once.
    fn release(&self) {
        self.held.store(false, Ordering::SeqCst);
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn answer(query: &[u8]) -> Option<Vec<u8>> {
    let query = Packet::parse(query).ok()?;
    let question = query.questions.first()?.clone();
    let name = question.qname.to_string();
    let mut reply = Packet::new_reply(query.id());
    if name.starts_with("found.") {
        reply.answers.push(ResourceRecord::new(
            question.qname.clone(),
            CLASS::IN,
            120,
            RData::A(A {
                address: u32::from(ANSWER),
            }),
        ));
    } else if name.starts_with("nx.") {
        *reply.rcode_mut() = RCODE::NameError;
    } else {
        *reply.rcode_mut() = RCODE::Refused;
    }
    reply.questions.push(question);
    reply.build_bytes_vec().ok()
}

fn sensor() -> Harness {
    Harness::start_with(SensorConfig {
        mode: SourceMode::Auto,
        files: FileConfig::disabled(),
        auth: AuthConfig::disabled(),
        ..Default::default()
    })
}

fn dns_of<'a>(activity: u64, name: &'a str) -> impl Fn(&Event) -> bool + 'a {
    move |e| {
        e.class_uid == 4003
            && u64_at(e, "activity_id") == Some(activity)
            && str_at(e, "query.hostname") == Some(name)
    }
}

#[test]
fn a_dig_query_and_its_answer_are_dns_activity_of_dig() {
    skip_unless_root!();
    if !Path::new("/usr/bin/dig").exists() {
        eprintln!(
            "skipping a_dig_query_and_its_answer_are_dns_activity_of_dig: no /usr/bin/dig \
             (scripts/setup installs bind9-dnsutils)"
        );
        return;
    }
    let server = Responder::start(true);
    let mut h = sensor();
    let caps = h.sensor.capabilities();
    let cap = caps
        .iter()
        .find(|c| c.name == "dns")
        .unwrap_or_else(|| panic!("no dns capability: {caps:?}"));
    assert!(cap.live, "{cap:?}");
    assert_eq!(cap.source, "packet");

    let name = format!("found.{}.vigil.test", nonce("q"));
    let dig = Command::new("/usr/bin/dig")
        .args(["+tries=1", "+time=5", "+nocookie", "-p", "53"])
        .arg(format!("@{}", server.addr.ip()))
        .args([name.as_str(), "A"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("dig: {e}"));
    let pid = dig.id();
    let query = h.wait_for("the query", dns_of(1, &name));
    server.release();
    let response = h.wait_for("the response", dns_of(2, &name));
    let output = dig
        .wait_with_output()
        .unwrap_or_else(|e| panic!("dig: {e}"));
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "dig: {}\n{printed}", output.status);
    assert!(printed.contains(&ANSWER.to_string()), "{printed}");

    let (query, response) = (&query, &response);
    let server_ip = server.addr.ip().to_string();
    assert_eq!(u64_at(query, "type_uid"), Some(400301));
    assert_eq!(str_at(query, "query.type"), Some("A"));
    assert_eq!(str_at(query, "query.class"), Some("IN"));
    assert_eq!(str_at(query, "dst_endpoint.ip"), Some(server_ip.as_str()));
    assert_eq!(u64_at(query, "dst_endpoint.port"), Some(53));
    assert_eq!(str_at(query, "src_endpoint.ip"), Some("127.0.0.1"));
    assert_eq!(
        u64_at(query, "connection_info.direction_id"),
        Some(4),
        "Local"
    );
    assert_eq!(str_at(query, "connection_info.protocol_name"), Some("udp"));
    assert_eq!(str_at(query, "unmapped.interface"), Some("lo"));
    assert_eq!(u64_at(query, "actor.process.pid"), Some(u64::from(pid)));
    assert_eq!(str_at(query, "actor.process.name"), Some("dig"));
    assert_eq!(str_at(query, "metadata.log_name"), Some("packet"));

    assert_eq!(u64_at(response, "type_uid"), Some(400302));
    assert_eq!(str_at(response, "answers.0.rdata"), Some("192.0.2.77"));
    assert_eq!(str_at(response, "answers.0.type"), Some("A"));
    assert_eq!(u64_at(response, "answers.0.ttl"), Some(120));
    assert_eq!(str_at(response, "rcode"), Some("NoError"));
    assert_eq!(str_at(response, "status"), Some("Success"));
    assert_eq!(
        str_at(response, "src_endpoint.ip"),
        Some("127.0.0.1"),
        "the client is the source of a response too"
    );
    assert_eq!(
        u64_at(response, "query.packet_uid"),
        u64_at(query, "query.packet_uid")
    );
    assert_eq!(u64_at(response, "actor.process.pid"), Some(u64::from(pid)));
    let (asked, answered) = (
        u64_at(response, "query_time").unwrap_or_default(),
        u64_at(response, "response_time").unwrap_or_default(),
    );
    assert_eq!(Some(asked), u64_at(query, "time"), "paired with its query");
    assert!(asked <= answered, "{asked} > {answered}");
}

#[test]
fn nxdomain_and_messages_that_are_not_dns_are_reported() {
    skip_unless_root!();
    let server = Responder::start(false);
    let mut h = sensor();
    let client = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap_or_else(|e| panic!("{e}"));
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap_or_else(|e| panic!("{e}"));
    let me = u64::from(std::process::id());

    let name = format!("nx.{}.vigil.test", nonce("q"));
    let mut query = Packet::new_query(0x5151);
    query.questions.push(Question::new(
        Name::new_unchecked(&name),
        TYPE::TXT.into(),
        CLASS::IN.into(),
        false,
    ));
    let bytes = query.build_bytes_vec().unwrap_or_else(|e| panic!("{e}"));
    client
        .send_to(&bytes, server.addr)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut buf = [0u8; 1500];
    client.recv(&mut buf).unwrap_or_else(|e| panic!("{e}"));
    let response = h.wait_for("the NXDOMAIN response", dns_of(2, &name));
    assert_eq!(u64_at(&response, "rcode_id"), Some(3));
    assert_eq!(str_at(&response, "rcode"), Some("NXDomain"));
    assert_eq!(str_at(&response, "status"), Some("Failure"));
    assert_eq!(str_at(&response, "query.type"), Some("TXT"));
    assert_eq!(u64_at(&response, "query.packet_uid"), Some(0x5151));
    assert!(response.get("answers").is_none());
    assert_eq!(u64_at(&response, "actor.process.pid"), Some(me));

    // Not DNS at all, to port 53: reported, not dropped.
    let port = client.local_addr().unwrap_or_else(|e| panic!("{e}")).port();
    client
        .send_to(b"\x13\x37 not a dns message at all", server.addr)
        .unwrap_or_else(|e| panic!("{e}"));
    let traffic = h.wait_for("the message that is not DNS", |e| {
        e.class_uid == 4003
            && u64_at(e, "activity_id") == Some(6)
            && u64_at(e, "src_endpoint.port") == Some(u64::from(port))
    });
    assert!(
        str_at(&traffic, "unmapped.malformed").is_some_and(|m| m.contains("not a readable")),
        "{traffic:?}"
    );
    assert_eq!(str_at(&traffic, "status"), Some("Failure"));
    assert_eq!(u64_at(&traffic, "actor.process.pid"), Some(me));
}
