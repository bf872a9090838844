//! Host isolation for real, inside network namespaces this test creates (never the host's own):
//! a veth pair joins each namespace to the host namespace, where a "fleet" address and an
//! "other" address listen. Isolation is applied from a thread that entered the namespace
//! (`setns`), so the `nft` it runs acts on that namespace only.

use std::fs;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;

use serde_json::json;

mod common;
use common::{TestNet, host_has_vigil_table, reachable};
use vigil_agent::response::isolate::{self, IsolationPlan, Isolator, STATE_FILE, TABLE};
use vigil_agent::response::{Responder, ResponderConfig};

/// Listeners on the host side (the kernel completes handshakes from the backlog, so nobody
/// needs to accept).
struct Peers {
    fleet: SocketAddr,
    fleet6: SocketAddr,
    other: SocketAddr,
    _keep: Vec<TcpListener>,
}

fn listen(net: &TestNet) -> Peers {
    let l = |ip: IpAddr| TcpListener::bind(SocketAddr::new(ip, 0)).unwrap();
    let (a, b, c) = (l(net.fleet), l(net.fleet6), l(net.other));
    Peers {
        fleet: a.local_addr().unwrap(),
        fleet6: b.local_addr().unwrap(),
        other: c.local_addr().unwrap(),
        _keep: vec![a, b, c],
    }
}

#[test]
fn isolation_in_a_namespace_keeps_the_fleet_and_cuts_the_rest() {
    let net = TestNet::new(0);
    let peers = listen(&net);
    let (fleet, fleet6, other) = (peers.fleet, peers.fleet6, peers.other);
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_owned();
    let plan = IsolationPlan {
        fleet_servers: vec![net.fleet, net.fleet6],
        dns_servers: vec![net.other], // port 53 only: TCP to `other` on another port stays cut
        also_allow: vec![],
    };

    // Before: everything is reachable from the namespace.
    assert!(net.inside(move || reachable(fleet) && reachable(fleet6) && reachable(other)));

    // A table that is not Vigil's, which isolation must leave alone.
    net.nft_in_ns(&["add", "table", "inet", "vigil_test_keep"]);
    net.nft_in_ns(&["add", "chain", "inet", "vigil_test_keep", "keep"]);

    let (p, d) = (plan.clone(), data_dir.clone());
    let report = net.inside(move || Isolator::new(&d).apply(&p).unwrap());
    assert_eq!(report.state, "isolated");
    assert_eq!(report.kernel.chains.len(), 3);
    assert!(
        report
            .kernel
            .chains
            .iter()
            .all(|(_, policy)| policy == "drop")
    );

    let listing = net.nft_in_ns(&["list", "table", "inet", TABLE]);
    eprintln!("{listing}");
    assert_eq!(listing.matches("policy drop").count(), 3, "{listing}");
    assert!(
        listing.contains("ct state established,related"),
        "{listing}"
    );

    let state = data_dir.join(STATE_FILE);
    assert_eq!(
        fs::metadata(&state).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        !host_has_vigil_table(),
        "the host namespace must stay untouched"
    );
    assert!(!Isolator::new(&data_dir).is_applied().unwrap());

    let (fleet_ok, fleet6_ok, other_ok, lo_ok, applied) = net.inside(move || {
        let lo = TcpListener::bind("127.0.0.1:0").unwrap();
        let lo_addr = lo.local_addr().unwrap();
        (
            reachable(fleet),
            reachable(fleet6),
            reachable(other),
            reachable(lo_addr),
            Isolator::new("/nonexistent").is_applied().unwrap(),
        )
    });
    assert!(fleet_ok, "fleet server must stay reachable over IPv4");
    assert!(fleet6_ok, "fleet server must stay reachable over IPv6");
    assert!(!other_ok, "other addresses must be cut off");
    assert!(lo_ok, "loopback must keep working");
    assert!(applied);

    // Applying again replaces the table: still one table, same rules.
    let (p, d) = (plan.clone(), data_dir.clone());
    let again = net.inside(move || Isolator::new(&d).apply(&p).unwrap());
    assert_eq!(again.kernel, report.kernel);
    assert_eq!(net.nft_in_ns(&["list", "tables"]).matches(TABLE).count(), 1);

    // Release: Vigil's table goes, the other table stays, connectivity returns.
    let d = data_dir.clone();
    let was = net.inside(move || Isolator::new(&d).release().unwrap());
    assert!(was);
    assert!(!state.exists());
    let tables = net.nft_in_ns(&["list", "tables"]);
    assert!(!tables.contains(TABLE), "{tables}");
    assert!(tables.contains("vigil_test_keep"), "{tables}");
    assert!(net.inside(move || reachable(other) && reachable(fleet)));

    // Releasing twice is harmless.
    let d = data_dir.clone();
    assert!(!net.inside(move || Isolator::new(&d).release().unwrap()));

    // Restart while isolated: the plan file brings isolation back even if the kernel lost it.
    let (p, d) = (plan.clone(), data_dir.clone());
    net.inside(move || Isolator::new(&d).apply(&p).unwrap());
    net.nft_in_ns(&["delete", "table", "inet", TABLE]);
    assert!(net.inside(move || reachable(other)));
    let d = data_dir.clone();
    let restored = net.inside(move || isolate::restore_on_start(&d).unwrap());
    assert_eq!(restored, Some(plan));
    assert!(net.inside(move || reachable(fleet) && !reachable(other)));

    let d = data_dir.clone();
    net.inside(move || Isolator::new(&d).release().unwrap());
    let d = data_dir.clone();
    assert_eq!(
        net.inside(move || isolate::restore_on_start(&d).unwrap()),
        None
    );
    assert!(net.inside(move || reachable(other)));
    assert!(!host_has_vigil_table());
}

#[test]
fn responder_isolates_and_reports_state_from_the_kernel() {
    let net = TestNet::new(1);
    let peers = listen(&net);
    let (fleet, other) = (peers.fleet, peers.other);
    let data = tempfile::tempdir().unwrap();
    let responder = Responder::new(ResponderConfig {
        data_dir: data.path().to_owned(),
        fleet_servers: vec![net.fleet],
        dns_servers: vec![],
    });

    let r = responder.clone();
    let (outcome, state) = net.inside(move || {
        (
            r.execute_blocking("isolate", &json!({})),
            r.isolation_state(),
        )
    });
    assert!(outcome.succeeded, "{outcome:?}");
    assert_eq!(outcome.detail["state"], "isolated");
    assert_eq!(state, "isolated");
    assert_eq!(responder.isolation_state(), "none", "host namespace");
    assert!(net.inside(move || reachable(fleet) && !reachable(other)));

    // `allow` adds an address for this isolation.
    let r = responder.clone();
    let other_ip = net.other.to_string();
    let outcome = net.inside(move || r.execute_blocking("isolate", &json!({"allow": [other_ip]})));
    assert!(outcome.succeeded, "{outcome:?}");
    assert!(net.inside(move || reachable(other)));

    let r = responder.clone();
    let (outcome, state) = net.inside(move || {
        (
            r.execute_blocking("release", &json!({})),
            r.isolation_state(),
        )
    });
    assert!(outcome.succeeded, "{outcome:?}");
    assert_eq!(outcome.detail["was_isolated"], true);
    assert_eq!(state, "none");

    let bad = responder.execute_blocking("isolate", &json!({"allow": ["not-an-ip"]}));
    assert!(!bad.succeeded);
    assert!(
        bad.detail["error"]
            .as_str()
            .unwrap()
            .contains("bad arguments for isolate")
    );
}
