//! Sans-IO exponential reconnect backoff of one target node (`now` is an argument).
//!
//! Invariant: after `n` consecutive failed connects no new connect is attempted before
//! `min * 2^(n-1)` (capped at `max`) has passed since the last failure; a success resets.

use std::time::Duration;
use std::time::Instant;

/// Exponential reconnect backoff of one target (sans-IO: `now` is an argument).
#[derive(Debug, Clone, Copy, Default)]
pub struct Backoff {
    failures: u32,
    not_before: Option<Instant>,
}

impl Backoff {
    /// `Err(remaining)` while a connect must not be attempted yet.
    pub fn check(&self, now: Instant) -> Result<(), Duration> {
        match self.not_before {
            Some(t) if now < t => Err(t - now),
            _ => Ok(()),
        }
    }

    /// Consecutive failed connects.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Records a failed connect at `now`; returns the delay until the next attempt.
    pub fn on_failure(&mut self, now: Instant, min: Duration, max: Duration) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let shift = (self.failures - 1).min(20);
        let delay = min.saturating_mul(1u32 << shift).min(max);
        self.not_before = Some(now + delay);
        delay
    }

    /// Records a successful connect: the next failure starts from `min` again.
    pub fn on_success(&mut self) {
        *self = Backoff::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets_on_success() {
        let t0 = Instant::now();
        let (min, max) = (Duration::from_millis(10), Duration::from_millis(50));
        let mut b = Backoff::default();
        assert_eq!(b.check(t0), Ok(()));
        assert_eq!(b.on_failure(t0, min, max), min);
        assert_eq!(b.check(t0), Err(min));
        assert_eq!(b.check(t0 + min), Ok(()));
        assert_eq!(b.on_failure(t0, min, max), 2 * min);
        assert_eq!(b.on_failure(t0, min, max), 4 * min);
        assert_eq!(b.on_failure(t0, min, max), max);
        for _ in 0..100 {
            assert_eq!(b.on_failure(t0, min, max), max);
        }
        b.on_success();
        assert_eq!(b.check(t0), Ok(()));
        assert_eq!(b.on_failure(t0, min, max), min);
    }
}
