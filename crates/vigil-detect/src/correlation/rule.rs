//! A compiled correlation rule, and the index from base rules to the correlations they feed.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use vigil_ocsf::{Attack, Severity};

use crate::lookup::FieldPath;

/// The kind of a correlation (Sigma `correlation.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CorrelationType {
    /// `event_count`: how many events the referenced rules matched.
    EventCount,
    /// `value_count`: how many distinct values of `field` those events carry.
    ValueCount,
    /// `temporal`: how many of the referenced rules matched, in any order.
    Temporal,
    /// `temporal_ordered`: how many of the referenced rules matched one after the other, in
    /// the order they are listed.
    TemporalOrdered,
}

impl CorrelationType {
    /// The Sigma spelling (`event_count`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EventCount => "event_count",
            Self::ValueCount => "value_count",
            Self::Temporal => "temporal",
            Self::TemporalOrdered => "temporal_ordered",
        }
    }
}

/// A comparison of a correlation condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CountOp {
    /// `gt`: greater than.
    Gt,
    /// `gte`: greater than or equal.
    Gte,
    /// `lt`: less than.
    Lt,
    /// `lte`: less than or equal.
    Lte,
    /// `eq`: equal.
    Eq,
    /// `neq`: different.
    Neq,
}

impl CountOp {
    fn symbol(self) -> &'static str {
        match self {
            Self::Gt => ">",
            Self::Gte => "≥",
            Self::Lt => "<",
            Self::Lte => "≤",
            Self::Eq => "=",
            Self::Neq => "≠",
        }
    }
}

/// A correlation condition: every comparison must hold (`{gt: 100, lte: 200}` is a range).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CountCondition {
    /// The comparisons, as written.
    pub terms: Vec<(CountOp, i64)>,
}

impl CountCondition {
    /// `gte: n`.
    pub fn at_least(n: i64) -> Self {
        Self {
            terms: vec![(CountOp::Gte, n)],
        }
    }

    /// Whether `count` satisfies every comparison.
    pub fn holds(&self, count: u64) -> bool {
        let count = i128::from(count);
        self.terms.iter().all(|&(op, n)| {
            let n = i128::from(n);
            match op {
                CountOp::Gt => count > n,
                CountOp::Gte => count >= n,
                CountOp::Lt => count < n,
                CountOp::Lte => count <= n,
                CountOp::Eq => count == n,
                CountOp::Neq => count != n,
            }
        })
    }
}

impl fmt::Display for CountCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (op, n)) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(" and ")?;
            }
            write!(f, "{} {n}", op.symbol())?;
        }
        Ok(())
    }
}

/// A compiled Sigma correlation rule.
#[derive(Debug, Clone)]
pub struct CorrelationRule {
    /// Rule id (Sigma `id`; `<file stem>#<n>` for the n-th document of a file without one).
    pub id: String,
    /// Sigma `name`.
    pub name: Option<String>,
    /// Title.
    pub title: String,
    /// Description.
    pub description: Option<String>,
    /// Severity of a hit, from the Sigma `level` (`medium` when the rule has none).
    pub level: Severity,
    /// Tags, as written.
    pub tags: Vec<String>,
    /// ATT&CK mappings derived from the tags.
    pub attacks: Vec<Attack>,
    /// The file the rule came from.
    pub path: PathBuf,
    /// Author(s).
    pub author: Option<String>,
    /// Sigma `status`.
    pub sigma_status: Option<String>,
    /// References.
    pub references: Vec<String>,
    /// Known false positives.
    pub falsepositives: Vec<String>,
    /// The correlation type.
    pub kind: CorrelationType,
    /// The ids of the rules (detection or correlation) it correlates, in the order written.
    pub rules: Vec<String>,
    /// `group-by`: the fields (or aliases) whose values must be equal within a group.
    pub group_by: Vec<String>,
    /// `timespan`, in milliseconds.
    pub timespan_ms: i64,
    /// When a group's count makes a hit (for `temporal` without one: all the rules).
    pub condition: CountCondition,
    /// `value_count`: the field(s) whose distinct values are counted (several: distinct
    /// combinations).
    pub field: Vec<String>,
    /// `generate`: whether the referenced rules also raise findings of their own.
    pub generate: bool,
    /// Whether a hit is a finding of its own (false when another correlation refers to this
    /// one without `generate: true`: its hits only feed that correlation).
    pub standalone: bool,
    pub(crate) inputs: Vec<Input>,
}

