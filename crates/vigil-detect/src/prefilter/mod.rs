//! The literal prefilter: which rules of a class can possibly match an event, found with one
//! Aho-Corasick pass over each scanned attribute instead of evaluating every rule.
//!
//! At build time each rule's detection is reduced to the literals it needs
//! ([`requirement`]): clauses of (OCSF path, literal) atoms, every clause needing one atom
//! present (regular expressions included, [`regex_literals`]). The literals are indexed per
//! (class, path); each distinct set of one path's literals goes into one automaton ([`dfa`]:
//! ASCII case-insensitive, overlapping matches, so no literal hides another), and each path
//! maps its automaton's patterns to its literals. Each rule's likeliest-to-fail clause (literals used by the fewest
//! rules, and not short) is its *first* clause: each literal knows the rules whose first clause
//! holds it ([`build`]).
//!
//! Per event, the scanned attributes (strings, and numbers and booleans rendered as the
//! matchers see them, and such values inside arrays) are fetched in one walk of the event, and
//! each is searched where it lies by its path's automaton (so a literal counts only at its own
//! attributes, and no match spans two texts). A literal seen for the first time makes the rules of its first
//! clauses candidates. A candidate whose other clauses are met too, or a rule with no
//! requirement (evaluated for every event), is then evaluated in full, in load order: the
//! prefilter changes how fast a rule set answers, never what it answers. (An automaton per
//! literal set keeps each table small, and a search has no set-up cost, so one search per
//! attribute is cheaper than laying the attributes out for a single search.)

mod build;
mod dfa;
mod regex_literals;
mod requirement;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use serde_json::Value;

use crate::detection::with_text;
use crate::lookup::{FieldPath, Lookups, SlotAssigner};
use dfa::Dfa;

/// Clauses, each a list of literal ids one of which must be seen.
type Clauses = Box<[Box<[u32]>]>;

/// The search for one set of literals: a dense DFA, or for a set too large for one, the
/// `aho-corasick` crate's compact NFA (much smaller, somewhat slower per byte).
#[derive(Debug, Clone)]
pub(crate) enum Automaton {
    /// [`Dfa`].
    Dense(Box<Dfa>),
    /// A contiguous NFA, ASCII case-insensitive, overlapping matches.
    Compact(AhoCorasick),
}

impl Automaton {
    /// The automaton of `patterns` (lower-case ASCII letters, none empty); `None` if none
    /// could be built.
    fn new(patterns: &[&[u8]]) -> Option<Self> {
        if let Some(dfa) = Dfa::new(patterns) {
            return Some(Self::Dense(Box::new(dfa)));
        }
        AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .kind(Some(AhoCorasickKind::ContiguousNFA))
            .build(patterns)
            .ok()
            .map(Self::Compact)
    }

    /// Calls `found` with each pattern occurring in `text` (at least once per pattern).
    #[inline]
    fn for_each_match(&self, text: &[u8], found: impl FnMut(u32)) {
        match self {
            Self::Dense(dfa) => dfa.for_each_match(text, found),
            Self::Compact(nfa) => nfa
                .find_overlapping_iter(text)
                .map(|m| m.pattern().as_u32())
                .for_each(found),
        }
    }

    fn memory_usage(&self) -> usize {
        match self {
            Self::Dense(dfa) => dfa.memory_usage(),
            Self::Compact(nfa) => nfa.memory_usage(),
        }
    }
}

/// One scanned attribute.
#[derive(Debug, Clone)]
pub(crate) struct Scanned {
    path: FieldPath,
    /// Whether numbers and booleans there are scanned too (not when only keyword searches,
    /// which look at strings, need it).
    scalars: bool,
    /// The automaton of its literals.
    automaton: u32,
    /// Per pattern of the automaton, the literal id it is here.
    literals: Box<[u32]>,
}

/// The prefilter of one class's rules (indexed locally, `0..rules`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Prefilter {
    /// One per distinct set of literals (none: nothing to scan).
    automata: Box<[Automaton]>,
    /// The scanned attributes.
    paths: Box<[Scanned]>,
    /// Per literal id (a text at a path): the rules whose first clause it is in.
    primary: Box<[Box<[u32]>]>,
    /// Per rule: its other clauses, each a list of literals (global ids) one of which must be
    /// seen.
    secondary: Box<[Clauses]>,
    /// Rules evaluated for every event, ascending.
    always: Box<[u32]>,
    /// When the scanned paths hold slots `0..n` in order (as [`Prefilter::assign_slots`]
    /// gives them when it numbers a class's paths first), the mask of those slots: the scan
    /// then visits only the attributes present.
    slot_mask: Option<u64>,
}

/// Per-event working memory: the literals seen (a bit set, cleared word by word after use)
/// and the candidate rules found.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
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
        self.bits.capacity() + self.dirty.capacity() + self.candidates.capacity()
    }

    /// Clears what the last event marked.
    pub(crate) fn reset(&mut self) {
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
    /// Automata (one per distinct set of an attribute's literals).
    pub automata: usize,
    /// Heap bytes the automata use.
    pub automaton_bytes: usize,
}

impl Prefilter {
    /// Gives every scanned path its lookup slot.
    pub(crate) fn assign_slots(&mut self, slots: &mut SlotAssigner) {
        for scanned in self.paths.iter_mut() {
            slots.assign(&mut scanned.path);
        }
        let in_order = self
            .paths
            .iter()
            .enumerate()
            .all(|(i, s)| s.path.slot() as usize == i);
        self.slot_mask = match self.paths.len() {
            n if !in_order || n > 64 => None,
            64 => Some(u64::MAX),
            n => Some((1u64 << n) - 1),
        };
    }

    /// Rules evaluated for every event, ascending.
    pub(crate) fn always(&self) -> &[u32] {
        &self.always
    }

    /// Runs each scanned attribute's automaton over its texts and leaves the candidate rules
    /// (those with a requirement whose first clause is met), ascending, in
    /// `scratch.candidates`.
    pub(crate) fn scan(&self, lookups: &mut Lookups<'_>, scratch: &mut Scratch) {
        if self.automata.is_empty() {
            return;
        }
        scratch.prepare(self.primary.len());
        let Scratch {
            bits,
            dirty,
            candidates,
        } = scratch;
        let mut search = |scanned: &Scanned, value: &Value| {
            let Some(automaton) = self.automata.get(scanned.automaton as usize) else {
                return;
            };
            let mut search_text = |text: &str| {
                automaton.for_each_match(text.as_bytes(), |pattern| {
                    if let Some(&literal) = scanned.literals.get(pattern as usize)
                        && mark(bits, dirty, literal)
                        && let Some(rules) = self.primary.get(literal as usize)
                    {
                        candidates.extend_from_slice(rules);
                    }
                });
            };
            match value {
                Value::String(s) => search_text(s),
                other => for_each_text(other, scanned.scalars, search_text),
            }
        };
        match self.slot_mask.and_then(|m| lookups.present_among(m)) {
            // Prefetched: only the attributes present (scanned path `i` is slot `i`).
            Some(mut present) => {
                while present != 0 {
                    let i = present.trailing_zeros();
                    present &= present - 1;
                    if let (Some(scanned), Some(value)) =
                        (self.paths.get(i as usize), lookups.slot(i))
                    {
                        search(scanned, value);
                    }
                }
            }
            None => {
                for scanned in self.paths.iter() {
                    if let Some(value) = lookups.get(&scanned.path) {
                        search(scanned, value);
                    }
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
            automata: self.automata.len(),
            automaton_bytes: self.automata.iter().map(Automaton::memory_usage).sum(),
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
