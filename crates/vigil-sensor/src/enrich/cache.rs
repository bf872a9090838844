//! A small bounded map with first-in-first-out eviction.

use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// A map that never holds more than `capacity` entries; inserting a new key into a full cache
/// evicts the oldest key. Replacing an existing key keeps its place in line.
///
/// Removal is lazy: the key's place in line stays behind as a stale ticket (told apart by a
/// generation number) and is skipped on eviction, and the line is compacted when stale tickets
/// outnumber live ones. Every operation is O(1) amortised.
#[derive(Debug)]
pub(crate) struct BoundedCache<K, V> {
    capacity: usize,
    map: HashMap<K, (V, u64)>,
    order: VecDeque<(K, u64)>,
    generation: u64,
}

impl<K: Hash + Eq + Clone, V> BoundedCache<K, V> {
    /// An empty cache holding at most `capacity` (at least 1) entries.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            map: HashMap::new(),
            order: VecDeque::new(),
            generation: 0,
        }
    }

    /// The value of `key`, looked up by any borrowed form of it (a `&[u8]` for a
    /// `Box<[u8]>` key), so lookups need not allocate.
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get(key).map(|(value, _)| value)
    }

    pub(crate) fn insert(&mut self, key: K, value: V) {
        if let Some(slot) = self.map.get_mut(&key) {
            slot.0 = value;
            return;
        }
        while self.map.len() >= self.capacity {
            match self.order.pop_front() {
                Some((oldest, generation)) => {
                    if self.map.get(&oldest).is_some_and(|(_, g)| *g == generation) {
                        self.map.remove(&oldest);
                    }
                }
                None => break,
            }
        }
        self.generation += 1;
        self.order.push_back((key.clone(), self.generation));
        self.map.insert(key, (value, self.generation));
    }

    /// Removes `key`, returning its value.
    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        let (value, _) = self.map.remove(key)?;
        if self.order.len() > 2 * self.capacity.max(self.map.len()) {
            let map = &self.map;
            self.order
                .retain(|(k, g)| map.get(k).is_some_and(|(_, live)| live == g));
        }
        Some(value)
    }

    /// Forgets every entry.
    pub(crate) fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_oldest_when_full_and_replaces_in_place() {
        let mut cache = BoundedCache::new(2);
        cache.insert(1, "a");
        cache.insert(2, "b");
        cache.insert(1, "a2");
        assert_eq!(cache.get(&1), Some(&"a2"));
        cache.insert(3, "c");
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(&1), None, "key 1 was the oldest");
        assert_eq!(cache.get(&2), Some(&"b"));
        assert_eq!(cache.get(&3), Some(&"c"));
    }

    #[test]
    fn removed_keys_free_room_and_stale_tickets_do_not_evict_reinserted_keys() {
        let mut cache = BoundedCache::new(2);
        cache.insert(1, "a");
        cache.insert(2, "b");
        assert_eq!(cache.remove(&1), Some("a"));
        assert_eq!(cache.remove(&1), None);
        cache.insert(3, "c");
        assert_eq!((cache.get(&2), cache.get(&3)), (Some(&"b"), Some(&"c")));
        // 1 comes back: its old ticket must not count as its place in line.
        cache.remove(&2);
        cache.insert(1, "a2");
        cache.insert(4, "d"); // evicts 3, the oldest live key
        assert_eq!(cache.get(&3), None);
        assert_eq!((cache.get(&1), cache.get(&4)), (Some(&"a2"), Some(&"d")));
    }

    #[test]
    fn byte_string_keys_are_found_by_slice_and_clear_empties() {
        let mut cache: BoundedCache<Box<[u8]>, u8> = BoundedCache::new(4);
        cache.insert(Box::from(&b"ab"[..]), 1);
        assert_eq!(cache.get(&b"ab"[..]), Some(&1));
        assert_eq!(cache.get(&b"a"[..]), None);
        cache.clear();
        assert_eq!((cache.len(), cache.get(&b"ab"[..])), (0, None));
        cache.insert(Box::from(&b"cd"[..]), 2);
        assert_eq!(cache.get(&b"cd"[..]), Some(&2));
    }

    #[test]
    fn churn_keeps_the_line_bounded() {
        let mut cache = BoundedCache::new(4);
        for i in 0..10_000u32 {
            cache.insert(i, i);
            cache.remove(&i);
        }
        assert_eq!(cache.len(), 0);
        assert!(cache.order.len() <= 8 + 1, "{}", cache.order.len());
    }
}
