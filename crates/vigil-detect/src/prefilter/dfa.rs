//! The prefilter's automaton: an Aho-Corasick DFA, ASCII case-insensitive, that reports every
//! pattern occurring in a text (overlapping occurrences included), run directly over each
//! attribute's text.
//!
//! Written here rather than taken from the `aho-corasick` crate because the prefilter only
//! asks *which* patterns occur, never where: the search is one table lookup and one compare
//! per byte, with no per-call set-up, so each attribute is searched where it lies (nothing is
//! copied into a scan buffer) and a text too short to hold a pattern costs a few instructions.
//!
//! Layout: bytes map to equivalence classes (every byte no pattern holds shares class 0, an
//! upper-case ASCII letter shares its lower case's), and the transition table holds, per
//! state, one entry per class, the next state's row offset (the state id times the row
//! length, so a step is `trans[state + class]`). States that end a pattern come first, so
//! "is this a match" is one compare with [`Dfa::match_below`].

use std::collections::VecDeque;

/// Most transition-table entries a DFA may have (4 bytes each): 8 MiB of table. A larger
/// automaton is searched with the `aho-corasick` crate's compact NFA instead.
pub(crate) const MAX_TABLE_ENTRIES: usize = 2 << 20;

/// A dense Aho-Corasick automaton.
#[derive(Debug, Clone)]
pub(crate) struct Dfa {
    /// Byte → equivalence class.
    classes: [u8; 256],
    /// Per state and class, the next state's row offset.
    trans: Box<[u32]>,
    /// Row offset of the start state.
    start: u32,
    /// Row offsets below this are states that end at least one pattern.
    match_below: u32,
    /// Row length (number of classes).
    stride: u32,
    /// Per match state (by index), its patterns' range in `outputs`.
    ranges: Box<[(u32, u32)]>,
    /// Pattern indices ending at each match state, every pattern that is a suffix of the
    /// state's text included.
    outputs: Box<[u32]>,
}

/// A state of the trie the DFA is built from.
#[derive(Debug, Default)]
struct TrieState {
    /// (class, child).
    children: Vec<(u8, u32)>,
    fail: u32,
    outputs: Vec<u32>,
}

impl Dfa {
    /// The automaton of `patterns` (lower-case ASCII where they hold letters; none empty), or
    /// `None` when its table would exceed [`MAX_TABLE_ENTRIES`] entries.
    pub(crate) fn new(patterns: &[&[u8]]) -> Option<Self> {
        // Byte classes: every byte a pattern holds gets its own; upper-case letters share
        // their lower case's; all other bytes share class 0.
        let mut classes = [0u8; 256];
        let mut used = [false; 256];
        for b in patterns.iter().flat_map(|p| p.iter()) {
            used[usize::from(b.to_ascii_lowercase())] = true;
        }
        let mut next_class = 1usize;
        for b in 0..=255u8 {
            if used[usize::from(b)] && !b.is_ascii_uppercase() {
                classes[usize::from(b)] = u8::try_from(next_class).ok()?;
                next_class += 1;
            }
        }
        for b in b'A'..=b'Z' {
            classes[usize::from(b)] = classes[usize::from(b.to_ascii_lowercase())];
        }
        let stride = next_class;

        // The trie.
        let mut states = vec![TrieState::default()];
        for (i, pattern) in patterns.iter().enumerate() {
            let mut at = 0usize;
            for &b in pattern.iter() {
                let class = classes[usize::from(b)];
                at = match states[at].children.iter().find(|(c, _)| *c == class) {
                    Some(&(_, child)) => child as usize,
                    None => {
                        let child = states.len();
                        states.push(TrieState::default());
                        states[at]
                            .children
                            .push((class, u32::try_from(child).ok()?));
                        child
                    }
                };
            }
            states[at].outputs.push(u32::try_from(i).ok()?);
        }
        if states.len().checked_mul(stride)? > MAX_TABLE_ENTRIES {
            return None;
        }

        // Failure links and the dense transitions, breadth first (a state's failure state is
        // shallower, so its row is complete when the state's is filled in).
        let mut trans = vec![0u32; states.len() * stride];
        let mut order = Vec::with_capacity(states.len());
        let mut queue = VecDeque::from([0u32]);
        while let Some(s) = queue.pop_front() {
            let s = s as usize;
            order.push(s);
            let fail = states[s].fail as usize;
            if s != 0 {
                let inherited = states[fail].outputs.clone();
                states[s].outputs.extend(inherited);
                let (from, to) = (fail * stride, s * stride);
                trans.copy_within(from..from + stride, to);
            }
            for i in 0..states[s].children.len() {
                let (class, child) = states[s].children[i];
                // The child's failure state: where the parent's failure state goes on `class`
                // (the root's children fail to the root).
                states[child as usize].fail = if s == 0 {
                    0
                } else {
                    trans[fail * stride + usize::from(class)]
                };
                trans[s * stride + usize::from(class)] = child;
                queue.push_back(child);
            }
        }

        // Renumber: match states first, then the others (the start state among them).
        let mut new_id = vec![0u32; states.len()];
        let mut ranges = Vec::new();
        let mut outputs = Vec::new();
        let mut next = 0u32;
        for &s in order.iter().filter(|&&s| !states[s].outputs.is_empty()) {
            new_id[s] = next;
            next += 1;
            let from = u32::try_from(outputs.len()).ok()?;
            outputs.extend_from_slice(&states[s].outputs);
            ranges.push((from, u32::try_from(outputs.len()).ok()?));
        }
        let matches = next;
        for &s in order.iter().filter(|&&s| states[s].outputs.is_empty()) {
            new_id[s] = next;
            next += 1;
        }
        let stride32 = u32::try_from(stride).ok()?;
        let mut table = vec![0u32; trans.len()];
        for (old, &new) in new_id.iter().enumerate() {
            let (from, to) = (old * stride, new as usize * stride);
            for c in 0..stride {
                table[to + c] = new_id[trans[from + c] as usize].checked_mul(stride32)?;
            }
        }
        Some(Self {
            classes,
            trans: table.into_boxed_slice(),
            start: new_id[0].checked_mul(stride32)?,
            match_below: matches.checked_mul(stride32)?,
            stride: stride32,
            ranges: ranges.into_boxed_slice(),
            outputs: outputs.into_boxed_slice(),
        })
    }

