//! The correlation engine: the state of one partition (one host), fed event by event.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::Value;
use vigil_ocsf::{Device, Event};

use crate::RuleSet;
use crate::correlation::rule::{Correlations, Feed, Getter};
use crate::correlation::window::Window;
use crate::correlation::{CorrelationRule, CorrelationType};
use crate::lookup::FieldPath;
use crate::rule::Rule;

/// Bounds on the memory of one [`Correlator`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CorrelationLimits {
    /// Groups tracked at once, over all correlation rules. To make room, the group whose
    /// window ends first is evicted (and counted in [`CorrelationStats::evicted_groups`]).
    pub max_groups: usize,
    /// Events remembered per group (for `temporal`: per group and referenced rule); beyond,
    /// the oldest is forgotten ([`CorrelationStats::dropped_events`]). A condition that needs
    /// more events than this inside one window cannot be met.
    pub max_events_per_group: usize,
    /// Distinct values a `value_count` group tracks; an event with a further new value is not
    /// counted ([`CorrelationStats::dropped_values`]). A condition above this cannot be met.
    pub max_distinct_values: usize,
    /// Event ids a group keeps for its hit (the most recent ones in the window).
    pub max_event_uids: usize,
    /// Distinct values listed in a hit.
    pub max_listed_values: usize,
}

impl Default for CorrelationLimits {
    /// 4,096 groups of at most 256 events and 256 distinct values, 32 event ids each: at most
    /// about 80 MiB for a partition under a worst-case flood, and a few KiB for a quiet host.
    fn default() -> Self {
        Self {
            max_groups: 4_096,
            max_events_per_group: 256,
            max_distinct_values: 256,
            max_event_uids: 32,
            max_listed_values: 64,
        }
    }
}

/// What a [`Correlator`] has seen, since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CorrelationStats {
    /// Events (and hits of chained correlations) fed to some correlation.
    pub observations: u64,
    /// Hits made, standalone or feeding another correlation.
    pub hits: u64,
    /// Times a condition held again inside a window that had already fired.
    pub suppressed: u64,
    /// Events older than their group's window (more than `timespan` before the newest event
    /// of the group), ignored.
    pub late_events: u64,
    /// Groups evicted to stay within [`CorrelationLimits::max_groups`].
    pub evicted_groups: u64,
    /// Groups dropped by [`Correlator::expire`] once their window had passed.
    pub expired_groups: u64,
    /// Events forgotten to stay within [`CorrelationLimits::max_events_per_group`].
    pub dropped_events: u64,
    /// Values not counted to stay within [`CorrelationLimits::max_distinct_values`].
    pub dropped_values: u64,
}

/// One firing of a correlation rule for one group.
#[derive(Debug, Clone)]
pub struct CorrelationHit {
    /// The correlation rule.
    pub rule: Arc<CorrelationRule>,
    /// The group: each `group-by` field (as the rule names it) with its value; an absent
    /// field has the empty value.
    pub group: Vec<(String, String)>,
    /// For each `group-by` entry, the OCSF attribute its value is read from (the field map's
    /// first path, e.g. `src_endpoint.ip` for `SourceIp`); `None` for a value taken from
    /// another correlation's hit.
    pub group_paths: Vec<Option<String>>,
    /// The count that met the condition: events (`event_count`), distinct values
    /// (`value_count`), or referenced rules seen (`temporal`, in order for
    /// `temporal_ordered`).
    pub count: u64,
    /// `value_count`: the distinct values counted, numbers in numeric order, at most
    /// [`CorrelationLimits::max_listed_values`].
    pub distinct_values: Option<Vec<String>>,
    /// Time of the oldest event in the window that fired, ms since the epoch.
    pub first_ms: i64,
    /// Time of the newest, ms since the epoch.
    pub last_ms: i64,
    /// Ids of the most recent events of the window, oldest first, at most
    /// [`CorrelationLimits::max_event_uids`].
    pub event_uids: Vec<String>,
    /// The `device` of the event that completed the window.
    pub device: Option<Device>,
}

/// One group's state.
#[derive(Debug)]
struct Group {
    key: GroupKey,
    /// Time of its newest event.
    newest: i64,
    /// The group's window fired; no further hit before this time.
    quiet_until: i64,
    window: Window,
    /// (time, uid) of its most recent events.
    uids: VecDeque<(i64, String)>,
}

/// A correlation (index) and the group-by values.
type GroupKey = (usize, Box<[Box<str>]>);

/// Where the device of an observation comes from.
#[derive(Debug, Clone)]
enum DeviceOf<'e> {
    Event(Option<&'e Value>),
    Known(Option<Device>),
}

impl DeviceOf<'_> {
    fn get(&self) -> Option<Device> {
        match self {
            Self::Event(v) => v.and_then(|d| serde_json::from_value(d.clone()).ok()),
            Self::Known(d) => d.clone(),
        }
    }
}

/// One event (or chained hit) on its way into one correlation input.
#[derive(Debug)]
struct Observation<'e> {
    feed: Feed,
    time: i64,
    group: Box<[Box<str>]>,
    value: Option<String>,
    uids: Vec<String>,
    device: DeviceOf<'e>,
}

