//! The live path: `vigil up` (server and agent, eBPF capture) runs in a target network
//! namespace; `nmap` in scanner namespaces scans the target's address. A half-open SYN scan and
//! a connect scan, each of 150 ports from its own scanner address, each raise exactly one T1046
//! alert naming the scanner, the target, the distinct port count and the time span, within
//! 5 s of the scan's end. Busy services and a client using ten ports raise none.
//!
//! Traffic stays inside the namespaces these tests create (see `common::lab`); they need root,
//! `ip`, `nmap` and OpenBSD `nc`, and skip by name without them.

mod common;

use std::net::Ipv4Addr;
use std::process::Output;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::lab::{Lab, Scanner, have_tools};
use common::scan::{alerts_from, assert_names_scan, t1046_alerts, wait_for_alert_from};
use common::{VigilUp, is_root};

/// The live tests share the machine's two cores: one at a time keeps latencies honest.
static SERIAL: Mutex<()> = Mutex::new(());

/// The most a scan's alert may trail the scan's end.
const LATENCY_BOUND: Duration = Duration::from_secs(5);

fn ready(test: &str) -> bool {
    is_root(test) && have_tools(test, &["ip", "nmap", "nc", "ss"])
}

/// Starts `vigil up` inside the lab's target namespace, its API on the host link.
fn vigil_in(lab: &Lab, data: &std::path::Path) -> VigilUp {
    let listen = format!("{}:0", lab.target_link_addr);
    VigilUp::start_in(Some(&lab.target_ns), &listen, data, &["--sensor", "ebpf"])
}

