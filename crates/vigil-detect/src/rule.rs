//! A loaded rule, and the report of what loading made of every rule it saw.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;
use vigil_ocsf::fieldmap::LogSource;
use vigil_ocsf::{Attack, Event, Severity};

use crate::detection::Detection;
use crate::lookup::Lookups;

/// A compiled detection rule, ready to evaluate.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Rule id (Sigma `id`; for a rule without one, `<file stem>` or `<file stem>#<n>` for the
    /// n-th document of a file).
    pub id: String,
    /// Sigma `name`: the handle correlation rules and filters may use instead of the id.
    pub name: Option<String>,
    /// Title.
    pub title: String,
    /// Description.
    pub description: Option<String>,
    /// Severity, from the Sigma `level` (`medium` when the rule has none).
    pub level: Severity,
    /// Tags, as written.
    pub tags: Vec<String>,
    /// ATT&CK mappings derived from the tags.
    pub attacks: Vec<Attack>,
    /// The file the rule came from.
    pub path: PathBuf,
    /// Author(s), kept for the attribution the Detection Rule License asks for.
    pub author: Option<String>,
    /// Sigma `status` (`stable`, `test`, `experimental`, …).
    pub sigma_status: Option<String>,
    /// References.
    pub references: Vec<String>,
    /// Known false positives.
    pub falsepositives: Vec<String>,
    /// The Sigma logsource.
    pub logsource: LogSource,
    /// The view of the logsource this compilation is for, when it has several (`None`: the
    /// primary one). A rule that applies to several views is loaded as one variant per view,
    /// sharing its id, next to each other in load order.
    pub view: Option<String>,
    /// OCSF class of the events the rule applies to.
    pub class_uid: u32,
    /// OCSF activity of those events, when the logsource is one activity of the class.
    pub activity_id: Option<u32>,
    /// Whether a match is a finding of its own. False for a rule that a correlation rule
    /// refers to without `generate: true` (the Sigma default): such a rule only feeds
    /// correlations, and [`crate::RuleSet::matches`] leaves it out.
    pub standalone: bool,
    /// Events of the class that are not of the rule's logsource (from the field map).
    pub exclude: std::collections::HashMap<String, Vec<Value>>,
    /// Events of the class that are of the rule's logsource, when the field map narrows it
    /// (a log service's programs); empty for all.
    pub include: std::collections::HashMap<String, Vec<Value>>,
    pub(crate) detection: Detection,
}

impl Rule {
    /// Whether the event is of the rule's class (and activity) and satisfies its detection.
    pub fn is_match(&self, event: &Event) -> bool {
        event.class_uid == self.class_uid
            && self.applies_to_activity(activity_of(event))
            && !self.excludes(event)
            && self.detection.is_match_in(&mut Lookups::new(&event.data))
    }

    /// Whether the field map's exclusions rule the event out.
    pub(crate) fn excludes(&self, event: &Event) -> bool {
        vigil_ocsf::fieldmap::excluded(&self.exclude, event)
            || !vigil_ocsf::fieldmap::included(&self.include, event)
    }

    pub(crate) fn applies_to_activity(&self, activity: Option<u64>) -> bool {
        self.activity_id
            .is_none_or(|want| activity == Some(u64::from(want)))
    }
}

/// The `activity_id` of an event.
pub(crate) fn activity_of(event: &Event) -> Option<u64> {
    event.data.get("activity_id").and_then(Value::as_u64)
}

/// What became of one rule document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleStatus {
    /// Compiled and evaluated against events.
    Loaded,
    /// Valid, but Vigil has no events it could apply to (its logsource or one of its fields has
    /// no OCSF mapping). The reason names what is missing.
    NotApplicable(String),
    /// Valid, but uses a Sigma feature Vigil does not implement. The reason names it.
    Unsupported(String),
    /// Not a valid Sigma rule. The reason says why.
    Malformed(String),
}

impl RuleStatus {
    /// The reason, for any status but [`RuleStatus::Loaded`].
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Loaded => None,
            Self::NotApplicable(r) | Self::Unsupported(r) | Self::Malformed(r) => Some(r),
        }
    }
}

/// The outcome for one rule document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleReport {
    /// The file.
    pub path: PathBuf,
    /// Rule id, when it could be read.
    pub id: Option<String>,
    /// Title, when it could be read.
    pub title: Option<String>,
    /// The logsource (`category=process_creation product=linux`), empty when unreadable.
    pub logsource: String,
    /// What became of the rule.
    pub status: RuleStatus,
}

/// Counts of rules by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusCounts {
    /// [`RuleStatus::Loaded`].
    pub loaded: usize,
    /// [`RuleStatus::NotApplicable`].
    pub not_applicable: usize,
    /// [`RuleStatus::Unsupported`].
    pub unsupported: usize,
    /// [`RuleStatus::Malformed`].
    pub malformed: usize,
}

impl StatusCounts {
    fn add(&mut self, status: &RuleStatus) {
        match status {
            RuleStatus::Loaded => self.loaded += 1,
            RuleStatus::NotApplicable(_) => self.not_applicable += 1,
            RuleStatus::Unsupported(_) => self.unsupported += 1,
            RuleStatus::Malformed(_) => self.malformed += 1,
        }
    }
}

/// What loading made of every rule document it saw, in load order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// One entry per rule document.
    pub rules: Vec<RuleReport>,
}

impl LoadReport {
    /// Counts over all rules.
    pub fn counts(&self) -> StatusCounts {
        let mut counts = StatusCounts::default();
        self.rules.iter().for_each(|r| counts.add(&r.status));
        counts
    }

    /// Counts per logsource, sorted by logsource.
    pub fn counts_by_logsource(&self) -> BTreeMap<&str, StatusCounts> {
        let mut by = BTreeMap::<&str, StatusCounts>::new();
        for r in &self.rules {
            by.entry(r.logsource.as_str()).or_default().add(&r.status);
        }
        by
    }

    /// Rules loaded.
    pub fn loaded(&self) -> usize {
        self.counts().loaded
    }

    /// Rules that have nothing to apply to.
    pub fn not_applicable(&self) -> usize {
        self.counts().not_applicable
    }

    /// Rules using unsupported features.
    pub fn unsupported(&self) -> usize {
        self.counts().unsupported
    }

    /// Rules that are not valid Sigma.
    pub fn malformed(&self) -> usize {
        self.counts().malformed
    }

    /// Every rule that was not loaded.
    pub fn problems(&self) -> impl Iterator<Item = &RuleReport> {
        self.rules.iter().filter(|r| r.status != RuleStatus::Loaded)
    }
}
