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
    roots: Level,
}

/// The wanted keys of one object, found from an entry's key without comparing it with each.
#[derive(Debug, Clone)]
struct Level {
    nodes: Vec<TrieNode>,
    /// [`KeyTable::NONE`], or the node whose key hashes to the entry ([`key_hash`]), or
    /// [`KeyTable::MANY`] when several do.
    table: [u8; KEY_TABLE],
}

impl Default for Level {
    fn default() -> Self {
        Self {
            nodes: Vec::new(),
            table: [KeyTable::NONE; KEY_TABLE],
        }
    }
}

/// Entries of a level's key table.
struct KeyTable;

impl KeyTable {
    const NONE: u8 = u8::MAX;
    const MANY: u8 = u8::MAX - 1;
}

/// Size of a level's key table.
const KEY_TABLE: usize = 64;

/// A key's place in a level's table: from its length and its first and last bytes, which set
/// apart the keys of an OCSF object.
fn key_hash(key: &[u8]) -> usize {
    let (first, last) = match key {
        [] => (0, 0),
        [one] => (*one, *one),
        [first, .., last] => (*first, *last),
    };
    (key.len()
        .wrapping_mul(7)
        .wrapping_add(usize::from(first).wrapping_mul(3))
        .wrapping_add(usize::from(last)))
        % KEY_TABLE
}

impl Level {
    /// The node for `seg`, made if missing.
    fn node(&mut self, seg: &str) -> &mut TrieNode {
        let at = match self.nodes.iter().position(|n| *n.key == *seg) {
            Some(at) => at,
            None => {
                self.nodes.push(TrieNode {
                    key: seg.into(),
                    slot: NO_SLOT,
                    children: Level::default(),
                });
                let at = self.nodes.len() - 1;
                let entry = &mut self.table[key_hash(seg.as_bytes())];
                *entry = match *entry {
                    KeyTable::NONE => u8::try_from(at).unwrap_or(KeyTable::MANY),
                    _ => KeyTable::MANY,
                };
                at
            }
        };
        &mut self.nodes[at]
    }

    /// The index of the node with this key.
    fn find(&self, key: &[u8]) -> Option<usize> {
        match self.table[key_hash(key)] {
            KeyTable::NONE => None,
            KeyTable::MANY => self
                .nodes
                .iter()
                .position(|n| same_key(n.key.as_bytes(), key)),
            at => {
                let at = usize::from(at);
                self.nodes
                    .get(at)
                    .is_some_and(|n| same_key(n.key.as_bytes(), key))
                    .then_some(at)
            }
        }
    }
}

#[derive(Debug, Clone)]
struct TrieNode {
    key: Box<str>,
    /// The slot of the path ending here ([`NO_SLOT`] if none does).
    slot: u32,
    children: Level,
}

impl PathTrie {
    /// Adds a path (with its slot already assigned).
    pub(crate) fn insert(&mut self, path: &FieldPath) {
        let mut level = &mut self.roots;
        let last = path.segments.len().saturating_sub(1);
        for (i, seg) in path.segments.iter().enumerate() {
            let node = level.node(seg);
            if i == last {
                node.slot = path.slot;
            }
            level = &mut node.children;
        }
    }
}

/// Key equality for short keys, compared in line (no call to `memcmp`).
fn same_key(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
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
        self.fill(Some(self.data), &trie.roots);
    }

    fn fill(&mut self, value: Option<&'v Value>, level: &Level) {
        let nodes = &level.nodes;
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
        let mut missing = nodes.len();
        for (key, child) in map {
            if let Some(i) = level.find(key.as_bytes()) {
                found |= 1 << i;
                self.settle(&nodes[i], Some(child));
                missing -= 1;
                if missing == 0 {
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
        if !node.children.nodes.is_empty() {
            self.fill(value, &node.children);
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn prefetch_finds_every_path_even_when_keys_share_a_table_entry() {
        // `acb` and `adb` have the same length and end bytes: one table entry for both.
        let dotted = ["x.acb", "x.adb", "x.a", "y", "x.gone", "z.0", "x.acb.deep"];
        let mut slots = SlotAssigner::default();
        let mut trie = PathTrie::default();
        let paths: Vec<FieldPath> = dotted
            .iter()
            .map(|d| {
                let mut p = FieldPath::new(d);
                slots.assign(&mut p);
                trie.insert(&p);
                p
            })
            .collect();
        let data = json!({"x": {"adb": 2, "acb": 1, "a": "s", "other": 0}, "y": true,
                          "z": ["first"], "w": {}});
        let mut lookups = Lookups::new(&data);
        lookups.prefetch(&trie);
        let got: Vec<Option<Value>> = paths.iter().map(|p| lookups.get(p).cloned()).collect();
        let want: Vec<Option<Value>> = paths.iter().map(|p| p.lookup(&data).cloned()).collect();
        assert_eq!(got, want);
        assert_eq!(got[0], Some(json!(1)));
        assert_eq!(got[1], Some(json!(2)));
        assert_eq!(got[4], None);
        assert_eq!(got[5], Some(json!("first")));
        assert!(trie.roots.nodes[0].children.table.contains(&KeyTable::MANY));
    }
}
