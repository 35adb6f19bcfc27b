//! `RemoteOptions` and `RetryPolicy`: every knob of `RemoteKvClient`, with defaults.
//!
//! Invariants: every duration and count is bounded and non-zero where zero would hang or
//! spin ([`RemoteOptions::validate`] is checked when a client is built); the request
//! timeout bounds a whole call, retries included. [`AddressRewrite`] is a test seam:
//! it maps every address the client dials (seeds, topology, `NotLeader` hints, admin
//! calls alike) to another one, so a test can put a proxy between a client and each node.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
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
    /// Rewrites every address just before the client dials it (`None`: dial addresses as
    /// they are). Addresses come from the seeds, the nodes' Topology answers and their
    /// `NotLeader` hints, all of which name the nodes' own listeners; a test uses this to
    /// route each connection through a proxy of its own. Errors name the dialled address.
    pub address_rewrite: Option<AddressRewrite>,
}

/// A function from the address a client was told about to the address it dials; see
/// [`RemoteOptions::address_rewrite`]. Cheap to clone (shared); two rewrites are equal
/// only if they are clones of one another.
#[derive(Clone)]
pub struct AddressRewrite(Arc<dyn Fn(&str) -> String + Send + Sync>);

impl AddressRewrite {
    /// A rewrite by an arbitrary function. It must be pure: the client may apply it to
    /// one address many times and expects the same answer.
    pub fn new(f: impl Fn(&str) -> String + Send + Sync + 'static) -> AddressRewrite {
        AddressRewrite(Arc::new(f))
    }

    /// A rewrite by a table of socket addresses: an address that parses as a
    /// `SocketAddr` found in `map` is replaced by its entry; every other address
    /// (unlisted, or a host name) is dialled unchanged.
    pub fn from_map(map: HashMap<SocketAddr, SocketAddr>) -> AddressRewrite {
        AddressRewrite::new(move |addr| {
            addr.parse::<SocketAddr>()
                .ok()
                .and_then(|a| map.get(&a))
                .map_or_else(|| addr.to_string(), ToString::to_string)
        })
    }

    /// The address to dial for `addr`.
    pub fn apply(&self, addr: &str) -> String {
        (self.0)(addr)
    }
}

impl fmt::Debug for AddressRewrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AddressRewrite(..)")
    }
}

impl PartialEq for AddressRewrite {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for AddressRewrite {}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
            connections_per_shard: 1,
            max_in_flight_per_connection: 1024,
            address_rewrite: None,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_rewrite_replaces_listed_addresses_only() {
        let from: SocketAddr = "127.0.0.1:7400".parse().unwrap();
        let to: SocketAddr = "127.0.0.1:9400".parse().unwrap();
        let r = AddressRewrite::from_map(HashMap::from([(from, to)]));
        assert_eq!(r.apply("127.0.0.1:7400"), "127.0.0.1:9400");
        assert_eq!(r.apply("127.0.0.1:7401"), "127.0.0.1:7401");
        assert_eq!(r.apply("node1:7400"), "node1:7400");
        // Equality is identity: clones are equal, two separately built rewrites are not.
        assert_eq!(r, r.clone());
        assert_ne!(r, AddressRewrite::from_map(HashMap::new()));
        let opts = RemoteOptions {
            address_rewrite: Some(r),
            ..RemoteOptions::default()
        };
        assert!(opts.validate().is_ok());
        assert!(format!("{opts:?}").contains("AddressRewrite(..)"));
    }
}
