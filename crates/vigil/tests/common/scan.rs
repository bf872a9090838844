//! Port-scan (T1046) alerts as the operator API serves them.

use std::time::{Duration, Instant};

use serde_json::Value;

/// Every alert mapped to ATT&CK T1046.
pub fn t1046_alerts(api: &str) -> Vec<Value> {
    let alerts = super::get_json(&format!("{api}/api/v1/alerts?limit=1000"));
    alerts["items"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|a| {
            a["finding_info"]["attacks"]
                .as_array()
                .is_some_and(|at| at.iter().any(|x| x["technique"]["uid"] == "T1046"))
        })
        .cloned()
        .collect()
}

/// The scanner an alert names (its evidence's `src_endpoint.ip`).
pub fn scanner_of(alert: &Value) -> Option<&str> {
    alert["evidences"][0]["src_endpoint"]["ip"].as_str()
}

/// T1046 alerts naming `source` as the scanner.
pub fn alerts_from(api: &str, source: &str) -> Vec<Value> {
    t1046_alerts(api)
        .into_iter()
        .filter(|a| scanner_of(a) == Some(source))
        .collect()
}

/// Polls until a T1046 alert names `source`, at most `within`; returns it and when it was
/// first seen.
pub fn wait_for_alert_from(api: &str, source: &str, within: Duration) -> Option<(Value, Instant)> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(alert) = alerts_from(api, source).into_iter().next() {
            return Some((alert, Instant::now()));
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What a scan alert says.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanFacts {
    pub scanner: String,
    pub target: String,
    pub distinct_ports: u64,
    pub ports: Vec<u16>,
    pub span_ms: i64,
    /// When detection made the finding.
    pub made_ms: i64,
    /// Time of the newest event of the window that fired.
    pub end_ms: i64,
}

/// Checks that `alert` names the scanner, the target, the number of distinct ports and the
/// time span, in its description and in its structured attributes, and that they agree.
pub fn assert_names_scan(alert: &Value, scanner: &str, target: &str) -> ScanFacts {
    let desc = alert["finding_info"]["desc"].as_str().unwrap_or_default();
    let count = alert["count"].as_u64().expect("count");
    let start = alert["start_time"].as_i64().expect("start_time");
    let end = alert["end_time"].as_i64().expect("end_time");
    let evidence = &alert["evidences"][0];
    assert_eq!(evidence["src_endpoint"]["ip"], scanner, "{alert:#}");
    assert_eq!(evidence["dst_endpoint"]["ip"], target, "{alert:#}");
    let observed: Vec<(&str, &str)> = alert["observables"]
        .as_array()
        .expect("observables")
        .iter()
        .map(|o| {
            (
                o["name"].as_str().unwrap_or(""),
                o["value"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(
        observed.contains(&("src_endpoint.ip", scanner)),
        "{observed:?}"
    );
    assert!(
        observed.contains(&("dst_endpoint.ip", target)),
        "{observed:?}"
    );
    assert!(
        count >= 25,
        "at least the rule's 25 distinct ports: {count}"
    );
    let ports: Vec<u16> = evidence["data"]["correlation"]["distinct_values"]
        .as_array()
        .expect("distinct values")
        .iter()
        .filter_map(|v| v.as_str()?.parse().ok())
        .collect();
    assert_eq!(u64::try_from(ports.len()).ok(), Some(count), "{alert:#}");
    assert!(end >= start);
    assert!(
        desc.starts_with(&format!("{count} distinct DestinationPort values")),
        "{desc}"
    );
    assert!(
        desc.contains(&format!(
            "SourceIp={scanner}, DestinationIp={target} within "
        )),
        "{desc}"
    );
    ScanFacts {
        scanner: scanner.to_owned(),
        target: target.to_owned(),
        distinct_ports: count,
        ports,
        span_ms: end - start,
        made_ms: alert["time"].as_i64().expect("time"),
        end_ms: end,
    }
}
