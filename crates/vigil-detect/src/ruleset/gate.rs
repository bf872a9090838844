//! The field map's `exclude` / `include` lists of a rule, compiled: which events of its class
//! are of its logsource at all. Rules of one view share them, so a set keeps each distinct
//! gate once and an event's verdict on it is worked out once, however many candidate rules it
//! has.

use std::collections::HashMap;

use serde_json::Value;

use crate::lookup::{FieldPath, Lookups, SlotAssigner};
use crate::rule::Rule;

/// Most gates whose verdicts are remembered per event; others are worked out per rule.
pub(crate) const CACHED_GATES: usize = 32;

/// (path, values) pairs: the event has one of the values at the path.
type Tests = Box<[(FieldPath, Box<[Value]>)]>;

/// One rule's gate.
#[derive(Debug, Clone, Default)]
pub(crate) struct Gate {
    /// An event holding one of these is not of the logsource.
    exclude: Tests,
    /// When not empty, an event must hold one of these.
    include: Tests,
}

fn tests(map: &HashMap<String, Vec<Value>>) -> Tests {
    let mut tests: Vec<(FieldPath, Box<[Value]>)> = map
        .iter()
        .map(|(path, values)| (FieldPath::new(path), values.clone().into_boxed_slice()))
        .collect();
    // Same order whatever the hash map's, so equal gates compare equal.
    tests.sort_by_key(|(path, _)| path.dotted());
    tests.into_boxed_slice()
}

fn holds_any(tests: &Tests, lookups: &mut Lookups<'_>) -> bool {
    tests
        .iter()
        .any(|(path, values)| lookups.get(path).is_some_and(|v| values.contains(v)))
}

impl Gate {
    /// Whether the event is of the rule's logsource.
    pub(crate) fn admits(&self, lookups: &mut Lookups<'_>) -> bool {
        !holds_any(&self.exclude, lookups)
            && (self.include.is_empty() || holds_any(&self.include, lookups))
    }

    fn same(&self, other: &Gate) -> bool {
        fn key(t: &Tests) -> Vec<(String, &[Value])> {
            t.iter().map(|(p, v)| (p.dotted(), &**v)).collect()
        }
        key(&self.exclude) == key(&other.exclude) && key(&self.include) == key(&other.include)
    }
}

/// The distinct gates of a set's rules, and each rule's.
#[derive(Debug, Clone, Default)]
pub(crate) struct Gates {
    gates: Box<[Gate]>,
    /// Per rule (set index): its gate.
    of_rule: Box<[u32]>,
}

impl Gates {
    /// Compiles the rules' gates, giving their paths lookup slots in their class's numbering
    /// (`slots`: per class). Rules of different classes never share a gate.
    pub(crate) fn build(rules: &[Rule], slots: &mut [(u32, SlotAssigner)]) -> Self {
        let mut gates: Vec<(u32, Gate)> = Vec::new();
        let mut of_rule = Vec::with_capacity(rules.len());
        for rule in rules {
            let gate = Gate {
                exclude: tests(&rule.exclude),
                include: tests(&rule.include),
            };
            let index = match gates
                .iter()
                .position(|(class, g)| *class == rule.class_uid && g.same(&gate))
            {
                Some(i) => i,
                None => {
                    gates.push((rule.class_uid, gate));
                    gates.len() - 1
                }
            };
            of_rule.push(u32::try_from(index).unwrap_or(u32::MAX));
        }
        for (class, gate) in &mut gates {
            let Some((_, assigner)) = slots.iter_mut().find(|(c, _)| c == class) else {
                continue;
            };
            for (path, _) in gate.exclude.iter_mut().chain(gate.include.iter_mut()) {
                assigner.assign(path);
            }
        }
        Self {
            gates: gates.into_iter().map(|(_, g)| g).collect(),
            of_rule: of_rule.into_boxed_slice(),
        }
    }

    /// Whether rule `rule` (set index) admits the event; verdicts of the first
    /// [`CACHED_GATES`] gates are kept in `verdicts` (0: not worked out, 1: admitted, 2: not).
    pub(crate) fn admits(
        &self,
        rule: usize,
        lookups: &mut Lookups<'_>,
        verdicts: &mut [u8; CACHED_GATES],
    ) -> bool {
        let Some(&g) = self.of_rule.get(rule) else {
            return true;
        };
        let Some(gate) = self.gates.get(g as usize) else {
            return true;
        };
        match verdicts.get_mut(g as usize) {
            Some(0) | None => {}
            Some(v) => return *v == 1,
        }
        let admitted = gate.admits(lookups);
        if let Some(v) = verdicts.get_mut(g as usize) {
            *v = if admitted { 1 } else { 2 };
        }
        admitted
    }
}
