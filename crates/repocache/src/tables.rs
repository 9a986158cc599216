//! The two hash tables under the snapshot's lookup index, behind one trait ([`Slots`]):
//! [`FlatTable`] for the base, which reads mostly hit, and `hashbrown`'s table for the delta,
//! which reads mostly miss.
//!
//! [`FlatTable`] probes linearly over the entries themselves. A lookup goes from the hash
//! straight to the entry's slot: one cache line for an entry of 64 bytes, the next one or two
//! when the slot was taken (the hardware prefetches neighbours), and no separate array of
//! control bytes to load first. The whole probe is inlined at the caller, comparison
//! included: no call through `dyn FnMut` per candidate, as `hashbrown` makes. It keeps at
//! least half of its slots empty (it doubles before an insert would fill more), so that a
//! probe meets an empty slot soon: about 1.5 slots for a hit, 2.5 for a miss on average.
//! Removal shifts the entries that follow back into the hole (no tombstones), so a table that
//! churns never slows down.
//!
//! A miss is where `hashbrown` wins: it matches a key's 7-bit tag against 16 control bytes at
//! once and, for a key it does not hold, usually touches no entry at all, where a
//! [`FlatTable`] walks about 2.5 entries of 64 bytes. The delta, which a read probes first
//! whenever a writer has changed anything since the last fold, mostly misses, and the writer
//! copies it at publishes, so its lines are often fresh: it stays a `hashbrown` table. (The
//! benchmark could not tell the two deltas apart beyond this machine's noise: at 1,000 objects
//! with a 10k/s writer, one run each, 37.4 ns per read with a flat delta, 35.0 ns with
//! `hashbrown`'s; the line count decided.)

/// What the table needs of its entries: the hash they were placed by, kept in the entry so that
/// growing never hashes a key again and a probe skips most other keys without comparing them.
pub(crate) trait Hashed {
    /// The entry's hash.
    fn hash(&self) -> u64;
}

/// What the lookup index needs of a table of [`Hashed`] entries; `eq` tells the wanted entry
/// among those with the same hash.
///
/// Sizing (`with_capacity`, `reserve`) is not part of it: only the base is sized, and only
/// through its own type.
pub(crate) trait Slots<T: Hashed>: Default + Clone {
    /// The number of entries.
    fn len(&self) -> usize;
    /// Whether the table holds no entry.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The entry with this `hash` for which `eq` holds, if any.
    fn find(&self, hash: u64, eq: impl FnMut(&T) -> bool) -> Option<&T>;
    /// The entry with this `hash` for which `eq` holds, to change it in place (not its hash).
    fn find_mut(&mut self, hash: u64, eq: impl FnMut(&T) -> bool) -> Option<&mut T>;
    /// Removes and returns the entry with this `hash` for which `eq` holds, if any.
    fn remove(&mut self, hash: u64, eq: impl FnMut(&T) -> bool) -> Option<T>;
    /// Inserts `entry`, which must not be in the table yet (the caller looked it up).
    fn insert_unique(&mut self, entry: T);
}

impl<T: Hashed + Clone> Slots<T> for hashbrown::HashTable<T> {
    fn len(&self) -> usize {
        hashbrown::HashTable::len(self)
    }
    #[inline(always)]
    fn find(&self, hash: u64, eq: impl FnMut(&T) -> bool) -> Option<&T> {
        hashbrown::HashTable::find(self, hash, eq)
    }
    fn find_mut(&mut self, hash: u64, eq: impl FnMut(&T) -> bool) -> Option<&mut T> {
        hashbrown::HashTable::find_mut(self, hash, eq)
    }
    fn remove(&mut self, hash: u64, eq: impl FnMut(&T) -> bool) -> Option<T> {
        let held = hashbrown::HashTable::find_entry(self, hash, eq).ok()?;
        Some(held.remove().0)
    }
    fn insert_unique(&mut self, entry: T) {
        let hash = entry.hash();
        hashbrown::HashTable::insert_unique(self, hash, entry, T::hash);
    }
}

