//! The OCSF Detection Finding a rule match produces.

use vigil_ocsf::{Analytic, DetectionFinding, Device, Event, Evidence, FindingInfo};

use crate::rule::Rule;

/// The id of the finding `rule` raises on the event `event_uid`: the same wherever the rule is
/// evaluated (an agent's policy, the server's detection workers), so the two copies of one
/// finding are stored once and re-evaluating an event never duplicates it.
pub fn finding_uid(rule_id: &str, event_uid: &str) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("{}:{rule_id}{event_uid}", rule_id.len()).as_bytes(),
    )
    .to_string()
}

/// Builds the Detection Finding (class 2004) for `rule` matching `event`, made at `now_ms`.
///
/// The finding gets a fresh id; its title, description and severity are the rule's; its
/// analytic names the rule (`category` `sigma`); it carries the rule's ATT&CK mappings, the
/// triggering event's id, the event's `device`, and one evidence with the event's `process`
/// and `actor`.
pub fn finding_for(rule: &Rule, event: &Event, now_ms: i64) -> DetectionFinding {
    let info = FindingInfo {
        uid: uuid::Uuid::now_v7().to_string(),
        title: rule.title.clone(),
        desc: rule.description.clone(),
        analytic: Analytic {
            uid: rule.id.clone(),
            name: rule.title.clone(),
            type_id: 1,
            category: "sigma".into(),
        },
        attacks: rule.attacks.clone(),
        types: vec!["sigma".into()],
        related_events: vec![vigil_ocsf::RelatedEvent {
            uid: event.uid.clone(),
        }],
        related_events_count: Some(1),
    };
    let mut finding = DetectionFinding::new(now_ms, rule.level, info);
    finding.device = event
        .get("device")
        .and_then(|d| serde_json::from_value::<Device>(d.clone()).ok());
    let evidence = Evidence {
        process: event.get("process").cloned(),
        actor: event.get("actor").cloned(),
        src_endpoint: event.get("src_endpoint").cloned(),
        dst_endpoint: event.get("dst_endpoint").cloned(),
        ..Evidence::default()
    };
    if evidence.process.is_some()
        || evidence.actor.is_some()
        || evidence.src_endpoint.is_some()
        || evidence.dst_endpoint.is_some()
    {
        finding.evidences.push(evidence);
    }
    finding
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;
    use vigil_ocsf::Severity;
    use vigil_ocsf::fieldmap::FieldMaps;

    use super::*;
    use crate::RuleSet;

    #[test]
    fn finding_uid_is_stable_and_distinct() {
        assert_eq!(finding_uid("r", "e"), finding_uid("r", "e"));
        assert_ne!(finding_uid("r", "e"), finding_uid("r", "f"));
        assert_ne!(finding_uid("r/e", ""), finding_uid("r", "e/"));
    }

    #[test]
    fn finding_carries_rule_and_event() {
        let text = "
title: T
id: rid
description: D
tags: [attack.execution, attack.t1059.004]
logsource: {category: process_creation, product: linux}
detection: {sel: {Image: /bin/sh}, condition: sel}
level: critical
";
        let maps = FieldMaps::builtin().unwrap();
        let (rules, _) = RuleSet::from_yaml_str(text, Path::new("t.yml"), &maps);
        let event = Event::from_value(json!({
            "class_uid": 1007, "activity_id": 1, "time": 5, "metadata": {"uid": "ev-1"},
            "device": {"type_id": 1, "hostname": "h", "os": {"name": "Linux", "type_id": 200}},
            "process": {"pid": 2, "file": {"path": "/bin/sh"}},
            "actor": {"process": {"pid": 1}}
        }))
        .unwrap();
        let f = finding_for(&rules[0], &event, 99);
        assert_eq!(f.time, 99);
        assert_eq!(f.severity_id, Severity::Critical as u8);
        assert_eq!(f.finding_info.analytic.uid, "rid");
        assert_eq!(f.finding_info.desc.as_deref(), Some("D"));
        assert!(f.finding_info.related_event_uids().eq(["ev-1"]));
        assert_eq!(f.device.as_ref().map(|d| d.hostname.as_str()), Some("h"));
        assert_eq!(f.evidences[0].process.as_ref().unwrap()["pid"], 2);
        assert_eq!(f.evidences[0].actor.as_ref().unwrap()["process"]["pid"], 1);
        let attack = &f.finding_info.attacks[0];
        assert_eq!(attack.technique.as_ref().unwrap().uid, "T1059.004");
        assert_eq!(attack.tactic.as_ref().unwrap().name, "Execution");
        assert_ne!(
            f.finding_info.uid,
            finding_for(&rules[0], &event, 99).finding_info.uid
        );
        let wrapped = Event::from_record(&f).unwrap();
        assert_eq!(wrapped.class_uid, 2004);
    }
}
