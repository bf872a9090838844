//! An event's attributes, each looked up at most once however many rules read it.
//!
//! Paths are split at compile time; a [`crate::RuleSet`] numbers the distinct paths of its
//! rules ([`SlotAssigner`]) and evaluation keeps the result of each lookup in a small array on
//! the stack ([`Lookups`]).

use std::collections::HashMap;

use serde_json::Value;

/// A dotted OCSF attribute path, split once at compile time.
///
/// A [`crate::RuleSet`] gives every distinct path of its rules a slot, so an event's lookups
/// can be remembered in [`Lookups`] and each path is walked at most once per event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldPath {
    segments: Box<[Box<str>]>,
    slot: u32,
}

/// The slot of a path that has none: always looked up afresh.
const NO_SLOT: u32 = u32::MAX;

impl FieldPath {
    /// Splits `process.file.path` into its segments.
    pub(crate) fn new(dotted: &str) -> Self {
        Self {
            segments: dotted.split('.').map(Into::into).collect(),
            slot: NO_SLOT,
        }
    }

    /// The dotted form, `process.file.path`.
    pub(crate) fn dotted(&self) -> String {
        self.segments.join(".")
    }

    /// The attribute in `data`, if every segment is present.
    pub(crate) fn lookup<'v>(&self, data: &'v Value) -> Option<&'v Value> {
        self.segments
            .iter()
            .try_fold(data, |value, key| vigil_ocsf::step(value, key))
    }
}

/// Gives each distinct path a slot, the same slot to equal paths.
#[derive(Debug, Default)]
pub(crate) struct SlotAssigner {
    pub(crate) slots: HashMap<Box<[Box<str>]>, u32>,
}

impl SlotAssigner {
    /// Gives `path` its slot.
    pub(crate) fn assign(&mut self, path: &mut FieldPath) {
        let next = u32::try_from(self.slots.len()).unwrap_or(NO_SLOT);
        path.slot = *self.slots.entry(path.segments.clone()).or_insert(next);
    }
}

/// A set of paths as a tree of their segments, so [`Lookups::prefetch`] can fetch them all in
/// one walk of the event, each object visited once.
#[derive(Debug, Clone, Default)]
pub(crate) struct PathTrie {
    roots: Vec<TrieNode>,
    /// [`length_bit`]s of the roots' keys.
    root_lengths: u64,
}

#[derive(Debug, Clone)]
struct TrieNode {
    key: Box<str>,
    /// The slot of the path ending here ([`NO_SLOT`] if none does).
    slot: u32,
    children: Vec<TrieNode>,
    /// [`length_bit`]s of the children's keys: most keys of an object are not wanted, and
    /// their length alone says so.
    child_lengths: u64,
}

/// A bit standing for a key's length (lengths of 63 and more share one).
fn length_bit(key: &[u8]) -> u64 {
    1 << key.len().min(63)
}

impl PathTrie {
    /// Adds a path (with its slot already assigned).
    pub(crate) fn insert(&mut self, path: &FieldPath) {
        if let Some(first) = path.segments.first() {
            self.root_lengths |= length_bit(first.as_bytes());
        }
        let mut level = &mut self.roots;
        let last = path.segments.len().saturating_sub(1);
        for (i, seg) in path.segments.iter().enumerate() {
            let at = match level.iter().position(|n| n.key == *seg) {
                Some(at) => at,
                None => {
                    level.push(TrieNode {
                        key: seg.clone(),
                        slot: NO_SLOT,
                        children: Vec::new(),
                        child_lengths: 0,
                    });
                    level.len() - 1
                }
            };
            if i == last {
                level[at].slot = path.slot;
            }
            if let Some(next) = path.segments.get(i + 1) {
                level[at].child_lengths |= length_bit(next.as_bytes());
            }
            level = &mut level[at].children;
        }
    }
}

/// Key equality for short keys: length, first and last byte decide most mismatches without a
/// call to `memcmp`.
fn same_key(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.first() == b.first() && a.last() == b.last() && a == b
}

