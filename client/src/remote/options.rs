//! `RemoteOptions` and `RetryPolicy`: every knob of `RemoteKvClient`, with defaults.
//!
//! Invariants: every duration and count is bounded and non-zero where zero would hang or
//! spin ([`RemoteOptions::validate`] is checked when a client is built); the request
//! timeout bounds a whole call, retries included.

use std::time::Duration;

use crate::error::KvClientError;

/// How a `RemoteKvClient` retries transient failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Most attempts per call (the first one included); at least 1. The request
    /// timeout may end a call sooner.
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubles per attempt up to `max_backoff`,
    /// with jitter (each delay is drawn uniformly from half to all of it).
    pub initial_backoff: Duration,
    /// Largest backoff between two attempts.
    pub max_backoff: Duration,
    /// Whether a put or delete whose outcome is unknown (the connection broke after it
    /// was sent, or the node answered `Timeout`) is resent. Safe for the value (puts
    /// and deletes are idempotent), but a reader may observe the write, a later write of
    /// another client, then this write again. Default `true`.
    pub retry_uncertain_writes: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 16,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(500),
            retry_uncertain_writes: true,
        }
    }
}

/// Options of a `RemoteKvClient`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteOptions {
    /// Bound on one TCP connect plus its `Hello` handshake.
    pub connect_timeout: Duration,
    /// Bound on a whole call, every retry, reconnect and topology refresh included.
    /// When it runs out the call fails with `KvClientError::Timeout`.
    pub request_timeout: Duration,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// Connections per (node, shard) address; requests are spread round-robin over
    /// them. 1 is usually best (pipelining fills one connection, and the shard's
    /// executor is single-threaded); more helps when one socket's syscalls are the limit.
    pub connections_per_shard: usize,
    /// Requests in flight per connection, at most (lowered to the node's announced
    /// `max_in_flight`). Callers beyond it wait for a slot, so memory stays bounded.
    pub max_in_flight_per_connection: usize,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
            connections_per_shard: 1,
            max_in_flight_per_connection: 1024,
        }
    }
}

impl RemoteOptions {
    /// Checks that the options cannot hang or spin.
    pub fn validate(&self) -> Result<(), KvClientError> {
        let bad = |reason: &str| {
            Err(KvClientError::InvalidArgument {
                reason: format!("RemoteOptions: {reason}"),
            })
        };
        if self.connect_timeout.is_zero() || self.request_timeout.is_zero() {
            return bad("timeouts must be non-zero");
        }
        if self.retry.max_attempts == 0 {
            return bad("retry.max_attempts must be at least 1");
        }
        if self.retry.initial_backoff > self.retry.max_backoff {
            return bad("retry.initial_backoff exceeds retry.max_backoff");
        }
        if !(1..=64).contains(&self.connections_per_shard) {
            return bad("connections_per_shard must be in 1..=64");
        }
        if !(1..=65536).contains(&self.max_in_flight_per_connection) {
            return bad("max_in_flight_per_connection must be in 1..=65536");
        }
        Ok(())
    }
}
