//! The shard's wall clock, read in exactly one place.
//!
//! TTL expiries are absolute wall-clock instants (milliseconds since the UNIX epoch) chosen
//! by the leader when it proposes an entry, so every replica compares them against its own
//! wall clock. The sans-IO state never reads a clock; the shard shell passes `now_ms` in.
//!
//! Invariants: a clock set before 1970 reads as 0 (everything with a TTL looks unexpired
//! rather than the shard crashing); an operator is expected to run NTP. A test-only offset
//! (`--clock-offset-ms`, set once at node start, 0 otherwise) shifts every read, so a test
//! can give each node of a cluster its own skewed clock.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds added to every read of the wall clock (test-only clock skew).
static OFFSET_MS: AtomicI64 = AtomicI64::new(0);

/// Sets the test-only clock offset of this process (`NodeConfig::clock_offset_ms`).
pub fn set_offset_ms(offset_ms: i64) {
    OFFSET_MS.store(offset_ms, Ordering::Relaxed);
}

/// Milliseconds since the UNIX epoch, from the system's wall clock (plus the test-only
/// offset, saturating at 0 and `u64::MAX`).
pub fn now_ms() -> u64 {
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    shifted(wall, OFFSET_MS.load(Ordering::Relaxed))
}

fn shifted(wall_ms: u64, offset_ms: i64) -> u64 {
    if offset_ms >= 0 {
        wall_ms.saturating_add(offset_ms.unsigned_abs())
    } else {
        wall_ms.saturating_sub(offset_ms.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::shifted;

    #[test]
    fn offset_shifts_both_ways_and_saturates() {
        assert_eq!(shifted(1_000, 0), 1_000);
        assert_eq!(shifted(1_000, 250), 1_250);
        assert_eq!(shifted(1_000, -250), 750);
        assert_eq!(shifted(100, -250), 0);
        assert_eq!(shifted(u64::MAX - 1, 5), u64::MAX);
        assert_eq!(shifted(5, i64::MIN), 0);
    }
}
