//! Tests of correlation loading and of the engine's semantics.

use std::path::Path;

use serde_json::json;
use vigil_ocsf::Event;
use vigil_ocsf::fieldmap::FieldMaps;

use super::*;
use crate::{LoadReport, Rule, RuleSet, RuleStatus};

mod loading;

fn load(text: &str) -> (RuleSet, LoadReport) {
    let maps = FieldMaps::builtin().unwrap();
    RuleSet::load_str(text, Path::new("t.yml"), &maps)
}

fn loaded(text: &str) -> RuleSet {
    let (set, report) = load(text);
    let problems: Vec<_> = report.problems().collect();
    assert!(problems.is_empty(), "{problems:#?}");
    set
}

/// An inbound connection attempt from `src` to port `port` of `dst` at `time`.
fn inbound(src: &str, dst: &str, port: u16, time: i64) -> Event {
    Event::from_value(json!({
        "class_uid": 4001, "activity_id": 1, "time": time,
        "device": {"type_id": 1, "hostname": "web-1", "os": {"name": "Linux", "type_id": 200}},
        "src_endpoint": {"ip": src, "port": 40000}, "dst_endpoint": {"ip": dst, "port": port},
        "unmapped": {"initiated": "false"}
    }))
    .unwrap()
}

/// A process launch of `image` by `user` at `time`.
fn launch(image: &str, user: &str, time: i64) -> Event {
    Event::from_value(json!({
        "class_uid": 1007, "activity_id": 1, "time": time,
        "process": {"file": {"path": image}, "cmd_line": image, "user": {"name": user}}
    }))
    .unwrap()
}

/// Feeds events in order; every hit.
fn feed(set: &RuleSet, c: &mut Correlator, events: &[Event]) -> Vec<CorrelationHit> {
    events
        .iter()
        .flat_map(|ev| {
            let matched: Vec<&Rule> = set.matches_all(ev).collect();
            c.observe(ev, &matched)
        })
        .collect()
}

fn correlator(set: &RuleSet) -> Correlator {
    Correlator::new(set, CorrelationLimits::default())
}

const PORT_SCAN: &str = "
title: Port scan
id: scan
tags: [attack.discovery, attack.t1046]
correlation:
    type: value_count
    rules: [inbound]
    group-by: [SourceIp, DestinationIp]
    timespan: 60s
    condition: {field: DestinationPort, gte: 25}
level: high
---
title: Inbound
name: inbound
logsource: {category: network_connection, product: linux}
detection: {sel: {Initiated: 'false'}, condition: sel}
";

fn scan(src: &str, ports: std::ops::Range<u16>, start: i64, every_ms: i64) -> Vec<Event> {
    ports
        .enumerate()
        .map(|(i, p)| inbound(src, "10.0.0.5", p, start + i as i64 * every_ms))
        .collect()
}

#[test]
fn a_port_scan_fires_once_per_window_with_its_group_and_ports() {
    let set = loaded(PORT_SCAN);
    assert_eq!(set.correlations().len(), 1);
    assert!(
        !set.rules()[0].standalone,
        "the base rule only feeds the scan"
    );
    let mut c = correlator(&set);
    let hits = feed(&set, &mut c, &scan("203.0.113.9", 1..1001, 1_000, 1));
    assert_eq!(hits.len(), 1, "one alert for the whole scan window");
    let hit = &hits[0];
    assert_eq!(hit.rule.id, "scan");
    assert_eq!(
        hit.group,
        [
            ("SourceIp".to_owned(), "203.0.113.9".to_owned()),
            ("DestinationIp".to_owned(), "10.0.0.5".to_owned())
        ]
    );
    assert_eq!(hit.count, 25);
    let ports = hit.distinct_values.as_deref().unwrap();
    assert_eq!(ports.first().map(String::as_str), Some("1"));
    assert_eq!(ports.last().map(String::as_str), Some("25"));
    assert_eq!((hit.first_ms, hit.last_ms), (1_000, 1_024));
    assert_eq!(hit.event_uids.len(), 25);
    assert_eq!(
        hit.device.as_ref().map(|d| d.hostname.as_str()),
        Some("web-1")
    );
    assert_eq!(c.stats().hits, 1);
    // The rest of the scan is held back: suppressed while the fired window lasts, or beyond
    // the distinct values a group tracks.
    let stats = c.stats();
    assert!(stats.suppressed + stats.dropped_values > 900, "{stats:?}");
    // The window that fired has passed: the scan going on fires again.
    let hits = feed(&set, &mut c, &scan("203.0.113.9", 2000..2100, 62_000, 1));
    assert_eq!(hits.len(), 1);
}

