//! The literal prefilter: which rules of a class can possibly match an event, found with one
//! Aho-Corasick pass over the event instead of evaluating every rule.
//!
//! At build time each rule's detection is reduced to the literals it needs
//! ([`requirement`]): clauses of (OCSF path, literal) atoms, every clause needing one atom
//! present (regular expressions included, [`regex_literals`]). The literals are indexed per
//! (class, path); their distinct texts go into one automaton per class (ASCII
//! case-insensitive, overlapping matches, so no literal hides another), each pattern knowing
//! the paths it counts at. Each rule's likeliest-to-fail clause (literals used by the fewest
//! rules, and not short) is its *first* clause: each literal knows the rules whose first clause
//! holds it ([`build`]).
//!
//! Per event, the scanned attributes (strings, and numbers and booleans rendered as the
//! matchers see them, and such values inside arrays) are fetched in one walk of the event and
//! laid end to end, NUL-separated, and the automaton runs once over them; a match counts at the
//! attribute it lies in. A literal seen for the first time makes the rules of its first
//! clauses candidates. A candidate whose other clauses are met too, or a rule with no
//! requirement (evaluated for every event), is then evaluated in full, in load order: the
//! prefilter changes how fast a rule set answers, never what it answers. (One automaton over
//! the laid-out attributes costs one search per event instead of one per attribute.)

mod build;
mod regex_literals;
mod requirement;

use aho_corasick::AhoCorasick;
use serde_json::Value;

use crate::detection::with_text;
use crate::lookup::{FieldPath, Lookups, PathTrie, SlotAssigner};

/// Separates the attribute texts in the scan buffer; no literal holds it, so no match spans
/// two attributes.
const SEPARATOR: u8 = 0;

/// Where an automaton pattern counts: (path index, literal id) pairs.
type Places = Box<[(u32, u32)]>;

/// Clauses, each a list of literal ids one of which must be seen.
type Clauses = Box<[Box<[u32]>]>;

/// The prefilter of one class's rules (indexed locally, `0..rules`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Prefilter {
    /// Every distinct literal text of the class (none: nothing to scan).
    automaton: Option<AhoCorasick>,
    /// The scanned attributes, and whether numbers and booleans there are scanned too (not
    /// when only keyword searches, which look at strings, need it).
    paths: Box<[(FieldPath, bool)]>,
    /// Per automaton pattern: the (path index, literal id) pairs it stands for.
    targets: Box<[Places]>,
    /// Per literal id (a text at a path): the rules whose first clause it is in.
    primary: Box<[Box<[u32]>]>,
    /// Per rule: its other clauses, each a list of literals (global ids) one of which must be
    /// seen.
    secondary: Box<[Clauses]>,
    /// Rules evaluated for every event, ascending.
    always: Box<[u32]>,
    /// The scanned paths, fetched together.
    trie: PathTrie,
}

/// Per-event working memory: the attribute texts laid end to end, the literals seen (a bit
/// set, cleared word by word after use) and the candidate rules found.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    text: Vec<u8>,
    /// (end offset in `text`, path index) of each attribute text, in order.
    segments: Vec<(usize, u32)>,
    bits: Vec<u64>,
    dirty: Vec<u32>,
    pub(crate) candidates: Vec<u32>,
}

impl Scratch {
    fn prepare(&mut self, literals: usize) {
        let words = literals.div_ceil(64);
        if self.bits.len() < words {
            self.bits.resize(words, 0);
        }
    }

    fn is_marked(&self, g: u32) -> bool {
        self.bits
            .get((g / 64) as usize)
            .is_some_and(|w| w & (1u64 << (g % 64)) != 0)
    }

    /// Memory held, in elements.
    pub(crate) fn capacity(&self) -> usize {
        self.text.capacity()
            + self.segments.capacity()
            + self.bits.capacity()
            + self.dirty.capacity()
            + self.candidates.capacity()
    }

    /// Clears what the last event marked.
    pub(crate) fn reset(&mut self) {
        self.text.clear();
        self.segments.clear();
        for word in self.dirty.drain(..) {
            if let Some(w) = self.bits.get_mut(word as usize) {
                *w = 0;
            }
        }
        self.candidates.clear();
    }
}

