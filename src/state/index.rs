//! The hash index: key bytes -> `Entry`, partitioned into `SUBTABLES` sub-tables by hash
//! bits, with memory accounting and copy-on-write support for snapshots.
//!
//! Why sub-tables: a resize rehashes one sub-table (~1/8192 of the keys), never the whole
//! index, so no single write stalls the shard; and a snapshot can freeze the index one
//! sub-table at a time (copy-on-write at sub-table granularity, see `Cow`). 8192 keeps a
//! sub-table at ~120 keys per million: a resize or a copy-on-write touches ~120 entries
//! (one cache miss each), well under a millisecond even at 10M keys per shard.
//!
//! Hashing: xxh3-64 with the fixed seed `INDEX_HASH_SEED`, never std's randomized hasher,
//! so every replica builds the same tables. The seed differs from the shard-routing seed
//! (0): all keys of a shard share `hash0 mod S`, which would cluster them in the table.
//! Bits 40..53 pick the sub-table; hashbrown uses the low bits (bucket) and the top 7 bits
//! (control tag) inside it, so the three uses never overlap.
//!
//! Invariants: a key is in at most one sub-table, the one its hash names; the counters
//! (`keys`, `key_bytes`, ...) always equal the sums over stored entries; while a snapshot
//! is being built (`cow` is set), sub-table `i >= cow.next` is copied into `frozen[i]`
//! before its first mutation, so the snapshot sees each sub-table as of `begin_cow`.

use hashbrown::HashTable;
use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::entry::Entry;

/// Seed of the index hash ("SHOALIDX").
pub const INDEX_HASH_SEED: u64 = 0x5348_4f41_4c49_4458;
/// log2 of the number of sub-tables.
pub const SUBTABLE_BITS: u32 = 13;
/// Number of sub-tables.
pub const SUBTABLES: usize = 1 << SUBTABLE_BITS;
const SUBTABLE_SHIFT: u32 = 40;

/// Hash of a key in the index.
#[inline]
pub fn hash_key(key: &[u8]) -> u64 {
    xxh3_64_with_seed(key, INDEX_HASH_SEED)
}

#[inline]
fn sub_of(hash: u64) -> usize {
    ((hash >> SUBTABLE_SHIFT) as usize) & (SUBTABLES - 1)
}

/// Bytes hashbrown allocates for a table of `capacity` (SSE2 groups of 16 control bytes).
fn table_bytes(capacity: usize) -> usize {
    const GROUP: usize = 16;
    let buckets = match capacity {
        0 => return 0,
        1..=3 => 4,
        4..=7 => 8,
        c => (c / 7 * 8).next_power_of_two(),
    };
    (buckets * size_of::<Entry>()).next_multiple_of(GROUP) + buckets + GROUP
}

/// (key, value, overhead) bytes of an entry, for the counters.
#[derive(Debug, Clone, Copy)]
struct Sizes(usize, usize, usize);

impl Sizes {
    fn of(e: &Entry) -> Sizes {
        Sizes(e.key().len(), e.value().len(), e.overhead())
    }
}

/// Copy-on-write state of a snapshot being built.
#[derive(Debug)]
struct Cow {
    /// Sub-tables `< next` have been handed to the snapshot builder.
    next: usize,
    /// `Some` slots in `Index::frozen`.
    frozen_count: usize,
    frozen_bytes: usize,
}

/// The index.
#[derive(Debug)]
pub struct Index {
    subs: Vec<HashTable<Entry>>,
    keys: usize,
    key_bytes: usize,
    value_bytes: usize,
    entry_overhead: usize,
    table_bytes: usize,
    cow: Option<Cow>,
    /// Copies of sub-tables (`>= cow.next`) taken before their first write while a
    /// snapshot is built, by sub-table; all `None` otherwise. A plain vector allocated
    /// with `subs` (a map would rehash thousands of copies in one write when it grows,
    /// and allocating 8192 slots in `begin_cow` costs a page-faulting pause).
    frozen: Vec<Option<Vec<Entry>>>,
    /// Copies left by an aborted snapshot, released a slice at a time.
    garbage: Vec<Vec<Entry>>,
    garbage_bytes: usize,
}

