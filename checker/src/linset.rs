//! The set of linearized operations during a search, with a compact canonical form for
//! the memo.
//!
//! Owns `LinSet`. Operations are identified by their *rank* (the order of their
//! invocations), so the set is almost always "every op up to some point, plus a few
//! after it": the memo stores only the words between the first word that is not all ones
//! (`lo`) and the last word that is not zero (`hi`), which is a few words however long the
//! history. The Zobrist hash (XOR of a fixed random word per rank) makes hashing O(1).
//!
//! Invariants: `words[..lo]` are all ones, `words[lo]` is not (if `lo < len`),
//! `words[hi..]` are all zero, `words[hi - 1]` is not (if `hi > 0`); hence `lo <= hi`, and
//! `(lo, words[lo..hi])` identifies the set uniquely.

/// A set of ranks `0..n`.
#[derive(Debug, Clone)]
pub struct LinSet {
    words: Vec<u64>,
    lo: usize,
    hi: usize,
    zobrist: u64,
}

/// A 64-bit mix of `x` (splitmix64's finalizer): the Zobrist word of a rank.
fn zobrist(x: usize) -> u64 {
    let mut z = (x as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl LinSet {
    /// The empty set of ranks `0..n`.
    pub fn new(n: usize) -> LinSet {
        LinSet {
            words: vec![0; n.div_ceil(64)],
            lo: 0,
            hi: 0,
            zobrist: 0,
        }
    }

    /// Adds `rank`, which must be absent.
    pub fn insert(&mut self, rank: usize) {
        let (w, bit) = (rank / 64, 1u64 << (rank % 64));
        debug_assert!(self.words[w] & bit == 0, "rank {rank} inserted twice");
        self.words[w] |= bit;
        self.zobrist ^= zobrist(rank);
        self.hi = self.hi.max(w + 1);
        while self.lo < self.words.len() && self.words[self.lo] == u64::MAX {
            self.lo += 1;
        }
    }

    /// Removes `rank`, which must be present.
    pub fn remove(&mut self, rank: usize) {
        let (w, bit) = (rank / 64, 1u64 << (rank % 64));
        debug_assert!(self.words[w] & bit != 0, "rank {rank} removed while absent");
        self.words[w] &= !bit;
        self.zobrist ^= zobrist(rank);
        self.lo = self.lo.min(w);
        while self.hi > 0 && self.words[self.hi - 1] == 0 {
            self.hi -= 1;
        }
    }

    /// The set's hash (independent of the order of insertions).
    pub fn hash(&self) -> u64 {
        self.zobrist
    }

    /// The canonical compact form: `(lo, words[lo..hi])`.
    pub fn compact(&self) -> (usize, &[u64]) {
        (self.lo, &self.words[self.lo..self.hi.max(self.lo)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn compact_form_is_canonical_and_hash_is_order_free() {
        let mut a = LinSet::new(300);
        let mut b = LinSet::new(300);
        let ranks = [64, 65, 200, 130, 127];
        for r in 0..64 {
            a.insert(r);
        }
        for &r in &ranks {
            a.insert(r);
        }
        let mut ref_set: BTreeSet<usize> = (0..64).collect();
        ref_set.extend(&ranks);
        for &r in ref_set.iter().rev() {
            b.insert(r);
        }
        assert_eq!(a.compact(), b.compact());
        assert_eq!(a.hash(), b.hash());
        assert_eq!(a.compact().0, 1, "word 0 is full");
        a.remove(200);
        assert_eq!(
            a.compact().1.len(),
            2,
            "words 1..3 remain: {:?}",
            a.compact()
        );
        a.remove(3);
        assert_eq!(a.compact().0, 0);
        assert_ne!(a.hash(), b.hash());
        a.insert(3);
        a.insert(200);
        assert_eq!((a.compact(), a.hash()), (b.compact(), b.hash()));
        // The empty set.
        let mut e = LinSet::new(10);
        e.insert(9);
        e.remove(9);
        assert_eq!(e.compact(), (0, &[][..]));
        assert_eq!(e.hash(), 0);
    }
}
