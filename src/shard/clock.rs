//! The shard's wall clock, read in exactly one place.
//!
//! TTL expiries are absolute wall-clock instants (milliseconds since the UNIX epoch) chosen
//! by the leader when it proposes an entry, so every replica compares them against its own
//! wall clock. The sans-IO state never reads a clock; the shard shell passes `now_ms` in.
//!
//! Invariant: a clock set before 1970 reads as 0 (everything with a TTL looks unexpired
//! rather than the shard crashing); an operator is expected to run NTP.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the UNIX epoch, from the system's wall clock.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
