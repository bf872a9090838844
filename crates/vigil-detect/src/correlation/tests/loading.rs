//! Correlation rules as loaded: what cannot load and why, the specification's examples,
//! `generate`, and the finding a hit becomes.

use super::*;

#[test]
fn generate_keeps_referenced_rules_as_findings_of_their_own() {
    let set = loaded(&PORT_SCAN.replace("level: high", "level: high\ngenerate: true"));
    assert!(set.rules()[0].standalone);
    assert_eq!(
        set.matches(&inbound("1.2.3.4", "10.0.0.5", 1, 0)).count(),
        1
    );
    let set = loaded(PORT_SCAN);
    assert_eq!(
        set.matches(&inbound("1.2.3.4", "10.0.0.5", 1, 0)).count(),
        0
    );
    assert_eq!(
        set.matches_all(&inbound("1.2.3.4", "10.0.0.5", 1, 0))
            .count(),
        1
    );
}

#[test]
fn correlations_that_cannot_load_say_why() {
    let base = "
---
title: Base
id: base-id
name: base
logsource: {category: process_creation, product: linux}
detection: {sel: {Image: /x}, condition: sel}
---
title: Auditd
name: audit
logsource: {product: linux, service: nosuch}
detection: {sel: {type: EXECVE}, condition: sel}
";
    let cases = [
        (
            "type: event_count, rules: [nothing], group-by: [User], timespan: 1m, condition: {gte: 2}",
            "refers to rule `nothing`, which is not among the rules loaded",
        ),
        (
            "type: event_count, rules: [audit], group-by: [User], timespan: 1m, condition: {gte: 2}",
            "refers to rule `audit` (t.yml), which is not loaded: logsource product=linux service=nosuch has no OCSF mapping yet",
        ),
        (
            "type: event_count, rules: [base], group-by: [Hostname], timespan: 1m, condition: {gte: 2}",
            "group-by field `Hostname`: field `Hostname` has no OCSF mapping for logsource category=process_creation product=linux (rule `base-id`)",
        ),
        (
            "type: value_count, rules: [base], group-by: [User], timespan: 1m, condition: {field: Port, gte: 2}",
            "counted field `Port`",
        ),
        (
            "type: value_sum, rules: [base], group-by: [User], timespan: 1m, condition: {field: x, gt: 2}",
            "correlation type `value_sum` is not supported",
        ),
        (
            "type: temporal, rules: [base], group-by: [User], timespan: 1m, condition: base",
            "a condition written as an expression",
        ),
    ];
    for (section, want) in cases {
        let text = format!("title: C\nid: c\ncorrelation: {{{section}}}\n{base}");
        let (set, report) = load(&text);
        let status = &report.rules[0].status;
        assert!(
            status.reason().is_some_and(|r| r.contains(want)),
            "{section}: {status:?}"
        );
        assert!(set.correlations().is_empty());
        if section.contains("[base]") {
            assert!(
                !set.rules()[0].standalone,
                "referenced rules stay building blocks"
            );
        }
        assert_eq!(report.rules[0].logsource, "correlation");
    }
    let cycle = "
title: A
id: a
correlation: {type: event_count, rules: [b], group-by: [User], timespan: 1m, condition: {gte: 2}}
---
title: B
id: b
correlation: {type: event_count, rules: [a], group-by: [User], timespan: 1m, condition: {gte: 2}}
";
    let (_, report) = load(cycle);
    for r in &report.rules {
        assert!(
            matches!(&r.status, RuleStatus::Malformed(m) if m.contains("cycle")),
            "{:?}",
            r.status
        );
    }
    let chain_by_other = CHAIN.replace(
        "group-by: [User]\n    timespan: 10m\nlevel",
        "group-by: [Image]\n    timespan: 10m\nlevel",
    );
    let (_, report) = load(&chain_by_other);
    assert!(
        matches!(&report.rules[0].status, RuleStatus::Unsupported(m) if m.contains("`Image` is not among the group-by fields")),
        "{:?}",
        report.rules[0].status
    );
}

#[test]
fn the_specification_examples_load_as_far_as_their_references_allow() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/sigma/spec/examples");
    if !dir.is_dir() {
        return;
    }
    let maps = FieldMaps::builtin().unwrap();
    let (_, report) = RuleSet::load_dirs(&[dir], &maps).unwrap();
    // `event_count_ecs.yml` repeats the id of `event_count.yml`: the only malformed one.
    let malformed: Vec<_> = report
        .problems()
        .filter(
            |p| matches!(&p.status, RuleStatus::Malformed(m) if !m.contains("duplicate rule id")),
        )
        .collect();
    assert!(malformed.is_empty(), "{malformed:#?}");
}

#[test]
fn a_hit_becomes_a_finding_that_names_the_group_count_and_span() {
    let set = loaded(PORT_SCAN);
    let mut c = correlator(&set);
    let hit = feed(&set, &mut c, &scan("203.0.113.9", 1..26, 1_000, 50)).remove(0);
    let f = correlation_finding(&hit, 99);
    assert_eq!(f.class_uid, 2004);
    assert_eq!(f.time, 99);
    assert_eq!(f.severity, "High");
    let info = &f.finding_info;
    assert_eq!(
        (info.analytic.uid.as_str(), info.title.as_str()),
        ("scan", "Port scan")
    );
    assert_eq!(info.types, ["sigma", "correlation"]);
    assert!(
        info.related_event_uids()
            .eq(hit.event_uids.iter().map(String::as_str))
    );
    assert_eq!(
        info.attacks[0].technique.as_ref().map(|t| t.uid.as_str()),
        Some("T1046")
    );
    let desc = info.desc.as_deref().unwrap();
    assert!(
        desc.starts_with("25 distinct DestinationPort values (1, 2, 3,"),
        "{desc}"
    );
    assert!(
        desc.contains("for SourceIp=203.0.113.9, DestinationIp=10.0.0.5 within 1.2 s (condition ≥ 25 within 1 min)"),
        "{desc}"
    );
    let data = f.evidences[0].data.as_ref().unwrap();
    assert_eq!(data["correlation"]["count"], 25);
    assert_eq!(data["correlation"]["group"]["SourceIp"], "203.0.113.9");
    // The same facts in standard OCSF attributes.
    assert_eq!(f.count, Some(25));
    assert_eq!(
        (f.start_time, f.end_time),
        (Some(hit.first_ms), Some(hit.last_ms))
    );
    assert_eq!(
        f.end_time.zip(f.start_time).map(|(e, s)| e - s),
        Some(1_200)
    );
    let observed: Vec<_> = f
        .observables
        .iter()
        .map(|o| (o.name.as_str(), o.type_id, o.value.as_str()))
        .collect();
    assert_eq!(
        observed,
        [
            ("src_endpoint.ip", 2, "203.0.113.9"),
            ("dst_endpoint.ip", 2, "10.0.0.5")
        ]
    );
    let evidence = &f.evidences[0];
    assert_eq!(
        evidence.src_endpoint,
        Some(serde_json::json!({"ip": "203.0.113.9"}))
    );
    assert_eq!(
        evidence.dst_endpoint,
        Some(serde_json::json!({"ip": "10.0.0.5"}))
    );
    assert_eq!(
        f.device.as_ref().map(|d| d.hostname.as_str()),
        Some("web-1")
    );
    assert_eq!(
        f.finding_info.uid,
        correlation_finding(&hit, 5).finding_info.uid
    );
}
