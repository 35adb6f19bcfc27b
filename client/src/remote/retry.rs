//! Retries: the loop every `RemoteKvClient` operation runs in, how it reacts to each
//! failure, and the backoff (exponential growth with jitter, bounded).
//!
//! Invariants: a call ends within its deadline and `max_attempts` attempts; only
//! retryable failures are retried, and uncertain writes only when the policy allows it.
//! Every delay is at most `max_backoff`; delays are drawn from `[d/2, d]` where
//! `d = min(initial * 2^n, max)`, so concurrent clients spread out instead of retrying
//! in lockstep, and a delay is never below half the nominal one. The random
//! source is a per-backoff SplitMix64 seeded from std's random hasher keys: no clock read
//! and no extra dependency.

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::{Failure, RemoteKvClient};
use crate::error::KvClientError;
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

impl RemoteKvClient {
    /// The retry loop shared by every operation: runs `attempt` until it succeeds, fails
    /// for good, the budget of attempts is spent, or `deadline` passes.
    pub(super) async fn with_retries<T, F, Fut>(
        &self,
        deadline: Instant,
        is_write: bool,
        mut attempt: F,
    ) -> Result<T, KvClientError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let policy = &self.inner.opts.retry;
        let start = Instant::now();
        let mut backoff = Backoff::new(policy);
        let mut attempts = 0u32;
        let mut last: Option<KvClientError> = None;
        let timed_out =
            |attempts: u32, last: Option<KvClientError>, why: &str| KvClientError::Timeout {
                detail: format!(
                    "{why} after {} ms and {attempts} attempt(s)",
                    start.elapsed().as_millis()
                ),
                last_error: last.map(Box::new),
            };
        loop {
            attempts += 1;
            let failure = match tokio::time::timeout_at(deadline, attempt()).await {
                Err(_) => return Err(timed_out(attempts, last, "request timeout")),
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(f)) => f,
            };
            let uncertain = failure.sent && !failure.err.certainly_not_applied();
            let may_retry = failure.err.is_retryable()
                && !failure.resplit
                && !(is_write && uncertain && !policy.retry_uncertain_writes);
            if !may_retry {
                return Err(failure.err);
            }
            if attempts >= policy.max_attempts {
                return Err(timed_out(attempts, Some(failure.err), "retry budget spent"));
            }
            tracing::debug!(attempt = attempts, err = %failure.err, "retrying");
            let delay = match tokio::time::timeout_at(deadline, self.react(&failure, &mut backoff))
                .await
            {
                Ok(d) => d,
                Err(_) => return Err(timed_out(attempts, Some(failure.err), "request timeout")),
            };
            last = Some(failure.err);
            if Instant::now() + delay >= deadline {
                return Err(timed_out(attempts, last, "request timeout"));
            }
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
        }
    }

    /// Updates routing after a failed attempt and returns how long to wait.
    pub(super) async fn react(&self, f: &Failure, backoff: &mut Backoff) -> Duration {
        match (&f.err, f.shard) {
            (KvClientError::NotLeader { leader: Some(hint) }, Some(shard))
                if Some(hint.node_id) != f.node && !self.is_suspect(hint.node_id) =>
            {
                // Fresh news of the leader: go there at once.
                let info = shoal_proto::NodeInfo::from(hint);
                self.update(|r| r.with_leader_hint(shard, info));
                Duration::ZERO
            }
            (KvClientError::NotLeader { .. } | KvClientError::Unavailable { .. }, shard) => {
                if let Some(shard) = shard {
                    self.update(|r| r.without_leader(shard));
                }
                let d = backoff.next_delay();
                let _ = self.refresh(f.gen_seen).await;
                d
            }
            (KvClientError::WrongShard { .. }, _) => {
                // A fresh topology fixes the routing at once; if nothing new was learned
                // (the nodes disagree among themselves), back off instead of spinning.
                let _ = self.refresh(f.gen_seen).await;
                if self.inner.refresh_gen.load(Ordering::Acquire) != f.gen_seen {
                    Duration::ZERO
                } else {
                    backoff.next_delay()
                }
            }
            (KvClientError::Busy { retry_after_ms }, _) => backoff
                .next_delay()
                .max(Duration::from_millis(u64::from(*retry_after_ms))),
            (KvClientError::Connection { .. } | KvClientError::ChannelClosed { .. }, _) => {
                if let Some(c) = &f.conn {
                    self.inner.pool.evict(c);
                }
                if let Some(node) = f.node {
                    self.mark_suspect(node);
                }
                let d = backoff.next_delay();
                let _ = self.refresh(f.gen_seen).await;
                d
            }
            _ => backoff.next_delay(),
        }
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
