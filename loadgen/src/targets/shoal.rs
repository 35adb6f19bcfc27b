//! The Shoal adapter shared by `shoal-local` and `shoal-remote`: any `KvClient` as a
//! [`Target`], and the mapping of `KvClientError` to the report's error classes.
//!
//! Invariants: each operation is exactly one `KvClient` call (`get` -> `get(..).is_some()`,
//! `get_multi` -> the count of `Some`), so loadgen measures the client as an application
//! sees it: argument checks, routing, retries and timeouts included. Gets are the
//! client's default consistency, linearizable. Per-operation timeouts are the client's
//! (`RemoteOptions::request_timeout`, `LocalKvClient::with_timeout`).

use bytes::Bytes;
use shoal_client::{KvClient, KvClientError};

use super::{ErrorKind, OpError, Target};

/// A `KvClient` driven by loadgen.
#[derive(Debug)]
pub struct ShoalTarget<C> {
    client: C,
    description: String,
}

impl<C: KvClient> ShoalTarget<C> {
    /// Wraps `client`; `description` is what the report names the target by.
    pub fn new(client: C, description: String) -> Self {
        Self {
            client,
            description,
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
        self.client.put(key, value).await.map_err(classify)
    }

    async fn put_with_ttl(&self, key: &[u8], value: &[u8], ttl_secs: u64) -> Result<(), OpError> {
        self.client
            .put_with_ttl(key, value, ttl_secs)
            .await
            .map_err(classify)
    }

    async fn get(&self, key: &[u8]) -> Result<bool, OpError> {
        Ok(self.client.get(key).await.map_err(classify)?.is_some())
    }

    async fn get_multi(&self, keys: &[Bytes]) -> Result<usize, OpError> {
        let values = self.client.get_multi(keys).await.map_err(classify)?;
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
        self.client.delete(key).await.map_err(classify)
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