/// A linear-probing hash table (see the module docs). Its slot count is zero or a power of
/// two, and at least twice its length.
pub(crate) struct FlatTable<T> {
    slots: Box<[Option<T>]>,
    len: usize,
}

impl<T: Clone> Clone for FlatTable<T> {
    fn clone(&self) -> Self {
        Self {
            slots: self.slots.clone(),
            len: self.len,
        }
    }
}

impl<T> Default for FlatTable<T> {
    fn default() -> Self {
        Self {
            slots: Box::new([]),
            len: 0,
        }
    }
}

/// The slot count that holds `len` entries at a load of at most one half.
fn slots_for(len: usize) -> usize {
    if len == 0 {
        0
    } else {
        len.saturating_mul(2).next_power_of_two().max(8)
    }
}

fn empty_slots<T>(count: usize) -> Box<[Option<T>]> {
    std::iter::repeat_with(|| None).take(count).collect()
}

impl<T: Hashed + Clone> Slots<T> for FlatTable<T> {
    fn len(&self) -> usize {
        self.len
    }

    #[inline(always)]
    fn find(&self, hash: u64, eq: impl FnMut(&T) -> bool) -> Option<&T> {
        let at = self.position(hash, eq)?;
        self.slots.get(at)?.as_ref()
    }

    fn find_mut(&mut self, hash: u64, eq: impl FnMut(&T) -> bool) -> Option<&mut T> {
        let at = self.position(hash, eq)?;
        self.slots.get_mut(at)?.as_mut()
    }

    fn remove(&mut self, hash: u64, eq: impl FnMut(&T) -> bool) -> Option<T> {
        let at = self.position(hash, eq)?;
        let removed = self.slots.get_mut(at)?.take()?;
        self.len -= 1;
        self.close_hole(at);
        Some(removed)
    }

    fn insert_unique(&mut self, entry: T) {
        self.reserve(1);
        self.place(entry);
        self.len += 1;
    }
}

