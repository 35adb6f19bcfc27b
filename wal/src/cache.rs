//! The bounded in-memory cache of the log's recent tail, so Raft replication and the
//! leader's own reads of fresh entries never touch the disk.
//!
//! Invariants: the cache holds a contiguous suffix of the live entries (if index `i` is
//! cached, every live entry after `i` is too), ordered by index. It may exceed its byte
//! budget only by entries not yet written to disk: the WAL evicts from the front only
//! entries that are durable, because those are the only ones a disk read can serve.

use bytes::Bytes;
use std::collections::VecDeque;

/// Recent entries, newest at the back.
#[derive(Debug)]
pub struct TailCache {
    entries: VecDeque<(u64, Bytes)>,
    bytes: usize,
    budget: usize,
}

impl TailCache {
    /// An empty cache of `budget` payload bytes.
    pub fn new(budget: usize) -> Self {
        TailCache {
            entries: VecDeque::new(),
            bytes: 0,
            budget,
        }
    }

    /// Adds the newest entry; its index is above every cached one.
    pub fn push(&mut self, index: u64, payload: Bytes) {
        debug_assert!(self.entries.back().is_none_or(|(i, _)| *i < index));
        self.bytes += payload.len();
        self.entries.push_back((index, payload));
    }

    /// Index of the oldest cached entry.
    pub fn first(&self) -> Option<u64> {
        self.entries.front().map(|(i, _)| *i)
    }

    /// True when over budget (the caller then evicts durable entries from the front).
    pub fn over_budget(&self) -> bool {
        self.bytes > self.budget
    }

    /// Drops the oldest entry.
    pub fn pop_front(&mut self) {
        if let Some((_, p)) = self.entries.pop_front() {
            self.bytes -= p.len();
        }
    }

    /// Drops every entry at or above `from`.
    pub fn truncate(&mut self, from: u64) {
        while self.entries.back().is_some_and(|(i, _)| *i >= from) {
            self.bytes -= self.entries.pop_back().map_or(0, |(_, p)| p.len());
        }
    }

    /// Drops every entry below `below`.
    pub fn purge(&mut self, below: u64) {
        while self.entries.front().is_some_and(|(i, _)| *i < below) {
            self.pop_front();
        }
    }

    /// Cached entries in `lo..hi`.
    pub fn range(&self, lo: u64, hi: u64) -> impl Iterator<Item = &(u64, Bytes)> {
        let s = self.entries.partition_point(|(i, _)| *i < lo);
        let e = self.entries.partition_point(|(i, _)| *i < hi);
        self.entries.range(s..e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffix_operations() {
        let mut c = TailCache::new(4);
        for i in 1..=5 {
            c.push(i, Bytes::from_static(b"ab"));
        }
        assert!(c.over_budget());
        c.pop_front();
        c.truncate(4);
        assert_eq!(c.range(0, 10).map(|e| e.0).collect::<Vec<_>>(), vec![2, 3]);
        c.purge(3);
        assert_eq!(c.first(), Some(3));
        assert!(!c.over_budget());
    }
}