    /// Calls `found` with the index of every pattern occurring in `text` (once per
    /// occurrence), ignoring ASCII case.
    #[inline]
    pub(crate) fn for_each_match(&self, text: &[u8], mut found: impl FnMut(u32)) {
        let trans = &*self.trans;
        let mut state = self.start;
        let mut step = |b: u8| {
            let class = u32::from(self.classes[usize::from(b)]);
            // Every row offset plus a class is inside the table: the `else` never runs (it
            // keeps the step a plain load after one predictable compare).
            let Some(&next) = trans.get((state + class) as usize) else {
                return;
            };
            state = next;
            if state < self.match_below {
                self.report(state, &mut found);
            }
        };
        // Two bytes per turn: half the loop's own compares and jumps.
        let mut pairs = text.chunks_exact(2);
        for pair in &mut pairs {
            if let &[a, b] = pair {
                step(a);
                step(b);
            }
        }
        pairs.remainder().iter().for_each(|&b| step(b));
    }

    #[cold]
    #[inline(never)]
    fn report(&self, state: u32, found: &mut impl FnMut(u32)) {
        let Some(&(from, to)) = self.ranges.get((state / self.stride) as usize) else {
            return;
        };
        if let Some(patterns) = self.outputs.get(from as usize..to as usize) {
            patterns.iter().for_each(|&p| found(p));
        }
    }

    /// Heap bytes used.
    /// Heap bytes used.
    pub(crate) fn memory_usage(&self) -> usize {
        self.trans.len() * 4 + self.ranges.len() * 8 + self.outputs.len() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every (pattern, text) pair found by the DFA, against a naive case-insensitive search.
    fn check(patterns: &[&str], texts: &[&str]) {
        let bytes: Vec<&[u8]> = patterns.iter().map(|p| p.as_bytes()).collect();
        let dfa = Dfa::new(&bytes).expect("small automaton");
        for text in texts {
            let mut got = vec![0usize; patterns.len()];
            dfa.for_each_match(text.as_bytes(), |p| got[p as usize] += 1);
            let lower = text.to_ascii_lowercase();
            let want: Vec<usize> = patterns
                .iter()
                .map(|p| {
                    (0..lower.len())
                        .filter(|&i| lower.as_bytes()[i..].starts_with(p.as_bytes()))
                        .count()
                })
                .collect();
            assert_eq!(got, want, "{patterns:?} in {text:?}");
        }
    }

    #[test]
    fn finds_every_occurrence_of_every_pattern_ignoring_ascii_case() {
        check(
            &["he", "she", "his", "hers", "/tmp/", "tmp", "e", "x\u{e9}y"],
            &[
                "",
                "ushers",
                "USHERS his HeRs",
                "/TMP/x /tmp/ tmp",
                "hhhhe",
                "x\u{e9}y X\u{e9}Y x\u{c9}y",
                "\0he\0",
            ],
        );
    }

    #[test]
    fn overlapping_and_nested_patterns_are_all_reported() {
        check(
            &["aaa", "aa", "a", "ab", "bab", "abab"],
            &["aaaa", "ababab", "baaab", "AbAbA"],
        );
        check(
            &["-c", "sh -c", "bash", "ash", "sh"],
            &["bash -c 'sh -c x'"],
        );
    }

    #[test]
    fn refuses_automata_beyond_the_table_limit() {
        let long: Vec<Vec<u8>> = (0..2_000u32)
            .map(|i| format!("{i:08}abcdefghijklmnopqrstuvwxyz{i:08}").into_bytes())
            .collect();
        let refs: Vec<&[u8]> = long.iter().map(Vec::as_slice).collect();
        assert!(Dfa::new(&refs).is_none());
        assert!(Dfa::new(&refs[..10]).is_some());
    }
}
