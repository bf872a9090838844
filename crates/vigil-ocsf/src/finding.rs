//! Detection Finding (class 2004): what a detector emits when a rule matches.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Device, Metadata, class};

/// Severity of a finding, from a Sigma `level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Informational.
    Informational = 1,
    /// Low.
    Low = 2,
    /// Medium.
    Medium = 3,
    /// High.
    High = 4,
    /// Critical.
    Critical = 5,
}

impl Severity {
    /// Maps a Sigma `level` (`informational`, `low`, `medium`, `high`, `critical`).
    pub fn from_sigma_level(level: &str) -> Option<Self> {
        Some(match level.to_ascii_lowercase().as_str() {
            "informational" => Self::Informational,
            "low" => Self::Low,
            "medium" => Self::Medium,
            "high" => Self::High,
            "critical" => Self::Critical,
            _ => return None,
        })
    }

    /// The OCSF caption.
    pub fn name(self) -> &'static str {
        match self {
            Self::Informational => "Informational",
            Self::Low => "Low",
            Self::Medium => "Medium",
            Self::High => "High",
            Self::Critical => "Critical",
        }
    }
}

/// `analytic`: the rule that produced the finding.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Analytic {
    /// Rule id.
    pub uid: String,
    /// Rule title.
    pub name: String,
    /// 1 = Rule.
    pub type_id: u8,
    /// Rule family (`sigma`).
    pub category: String,
}

/// `technique` of an ATT&CK mapping.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Technique {
    /// Technique id, e.g. `T1059.004`.
    pub uid: String,
    /// Technique name, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `tactic` of an ATT&CK mapping.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tactic {
    /// Tactic id, e.g. `TA0002`.
    pub uid: String,
    /// Tactic name.
    pub name: String,
}

/// `attack`: one ATT&CK technique with its tactic(s).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attack {
    /// The technique (absent when a rule names only a tactic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub technique: Option<Technique>,
    /// The tactic, when the rule names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tactic: Option<Tactic>,
    /// Every tactic the rule names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tactics: Vec<Tactic>,
}

/// `finding_info`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FindingInfo {
    /// Finding id.
    pub uid: String,
    /// Finding title (the rule title).
    pub title: String,
    /// Longer description (the rule description).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desc: Option<String>,
    /// The rule.
    pub analytic: Analytic,
    /// ATT&CK mappings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attacks: Vec<Attack>,
    /// Finding types (`sigma`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<String>,
    /// The events that triggered the finding (for a correlation, a sample of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub related_events: Vec<RelatedEvent>,
    /// How many events the finding stands for (a correlation's whole count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub related_events_count: Option<u64>,
}

impl FindingInfo {
    /// Names the triggering events by id; `count` is how many there were in all.
    pub fn relate<I, S>(&mut self, uids: I, count: u64)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.related_events = uids
            .into_iter()
            .map(|uid| RelatedEvent { uid: uid.into() })
            .collect();
        self.related_events_count = Some(count);
    }

    /// The ids of the triggering events, in order.
    pub fn related_event_uids(&self) -> impl Iterator<Item = &str> {
        self.related_events.iter().map(|e| e.uid.as_str())
    }
}

/// `finding_info.related_events[]`: one event behind a finding.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelatedEvent {
    /// The event's `metadata.uid`.
    pub uid: String,
}

/// `evidences[]`: what the triggering event showed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The process involved, copied from the triggering event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<Value>,
    /// The actor, copied from the triggering event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Value>,
    /// The connection's initiator (for a port scan: the scanner), as a `network_endpoint`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_endpoint: Option<Value>,
    /// The connection's responder (for a port scan: the scanned host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_endpoint: Option<Value>,
    /// The file involved (for a YARA match: the file that matched, with its hash), as an OCSF
    /// `file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<Value>,
    /// Other attributes of the triggering event worth keeping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