/// The correlation state of one partition (the server keys partitions by sensor or host).
///
/// Pure and synchronous: the caller feeds it events in arrival order with the rules they
/// matched, and calls [`Correlator::expire`] now and then. `Send`, so a worker can own one per
/// partition. See the [module documentation](crate::correlation) for the semantics.
#[derive(Debug)]
pub struct Correlator {
    correlations: Arc<Correlations>,
    limits: CorrelationLimits,
    keys: HashMap<GroupKey, u64>,
    groups: HashMap<u64, Group>,
    /// (time the group's window ends, group id), soonest first.
    order: BTreeSet<(i64, u64)>,
    next_id: u64,
    hasher: RandomState,
    stats: CorrelationStats,
}

impl Correlator {
    /// An empty state for the correlation rules of `set`.
    pub fn new(set: &RuleSet, limits: CorrelationLimits) -> Self {
        Self {
            correlations: set.correlation_index(),
            limits,
            keys: HashMap::new(),
            groups: HashMap::new(),
            order: BTreeSet::new(),
            next_id: 0,
            hasher: RandomState::new(),
            stats: CorrelationStats::default(),
        }
    }

    /// Feeds one event with the rules it matched ([`RuleSet::matches_all`]: base rules that
    /// only feed correlations are among them); returns the hits it completes. Rules that feed
    /// no correlation are ignored.
    pub fn observe(&mut self, event: &Event, matched: &[&Rule]) -> Vec<CorrelationHit> {
        let mut queue = VecDeque::new();
        let correlations = Arc::clone(&self.correlations);
        let mut counted: Vec<usize> = Vec::new();
        for (i, rule) in matched.iter().enumerate() {
            if matched[..i].iter().any(|r| r.id == rule.id) {
                continue;
            }
            let Some(feeds) = correlations.by_rule.get(&rule.id) else {
                continue;
            };
            for &feed in feeds {
                let Some(correlation) = correlations.rules.get(feed.correlation) else {
                    continue;
                };
                // An event counts once towards a count, however many of its rules it matched.
                if matches!(
                    correlation.kind,
                    CorrelationType::EventCount | CorrelationType::ValueCount
                ) {
                    if counted.contains(&feed.correlation) {
                        continue;
                    }
                    counted.push(feed.correlation);
                }
                if let Some(obs) = from_event(correlation, feed, event) {
                    queue.push_back(obs);
                }
            }
        }
        let mut out = Vec::new();
        while let Some(obs) = queue.pop_front() {
            let feed = obs.feed;
            let Some(hit) = self.apply(obs) else {
                continue;
            };
            for &next in correlations
                .by_correlation
                .get(feed.correlation)
                .into_iter()
                .flatten()
            {
                if let Some(obs) = from_hit(&correlations, next, &hit) {
                    queue.push_back(obs);
                }
            }
            if hit.rule.standalone {
                out.push(hit);
            }
        }
        out
    }

    /// Drops every group whose window has passed: its newest event is more than its
    /// `timespan` before `now_ms` (on the clock of event times). Groups are kept in the order
    /// their windows end, so this costs only the groups dropped. A group dropped here forgets
    /// that it fired, too.
    pub fn expire(&mut self, now_ms: i64) {
        while let Some(&(ends, id)) = self.order.first() {
            if ends >= now_ms {
                break;
            }
            self.order.pop_first();
            if let Some(group) = self.groups.remove(&id) {
                self.keys.remove(&group.key);
                self.stats.expired_groups += 1;
            }
        }
    }

    /// How much the state holds: groups, plus the events, distinct values and event ids they
    /// remember. Bounded through [`CorrelationLimits`].
    pub fn state_size(&self) -> usize {
        self.groups
            .values()
            .map(|g| 1 + g.window.size() + g.uids.len())
            .sum()
    }

    /// Groups tracked.
    pub fn groups(&self) -> usize {
        self.groups.len()
    }

    /// What the correlator has seen.
    pub fn stats(&self) -> CorrelationStats {
        self.stats
    }