/// Marks literal `g` in `bits`, noting newly used words in `dirty`; true when it was not
/// marked before.
fn mark(bits: &mut [u64], dirty: &mut Vec<u32>, g: u32) -> bool {
    let (word, bit) = ((g / 64) as usize, 1u64 << (g % 64));
    let Some(w) = bits.get_mut(word) else {
        return false;
    };
    if *w & bit != 0 {
        return false;
    }
    if *w == 0 {
        dirty.push(word as u32);
    }
    *w |= bit;
    true
}

/// Counts describing a built prefilter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrefilterStats {
    /// Rules indexed.
    pub rules: usize,
    /// Rules with no literal requirement, evaluated for every event of their class.
    pub always_evaluated: usize,
    /// Distinct (attribute, literal) pairs.
    pub literals: usize,
    /// Attributes scanned.
    pub attributes: usize,
    /// Automata (one per class with literals).
    pub automata: usize,
    /// Heap bytes the automata use.
    pub automaton_bytes: usize,
}

impl Prefilter {
    /// Gives every scanned path its lookup slot.
    pub(crate) fn assign_slots(&mut self, slots: &mut SlotAssigner) {
        let mut trie = PathTrie::default();
        for (path, _) in self.paths.iter_mut() {
            slots.assign(path);
            trie.insert(path);
        }
        self.trie = trie;
    }

    /// Rules evaluated for every event, ascending.
    pub(crate) fn always(&self) -> &[u32] {
        &self.always
    }

    /// Runs the automaton once over the event's scanned attributes (laid end to end) and
    /// leaves the candidate rules (those with a requirement whose first clause is met),
    /// ascending, in `scratch.candidates`.
    pub(crate) fn scan(&self, lookups: &mut Lookups<'_>, scratch: &mut Scratch) {
        let Some(automaton) = &self.automaton else {
            return;
        };
        scratch.prepare(self.primary.len());
        lookups.prefetch(&self.trie);
        for (i, (path, scalars)) in self.paths.iter().enumerate() {
            let Some(value) = lookups.get(path) else {
                continue;
            };
            let index = u32::try_from(i).unwrap_or(u32::MAX);
            for_each_text(value, *scalars, |text| {
                scratch.text.extend_from_slice(text.as_bytes());
                scratch.segments.push((scratch.text.len(), index));
                scratch.text.push(SEPARATOR);
            });
        }
        let Scratch {
            text,
            segments,
            bits,
            dirty,
            candidates,
        } = scratch;
        let mut segment = 0;
        for m in automaton.find_overlapping_iter(text.as_slice()) {
            // Matches come by end offset, so the segment only moves forward.
            while segments.get(segment).is_some_and(|&(end, _)| end < m.end()) {
                segment += 1;
            }
            let Some(&(_, path)) = segments.get(segment) else {
                break;
            };
            let Some(targets) = self.targets.get(m.pattern().as_usize()) else {
                continue;
            };
            for &(p, literal) in targets.iter() {
                if p == path
                    && mark(bits, dirty, literal)
                    && let Some(rules) = self.primary.get(literal as usize)
                {
                    candidates.extend_from_slice(rules);
                }
            }
        }
        candidates.sort_unstable();
        candidates.dedup();
    }

    /// Whether candidate `rule`'s other clauses are met too.
    pub(crate) fn holds(&self, rule: u32, scratch: &Scratch) -> bool {
        self.secondary.get(rule as usize).is_none_or(|clauses| {
            clauses
                .iter()
                .all(|c| c.iter().any(|&g| scratch.is_marked(g)))
        })
    }

    /// Counts for reports and benchmarks.
    pub(crate) fn stats(&self) -> PrefilterStats {
        PrefilterStats {
            rules: self.secondary.len(),
            always_evaluated: self.always.len(),
            literals: self.primary.len(),
            attributes: self.paths.len(),
            automata: usize::from(self.automaton.is_some()),
            automaton_bytes: self.automaton.as_ref().map_or(0, AhoCorasick::memory_usage),
        }
    }
}

/// Calls `f` with every text a matcher could compare at this attribute: the value itself and
/// the elements of an array, strings as they are, numbers and booleans rendered (unless only
/// strings count).
fn for_each_text(value: &Value, scalars: bool, mut f: impl FnMut(&str)) {
    let mut one = |v: &Value| match v {
        Value::String(s) => f(s),
        _ if scalars => {
            with_text(v, |t| {
                f(t);
                false
            });
        }
        _ => {}
    };
    match value {
        Value::Array(items) => items.iter().filter(|v| !v.is_array()).for_each(one),
        other => one(other),
    }
}

#[cfg(test)]
mod tests;
