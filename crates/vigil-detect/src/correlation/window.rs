//! The sliding window of one correlation group: what it remembers of the events in the last
//! `timespan`, and the count its condition is compared with.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;

use crate::correlation::CorrelationType;
use crate::correlation::engine::{CorrelationLimits, CorrelationStats};

/// The events of one group inside its window, kept sorted by time.
#[derive(Debug, Clone)]
pub(crate) enum Window {
    /// `event_count`: the time of each event.
    Events(VecDeque<i64>),
    /// `value_count`: the time and value hash of each event, and per distinct value how many
    /// of the remembered events carry it.
    Values {
        entries: VecDeque<(i64, u64)>,
        values: HashMap<u64, (u32, Box<str>)>,
    },
    /// `temporal`, `temporal_ordered`: per referenced rule, the times it matched.
    Rules(Vec<VecDeque<i64>>),
}

/// Inserts `time` keeping `times` sorted (late events go before newer ones).
fn insert_sorted<T>(items: &mut VecDeque<T>, time: i64, item: T, time_of: impl Fn(&T) -> i64) {
    let at = items.partition_point(|e| time_of(e) <= time);
    items.insert(at, item);
}

impl Window {
    /// An empty window for a correlation of `kind` with `inputs` referenced rules.
    pub(crate) fn new(kind: CorrelationType, inputs: usize) -> Self {
        match kind {
            CorrelationType::EventCount => Self::Events(VecDeque::new()),
            CorrelationType::ValueCount => Self::Values {
                entries: VecDeque::new(),
                values: HashMap::new(),
            },
            CorrelationType::Temporal | CorrelationType::TemporalOrdered => {
                Self::Rules(vec![VecDeque::new(); inputs])
            }
        }
    }

    /// Forgets every event older than `cutoff`.
    pub(crate) fn trim(&mut self, cutoff: i64) {
        match self {
            Self::Events(times) => {
                while times.front().is_some_and(|&t| t < cutoff) {
                    times.pop_front();
                }
            }
            Self::Values { entries, values } => {
                while let Some(&(t, hash)) = entries.front() {
                    if t >= cutoff {
                        break;
                    }
                    entries.pop_front();
                    forget_value(values, hash);
                }
            }
            Self::Rules(per_rule) => {
                for times in per_rule {
                    while times.front().is_some_and(|&t| t < cutoff) {
                        times.pop_front();
                    }
                }
            }
        }
    }

    /// Remembers one event of input `input` (carrying `value`, for `value_count`), within the
    /// limits. Returns false when the event could not be remembered.
    pub(crate) fn insert(
        &mut self,
        time: i64,
        input: usize,
        value: Option<&str>,
        hasher: &RandomState,
        limits: &CorrelationLimits,
        stats: &mut CorrelationStats,
    ) -> bool {
        match self {
            Self::Events(times) => {
                insert_sorted(times, time, time, |&t| t);
                if times.len() > limits.max_events_per_group {
                    times.pop_front();
                    stats.dropped_events += 1;
                }
            }
            Self::Values { entries, values } => {
                let Some(value) = value else {
                    return false;
                };
                let hash = hasher.hash_one(value);
                if let Some((n, _)) = values.get_mut(&hash) {
                    *n += 1;
                } else if values.len() >= limits.max_distinct_values {
                    stats.dropped_values += 1;
                    return false;
                } else {
                    values.insert(hash, (1, value.into()));
                }
                insert_sorted(entries, time, (time, hash), |e| e.0);
                if entries.len() > limits.max_events_per_group
                    && let Some((_, old)) = entries.pop_front()
                {
                    forget_value(values, old);
                    stats.dropped_events += 1;
                }
            }
            Self::Rules(per_rule) => {
                let Some(times) = per_rule.get_mut(input) else {
                    return false;
                };
                insert_sorted(times, time, time, |&t| t);
                if times.len() > limits.max_events_per_group {
                    times.pop_front();
                    stats.dropped_events += 1;
                }
            }
        }
        true
    }

    /// The number the condition is compared with: events, distinct values, or referenced
    /// rules seen (in any order, or in the listed order).
    pub(crate) fn count(&self, kind: CorrelationType) -> u64 {
        let n = match self {
            Self::Events(times) => times.len(),
            Self::Values { values, .. } => values.len(),
            Self::Rules(per_rule) if kind == CorrelationType::TemporalOrdered => {
                ordered_prefix(per_rule)
            }
            Self::Rules(per_rule) => per_rule.iter().filter(|t| !t.is_empty()).count(),
        };
        u64::try_from(n).unwrap_or(u64::MAX)
    }

    /// The time of the oldest remembered event.
    pub(crate) fn first_time(&self) -> Option<i64> {
        match self {
            Self::Events(times) => times.front().copied(),
            Self::Values { entries, .. } => entries.front().map(|e| e.0),
            Self::Rules(per_rule) => per_rule.iter().filter_map(|t| t.front().copied()).min(),
        }
    }