impl CorrelationRule {
    /// Every event attribute it reads (its group-by and counted fields).
    pub(crate) fn read_paths(&self) -> impl Iterator<Item = &FieldPath> {
        self.inputs
            .iter()
            .flat_map(|i| i.group.iter().chain(&i.value))
            .flat_map(|g| match g {
                Getter::Paths(paths) => &paths[..],
                Getter::Group(_) => &[],
            })
    }
}

/// How the events of one referenced rule enter a correlation.
#[derive(Debug, Clone)]
pub(crate) struct Input {
    /// Where the events come from.
    pub(crate) source: Source,
    /// One getter per `group-by` entry.
    pub(crate) group: Vec<Getter>,
    /// One getter per `field` entry (`value_count`).
    pub(crate) value: Vec<Getter>,
}

/// Where a correlation's input comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// Events a detection rule (by id) matched.
    Rule(String),
    /// Hits of another correlation (its index in the set's correlations).
    Correlation(usize),
}

/// How one grouping or counted value is read.
#[derive(Debug, Clone)]
pub(crate) enum Getter {
    /// The first non-null value among an event's OCSF attributes.
    Paths(Box<[FieldPath]>),
    /// A group-by value of the referenced correlation's hit, by position.
    Group(usize),
}

/// Where a base rule's match (or a correlation's hit) goes: correlation `correlation`, input
/// `input`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Feed {
    pub(crate) correlation: usize,
    pub(crate) input: usize,
}

/// The correlations of a rule set, and which inputs each rule feeds.
#[derive(Debug, Clone, Default)]
pub(crate) struct Correlations {
    pub(crate) rules: Vec<Arc<CorrelationRule>>,
    /// Detection rule id → the inputs its matches feed.
    pub(crate) by_rule: HashMap<String, Vec<Feed>>,
    /// Per correlation: the inputs of other correlations its hits feed.
    pub(crate) by_correlation: Vec<Vec<Feed>>,
}

impl Correlations {
    /// Indexes correlations whose inputs are already resolved.
    pub(crate) fn new(rules: Vec<CorrelationRule>) -> Self {
        let mut by_rule: HashMap<String, Vec<Feed>> = HashMap::new();
        let mut by_correlation = vec![Vec::new(); rules.len()];
        for (correlation, rule) in rules.iter().enumerate() {
            for (input, inp) in rule.inputs.iter().enumerate() {
                let feed = Feed { correlation, input };
                match &inp.source {
                    Source::Rule(id) => by_rule.entry(id.clone()).or_default().push(feed),
                    Source::Correlation(c) => {
                        if let Some(feeds) = by_correlation.get_mut(*c) {
                            feeds.push(feed);
                        }
                    }
                }
            }
        }
        Self {
            rules: rules.into_iter().map(Arc::new).collect(),
            by_rule,
            by_correlation,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_hold_and_print() {
        let range = CountCondition {
            terms: vec![(CountOp::Gt, 100), (CountOp::Lte, 200)],
        };
        assert!(!range.holds(100) && range.holds(101) && range.holds(200) && !range.holds(201));
        assert_eq!(range.to_string(), "> 100 and ≤ 200");
        let ne = CountCondition {
            terms: vec![(CountOp::Neq, 3)],
        };
        assert!(ne.holds(2) && !ne.holds(3));
        let eq = CountCondition {
            terms: vec![(CountOp::Eq, 3), (CountOp::Lt, 9), (CountOp::Gte, -1)],
        };
        assert!(eq.holds(3) && !eq.holds(4));
        assert!(CountCondition::at_least(2).holds(u64::MAX));
        assert_eq!(
            CorrelationType::TemporalOrdered.as_str(),
            "temporal_ordered"
        );
    }
}