impl Default for Index {
    fn default() -> Self {
        Self::new()
    }
}

impl Index {
    /// An empty index (sub-tables allocate nothing until used).
    pub fn new() -> Self {
        Index {
            subs: Vec::new(),
            keys: 0,
            key_bytes: 0,
            value_bytes: 0,
            entry_overhead: 0,
            table_bytes: 0,
            cow: None,
            frozen: Vec::new(),
            garbage: Vec::new(),
            garbage_bytes: 0,
        }
    }

    /// Keys stored.
    pub fn len(&self) -> usize {
        self.keys
    }

    /// True with no key stored.
    pub fn is_empty(&self) -> bool {
        self.keys == 0
    }

    /// Bytes of the fixed part, held whatever the contents: the sub-table headers and
    /// the copy-on-write slots.
    pub fn fixed_bytes(&self) -> usize {
        self.subs.capacity() * size_of::<HashTable<Entry>>()
            + self.frozen.capacity() * size_of::<Option<Vec<Entry>>>()
    }

    /// (keys, key bytes, value bytes, entry overhead, table bytes, snapshot copy bytes).
    pub fn figures(&self) -> (usize, usize, usize, usize, usize, usize) {
        let frozen = self.cow.as_ref().map_or(0, |c| c.frozen_bytes)
            + self.garbage_bytes
            + self.garbage.capacity() * size_of::<Vec<Entry>>();
        (
            self.keys,
            self.key_bytes,
            self.value_bytes,
            self.entry_overhead,
            self.table_bytes,
            frozen,
        )
    }

    /// The entry stored under `key`, expired or not.
    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<&Entry> {
        let hash = hash_key(key);
        self.subs.get(sub_of(hash))?.find(hash, |e| e.key() == key)
    }

    /// Stores `entry`, returning the entry it replaces (tests).
    #[cfg(test)]
    pub fn insert(&mut self, entry: Entry) -> Option<Entry> {
        let key = entry.key().to_vec();
        self.upsert(&key, None, || entry)
    }

    /// Stores under `key` the entry `make` builds (its key must be `key`), returning the
    /// entry it replaces; one hash and one probe. With `in_place: Some(value)` (a put
    /// without TTL of `value`), an existing entry only the index holds is rewritten in
    /// place when it can be (`Entry::overwrite_value_in_place`): `make` is not called and
    /// nothing is returned, the observable state being exactly as if it had been.
    pub fn upsert(
        &mut self,
        key: &[u8],
        in_place: Option<&[u8]>,
        make: impl FnOnce() -> Entry,
    ) -> Option<Entry> {
        let hash = hash_key(key);
        let i = sub_of(hash);
        if self.subs.is_empty() {
            // The headers are allocated on first use: an unused state costs nothing.
            self.subs = (0..SUBTABLES).map(|_| HashTable::new()).collect();
            self.frozen = (0..SUBTABLES).map(|_| None).collect();
        }
        // Copy-on-write first: a copy holds handles, so an entry of a sub-table frozen
        // for a snapshot is never unique and is never rewritten in place.
        self.before_write(i);
        let cap_before = self.subs[i].capacity();
        let old = match self.subs[i].entry(hash, |e| e.key() == key, |e| hash_key(e.key())) {
            hashbrown::hash_table::Entry::Occupied(mut slot) => {
                if in_place.is_some_and(|v| slot.get_mut().overwrite_value_in_place(v)) {
                    return None;
                }
                let entry = make();
                debug_assert_eq!(entry.key(), key, "upsert builds the key it was given");
                let old = std::mem::replace(slot.get_mut(), entry);
                let sizes = Sizes::of(slot.get());
                self.count(sizes, true);
                Some(old)
            }
            hashbrown::hash_table::Entry::Vacant(slot) => {
                let entry = make();
                debug_assert_eq!(entry.key(), key, "upsert builds the key it was given");
                let sizes = Sizes::of(&entry);
                slot.insert(entry);
                self.count(sizes, true);
                None
            }
        };
        if let Some(old) = &old {
            self.count(Sizes::of(old), false);
        }
        self.recount_table(i, cap_before);
        old
    }

