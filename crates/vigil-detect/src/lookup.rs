//! An event's attributes, each looked up at most once however many rules read it.
//!
//! Paths are split at compile time; a [`crate::RuleSet`] numbers the distinct paths the rules
//! of each OCSF class read ([`SlotAssigner`]: the paths the prefilter scans first, then the
//! rules', then their gates'), and keeps the scanned ones as a tree of their segments
//! ([`PathTrie`]). Per event, one walk of the document fetches those into a flat table on the
//! stack ([`Lookups::prefetch`]), each object visited once; rules read attributes by slot, a
//! path not fetched yet being looked up once, when first read.

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

    /// The path with a given slot.
    #[cfg(test)]
    pub(crate) fn with_slot(dotted: &str, slot: u32) -> Self {
        Self {
            slot,
            ..Self::new(dotted)
        }
    }

    /// Its segments.
    pub(crate) fn segments(&self) -> &[Box<str>] {
        &self.segments
    }

    /// Its slot ([`u32::MAX`] when it has none).
    pub(crate) fn slot(&self) -> u32 {
        self.slot
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

/// Gives each distinct path a slot, the same slot to equal paths (up to [`CACHED_SLOTS`]
/// slots; further paths get none and are looked up whenever read), and keeps the slotted
/// paths as a [`PathTrie`].
#[derive(Debug, Default)]
pub(crate) struct SlotAssigner {
    pub(crate) slots: HashMap<Box<[Box<str>]>, u32>,
    trie: PathTrie,
}

impl SlotAssigner {
    /// Gives `path` its slot.
    pub(crate) fn assign(&mut self, path: &mut FieldPath) {
        if let Some(&slot) = self.slots.get(&path.segments) {
            path.slot = slot;
            return;
        }
        let next = self.slots.len();
        path.slot = if next < CACHED_SLOTS {
            u32::try_from(next).unwrap_or(NO_SLOT)
        } else {
            NO_SLOT
        };
        self.slots.insert(path.segments.clone(), path.slot);
        if path.slot != NO_SLOT {
            self.trie.insert(path);
        }
    }

    /// The paths slotted so far, as a tree.
    pub(crate) fn trie(&self) -> &PathTrie {
        &self.trie
    }
}

/// A set of paths as a tree of their segments, so [`Lookups::prefetch`] can fetch them all in
/// one walk of the event, each object visited once.
#[derive(Debug, Clone, Default)]
pub(crate) struct PathTrie {
    roots: Level,
    /// The slots of its paths, one bit each.
    slots: SlotMask,
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
                    words: key_words(seg.as_bytes()),
                    slot: NO_SLOT,
                    children: Level::default(),
                });
                let at = self.nodes.len() - 1;
                let entry = &mut self.table[key_hash(seg.as_bytes())];
                *entry = match *entry {
                    KeyTable::NONE => u8::try_from(at)
                        .ok()
                        .filter(|&at| at < KeyTable::MANY)
                        .unwrap_or(KeyTable::MANY),
                    _ => KeyTable::MANY,
                };
                at
            }
        };
        &mut self.nodes[at]
    }

    /// The index of the node with this key.
    #[inline]
    fn find(&self, key: &[u8]) -> Option<usize> {
        match self.table[key_hash(key)] {
            KeyTable::NONE => None,
            KeyTable::MANY => self.nodes.iter().position(|n| n.is(key)),
            at => {
                let at = usize::from(at);
                self.nodes.get(at).is_some_and(|n| n.is(key)).then_some(at)
            }
        }
    }
}

#[derive(Debug, Clone)]
struct TrieNode {
    key: Box<str>,
    /// [`key_words`] of the key.
    words: (u64, u64),
    /// The slot of the path ending here ([`NO_SLOT`] if none does).
    slot: u32,
    children: Level,
}

impl TrieNode {
    /// Whether `key` is this node's key: two word compares for keys up to 16 bytes.
    #[inline]
    fn is(&self, key: &[u8]) -> bool {
        let mine = self.key.as_bytes();
        mine.len() == key.len() && key_words(key) == self.words && (key.len() <= 16 || mine == key)
    }
}

/// A key as two words that, for keys up to 16 bytes of the same length, are equal exactly
/// when the keys are: the first and last 8 bytes (which overlap under 16), the first and last
/// 4 under 8, the bytes themselves under 4.
#[inline]
fn key_words(key: &[u8]) -> (u64, u64) {
    let n = key.len();
    let word = |at: usize| -> u64 {
        key.get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_le_bytes)
    };
    let half = |at: usize| -> u64 {
        key.get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map_or(0, |b| u64::from(u32::from_le_bytes(b)))
    };
    if n >= 8 {
        (word(0), word(n - 8))
    } else if n >= 4 {
        (half(0), half(n - 4))
    } else {
        let bytes = key
            .iter()
            .enumerate()
            .fold(0u64, |w, (i, &b)| w | u64::from(b) << (8 * i));
        (bytes, 0)
    }
}

impl PathTrie {
    /// Every path ending at a node, dotted, with its slot.
    #[cfg(test)]
    pub(crate) fn paths(&self) -> Vec<(String, u32)> {
        fn walk(level: &Level, prefix: &str, out: &mut Vec<(String, u32)>) {
            for node in &level.nodes {
                let dotted = if prefix.is_empty() {
                    node.key.to_string()
                } else {
                    format!("{prefix}.{}", node.key)
                };
                if node.slot != NO_SLOT {
                    out.push((dotted.clone(), node.slot));
                }
                walk(&node.children, &dotted, out);
            }
        }
        let mut out = Vec::new();
        walk(&self.roots, "", &mut out);
        out
    }

