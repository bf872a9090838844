//! The OCSF Detection Finding a YARA match produces.

use serde_json::{Map, Value, json};
use vigil_ocsf::{
    Analytic, DetectionFinding, Device, Event, Evidence, File, FindingInfo, Fingerprint,
    RelatedEvent, Severity,
};

use super::YaraMatch;
use crate::finding::finding_uid;

/// The file a match was found in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFacts {
    /// Its path.
    pub path: String,
    /// SHA-256 of the bytes scanned, lowercase hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// Builds the Detection Finding (class 2004) for the match `m` in `file`, made at `now_ms`;
/// `event` is the event that had the file scanned (an exec), if any.
///
/// - `analytic`: `uid` `yara:<namespace>.<rule>`, `name` the rule, `category` `yara`;
///   `types` `["yara"]`.
/// - `title`: the rule's `description` metadata, or its name; `desc` says which rule matched
///   which file.
/// - Severity: the `severity` (or else `level`) metadata, as a Sigma level (`informational`,
///   `low`, `medium`, `high`, `critical`; `info` too) or an OCSF severity id 1–5; Medium
///   when absent or not understood.
/// - ATT&CK: from the tags, read by [`attack_tags`].
/// - `finding_info.uid` is stable: the same rule, file content and event always give the same
///   id, so a finding sent twice (an agent's retry) is stored once. Without an event the
///   file's path stands in for it (a file scanned on demand twice is one finding; the same
///   content at two paths is two).
/// - One evidence: the `file` (path, name, size, SHA-256), and the event's `process` and
///   `actor`; `device` and `related_events` come from the event.
/// - `unmapped.yara`: rule, namespace, tags, metadata and the patterns that matched.
pub fn yara_finding(
    m: &YaraMatch,
    file: &FileFacts,
    event: Option<&Event>,
    now_ms: i64,
) -> DetectionFinding {
    let analytic_uid = format!("yara:{}", m.id());
    let occurrence = match event {
        Some(ev) => format!("{}:{}", file.sha256, ev.uid),
        None => format!("{}:{}", file.sha256, file.path),
    };
    let info = FindingInfo {
        uid: finding_uid(&analytic_uid, &occurrence),
        title: m
            .meta("description")
            .filter(|d| !d.trim().is_empty())
            .unwrap_or(&m.rule)
            .to_owned(),
        desc: Some(format!(
            "YARA rule {} matched {} (SHA-256 {}, {} bytes).",
            m.id(),
            file.path,
            file.sha256,
            file.size
        )),
        analytic: Analytic {
            uid: analytic_uid,
            name: m.rule.clone(),
            type_id: 1,
            category: "yara".into(),
        },
        attacks: crate::attack::attacks_from_tags(&attack_tags(&m.tags)),
        types: vec!["yara".into()],
        related_events: event
            .map(|ev| RelatedEvent {
                uid: ev.uid.clone(),
            })
            .into_iter()
            .collect(),
        related_events_count: event.map(|_| 1),
    };
    let mut finding = DetectionFinding::new(now_ms, severity(m), info);
    finding.device = event
        .and_then(|ev| ev.get("device"))
        .and_then(|d| serde_json::from_value::<Device>(d.clone()).ok());
    let ocsf_file = File {
        size: Some(file.size),
        hashes: vec![Fingerprint::sha256(file.sha256.clone())],
        ..File::regular(&file.path)
    };
    finding.evidences.push(Evidence {
        file: serde_json::to_value(ocsf_file).ok(),
        process: event.and_then(|ev| ev.get("process")).cloned(),
        actor: event.and_then(|ev| ev.get("actor")).cloned(),
        ..Evidence::default()
    });
    let metadata: Map<String, Value> = m
        .metadata
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    finding.unmapped = Some(json!({ "yara": {
        "rule": m.rule, "namespace": m.namespace, "tags": m.tags,
        "metadata": metadata, "patterns": m.patterns,
    }}));
    finding
}

/// The severity a rule's metadata asks for; Medium by default.
fn severity(m: &YaraMatch) -> Severity {
    let Some(value) = m.meta("severity").or_else(|| m.meta("level")) else {
        return Severity::Medium;
    };
    let value = value.trim();
    if value.eq_ignore_ascii_case("info") {
        return Severity::Informational;
    }
    Severity::from_sigma_level(value)
        .or(match value {
            "1" => Some(Severity::Informational),
            "2" => Some(Severity::Low),
            "3" => Some(Severity::Medium),
            "4" => Some(Severity::High),
            "5" => Some(Severity::Critical),
            _ => None,
        })
        .unwrap_or(Severity::Medium)
}

/// YARA tags that name ATT&CK, rewritten as the Sigma tags [`crate::attack`] maps. YARA tags
/// are identifiers (no dots), so these spellings are understood, in any case:
/// - a technique: `attack_t1059`, `attack_t1059_004`, `mitre_t1059_004`, or bare `T1059`,
///   `T1059_004` → `attack.t1059`, `attack.t1059.004`;
/// - a tactic: `attack_execution`, `attack_command_and_control`, `mitre_persistence` →
///   `attack.execution`, … (only with the prefix: a bare `execution` tag is not ATT&CK).
///
/// Other tags are left out.
pub fn attack_tags(tags: &[String]) -> Vec<String> {
    tags.iter()
        .filter_map(|tag| {
            let lower = tag.to_ascii_lowercase();
            let rest = lower
                .strip_prefix("attack_")
                .or_else(|| lower.strip_prefix("mitre_"));
            if let Some(id) = technique(rest.unwrap_or(&lower)) {
                return Some(format!("attack.{id}"));
            }
            let tactic = crate::attack::tactic(rest?)?;
            Some(format!("attack.{}", tactic.short_name))
        })
        .collect()
}

/// `t1059` → `t1059`, `t1059_004` → `t1059.004`; anything else → `None`.
fn technique(s: &str) -> Option<String> {
    let digits = s.strip_prefix('t')?;
    let (main, sub) = match digits.split_once(['_', '.']) {
        Some((m, s)) => (m, Some(s)),
        None => (digits, None),
    };
    let all_digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(main, 4) || sub.is_some_and(|s| !all_digits(s, 3)) {
        return None;
    }
    Some(match sub {
        Some(sub) => format!("t{main}.{sub}"),
        None => format!("t{main}"),
    })
}