    /// Adds one observation to its group; returns the hit it completes, if any.
    fn apply(&mut self, obs: Observation<'_>) -> Option<CorrelationHit> {
        let rule = Arc::clone(self.correlations.rules.get(obs.feed.correlation)?);
        let span = rule.timespan_ms;
        self.stats.observations += 1;
        let key: GroupKey = (obs.feed.correlation, obs.group);
        let id = match self.keys.get(&key) {
            Some(&id) => id,
            None => self.create(key, obs.time, &rule)?,
        };
        let limits = self.limits;
        let group = self.groups.get_mut(&id)?;
        if obs.time < group.newest.saturating_sub(span) {
            self.stats.late_events += 1;
            return None;
        }
        let old_end = group.newest.saturating_add(span);
        group.newest = group.newest.max(obs.time);
        let cutoff = group.newest.saturating_sub(span);
        group.window.trim(cutoff);
        group.uids.retain(|(t, _)| *t >= cutoff);
        let remembered = group.window.insert(
            obs.time,
            obs.feed.input,
            obs.value.as_deref(),
            &self.hasher,
            &limits,
            &mut self.stats,
        );
        if remembered {
            for uid in obs.uids {
                group.uids.push_back((obs.time, uid));
                if group.uids.len() > limits.max_event_uids {
                    group.uids.pop_front();
                }
            }
        }
        let new_end = group.newest.saturating_add(span);
        if new_end != old_end {
            self.order.remove(&(old_end, id));
            self.order.insert((new_end, id));
        }
        let count = group.window.count(rule.kind);
        if !remembered || !rule.condition.holds(count) {
            return None;
        }
        if group.newest < group.quiet_until {
            self.stats.suppressed += 1;
            return None;
        }
        let mut uids: Vec<(i64, String)> = group.uids.drain(..).collect();
        uids.sort_by_key(|(t, _)| *t);
        let hit = CorrelationHit {
            group: rule
                .group_by
                .iter()
                .zip(group.key.1.iter())
                .map(|(field, value)| (field.clone(), value.to_string()))
                .collect(),
            group_paths: rule
                .inputs
                .get(obs.feed.input)
                .map(|input| {
                    input
                        .group
                        .iter()
                        .map(|getter| match getter {
                            Getter::Paths(paths) => paths.first().map(FieldPath::dotted),
                            Getter::Group(_) => None,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            count,
            distinct_values: group.window.distinct_values(limits.max_listed_values),
            first_ms: group.window.first_time().unwrap_or(group.newest),
            last_ms: group.newest,
            event_uids: uids.into_iter().map(|(_, uid)| uid).collect(),
            device: obs.device.get(),
            rule,
        };
        group.window.clear();
        group.quiet_until = group.newest.saturating_add(span);
        self.stats.hits += 1;
        Some(hit)
    }

    /// Starts a group, evicting the one whose window ends first if the limit is reached.
    fn create(&mut self, key: GroupKey, time: i64, rule: &CorrelationRule) -> Option<u64> {
        if self.limits.max_groups == 0 {
            return None;
        }
        while self.groups.len() >= self.limits.max_groups {
            let (_, oldest) = self.order.pop_first()?;
            if let Some(group) = self.groups.remove(&oldest) {
                self.keys.remove(&group.key);
                self.stats.evicted_groups += 1;
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        self.keys.insert(key.clone(), id);
        self.order
            .insert((time.saturating_add(rule.timespan_ms), id));
        self.groups.insert(
            id,
            Group {
                key,
                newest: time,
                quiet_until: i64::MIN,
                window: Window::new(rule.kind, rule.inputs.len()),
                uids: VecDeque::new(),
            },
        );
        Some(id)
    }
}

/// The text of a JSON value as a group or counted value.
fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

/// Reads one getter from an event: the first non-null value of its paths.
fn read_event(getter: &Getter, event: &Event) -> Option<String> {
    match getter {
        Getter::Paths(paths) => paths
            .iter()
            .filter_map(|p| p.lookup(&event.data))
            .find(|v| !v.is_null())
            .map(text_of),
        Getter::Group(_) => None,
    }
}

/// The combined value of several getters (`value_count` over several fields), or `None` when
/// one is absent.
fn joined(values: impl Iterator<Item = Option<String>>) -> Option<String> {
    let parts = values.collect::<Option<Vec<String>>>()?;
    match parts.len() {
        0 => None,
        1 => parts.into_iter().next(),
        // A separator no value is likely to hold.
        _ => Some(parts.join("\u{1f}")),
    }
}

fn from_event<'e>(
    correlation: &CorrelationRule,
    feed: Feed,
    event: &'e Event,
) -> Option<Observation<'e>> {
    let input = correlation.inputs.get(feed.input)?;
    let group = input
        .group
        .iter()
        .map(|g| read_event(g, event).unwrap_or_default().into_boxed_str())
        .collect();
    let value = joined(input.value.iter().map(|g| read_event(g, event)));
    if correlation.kind == CorrelationType::ValueCount && value.is_none() {
        return None;
    }
    Some(Observation {
        feed,
        time: event.time,
        group,
        value,
        uids: vec![event.uid.clone()],
        device: DeviceOf::Event(event.data.get("device")),
    })
}

fn from_hit(
    correlations: &Correlations,
    feed: Feed,
    hit: &CorrelationHit,
) -> Option<Observation<'static>> {
    let correlation = correlations.rules.get(feed.correlation)?;
    let input = correlation.inputs.get(feed.input)?;
    let read = |g: &Getter| match g {
        Getter::Group(i) => hit.group.get(*i).map(|(_, v)| v.clone()),
        Getter::Paths(_) => None,
    };
    let group = input
        .group
        .iter()
        .map(|g| read(g).unwrap_or_default().into_boxed_str())
        .collect();
    let value = joined(input.value.iter().map(read));
    if correlation.kind == CorrelationType::ValueCount && value.is_none() {
        return None;
    }
    Some(Observation {
        feed,
        time: hit.last_ms,
        group,
        value,
        uids: hit.event_uids.clone(),
        device: DeviceOf::Known(hit.device.clone()),
    })
}