/// How many distinct paths per rule set have their lookups remembered; others are looked up
/// every time they are needed.
pub(crate) const CACHED_SLOTS: usize = 48;

/// The result of one path lookup, once made.
#[derive(Debug, Clone, Copy)]
enum Cached<'v> {
    /// Not looked up yet.
    Unknown,
    /// Looked up: not there.
    Absent,
    /// Looked up: this value.
    Present(&'v Value),
}

/// One event's attributes, each path looked up at most once. Lives on the stack.
pub(crate) struct Lookups<'v> {
    data: &'v Value,
    cache: [Cached<'v>; CACHED_SLOTS],
}

impl<'v> Lookups<'v> {
    /// Lookups into an event document.
    pub(crate) fn new(data: &'v Value) -> Self {
        Self {
            data,
            cache: [Cached::Unknown; CACHED_SLOTS],
        }
    }

    /// Looks up every path of `trie` at once: each object on the way is visited once, and
    /// its entries compared with the wanted keys (length first) instead of searched per key.
    pub(crate) fn prefetch(&mut self, trie: &PathTrie) {
        self.fill(Some(self.data), &trie.roots, trie.root_lengths);
    }

    fn fill(&mut self, value: Option<&'v Value>, nodes: &[TrieNode], lengths: u64) {
        let map = match value {
            Some(Value::Object(map)) => map,
            // An array's elements by index (`unmapped.argv.0`).
            Some(array @ Value::Array(_)) => {
                nodes
                    .iter()
                    .for_each(|n| self.settle(n, vigil_ocsf::step(array, &n.key)));
                return;
            }
            _ => {
                nodes.iter().for_each(|n| self.settle(n, None));
                return;
            }
        };
        // Large objects, or more wanted keys than tracked: search per key instead.
        if map.len() > 32 || nodes.len() > 64 {
            nodes.iter().for_each(|n| self.settle(n, map.get(&*n.key)));
            return;
        }
        let mut found = 0u64;
        for (key, child) in map {
            let key = key.as_bytes();
            if lengths & length_bit(key) == 0 {
                continue;
            }
            if let Some(i) = nodes.iter().position(|n| same_key(n.key.as_bytes(), key)) {
                found |= 1 << i;
                self.settle(&nodes[i], Some(child));
                if found.count_ones() as usize == nodes.len() {
                    return;
                }
            }
        }
        for (i, node) in nodes.iter().enumerate() {
            if found & (1 << i) == 0 {
                self.settle(node, None);
            }
        }
    }

    /// Records what a trie node's path holds, then what its children's do.
    fn settle(&mut self, node: &TrieNode, value: Option<&'v Value>) {
        if let Some(cached) = self.cache.get_mut(node.slot as usize) {
            *cached = value.map_or(Cached::Absent, Cached::Present);
        }
        if !node.children.is_empty() {
            self.fill(value, &node.children, node.child_lengths);
        }
    }

    /// The attribute at `path`.
    pub(crate) fn get(&mut self, path: &FieldPath) -> Option<&'v Value> {
        let Some(cached) = self.cache.get_mut(path.slot as usize) else {
            return path.lookup(self.data);
        };
        match *cached {
            Cached::Present(v) => Some(v),
            Cached::Absent => None,
            Cached::Unknown => {
                let found = path.lookup(self.data);
                *cached = found.map_or(Cached::Absent, Cached::Present);
                found
            }
        }
    }

    /// The first non-null value at any of `paths` at or after `*next`, advancing `*next`.
    pub(crate) fn next_value(
        &mut self,
        paths: &[FieldPath],
        next: &mut usize,
    ) -> Option<&'v Value> {
        while let Some(path) = paths.get(*next) {
            *next += 1;
            match self.get(path) {
                Some(v) if !v.is_null() => return Some(v),
                _ => {}
            }
        }
        None
    }
}