    /// Removes `key`, returning its entry.
    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let hash = hash_key(key);
        let i = sub_of(hash);
        // Only pay for a copy-on-write when the key is there.
        self.subs.get(i)?.find(hash, |e| e.key() == key)?;
        self.before_write(i);
        let cap_before = self.subs[i].capacity();
        let old = match self.subs[i].find_entry(hash, |e| e.key() == key) {
            Ok(occupied) => occupied.remove().0,
            Err(_) => unreachable!("found just above"),
        };
        self.count(Sizes::of(&old), false);
        self.after_remove(i, cap_before);
        Some(old)
    }

    /// Removes `entry` if it is still the one stored under its key (a timer firing for an
    /// entry already replaced finds a different allocation and leaves it alone). Returns
    /// the entries rehashed by a shrink of its sub-table (work beyond the removal), or
    /// `None` if the entry was not stored.
    pub fn remove_same(&mut self, entry: &Entry) -> Option<usize> {
        let hash = hash_key(entry.key());
        let i = sub_of(hash);
        self.subs
            .get(i)
            .and_then(|t| t.find(hash, |e| e.same(entry)))?;
        self.before_write(i);
        let cap_before = self.subs[i].capacity();
        let removed = match self.subs[i].find_entry(hash, |e| e.same(entry)) {
            Ok(occupied) => occupied.remove().0,
            Err(_) => unreachable!("found just above"),
        };
        self.count(Sizes::of(&removed), false);
        Some(self.after_remove(i, cap_before))
    }

    /// All entries, sub-table by sub-table (tests and whole-state comparisons).
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.subs.iter().flat_map(|t| t.iter())
    }

    fn count(&mut self, sizes: Sizes, add: bool) {
        let Sizes(k, v, o) = sizes;
        if add {
            self.keys += 1;
            self.key_bytes += k;
            self.value_bytes += v;
            self.entry_overhead += o;
        } else {
            self.keys -= 1;
            self.key_bytes -= k;
            self.value_bytes -= v;
            self.entry_overhead -= o;
        }
    }

    fn recount_table(&mut self, i: usize, cap_before: usize) {
        let cap_after = self.subs[i].capacity();
        if cap_after != cap_before {
            self.table_bytes = self.table_bytes + table_bytes(cap_after) - table_bytes(cap_before);
        }
    }

    /// Gives buckets back when a sub-table is mostly empty, so memory follows the data
    /// down (and is zero with no key). Shrinks only below 1/8 full, to halve the
    /// rehashing a mass expiry causes. Returns the entries rehashed (bounded by one
    /// sub-table's size).
    fn after_remove(&mut self, i: usize, cap_before: usize) -> usize {
        let t = &mut self.subs[i];
        let mut rehashed = 0;
        if t.is_empty() {
            *t = HashTable::new();
        } else if t.capacity() > 64 && t.len() * 8 < t.capacity() {
            rehashed = t.len();
            t.shrink_to(t.len() * 2, |e| hash_key(e.key()));
        }
        self.recount_table(i, cap_before);
        rehashed
    }

    /// Copy-on-write: a sub-table not yet handed to the snapshot is copied before its
    /// first mutation. Cost: one refcount bump per entry of that sub-table.
    #[inline]
    fn before_write(&mut self, i: usize) {
        let Some(cow) = &mut self.cow else {
            return;
        };
        if i >= cow.next && self.frozen[i].is_none() {
            let copy: Vec<Entry> = self.subs[i].iter().cloned().collect();
            cow.frozen_bytes += copy.capacity() * size_of::<Entry>();
            cow.frozen_count += 1;
            self.frozen[i] = Some(copy);
        }
    }

    /// Freezes the index as it is now for a snapshot. Panics if one is already frozen
    /// (the caller, `State`, allows one snapshot at a time).
    pub fn begin_cow(&mut self) {
        assert!(self.cow.is_none(), "one snapshot at a time");
        self.cow = Some(Cow {
            next: 0,
            frozen_count: 0,
            frozen_bytes: 0,
        });
    }

    /// The next sub-table's entries as of `begin_cow`, or `None` when all were handed out.
    pub fn take_next_frozen(&mut self) -> Option<Vec<Entry>> {
        let cow = self.cow.as_mut()?;
        if cow.next >= SUBTABLES {
            return None;
        }
        if self.subs.is_empty() || (self.keys == 0 && cow.frozen_count == 0) {
            // Every sub-table not handed out yet is empty now and was not written since
            // `begin_cow` (a write would have left a copy): all were empty. Done.
            cow.next = SUBTABLES;
            return None;
        }
        let i = cow.next;
        cow.next += 1;
        Some(match self.frozen[i].take() {
            Some(copy) => {
                cow.frozen_count -= 1;
                cow.frozen_bytes -= copy.capacity() * size_of::<Entry>();
                copy
            }
            None if self.subs.get(i).is_none_or(HashTable::is_empty) => Vec::new(),
            None => self.subs[i].iter().cloned().collect(),
        })
    }

    /// Ends (or aborts) the snapshot's copy-on-write. Copies left (an aborted snapshot)
    /// are not dropped here: dropping thousands of copies is one refcount miss per entry,
    /// a long stall; they move to `garbage` (a move per slot, no entry touched) and
    /// `release_garbage` drops them a bounded slice at a time.
    pub fn end_cow(&mut self) {
        let Some(cow) = self.cow.take() else {
            return;
        };
        if cow.frozen_count > 0 {
            for slot in &mut self.frozen {
                if let Some(copy) = slot.take() {
                    self.garbage.push(copy);
                }
            }
        }
        self.garbage_bytes += cow.frozen_bytes;
    }

    /// Drops left-over snapshot copies, about `max_entries` entry handles at most (one
    /// copy at least); returns the entries released.
    pub fn release_garbage(&mut self, max_entries: usize) -> usize {
        let mut released = 0;
        while released < max_entries.max(1) {
            let Some(copy) = self.garbage.pop() else {
                self.garbage = Vec::new();
                self.garbage_bytes = 0;
                break;
            };
            released += copy.len();
            self.garbage_bytes -= copy.capacity() * size_of::<Entry>();
        }
        if self.garbage.is_empty() {
            self.garbage = Vec::new();
        }
        released
    }

    /// True while aborted-snapshot copies wait for `release_garbage`.
    pub fn has_garbage(&self) -> bool {
        !self.garbage.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_bytes_match_hashbrown_growth() {
        // Capacities hashbrown reports for bucket counts 4, 8, 16, 1024.
        assert_eq!(table_bytes(3), 4 * 8 + 4 + 16);
        assert_eq!(table_bytes(7), 8 * 8 + 8 + 16);
        assert_eq!(table_bytes(14), 16 * 8 + 16 + 16);
        assert_eq!(table_bytes(896), 1024 * 8 + 1024 + 16);
        let mut t: HashTable<Entry> = HashTable::new();
        for n in 0..5000u32 {
            let e = Entry::new(&n.to_le_bytes(), b"", None);
            t.insert_unique(hash_key(e.key()), e, |e| hash_key(e.key()));
            let cap = t.capacity();
            let buckets = (table_bytes(cap) - 16) / 9;
            assert!(buckets.is_power_of_two() && buckets * 7 / 8 >= cap.min(buckets - 1));
        }
    }

    #[test]
    fn cow_sees_the_frozen_point_in_time() {
        let mut ix = Index::new();
        for n in 0..20_000u32 {
            ix.insert(Entry::new(&n.to_le_bytes(), b"old", None));
        }
        ix.begin_cow();
        let mut seen = Vec::new();
        let mut n = 0u32;
        while let Some(part) = ix.take_next_frozen() {
            seen.extend(part.iter().map(|e| (e.key().to_vec(), e.value().to_vec())));
            // Keep writing between steps: overwrite, delete and add keys.
            for _ in 0..7 {
                ix.insert(Entry::new(&n.to_le_bytes(), b"new", None));
                ix.remove(&(n + 1).to_le_bytes());
                ix.insert(Entry::new(&(100_000 + n).to_le_bytes(), b"added", None));
                n += 2;
            }
        }
        ix.end_cow();
        seen.sort();
        let expected: Vec<_> = (0..20_000u32)
            .map(|n| (n.to_le_bytes().to_vec(), b"old".to_vec()))
            .collect();
        let mut expected = expected;
        expected.sort();
        assert_eq!(seen, expected);
    }
}
