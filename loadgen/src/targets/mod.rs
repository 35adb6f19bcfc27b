//! The seam between the load engine and the systems it measures.
//!
//! Owns the [`Target`] trait every system implements (Redis, etcd, Shoal's
//! `LocalKvClient`/`RemoteKvClient` adapters, the `null` calibration target and the floors
//! under Shoal's figures: channel, loopback TCP, fdatasync), the error
//! classification the report counts by, and [`ConnectError`], the fail-fast reason a target
//! could not be reached.
//!
//! Invariants:
//! - A target is constructed already connected and verified (one round trip), within the
//!   connect timeout; construction is each target's own `connect` function, because each
//!   needs different settings. A target that cannot be reached never reaches the engine.
//! - Operations are shared by many concurrent lanes through `&self`; per-operation timeouts
//!   are the target's job (its client's response timeout), so the engine's hot path stays
//!   free of timers.
//! - The engine is generic over `T: Target` (no boxing, no dynamic dispatch per operation).

use std::fmt;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;

#[cfg(feature = "etcd")]
pub mod etcd;
pub mod floor_channel;
pub mod floor_fsync;
pub mod floor_tcp;
pub mod null;
pub mod redis;
pub mod shoal;
pub mod shoal_local;
pub mod shoal_remote;

/// Why an operation failed, as counted in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The target did not answer within the operation timeout.
    Timeout,
    /// The connection failed, was refused or dropped.
    Connection,
    /// The server answered with an error.
    Server,
    /// Anything else (unexpected reply, client-side error).
    Other,
}

impl ErrorKind {
    /// Every kind, in report order.
    pub const ALL: [ErrorKind; 4] = [
        ErrorKind::Timeout,
        ErrorKind::Connection,
        ErrorKind::Server,
        ErrorKind::Other,
    ];

    /// Dense index for per-kind counters.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Stable lowercase name (report, JSON).
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connection => "connection",
            ErrorKind::Server => "server",
            ErrorKind::Other => "other",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A failed operation: its class and the client's message (errors are the cold path).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind} error: {detail}")]
pub struct OpError {
    /// The class the report counts.
    pub kind: ErrorKind,
    /// The client library's description.
    pub detail: String,
}

impl OpError {
    /// Builds an error of `kind` from anything displayable.
    pub fn new(kind: ErrorKind, detail: impl fmt::Display) -> Self {
        Self {
            kind,
            detail: detail.to_string(),
        }
    }
}

/// Why a target could not be used: printed as is, then loadgen exits non-zero.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Nothing answered within the connect timeout.
    #[error("{target} at {endpoint}: no answer within {timeout_ms} ms")]
    Timeout {
        /// Target name.
        target: &'static str,
        /// What was dialled.
        endpoint: String,
        /// The bound that expired.
        timeout_ms: u128,
    },
    /// The client reported a failure (refused, bad address, handshake, preflight).
    #[error("{target} at {endpoint}: {reason}")]
    Failed {
        /// Target name.
        target: &'static str,
        /// What was dialled.
        endpoint: String,
        /// The client's message.
        reason: String,
    },
    /// The target exists in the CLI but is not part of this build.
    #[error("{0}")]
    NotBuilt(String),
}

/// A system under test. Implementations must be cheap to share by reference between many
/// concurrent lanes (connection pools or multiplexed connections inside).
///
/// The Shoal adapters map 1:1 onto `KvClient`: `put` -> `put`, `put_with_ttl` ->
/// `put_with_ttl`, `get` -> `get(..).is_some()`, `get_multi` -> `get_multi` (count of
/// `Some`), `delete` -> `delete`; `KvClientError::Timeout` is [`ErrorKind::Timeout`],
/// `ChannelClosed` [`ErrorKind::Connection`], `ServerError` [`ErrorKind::Server`].
pub trait Target: Send + Sync + 'static {
    /// Short description for the report: system, endpoint, relevant settings.
    fn describe(&self) -> String;

    /// Durable (per the target's settings), acknowledged write.
    fn put(&self, key: &[u8], value: &[u8]) -> impl Future<Output = Result<(), OpError>> + Send;

    /// Write that expires `ttl_secs` seconds after it is applied.
    fn put_with_ttl(
        &self,
        key: &[u8],
        value: &[u8],
        ttl_secs: u64,
    ) -> impl Future<Output = Result<(), OpError>> + Send;

    /// Read with the target's strongest default consistency; `true` if the key was found.
    fn get(&self, key: &[u8]) -> impl Future<Output = Result<bool, OpError>> + Send;

    /// Reads several keys in one request; returns how many were found.
    fn get_multi(&self, keys: &[Bytes]) -> impl Future<Output = Result<usize, OpError>> + Send;

    /// Removes a key (idempotent).
    fn delete(&self, key: &[u8]) -> impl Future<Output = Result<(), OpError>> + Send;

    /// One round trip proving the target serves requests, run (bounded by the connect
    /// timeout) before any load: catches clients that connect lazily. The default reads a
    /// key loadgen never writes.
    fn preflight(&self) -> impl Future<Output = Result<(), OpError>> + Send {
        async { self.get(b"loadgen:preflight").await.map(drop) }
    }
}

/// Runs `target`'s preflight within `timeout`; the reason if it fails.
pub async fn preflight<T: Target>(target: &T, timeout: Duration) -> Result<(), ConnectError> {
    let failed = |reason: String| ConnectError::Failed {
        target: "target",
        endpoint: target.describe(),
        reason,
    };
    match tokio::time::timeout(timeout, target.preflight()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(failed(format!("preflight request failed: {e}"))),
        Err(_) => Err(failed(format!(
            "preflight request unanswered within {} ms",
            timeout.as_millis()
        ))),
    }
}
