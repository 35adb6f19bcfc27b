//! The etcd target (feature `etcd`), through `etcd-client` (gRPC over tonic).
//!
//! Owns: connecting to one or more endpoints (bounded by the connect timeout, then a
//! `Status` preflight), and mapping etcd operations and errors.
//!
//! Invariants: `get` is a `Range` with etcd's default linearizable consistency
//! (`serializable = false`); `get_multi` is one `Txn` of such ranges, so it is linearizable
//! as a whole; `put`/`delete` are acknowledged after the Raft commit (etcd fsyncs its WAL
//! before acknowledging). `put_with_ttl` grants a lease of `ttl` seconds and then puts with
//! it: two round trips per operation, which is what etcd's TTL model costs.

use std::time::Duration;

use bytes::Bytes;
use etcd_client::{Client, ConnectOptions, PutOptions, Txn, TxnOp, TxnOpResponse};

use super::{ConnectError, ErrorKind, OpError, Target};

/// etcd target settings.
#[derive(Debug, Clone)]
pub struct EtcdSettings {
    /// `http://host:port` of each member.
    pub endpoints: Vec<String>,
    /// Bound on connecting and on the preflight.
    pub connect_timeout: Duration,
    /// Bound on each request.
    pub op_timeout: Duration,
}

/// An etcd cluster reached through one balanced gRPC channel.
#[derive(Clone)]
pub struct EtcdTarget {
    endpoints: String,
    client: Client,
}

impl std::fmt::Debug for EtcdTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdTarget")
            .field("endpoints", &self.endpoints)
            .finish()
    }
}

impl EtcdTarget {
    /// Connects and checks the cluster answers `Status`; fails with the reason otherwise.
    pub async fn connect(settings: &EtcdSettings) -> Result<Self, ConnectError> {
        let endpoints = settings.endpoints.join(",");
        let failed = |reason: String| ConnectError::Failed {
            target: "etcd",
            endpoint: endpoints.clone(),
            reason,
        };
        let options = ConnectOptions::new()
            .with_connect_timeout(settings.connect_timeout)
            .with_timeout(settings.op_timeout);
        let attempt = async {
            let mut client = Client::connect(&settings.endpoints, Some(options)).await?;
            client.status().await?;
            Ok::<_, etcd_client::Error>(client)
        };
        match tokio::time::timeout(settings.connect_timeout, attempt).await {
            Err(_) => Err(ConnectError::Timeout {
                target: "etcd",
                endpoint: endpoints.clone(),
                timeout_ms: settings.connect_timeout.as_millis(),
            }),
            Ok(Err(e)) => Err(failed(e.to_string())),
            Ok(Ok(client)) => Ok(Self { endpoints, client }),
        }
    }
}

fn classify(e: etcd_client::Error) -> OpError {
    let kind = match &e {
        etcd_client::Error::GRpcStatus(status) => {
            // tonic is not re-exported; its code names are stable.
            match format!("{:?}", status.code()).as_str() {
                "DeadlineExceeded" | "Cancelled" => ErrorKind::Timeout,
                "Unavailable" => ErrorKind::Connection,
                _ => ErrorKind::Server,
            }
        }
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => {
            ErrorKind::Connection
        }
        _ => ErrorKind::Other,
    };
    OpError::new(kind, e)
}

impl Target for EtcdTarget {
    fn describe(&self) -> String {
        format!("etcd {} (linearizable reads)", self.endpoints)
    }

    async fn put(&self, key: &[u8], value: &[u8]) -> Result<(), OpError> {
        let mut kv = self.client.kv_client();
        kv.put(key, value, None).await.map_err(classify)?;
        Ok(())
    }

    async fn put_with_ttl(&self, key: &[u8], value: &[u8], ttl_secs: u64) -> Result<(), OpError> {
        let ttl = i64::try_from(ttl_secs)
            .map_err(|_| OpError::new(ErrorKind::Other, format!("ttl {ttl_secs} too large")))?;
        let lease = self
            .client
            .lease_client()
            .grant(ttl, None)
            .await
            .map_err(classify)?;
        let mut kv = self.client.kv_client();
        kv.put(key, value, Some(PutOptions::new().with_lease(lease.id())))
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn get(&self, key: &[u8]) -> Result<bool, OpError> {
        let mut kv = self.client.kv_client();
        let resp = kv.get(key, None).await.map_err(classify)?;
        Ok(!resp.kvs().is_empty())
    }

    async fn get_multi(&self, keys: &[Bytes]) -> Result<usize, OpError> {
        let ops: Vec<TxnOp> = keys.iter().map(|k| TxnOp::get(k.as_ref(), None)).collect();
        let mut kv = self.client.kv_client();
        let resp = kv.txn(Txn::new().and_then(ops)).await.map_err(classify)?;
        let found = resp
            .op_responses()
            .iter()
            .filter(|r| matches!(r, TxnOpResponse::Get(g) if !g.kvs().is_empty()))
            .count();
        Ok(found)
    }

    async fn delete(&self, key: &[u8]) -> Result<(), OpError> {
        let mut kv = self.client.kv_client();
        kv.delete(key, None).await.map_err(classify)?;
        Ok(())
    }
}