#[test]
fn a_port_scan_needs_distinct_ports_from_one_source_to_one_host() {
    let set = loaded(PORT_SCAN);
    let mut c = correlator(&set);
    // Many clients, one port.
    let clients: Vec<Event> = (0..200)
        .map(|i| inbound(&format!("198.51.100.{i}"), "10.0.0.5", 443, 1_000 + i))
        .collect();
    assert!(feed(&set, &mut c, &clients).is_empty());
    // One client, ten ports; then the same ports again.
    let ten = scan("10.0.0.8", 8000..8010, 1_000, 100);
    assert!(feed(&set, &mut c, &ten).is_empty());
    assert!(feed(&set, &mut c, &ten).is_empty());
    // Outbound connections are not attempts against this host.
    let mut out = inbound("10.0.0.5", "198.51.100.7", 1, 5_000);
    out.data["unmapped"]["initiated"] = json!("true");
    assert_eq!(set.matches_all(&out).count(), 0);
}

#[test]
fn late_events_count_within_the_window_and_are_ignored_beyond() {
    let set = loaded(PORT_SCAN);
    let mut c = correlator(&set);
    // 24 ports in order, then one 50 s late: still in the window, so the 25th port.
    let mut events = scan("203.0.113.9", 1..25, 100_000, 100);
    events.push(inbound("203.0.113.9", "10.0.0.5", 999, 50_000));
    let hits = feed(&set, &mut c, &events);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].first_ms, 50_000);
    // An event more than the timespan before the newest is late.
    let mut c = correlator(&set);
    feed(&set, &mut c, &scan("203.0.113.9", 1..2, 200_000, 1));
    feed(&set, &mut c, &scan("203.0.113.9", 2..3, 100_000, 1));
    assert_eq!(c.stats().late_events, 1);
}

const COUNTS: &str = "
title: Many shells
id: shells
correlation:
    type: event_count
    rules: [sh, bash]
    group-by: [User]
    timespan: 1m
    condition: {gte: 3}
---
title: Sh
name: sh
logsource: {category: process_creation, product: linux}
detection: {sel: {Image|endswith: sh}, condition: sel}
---
title: Bash
name: bash
logsource: {category: process_creation, product: linux}
detection: {sel: {Image|endswith: /bash}, condition: sel}
";

#[test]
fn an_event_counts_once_however_many_referenced_rules_it_matches() {
    let set = loaded(COUNTS);
    let mut c = correlator(&set);
    let two = [launch("/bin/bash", "bob", 1), launch("/bin/bash", "bob", 2)];
    assert!(feed(&set, &mut c, &two).is_empty(), "two events, not four");
    let hits = feed(&set, &mut c, &[launch("/bin/sh", "bob", 3)]);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].count, 3);
    // Another user is another group; an absent user is a group of its own (empty value).
    let mut c = correlator(&set);
    let mixed = [
        launch("/bin/sh", "bob", 1),
        launch("/bin/sh", "eve", 2),
        launch("/bin/sh", "bob", 3),
    ];
    assert!(feed(&set, &mut c, &mixed).is_empty());
    assert_eq!(c.groups(), 2);
    let nobody: Vec<Event> = (0..3)
        .map(|t| {
            let mut e = launch("/bin/sh", "x", t);
            e.data["process"].as_object_mut().unwrap().remove("user");
            e
        })
        .collect();
    let hits = feed(&set, &mut c, &nobody);
    assert_eq!(hits[0].group, [("User".to_owned(), String::new())]);
}

const TEMPORAL: &str = "
title: Recon
id: recon
correlation:
    type: temporal_ordered
    rules: [id, uname, whoami]
    group-by: [User]
    timespan: 5m
---
title: Recon any order
id: recon-any
correlation:
    type: temporal
    rules: [id, uname, whoami]
    group-by: [User]
    timespan: 5m
---
title: Id
name: id
logsource: {category: process_creation, product: linux}
detection: {sel: {Image|endswith: /id}, condition: sel}
---
title: Uname
name: uname
logsource: {category: process_creation, product: linux}
detection: {sel: {Image|endswith: /uname}, condition: sel}
---
title: Whoami
name: whoami
logsource: {category: process_creation, product: linux}
detection: {sel: {Image|endswith: /whoami}, condition: sel}
";

fn ids(hits: &[CorrelationHit]) -> Vec<&str> {
    hits.iter().map(|h| h.rule.id.as_str()).collect()
}

#[test]
fn temporal_needs_every_rule_and_temporal_ordered_their_order() {
    let set = loaded(TEMPORAL);
    let mut c = correlator(&set);
    let reversed = [
        launch("/usr/bin/whoami", "bob", 1_000),
        launch("/usr/bin/uname", "bob", 2_000),
        launch("/usr/bin/id", "bob", 3_000),
    ];
    assert_eq!(ids(&feed(&set, &mut c, &reversed)), ["recon-any"]);
    let mut c = correlator(&set);
    let in_order = [
        launch("/usr/bin/id", "alice", 1_000),
        launch("/usr/bin/whoami", "alice", 1_500),
        launch("/usr/bin/uname", "alice", 2_000),
        launch("/usr/bin/whoami", "alice", 3_000),
    ];
    let hits = feed(&set, &mut c, &in_order);
    assert_eq!(ids(&hits), ["recon-any", "recon"]);
    assert_eq!(hits[1].count, 3);
    assert_eq!((hits[1].first_ms, hits[1].last_ms), (1_000, 3_000));
    // Too far apart.
    let mut c = correlator(&set);
    let slow = [
        launch("/usr/bin/id", "carol", 0),
        launch("/usr/bin/uname", "carol", 200_000),
        launch("/usr/bin/whoami", "carol", 400_000),
    ];
    assert!(feed(&set, &mut c, &slow).is_empty());
}