    /// Adds a path (with its slot already assigned).
    pub(crate) fn insert(&mut self, path: &FieldPath) {
        self.slots.set(path.slot);
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

/// How many distinct paths of a class have a slot (their lookups remembered, and fetched
/// together); others are looked up every time they are needed.
pub(crate) const CACHED_SLOTS: usize = 64;

/// One bit per slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct SlotMask(u64);

impl SlotMask {
    #[inline]
    fn set(&mut self, slot: u32) {
        self.0 |= 1u64.checked_shl(slot).unwrap_or(0);
    }

    #[inline]
    fn has(self, slot: usize) -> bool {
        u32::try_from(slot)
            .ok()
            .and_then(|s| 1u64.checked_shl(s))
            .is_some_and(|bit| self.0 & bit != 0)
    }
}

/// One event's attributes, each path looked up at most once. Lives on the stack.
pub(crate) struct Lookups<'v> {
    data: &'v Value,
    /// Per slot, the attribute (`None`: absent, or not looked up yet).
    values: [Option<&'v Value>; CACHED_SLOTS],
    /// The slots looked up.
    known: SlotMask,
    /// The slots looked up and found present.
    present: SlotMask,
}

impl<'v> Lookups<'v> {
    /// Lookups into an event document.
    pub(crate) fn new(data: &'v Value) -> Self {
        Self {
            data,
            values: [None; CACHED_SLOTS],
            known: SlotMask::default(),
            present: SlotMask::default(),
        }
    }

    /// Looks up every path of `trie` at once: each object on the way is visited once, and
    /// its entries matched with the wanted keys through the level's key table instead of
    /// searched per key. Call it first, on fresh lookups.
    pub(crate) fn prefetch(&mut self, trie: &PathTrie) {
        self.fill(self.data, &trie.roots);
        self.known.0 |= trie.slots.0;
    }

    fn fill(&mut self, value: &'v Value, level: &Level) {
        let map = match value {
            Value::Object(map) if map.len() <= 32 => map,
            other => return self.fill_by_key(other, level),
        };
        let nodes = &level.nodes;
        let mut missing = nodes.len();
        for (key, child) in map {
            if let Some(node) = level.find(key.as_bytes()).and_then(|i| nodes.get(i)) {
                self.settle(node, child);
                missing -= 1;
                if missing == 0 {
                    return;
                }
            }
        }
    }

    /// [`Lookups::fill`] for what is not a small object: an array's elements by index
    /// (`unmapped.argv.0`), a large object's entries by key (searched per wanted key), and
    /// nothing inside a scalar.
    #[cold]
    #[inline(never)]
    fn fill_by_key(&mut self, value: &'v Value, level: &Level) {
        if !matches!(value, Value::Object(_) | Value::Array(_)) {
            return;
        }
        for node in &level.nodes {
            if let Some(v) = vigil_ocsf::step(value, &node.key) {
                self.settle(node, v);
            }
        }
    }

    /// Records what a trie node's path holds, then what its children's do. (Absent paths
    /// stay `None`.)
    #[inline]
    fn settle(&mut self, node: &TrieNode, value: &'v Value) {
        if let Some(v) = self.values.get_mut(node.slot as usize) {
            *v = Some(value);
            self.present.set(node.slot);
        }
        if !node.children.nodes.is_empty() {
            self.fill(value, &node.children);
        }
    }

    /// Of the slots in `wanted` (bit `i`: slot `i`), those holding a value, when every one of
    /// them has been looked up (by [`Lookups::prefetch`]); `None` otherwise.
    #[inline]
    pub(crate) fn present_among(&self, wanted: u64) -> Option<u64> {
        (self.known.0 & wanted == wanted).then_some(self.present.0 & wanted)
    }

    /// The value in `slot`, once looked up.
    #[inline]
    pub(crate) fn slot(&self, slot: u32) -> Option<&'v Value> {
        self.values.get(slot as usize).copied().flatten()
    }

    /// The attribute at `path`.
    #[inline]
    pub(crate) fn get(&mut self, path: &FieldPath) -> Option<&'v Value> {
        let slot = path.slot as usize;
        if self.known.has(slot) {
            return self.values.get(slot).copied().flatten();
        }
        let found = path.lookup(self.data);
        if let Some(v) = self.values.get_mut(slot) {
            *v = found;
            self.known.set(path.slot);
            if found.is_some() {
                self.present.set(path.slot);
            }
        }
        found
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

    #[test]
    fn prefetch_reads_large_objects_arrays_and_scalars_by_key() {
        let dotted = [
            "big.k7",
            "big.k39",
            "big.none",
            "list.1",
            "list.x",
            "flat.a",
            "big.k3.in",
        ];
        let mut slots = SlotAssigner::default();
        let paths: Vec<FieldPath> = dotted
            .iter()
            .map(|d| {
                let mut p = FieldPath::new(d);
                slots.assign(&mut p);
                p
            })
            .collect();
        let mut big = serde_json::Map::new();
        for i in 0..40 {
            big.insert(format!("k{i}"), json!(i));
        }
        big.insert("k3".into(), json!({"in": "deep"}));
        let data = json!({"big": big, "list": ["a", "b"], "flat": "scalar"});
        let mut lookups = Lookups::new(&data);
        lookups.prefetch(slots.trie());
        let got: Vec<Option<Value>> = paths.iter().map(|p| lookups.get(p).cloned()).collect();
        let want: Vec<Option<Value>> = paths.iter().map(|p| p.lookup(&data).cloned()).collect();
        assert_eq!(got, want);
        assert_eq!(got[0], Some(json!(7)));
        assert_eq!(got[1], Some(json!(39)));
        assert_eq!(got[3], Some(json!("b")));
        assert_eq!(got[6], Some(json!("deep")));
        assert_eq!(got[2..3], [None]);
    }
}