    /// The distinct values (`value_count`), numbers in numeric order, at most `max`.
    pub(crate) fn distinct_values(&self, max: usize) -> Option<Vec<String>> {
        let Self::Values { values, .. } = self else {
            return None;
        };
        let mut out: Vec<&str> = values.values().map(|(_, v)| &**v).collect();
        out.sort_by(|a, b| match (a.parse::<i128>(), b.parse::<i128>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            (Ok(_), Err(_)) => std::cmp::Ordering::Less,
            (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
            (Err(_), Err(_)) => a.cmp(b),
        });
        Some(out.into_iter().take(max).map(str::to_owned).collect())
    }

    /// Forgets everything.
    pub(crate) fn clear(&mut self) {
        match self {
            Self::Events(times) => times.clear(),
            Self::Values { entries, values } => {
                entries.clear();
                values.clear();
            }
            Self::Rules(per_rule) => per_rule.iter_mut().for_each(VecDeque::clear),
        }
    }

    /// How many entries the window holds (events and distinct values).
    pub(crate) fn size(&self) -> usize {
        match self {
            Self::Events(times) => times.len(),
            Self::Values { entries, values } => entries.len() + values.len(),
            Self::Rules(per_rule) => per_rule.iter().map(VecDeque::len).sum(),
        }
    }
}

fn forget_value(values: &mut HashMap<u64, (u32, Box<str>)>, hash: u64) {
    if let Some((n, _)) = values.get_mut(&hash) {
        *n -= 1;
        if *n == 0 {
            values.remove(&hash);
        }
    }
}

/// How many of the rules, from the first, matched one after the other (each at or after the
/// time of the one before it). Picking the earliest possible time at each step is optimal.
fn ordered_prefix(per_rule: &[VecDeque<i64>]) -> usize {
    let mut after = i64::MIN;
    let mut n = 0;
    for times in per_rule {
        let at = times.partition_point(|&t| t < after);
        match times.get(at) {
            Some(&t) => {
                after = t;
                n += 1;
            }
            None => break,
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> CorrelationLimits {
        CorrelationLimits {
            max_events_per_group: 4,
            max_distinct_values: 3,
            ..CorrelationLimits::default()
        }
    }

    #[test]
    fn events_stay_sorted_and_bounded() {
        let (h, l, mut s) = (RandomState::new(), limits(), CorrelationStats::default());
        let mut w = Window::new(CorrelationType::EventCount, 1);
        for t in [10, 30, 20, 40, 50] {
            assert!(w.insert(t, 0, None, &h, &l, &mut s));
        }
        assert_eq!(w.count(CorrelationType::EventCount), 4);
        assert_eq!(s.dropped_events, 1);
        assert_eq!(w.first_time(), Some(20));
        w.trim(35);
        assert_eq!(w.count(CorrelationType::EventCount), 2);
        assert_eq!(w.first_time(), Some(40));
    }

    #[test]
    fn values_count_distinct_and_forget_with_their_last_event() {
        let (h, l, mut s) = (RandomState::new(), limits(), CorrelationStats::default());
        let mut w = Window::new(CorrelationType::ValueCount, 1);
        for (t, v) in [(1, "22"), (2, "22"), (3, "80"), (4, "443")] {
            assert!(w.insert(t, 0, Some(v), &h, &l, &mut s));
        }
        assert_eq!(w.count(CorrelationType::ValueCount), 3);
        assert!(
            !w.insert(5, 0, Some("8080"), &h, &l, &mut s),
            "over the distinct bound"
        );
        assert!(
            !w.insert(5, 0, None, &h, &l, &mut s),
            "no value, nothing to count"
        );
        assert_eq!(s.dropped_values, 1);
        assert_eq!(w.distinct_values(10).unwrap(), ["22", "80", "443"]);
        w.trim(2);
        assert_eq!(
            w.count(CorrelationType::ValueCount),
            3,
            "22 is still seen at 2"
        );
        w.trim(3);
        assert_eq!(w.count(CorrelationType::ValueCount), 2);
        assert_eq!(w.size(), 4);
        w.clear();
        assert_eq!((w.size(), w.first_time()), (0, None));
    }

    #[test]
    fn temporal_counts_rules_and_ordered_counts_the_chain() {
        let (h, l, mut s) = (RandomState::new(), limits(), CorrelationStats::default());
        let mut w = Window::new(CorrelationType::TemporalOrdered, 3);
        w.insert(5, 1, None, &h, &l, &mut s);
        assert_eq!(w.count(CorrelationType::Temporal), 1);
        assert_eq!(w.count(CorrelationType::TemporalOrdered), 0);
        w.insert(7, 0, None, &h, &l, &mut s);
        assert_eq!(w.count(CorrelationType::Temporal), 2);
        assert_eq!(
            w.count(CorrelationType::TemporalOrdered),
            1,
            "b came before a"
        );
        w.insert(8, 1, None, &h, &l, &mut s);
        w.insert(9, 2, None, &h, &l, &mut s);
        assert_eq!(w.count(CorrelationType::TemporalOrdered), 3);
        assert_eq!(w.first_time(), Some(5));
        assert!(!w.insert(9, 7, None, &h, &l, &mut s), "no such input");
    }
}
