//! The in-memory index of the live log: where each live record sits, the purge floor,
//! and the highest index each segment ever held. Sans-IO; used alike by recovery (while
//! replaying records) and by the running WAL (at submission time), so both apply
//! truncations and purges by the same rules.
//!
//! Invariants: live indices are strictly increasing and all at or above `floor`;
//! `locs` is ordered by index and therefore by position in the log.

use std::collections::{BTreeMap, VecDeque};

/// Where one live entry sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loc {
    /// Caller's index.
    pub index: u64,
    /// Segment id.
    pub segment: u64,
    /// Offset of the record header in the segment.
    pub offset: u32,
    /// Payload length.
    pub len: u32,
}

/// Live records, the purge floor and per-segment index high-water marks.
#[derive(Debug, Default)]
pub struct LogIndex {
    floor: u64,
    locs: VecDeque<Loc>,
    /// Highest entry index ever written to each segment still on disk (0 when none).
    seg_max: BTreeMap<u64, u64>,
}

impl LogIndex {
    /// Least index the next entry may carry.
    pub fn min_next(&self) -> u64 {
        match self.locs.back() {
            Some(l) => l.index + 1,
            None => self.floor,
        }
    }

    /// All indices below this are purged.
    pub fn floor(&self) -> u64 {
        self.floor
    }

    /// First live index.
    pub fn first(&self) -> Option<u64> {
        self.locs.front().map(|l| l.index)
    }

    /// Last live index.
    pub fn last(&self) -> Option<u64> {
        self.locs.back().map(|l| l.index)
    }

    /// Number of live entries.
    pub fn len(&self) -> usize {
        self.locs.len()
    }

    /// True when no entry is live.
    pub fn is_empty(&self) -> bool {
        self.locs.is_empty()
    }

    /// Records that segment `segment` exists (possibly without entries).
    pub fn note_segment(&mut self, segment: u64) {
        self.seg_max.entry(segment).or_insert(0);
    }

    /// Forgets a deleted segment.
    pub fn forget_segment(&mut self, segment: u64) {
        self.seg_max.remove(&segment);
        debug_assert!(self.locs.front().is_none_or(|l| l.segment > segment));
    }

    /// Adds an entry. The caller has checked `loc.index >= self.min_next()`.
    pub fn push(&mut self, loc: Loc) {
        assert!(
            loc.index >= self.min_next(),
            "entry index {} out of order",
            loc.index
        );
        let m = self.seg_max.entry(loc.segment).or_insert(0);
        *m = (*m).max(loc.index);
        self.locs.push_back(loc);
    }

    /// Drops every entry at or above `from`; returns how many were dropped.
    pub fn truncate(&mut self, from: u64) -> usize {
        let keep = self.locs.partition_point(|l| l.index < from);
        let dropped = self.locs.len() - keep;
        self.locs.truncate(keep);
        dropped
    }

    /// Raises the floor to `below` (never lowers it) and drops entries under it.
    pub fn purge(&mut self, below: u64) {
        self.floor = self.floor.max(below);
        let drop = self.locs.partition_point(|l| l.index < self.floor);
        self.locs.drain(..drop);
    }

    /// Position in `locs` of `index`, if live.
    pub fn position(&self, index: u64) -> Option<usize> {
        let p = self.locs.partition_point(|l| l.index < index);
        (self.locs.get(p)?.index == index).then_some(p)
    }

    /// Locations of live entries in `lo..hi` (entries may be sparse).
    pub fn range(&self, lo: u64, hi: u64) -> impl DoubleEndedIterator<Item = &Loc> {
        let s = self.locs.partition_point(|l| l.index < lo);
        let e = self.locs.partition_point(|l| l.index < hi);
        self.locs.range(s..e)
    }

    /// Oldest segments, in order, that may be deleted: each strictly before `before`,
    /// holding no entry at or above `below`, and every older segment deletable too.
    pub fn deletable_prefix(&self, below: u64, before: u64) -> Vec<u64> {
        self.seg_max
            .iter()
            .take_while(|(s, max)| **s < before && **max < below)
            .map(|(s, _)| *s)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(index: u64, segment: u64) -> Loc {
        Loc {
            index,
            segment,
            offset: 0,
            len: 0,
        }
    }

    #[test]
    fn truncate_purge_and_deletable() {
        let mut ix = LogIndex::default();
        for i in 1..=5 {
            ix.push(loc(i, 1));
        }
        for i in 6..=9 {
            ix.push(loc(i, 2));
        }
        assert_eq!(ix.truncate(8), 2);
        assert_eq!(ix.min_next(), 8);
        ix.push(loc(8, 3));
        ix.purge(6);
        assert_eq!((ix.first(), ix.last(), ix.floor()), (Some(6), Some(8), 6));
        assert_eq!(ix.deletable_prefix(6, 3), vec![1]);
        // Segment 2 once held index 9, so a purge below 9 must keep it.
        assert_eq!(ix.deletable_prefix(9, 3), vec![1]);
        assert_eq!(ix.deletable_prefix(10, 3), vec![1, 2]);
        assert_eq!(ix.position(7), Some(1));
        assert_eq!(ix.position(5), None);
        assert_eq!(ix.range(0, 100).count(), 3);
        ix.purge(100);
        assert!(ix.is_empty());
        assert_eq!(ix.min_next(), 100);
    }
}