/// `observables[]`: a value worth pivoting on (an address, a host name, a user), named by the
/// OCSF attribute it came from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Observable {
    /// The attribute's full path, e.g. `src_endpoint.ip`.
    pub name: String,
    /// OCSF observable type id: 1 Hostname, 2 IP Address, 4 User Name, 7 File Name,
    /// 11 Port, 99 Other.
    pub type_id: u8,
    /// The type's caption.
    #[serde(rename = "type")]
    pub type_name: String,
    /// The value, as text.
    pub value: String,
}

impl Observable {
    /// An observable for the value of the OCSF attribute `path`; its type follows from the
    /// path's last segment.
    pub fn of_path(path: &str, value: &str) -> Self {
        let (type_id, type_name) = match path.rsplit('.').next().unwrap_or(path) {
            "hostname" => (1, "Hostname"),
            "ip" => (2, "IP Address"),
            "port" => (11, "Port"),
            "name" if path.contains("user") => (4, "User Name"),
            "name" if path.contains("file") => (7, "File Name"),
            _ => (99, "Other"),
        };
        Self {
            name: path.to_owned(),
            type_id,
            type_name: type_name.to_owned(),
            value: value.to_owned(),
        }
    }
}

/// A Detection Finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectionFinding {
    /// 1 = Create.
    pub activity_id: u8,
    /// Always 2 (Findings).
    pub category_uid: u8,
    /// Always 2004.
    pub class_uid: u32,
    /// `200400 + activity_id`.
    pub type_uid: u32,
    /// Severity id.
    pub severity_id: u8,
    /// Severity caption.
    pub severity: String,
    /// When the finding was made, milliseconds since the epoch.
    pub time: i64,
    /// Record metadata.
    pub metadata: Metadata,
    /// The host the finding is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<Device>,
    /// 1 = New.
    pub status_id: u8,
    /// What was found.
    pub finding_info: FindingInfo,
    /// Evidence from the triggering events.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidences: Vec<Evidence>,
    /// Values to pivot on (for a correlation: its group-by values).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub observables: Vec<Observable>,
    /// For a correlation: the count that met its condition (events, or distinct values for
    /// `value_count`, e.g. the distinct ports of a port scan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// For a correlation: time of the oldest event of the window that fired, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<i64>,
    /// For a correlation: time of the newest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<i64>,
    /// Always true: every Vigil finding is an alert.
    pub is_alert: bool,
    /// What OCSF has no attribute for. Vigil puts here, under `response`, what an agent's
    /// policy did when the finding was raised on the endpoint (`action`, `succeeded`,
    /// `detail`, `policy_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unmapped: Option<serde_json::Value>,
}

impl DetectionFinding {
    /// A new finding.
    pub fn new(time: i64, severity: Severity, finding_info: FindingInfo) -> Self {
        Self {
            activity_id: 1,
            category_uid: 2,
            class_uid: class::DETECTION_FINDING,
            type_uid: class::DETECTION_FINDING * 100 + 1,
            severity_id: severity as u8,
            severity: severity.name().into(),
            time,
            metadata: Metadata::vigil("detection"),
            device: None,
            status_id: 1,
            finding_info,
            evidences: Vec::new(),
            observables: Vec::new(),
            count: None,
            start_time: None,
            end_time: None,
            is_alert: true,
            unmapped: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Observable;

    #[test]
    fn observable_types_follow_the_path() {
        assert_eq!(
            Observable::of_path("src_endpoint.ip", "10.0.0.1").type_id,
            2
        );
        assert_eq!(Observable::of_path("dst_endpoint.hostname", "h").type_id, 1);
        assert_eq!(Observable::of_path("actor.user.name", "root").type_id, 4);
        assert_eq!(Observable::of_path("process.file.name", "sh").type_id, 7);
        let other = Observable::of_path("process.cmd_line", "x");
        assert_eq!((other.type_id, other.type_name.as_str()), (99, "Other"));
        let json = serde_json::to_value(Observable::of_path("dst_endpoint.port", "22"));
        assert_eq!(
            json.ok().and_then(|j| j.get("type").cloned()),
            Some("Port".into())
        );
    }
}
