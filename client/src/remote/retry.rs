//! Backoff for retries: exponential growth with jitter, bounded.
//!
//! Invariants: every delay is at most `max_backoff`; delays are drawn from `[d/2, d]`
//! where `d = min(initial * 2^n, max)`, so concurrent clients spread out instead of
//! retrying in lockstep, and a delay is never below half the nominal one. The random
//! source is a per-backoff SplitMix64 seeded from std's random hasher keys: no clock read
//! and no extra dependency.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use crate::remote::options::RetryPolicy;

/// Backoff state of one call.
#[derive(Debug)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    step: u32,
    rng: u64,
}

impl Backoff {
    pub(crate) fn new(policy: &RetryPolicy) -> Backoff {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(0x0051_03A1);
        Backoff {
            initial: policy.initial_backoff,
            max: policy.max_backoff,
            step: 0,
            rng: h.finish(),
        }
    }

    /// The next delay; grows until `max`.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let factor = 1u32.checked_shl(self.step.min(20)).unwrap_or(u32::MAX);
        self.step = self.step.saturating_add(1);
        let nominal = self.initial.saturating_mul(factor).min(self.max);
        let nanos = nominal.as_nanos().min(u128::from(u64::MAX)) as u64;
        if nanos < 2 {
            return nominal;
        }
        let half = nanos / 2;
        let jitter = self.next_u64() % (nanos - half + 1);
        let d = Duration::from_nanos(half + jitter);
        debug_assert!(d <= self.max);
        d
    }

    fn next_u64(&mut self) -> u64 {
        // SplitMix64.
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_with_jitter_and_stay_bounded() {
        let policy = RetryPolicy {
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(100),
            ..RetryPolicy::default()
        };
        let mut b = Backoff::new(&policy);
        let nominal = [10u64, 20, 40, 80, 100, 100, 100];
        for n in nominal {
            let d = b.next_delay();
            let n = Duration::from_millis(n);
            assert!(d >= n / 2 && d <= n, "{d:?} outside [{:?}, {n:?}]", n / 2);
        }
        for _ in 0..100 {
            assert!(b.next_delay() <= policy.max_backoff);
        }
    }

    #[test]
    fn jitter_differs_between_draws() {
        let mut b = Backoff::new(&RetryPolicy {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(1),
            ..RetryPolicy::default()
        });
        let draws: std::collections::HashSet<_> = (0..20).map(|_| b.next_delay()).collect();
        assert!(draws.len() > 1, "no jitter: {draws:?}");
    }
}