impl<T: Hashed> FlatTable<T> {
    /// An empty table that holds `capacity` entries without growing.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            slots: empty_slots(slots_for(capacity)),
            len: 0,
        }
    }

    /// Makes room for `additional` more entries without growing again.
    pub(crate) fn reserve(&mut self, additional: usize) {
        let wanted = slots_for(self.len.saturating_add(additional));
        if wanted <= self.slots.len() {
            return;
        }
        let old = std::mem::replace(&mut self.slots, empty_slots(wanted));
        for entry in old.into_vec().into_iter().flatten() {
            self.place(entry);
        }
    }

    /// The entries, in no particular order.
    #[cfg(test)]
    fn iter(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().flatten()
    }

    /// The slot of the entry with this `hash` for which `eq` holds, if any.
    #[inline(always)]
    fn position(&self, hash: u64, mut eq: impl FnMut(&T) -> bool) -> Option<usize> {
        let mask = self.slots.len().wrapping_sub(1);
        // Truncating the hash keeps its low bits, which pick the slot.
        let mut at = hash as usize & mask;
        // Ends: at most half of the slots are taken, so the probe meets an empty one (and an
        // empty table has no slot: `get` answers `None` at once).
        loop {
            match self.slots.get(at)? {
                None => return None,
                Some(entry) if entry.hash() == hash && eq(entry) => return Some(at),
                Some(_) => at = (at + 1) & mask,
            }
        }
    }

    /// Puts `entry` into the first empty slot from its home slot on (there is one: the caller
    /// reserved room).
    fn place(&mut self, entry: T) {
        let mask = self.slots.len().wrapping_sub(1);
        let mut at = entry.hash() as usize & mask;
        while let Some(Some(_)) = self.slots.get(at) {
            at = (at + 1) & mask;
        }
        if let Some(slot) = self.slots.get_mut(at) {
            *slot = Some(entry);
        }
    }

    /// Closes the hole at `hole` left by a removal: each entry up to the next empty slot whose
    /// home slot does not lie between the hole and it (cyclically) moves back into the hole,
    /// which moves to where it was. Afterwards every entry is again reachable from its home
    /// slot without crossing an empty slot.
    fn close_hole(&mut self, mut hole: usize) {
        let mask = self.slots.len().wrapping_sub(1);
        let mut at = hole;
        loop {
            at = (at + 1) & mask;
            let home = match self.slots.get(at) {
                Some(Some(entry)) => entry.hash() as usize & mask,
                _ => return,
            };
            // Distances walking forward, with wrap-around: home → at against hole → at. An entry
            // whose home lies after the hole must stay, or a probe from its home would meet the
            // hole first.
            if (at.wrapping_sub(home) & mask) >= (at.wrapping_sub(hole) & mask) {
                let moved = self.slots.get_mut(at).and_then(Option::take);
                if let Some(slot) = self.slots.get_mut(hole) {
                    *slot = moved;
                }
                hole = at;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A key with a hash chosen by the test, so that keys collide and clusters wrap around.
    #[derive(Clone, Debug, PartialEq)]
    struct Keyed {
        key: u32,
        hash: u64,
        value: u32,
    }

    impl Hashed for Keyed {
        fn hash(&self) -> u64 {
            self.hash
        }
    }

    fn find(table: &FlatTable<Keyed>, key: u32, hash: u64) -> Option<u32> {
        table.find(hash, |e| e.key == key).map(|e| e.value)
    }

    #[test]
    fn an_empty_table_finds_nothing_and_holds_no_slot() {
        let table: FlatTable<Keyed> = FlatTable::default();
        assert_eq!(find(&table, 1, 1), None);
        assert!(table.is_empty());
        assert_eq!(FlatTable::<Keyed>::with_capacity(0).slots.len(), 0);
        assert_eq!(FlatTable::<Keyed>::with_capacity(5).slots.len(), 16);
        assert_eq!(FlatTable::<Keyed>::with_capacity(8).slots.len(), 16);
    }

    /// Removing from the middle of a cluster that wraps around the end of the slots keeps every
    /// other key of the cluster findable: the entries after the hole move back only when their
    /// home slot allows.
    #[test]
    fn a_removal_inside_a_wrapping_cluster_keeps_the_rest_findable() {
        let mut table = FlatTable::with_capacity(4);
        assert_eq!(table.slots.len(), 8);
        // Homes 6, 6, 7 and 0 (14 & 7 = 6): slots 6, 7, 0 and 1.
        let keys = [(1, 6), (2, 14), (3, 7), (4, 0)];
        for (key, hash) in keys {
            table.insert_unique(Keyed {
                key,
                hash,
                value: key * 10,
            });
        }
        for remove in 0..keys.len() {
            let mut t = table.clone();
            let (key, hash) = keys[remove];
            assert_eq!(
                t.remove(hash, |e| e.key == key).map(|e| e.value),
                Some(key * 10)
            );
            assert_eq!(t.len(), keys.len() - 1);
            assert_eq!(t.slots.len(), 8, "no growth: the cluster still wraps");
            for (i, (k, h)) in keys.iter().enumerate() {
                let want = (i != remove).then_some(k * 10);
                assert_eq!(find(&t, *k, *h), want, "after removing {key}: key {k}");
            }
        }
    }

    /// A key whose hash matches but whose comparison fails is passed over; one whose hash
    /// differs is never compared.
    #[test]
    fn a_probe_compares_only_entries_with_the_same_hash() {
        let mut table = FlatTable::with_capacity(4);
        table.insert_unique(Keyed {
            key: 1,
            hash: 3,
            value: 1,
        });
        table.insert_unique(Keyed {
            key: 2,
            hash: 3,
            value: 2,
        });
        table.insert_unique(Keyed {
            key: 3,
            hash: 11,
            value: 3,
        });
        let mut compared = Vec::new();
        let found = table.find(11, |e| {
            compared.push(e.key);
            e.key == 3
        });
        assert_eq!(found.map(|e| e.value), Some(3));
        assert_eq!(compared, [3]);
        if let Some(e) = table.find_mut(3, |e| e.key == 2) {
            e.value = 20;
        }
        assert_eq!(find(&table, 2, 3), Some(20));
        assert_eq!(find(&table, 1, 3), Some(1));
    }

    /// A step of the model test: put `value` under `key`, or remove `key`.
    type Step = (u32, bool, u32);

    /// Applies `steps` to `table` and to a `HashMap`, checking after every step that the two
    /// agree on every key and on the length, and that `check` holds of the table.
    fn agrees_with_a_model<S: Slots<Keyed>>(
        mut table: S,
        steps: Vec<Step>,
        hash_of: impl Fn(u32) -> u64,
        check: impl Fn(&S) -> bool,
    ) -> Result<(S, HashMap<u32, u32>), proptest::test_runner::TestCaseError> {
        let mut model: HashMap<u32, u32> = HashMap::new();
        for (key, put, value) in steps {
            let hash = hash_of(key);
            if put {
                match table.find_mut(hash, |e: &Keyed| e.key == key) {
                    Some(held) => held.value = value,
                    None => table.insert_unique(Keyed { key, hash, value }),
                }
                model.insert(key, value);
            } else {
                let removed = table.remove(hash, |e| e.key == key).map(|e| e.value);
                proptest::prop_assert_eq!(removed, model.remove(&key));
            }
            proptest::prop_assert_eq!(table.len(), model.len());
            proptest::prop_assert_eq!(table.is_empty(), model.is_empty());
            proptest::prop_assert!(check(&table));
            for k in 0..48 {
                let found = table.find(hash_of(k), |e| e.key == k).map(|e| e.value);
                proptest::prop_assert_eq!(found, model.get(&k).copied());
            }
        }
        Ok((table, model))
    }

    fn few_hashes(hash_bits: u32) -> impl Fn(u32) -> u64 {
        move |key| u64::from(key.wrapping_mul(2_654_435_761)) % (1u64 << hash_bits) * 3
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Any sequence of inserts, replacements and removals over a few keys with few distinct
        /// hashes (long clusters, wrap-around) agrees with a `HashMap` after every step, and
        /// the table keeps at least half of its slots empty.
        #[test]
        fn a_flat_table_agrees_with_a_hash_map(
            steps in proptest::collection::vec((0u32..48, proptest::bool::ANY, 0u32..1000), 1..400),
            hash_bits in 1u32..7,
            capacity in 0usize..40,
        ) {
            let (table, model) = agrees_with_a_model(
                FlatTable::with_capacity(capacity),
                steps,
                few_hashes(hash_bits),
                |t: &FlatTable<Keyed>| t.len() * 2 <= t.slots.len() || t.slots.is_empty(),
            )?;
            let mut listed: Vec<u32> = table.iter().map(|e| e.key).collect();
            listed.sort_unstable();
            let mut want: Vec<u32> = model.keys().copied().collect();
            want.sort_unstable();
            proptest::prop_assert_eq!(listed, want);
        }

        /// The same for the delta's table: `hashbrown`'s, through the same trait.
        #[test]
        fn a_hashbrown_table_agrees_with_a_hash_map(
            steps in proptest::collection::vec((0u32..48, proptest::bool::ANY, 0u32..1000), 1..400),
            hash_bits in 1u32..7,
        ) {
            agrees_with_a_model(
                hashbrown::HashTable::new(),
                steps,
                few_hashes(hash_bits),
                |_| true,
            )?;
        }
    }
}