fn ok(what: &str, out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs nmap in `scanner` against the target; returns when it ended.
fn nmap(scanner: &Scanner, kind: &str, ports: &str) -> Instant {
    let target = scanner.target.to_string();
    let out = Lab::run(
        &scanner.ns,
        "nmap",
        &[
            kind,
            "-Pn",
            "-n",
            "-T4",
            "--max-retries",
            "1",
            "-p",
            ports,
            &target,
        ],
    );
    let ended = Instant::now();
    let report = ok("nmap", &out);
    eprintln!("nmap {kind} from {}:\n{report}", scanner.addr);
    ended
}

/// One scan, end to end: returns the observed latency from the scan's end to the alert
/// being served (negative when the alert was there before nmap finished).
fn scan_and_expect_one_alert(up: &VigilUp, scanner: &Scanner, kind: &str) -> f64 {
    let started = Instant::now();
    let ended = nmap(scanner, kind, "1-150");
    let source = scanner.addr.to_string();
    let (alert, seen) = wait_for_alert_from(&up.api, &source, LATENCY_BOUND).unwrap_or_else(|| {
        panic!(
            "no T1046 alert for the {kind} scan from {source} within {LATENCY_BOUND:?} of \
                 its end; T1046 alerts: {:#?}",
            t1046_alerts(&up.api)
        )
    });
    let facts = assert_names_scan(&alert, &source, &scanner.target.to_string());
    let latency = if seen >= ended {
        seen.duration_since(ended).as_secs_f64()
    } else {
        -ended.duration_since(seen).as_secs_f64()
    };
    // From the event that completed the window to the finding: the pipeline's own latency.
    let pipeline_ms = facts.made_ms - facts.end_ms;
    eprintln!(
        "{kind} scan from {source}: nmap took {:.2} s; alert ({} distinct ports over {} ms) \
         served {latency:+.2} s after the scan's end; event → finding {pipeline_ms} ms",
        ended.duration_since(started).as_secs_f64(),
        facts.distinct_ports,
        facts.span_ms,
    );
    assert!(
        facts.ports.iter().all(|p| (1..=150).contains(p)),
        "{facts:?}"
    );
    // The analyst sees the same alert in the console: scanner, target, ports and time span.
    if common::console_testable("scan_and_expect_one_alert") {
        let title = alert["finding_info"]["title"].as_str().unwrap_or_default();
        let count = format!("{} events between", facts.distinct_ports);
        common::assert_console_shows_alert(
            &up.api,
            title,
            &[&source, &scanner.target.to_string(), &count, "T1046"],
        );
    }
    latency
}

#[test]
fn syn_and_connect_scans_each_raise_one_t1046_alert_within_five_seconds() {
    if !ready("syn_and_connect_scans_each_raise_one_t1046_alert_within_five_seconds") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut lab = Lab::create();
    let syn = lab.add_scanner(1, 1);
    let connect = lab.add_scanner(2, 1);
    lab.listen(&[22, 80, 111]);
    let data = tempfile::tempdir().unwrap();
    let up = vigil_in(&lab, data.path());

    let syn_latency = scan_and_expect_one_alert(&up, &syn, "-sS");
    let connect_latency = scan_and_expect_one_alert(&up, &connect, "-sT");
    // Everything captured has been scored once a later scan's alert exists; wait a little
    // more and count.
    std::thread::sleep(Duration::from_secs(1));
    for scanner in [&syn, &connect] {
        let alerts = alerts_from(&up.api, &scanner.addr.to_string());
        assert_eq!(alerts.len(), 1, "exactly one alert per scan: {alerts:#?}");
    }
    eprintln!(
        "scan end → alert served: SYN scan {syn_latency:+.2} s, connect scan {connect_latency:+.2} s"
    );
    let status = up.interrupt();
    assert!(status.success(), "vigil up exits cleanly: {status}");
}

/// Connects from `source` (in `scanner`) to the target's `port` and closes.
fn connect_once(scanner: &Scanner, source: Ipv4Addr, port: u16) -> Output {
    Lab::run(
        &scanner.ns,
        "nc",
        &[
            "-z",
            "-w",
            "2",
            "-s",
            &source.to_string(),
            &scanner.target.to_string(),
            &port.to_string(),
        ],
    )
}

#[test]
fn busy_services_and_a_client_using_ten_ports_raise_no_t1046_alert() {
    if !ready("busy_services_and_a_client_using_ten_ports_raise_no_t1046_alert") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut lab = Lab::create();
    let clients = lab.add_scanner(1, 40);
    let ten = lab.add_scanner(2, 1);
    let sentinel = lab.add_scanner(3, 1);
    lab.listen(&[80, 8080, 8001, 8003]);
    let data = tempfile::tempdir().unwrap();
    let up = vigil_in(&lab, data.path());

    let since = vigil_ocsf::now_ms();
    // A web server: 40 client addresses, 5 connections each, on port 80, plus a few on 8080.
    let mut connections = 0;
    for round in 0..5 {
        for i in 0..40 {
            let port = if round == 4 && i % 4 == 0 { 8080 } else { 80 };
            ok(
                "nc client",
                &connect_once(&clients, clients.addr_n(i), port),
            );
            connections += 1;
        }
    }
    // One client, ten ports of one host in well under a minute (two open, eight closed).
    for port in 8001..=8010 {
        let _ = connect_once(&ten, ten.addr, port);
    }
    // A real scan afterwards: once its alert is served, everything before it was scored.
    nmap(&sentinel, "-sT", "1-100");
    wait_for_alert_from(&up.api, &sentinel.addr.to_string(), LATENCY_BOUND)
        .expect("the sentinel scan's alert");
    std::thread::sleep(Duration::from_secs(1));

    let stray: Vec<_> = t1046_alerts(&up.api)
        .into_iter()
        .filter(|a| {
            let src = common::scan::scanner_of(a).unwrap_or_default().to_owned();
            src.starts_with(&format!("10.{}.1.", lab.net)) || src == ten.addr.to_string()
        })
        .collect();
    assert!(
        stray.is_empty(),
        "no T1046 alert for services or a ten-port client: {stray:#?}"
    );
    // The traffic was seen: the service's connections and the ten-port client are stored.
    // (Asked by source address: other tests' traffic is on this host's sensor too.)
    let seen_from = |source: &str| {
        let events = up.get(&format!(
            "/api/v1/events?class_uid=4001&since={since}&field=src_endpoint.ip&value={source}&limit=1000"
        ));
        events["items"].as_array().map_or(0, |items| {
            items
                .iter()
                .filter(|e| e["unmapped"]["initiated"] == "false")
                .count()
        })
    };
    assert!(
        seen_from(&clients.addr.to_string()) > 0,
        "client connections captured"
    );
    assert!(
        seen_from(&ten.addr.to_string()) > 0,
        "ten-port client captured"
    );
    eprintln!(
        "{connections} service connections from 40 addresses and a ten-port client: no T1046 alert"
    );
    let status = up.interrupt();
    assert!(status.success(), "vigil up exits cleanly: {status}");
}
