//! The Shoal adapter shared by `shoal-local` and `shoal-remote`: any `KvClient` as a
//! [`Target`], and the mapping of `KvClientError` to the report's error classes.
//!
//! Invariants: each operation is exactly one `KvClient` call (`get` -> `get(..).is_some()`,
//! `get_multi` -> the count of `Some`), so loadgen measures the client as an application
//! sees it: argument checks, routing, retries and timeouts included. Gets are the
//! client's default consistency, linearizable. Per-operation timeouts are the client's
//! (`RemoteOptions::request_timeout`, `LocalKvClient::with_timeout`).
//!
//! One exception: `LocalKvClient`'s deadline is enforced by the shard, so a shard that died
//! without dropping its requests would leave a call waiting forever. A target built
//! [`with_guard`](ShoalTarget::with_guard) bounds every call on the loadgen side too (a
//! tokio timer per operation, set well past the client's own deadline so it only ever
//! fires when the node stopped answering), and counts it as a timeout.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use shoal_client::{KvClient, KvClientError};

use super::{ErrorKind, OpError, Target};

/// A `KvClient` driven by loadgen.
#[derive(Debug)]
pub struct ShoalTarget<C> {
    client: C,
    description: String,
    guard: Option<Duration>,
}

impl<C: KvClient> ShoalTarget<C> {
    /// Wraps `client`; `description` is what the report names the target by.
    pub fn new(client: C, description: String) -> Self {
        Self {
            client,
            description,
            guard: None,
        }
    }

    /// The same target, bounding every call by `guard` on the loadgen side as well.
    pub fn with_guard(mut self, guard: Duration) -> Self {
        self.guard = Some(guard);
        self
    }

    async fn call<T>(
        &self,
        op: impl Future<Output = Result<T, KvClientError>>,
    ) -> Result<T, OpError> {
        match self.guard {
            None => op.await.map_err(classify),
            Some(g) => match tokio::time::timeout(g, op).await {
                Ok(r) => r.map_err(classify),
                Err(_) => Err(OpError::new(
                    ErrorKind::Timeout,
                    format!(
                        "no answer at all within {} ms (loadgen's guard, past the client's own \
                         deadline: the node stopped answering)",
                        g.as_millis()
                    ),
                )),
            },
        }
    }

    /// The wrapped client.
    pub fn client(&self) -> &C {
        &self.client
    }
}

/// The report class of a client error: what a reader of the report needs to tell apart
/// (the client gave up in time, the node or link went away, the node refused or failed).
pub fn classify(e: KvClientError) -> OpError {
    use KvClientError::*;
    let kind = match &e {
        Timeout { .. } => ErrorKind::Timeout,
        ChannelClosed { .. } | Connection { .. } => ErrorKind::Connection,
        ServerError { .. }
        | NotLeader { .. }
        | WrongShard { .. }
        | Unavailable { .. }
        | Busy { .. } => ErrorKind::Server,
        TooLarge { .. }
        | InvalidArgument { .. }
        | Protocol { .. }
        | IncompatibleVersion { .. }
        | WrongCluster { .. } => ErrorKind::Other,
    };
    OpError::new(kind, e)
}

impl<C: KvClient + 'static> Target for ShoalTarget<C> {
    fn describe(&self) -> String {
        self.description.clone()
    }

    async fn put(&self, key: &[u8], value: &[u8]) -> Result<(), OpError> {
        self.call(self.client.put(key, value)).await
    }

    async fn put_with_ttl(&self, key: &[u8], value: &[u8], ttl_secs: u64) -> Result<(), OpError> {
        self.call(self.client.put_with_ttl(key, value, ttl_secs))
            .await
    }

    async fn get(&self, key: &[u8]) -> Result<bool, OpError> {
        Ok(self.call(self.client.get(key)).await?.is_some())
    }

    async fn get_multi(&self, keys: &[Bytes]) -> Result<usize, OpError> {
        let values = self.call(self.client.get_multi(keys)).await?;
        if values.len() != keys.len() {
            return Err(OpError::new(
                ErrorKind::Other,
                format!(
                    "get_multi of {} keys answered {} values",
                    keys.len(),
                    values.len()
                ),
            ));
        }
        Ok(values.iter().filter(|v| v.is_some()).count())
    }

    async fn delete(&self, key: &[u8]) -> Result<(), OpError> {
        self.call(self.client.delete(key)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_the_classes_the_report_counts() {
        let timeout = KvClientError::Timeout {
            detail: "5 s".into(),
            last_error: None,
        };
        assert_eq!(classify(timeout).kind, ErrorKind::Timeout);
        let closed = KvClientError::ChannelClosed {
            reason: "stopping".into(),
        };
        assert_eq!(classify(closed).kind, ErrorKind::Connection);
        let refused = KvClientError::Connection {
            addr: "127.0.0.1:1".into(),
            reason: "refused".into(),
        };
        assert_eq!(classify(refused).kind, ErrorKind::Connection);
        let internal = KvClientError::ServerError {
            message: "poisoned".into(),
        };
        let e = classify(internal);
        assert_eq!(e.kind, ErrorKind::Server);
        assert!(e.detail.contains("poisoned"), "{}", e.detail);
        let busy = KvClientError::Busy { retry_after_ms: 5 };
        assert_eq!(classify(busy).kind, ErrorKind::Server);
        let bad = KvClientError::InvalidArgument {
            reason: "ttl 0".into(),
        };
        assert_eq!(classify(bad).kind, ErrorKind::Other);
    }
}
