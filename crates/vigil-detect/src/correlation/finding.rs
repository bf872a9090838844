//! The OCSF Detection Finding a correlation hit produces.

use serde_json::json;
use vigil_ocsf::{Analytic, DetectionFinding, Evidence, FindingInfo, Observable, RelatedEvent};

use crate::correlation::{CorrelationHit, CorrelationType};

/// Builds the Detection Finding (class 2004) for a correlation hit, made at `now_ms`.
///
/// Its title, severity and ATT&CK mappings are the correlation rule's; its analytic names the
/// rule (`category` `sigma`, types `sigma` and `correlation`); its description says what was
/// counted, for which group values, over what span, then gives the rule's description; it
/// lists the hit's sample of event ids as `related_events` and carries the group, count,
/// distinct values and times as evidence `data`. Its id is derived from the rule, the group
/// and the newest event, so replaying the same events gives the same finding id.
///
/// The same facts sit in standard OCSF attributes too: `count` (the count that met the
/// condition: the distinct ports of a port scan), `start_time`/`end_time` (the window's oldest
/// and newest event), `observables` (one per group-by value, named by its OCSF path, e.g.
/// `src_endpoint.ip`), and the evidence's `src_endpoint`/`dst_endpoint` when the group holds
/// endpoint attributes (a port scan's scanner and target). docs/DETECTION.md shows an example.
pub fn correlation_finding(hit: &CorrelationHit, now_ms: i64) -> DetectionFinding {
    let rule = &hit.rule;
    let summary = summary(hit);
    let desc = match &rule.description {
        Some(d) => format!("{summary}\n\n{}", d.trim()),
        None => summary,
    };
    let identity = format!(
        "{}\u{1f}{}\u{1f}{}\u{1f}{}",
        rule.id,
        hit.group
            .iter()
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
            .join("\u{1f}"),
        hit.last_ms,
        hit.event_uids.last().map_or("", String::as_str)
    );
    let info = FindingInfo {
        uid: uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, identity.as_bytes()).to_string(),
        title: rule.title.clone(),
        desc: Some(desc),
        analytic: Analytic {
            uid: rule.id.clone(),
            name: rule.title.clone(),
            type_id: 1,
            category: "sigma".into(),
        },
        attacks: rule.attacks.clone(),
        types: vec!["sigma".into(), "correlation".into()],
        related_events: hit
            .event_uids
            .iter()
            .map(|uid| RelatedEvent { uid: uid.clone() })
            .collect(),
        related_events_count: u64::try_from(hit.event_uids.len()).ok(),
    };
    let mut finding = DetectionFinding::new(now_ms, rule.level, info);
    finding.device = hit.device.clone();
    finding.count = Some(hit.count);
    finding.start_time = Some(hit.first_ms);
    finding.end_time = Some(hit.last_ms);
    let (mut src, mut dst) = (serde_json::Map::new(), serde_json::Map::new());
    for ((_, value), path) in hit.group.iter().zip(&hit.group_paths) {
        let Some(path) = path.as_deref().filter(|_| !value.is_empty()) else {
            continue;
        };
        finding.observables.push(Observable::of_path(path, value));
        let endpoint = match path.split_once('.') {
            Some(("src_endpoint", attr)) => Some((&mut src, attr)),
            Some(("dst_endpoint", attr)) => Some((&mut dst, attr)),
            _ => None,
        };
        if let Some((endpoint, attr)) = endpoint.filter(|(_, a)| !a.contains('.')) {
            let typed = match value.parse::<u16>() {
                Ok(port) if attr == "port" => json!(port),
                _ => json!(value),
            };
            endpoint.insert(attr.to_owned(), typed);
        }
    }
    let endpoint = |m: serde_json::Map<String, serde_json::Value>| {
        (!m.is_empty()).then_some(serde_json::Value::Object(m))
    };
    let group: serde_json::Map<String, serde_json::Value> = hit
        .group
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let mut data = json!({
        "correlation": {
            "type": rule.kind.as_str(),
            "group": group,
            "count": hit.count,
            "condition": rule.condition.to_string(),
            "timespan_ms": rule.timespan_ms,
            "first_time": hit.first_ms,
            "last_time": hit.last_ms,
        }
    });
    if let Some(values) = &hit.distinct_values {
        data["correlation"]["field"] = json!(rule.field);
        data["correlation"]["distinct_values"] = json!(values);
    }
    finding.evidences.push(Evidence {
        process: None,
        actor: None,
        src_endpoint: endpoint(src),
        dst_endpoint: endpoint(dst),
        data: Some(data),
        ..Evidence::default()
    });
    finding
}

/// One sentence on what fired: `30 distinct DestinationPort values (22, 80, …) for
/// SourceIp=203.0.113.9, DestinationIp=10.0.0.5 within 1.2 s (condition ≥ 25 within 1 min)`.
fn summary(hit: &CorrelationHit) -> String {
    let rule = &hit.rule;
    let what = match rule.kind {
        CorrelationType::EventCount => format!("{} matching events", hit.count),
        CorrelationType::ValueCount => {
            let listed = hit.distinct_values.as_deref().unwrap_or_default();
            let more = if u64::try_from(listed.len()).unwrap_or(u64::MAX) < hit.count {
                ", …"
            } else {
                ""
            };
            format!(
                "{} distinct {} values ({}{more})",
                hit.count,
                rule.field.join("+"),
                listed.join(", ")
            )
        }
        CorrelationType::Temporal => format!(
            "{} of the {} correlated rules ({})",
            hit.count,
            rule.rules.len(),
            rule.rules.join(", ")
        ),
        CorrelationType::TemporalOrdered => format!(
            "{} of the {} correlated rules in order ({})",
            hit.count,
            rule.rules.len(),
            rule.rules.join(" → ")
        ),
    };
    let group = if hit.group.is_empty() {
        String::new()
    } else {
        let parts: Vec<String> = hit
            .group
            .iter()
            .map(|(k, v)| {
                if v.is_empty() {
                    format!("{k}=(none)")
                } else {
                    format!("{k}={v}")
                }
            })
            .collect();
        format!(" for {}", parts.join(", "))
    };
    format!(
        "{what}{group} within {} (condition {} within {})",
        duration(hit.last_ms.saturating_sub(hit.first_ms)),
        rule.condition,
        duration(rule.timespan_ms)
    )
}

/// `850 ms`, `1.2 s`, `59 s`, `5 min`, `1.5 h`, `2 d`.
pub(crate) fn duration(ms: i64) -> String {
    let ms = ms.max(0);
    let trim = |x: f64, unit: &str| {
        let text = format!("{x:.1}");
        let text = text.strip_suffix(".0").unwrap_or(&text).to_owned();
        format!("{text} {unit}")
    };
    #[allow(clippy::cast_precision_loss)]
    let f = ms as f64;
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => trim(f / 1e3, "s"),
        60_000..3_600_000 => trim(f / 6e4, "min"),
        3_600_000..86_400_000 => trim(f / 3.6e6, "h"),
        _ => trim(f / 8.64e7, "d"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(duration(-5), "0 ms");
        assert_eq!(duration(850), "850 ms");
        assert_eq!(duration(1_200), "1.2 s");
        assert_eq!(duration(60_000), "1 min");
        assert_eq!(duration(90 * 60_000), "1.5 h");
        assert_eq!(duration(2 * 86_400_000), "2 d");
    }
}