/// The specification's example: many failed logins, then a success, for one user.
const CHAIN: &str = "
title: Failed logins followed by a success
id: chain
correlation:
    type: temporal_ordered
    rules: [many_failed, success]
    group-by: [User]
    timespan: 10m
level: high
---
title: Many failed
id: many
name: many_failed
correlation:
    type: event_count
    rules: [failed]
    group-by: [User]
    timespan: 10m
    condition: {gte: 3}
---
title: Failed
name: failed
logsource: {category: process_creation, product: linux}
detection: {sel: {Image|endswith: /false}, condition: sel}
---
title: Success
name: success
logsource: {category: process_creation, product: linux}
detection: {sel: {Image|endswith: /true}, condition: sel}
";

#[test]
fn chained_correlations_feed_hits_forward_and_only_the_outer_one_reports() {
    let set = loaded(CHAIN);
    let outer = set.correlations().iter().find(|c| c.id == "chain").unwrap();
    let inner = set.correlations().iter().find(|c| c.id == "many").unwrap();
    assert!(outer.standalone && !inner.standalone);
    assert_eq!(
        outer.rules,
        ["many", "t#3"],
        "ids, the rule without one named by its file"
    );
    let mut c = correlator(&set);
    let mut events: Vec<Event> = (0..4)
        .map(|t| launch("/bin/false", "root", t * 1_000))
        .collect();
    events.push(launch("/bin/true", "root", 10_000));
    let hits = feed(&set, &mut c, &events);
    assert_eq!(ids(&hits), ["chain"]);
    assert_eq!(hits[0].group, [("User".to_owned(), "root".to_owned())]);
    assert_eq!(
        hits[0].event_uids.len(),
        4,
        "the three failures and the success"
    );
    // A success before the failures is not the pattern.
    let mut c = correlator(&set);
    let mut events = vec![launch("/bin/true", "bob", 0)];
    events.extend((1..5).map(|t| launch("/bin/false", "bob", t * 1_000)));
    assert!(feed(&set, &mut c, &events).is_empty());
}

#[test]
fn aliases_group_different_fields_of_different_rules() {
    let set = loaded(
        "
title: Scanned then connected back
id: back
correlation:
    type: temporal_ordered
    rules: [probe, callback]
    group-by: [peer]
    timespan: 5m
    aliases:
        peer: {probe: SourceIp, callback: DestinationIp}
---
title: Probe
name: probe
logsource: {category: network_connection, product: linux}
detection: {sel: {Initiated: 'false', DestinationPort: 22}, condition: sel}
---
title: Callback
name: callback
logsource: {category: network_connection, product: linux}
detection: {sel: {Initiated: 'true'}, condition: sel}
",
    );
    let mut c = correlator(&set);
    let mut back = inbound("10.0.0.5", "203.0.113.9", 4444, 2_000);
    back.data["unmapped"]["initiated"] = json!("true");
    let hits = feed(
        &set,
        &mut c,
        &[inbound("203.0.113.9", "10.0.0.5", 22, 1_000), back],
    );
    assert_eq!(hits.len(), 1);
    assert_eq!(
        hits[0].group,
        [("peer".to_owned(), "203.0.113.9".to_owned())]
    );
}

#[test]
fn state_stays_within_its_limits_and_expires_in_window_order() {
    let set = loaded(PORT_SCAN);
    let limits = CorrelationLimits {
        max_groups: 2,
        max_distinct_values: 10,
        ..CorrelationLimits::default()
    };
    let mut c = Correlator::new(&set, limits);
    for (i, src) in ["198.51.100.1", "198.51.100.2", "198.51.100.3"]
        .iter()
        .enumerate()
    {
        feed(&set, &mut c, &scan(src, 1..3, i as i64 * 1_000, 1));
    }
    assert_eq!(c.groups(), 2);
    assert_eq!(c.stats().evicted_groups, 1);
    feed(&set, &mut c, &scan("198.51.100.3", 10..40, 3_000, 1));
    assert_eq!(c.stats().dropped_values, 32 - 10);
    assert!(c.state_size() <= 2 + 2 * (10 + 256 + 32));
    c.expire(60_000 + 1_500);
    assert_eq!(c.groups(), 1, "the group last seen at 1 s has passed");
    c.expire(1_000_000);
    assert_eq!((c.groups(), c.state_size()), (0, 0));
    assert_eq!(c.stats().expired_groups, 2);
    let empty = Correlator::new(
        &set,
        CorrelationLimits {
            max_groups: 0,
            ..limits
        },
    );
    assert_eq!(empty.groups(), 0);
}

#[test]
fn a_correlator_can_move_between_threads() {
    fn check<T: Send + Sync>() {}
    check::<Correlator>();
    check::<CorrelationHit>();
}
