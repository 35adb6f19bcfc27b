//! A digest of a shard's state machine contents, to check that replicas of a group hold
//! identical state (after a partition heals, after a node caught up by snapshot, ...).
//!
//! What it covers: every key visible at `now_ms`, with its value and its absolute expiry
//! (or none). What it does not: insertion order, the hash tables' layout and capacity,
//! timer ids, and expired keys not yet reclaimed (`tick` reclaims on each replica at its
//! own pace, which changes nothing observable, so it must not change the digest either).
//!
//! How: each visible entry is hashed alone (xxh3-128 over a length-prefixed encoding, so
//! no two different entries encode the same bytes), and the per-entry hashes are added
//! modulo 2^128, an order-independent multiset hash; the sum and the key count are hashed
//! once more into the 64-bit digest. It detects divergence, it is not a defence against
//! someone crafting collisions.
//!
//! Invariants: two states with the same visible (key, value, expiry) set at `now_ms` have
//! the same digest, whatever their history; replicas that applied the same log prefix
//! give the same digest for the same `now_ms`, and for different `now_ms` as long as no
//! key's expiry falls between the two. Computing it visits every entry once (O(keys),
//! no allocation but one scratch buffer): an operator or test call, not a hot path.

use xxhash_rust::xxh3::{xxh3_64_with_seed, xxh3_128_with_seed};

use super::LogId;
use super::entry::Entry;

/// Seed of the per-entry and final hashes ("SHOALDIG").
pub const DIGEST_SEED: u64 = 0x5348_4f41_4c44_4947;

/// The digest of a state, with the log position it was computed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StateDigest {
    /// The last log id applied to the state when the digest was computed.
    pub applied: Option<LogId>,
    /// Keys visible at the digest's `now_ms`.
    pub keys: u64,
    /// The order-independent hash of those keys with their values and expiries.
    pub hash: u64,
}

/// Accumulates entries in any order.
#[derive(Debug, Default)]
pub(crate) struct DigestBuilder {
    keys: u64,
    sum: u128,
    scratch: Vec<u8>,
}

impl DigestBuilder {
    /// Adds one entry (the caller filters out entries expired at its `now_ms`).
    pub(crate) fn add(&mut self, entry: &Entry) {
        let (key, value) = (entry.key(), entry.value());
        let s = &mut self.scratch;
        s.clear();
        // key length, expiry presence + value, key, value: unambiguous, since the value
        // runs to the end.
        s.extend_from_slice(&(key.len() as u32).to_le_bytes());
        match entry.expiry() {
            Some(at) => {
                s.push(1);
                s.extend_from_slice(&at.to_le_bytes());
            }
            None => s.push(0),
        }
        s.extend_from_slice(key);
        s.extend_from_slice(value);
        self.sum = self.sum.wrapping_add(xxh3_128_with_seed(s, DIGEST_SEED));
        self.keys += 1;
    }

    /// The digest of the entries added, stamped with `applied`.
    pub(crate) fn finish(&self, applied: Option<LogId>) -> StateDigest {
        let mut last = [0u8; 24];
        last[..8].copy_from_slice(&self.keys.to_le_bytes());
        last[8..].copy_from_slice(&self.sum.to_le_bytes());
        StateDigest {
            applied,
            keys: self.keys,
            hash: xxh3_64_with_seed(&last, DIGEST_SEED),
        }
    }
}
