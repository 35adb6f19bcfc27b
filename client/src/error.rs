//! `KvClientError`: the one error type of every `KvClient` (remote and, later, local).
//!
//! Invariants: every protocol status code of `docs/PROTOCOL.md` §5 maps to exactly one
//! variant ([`KvClientError::from_error_response`]); every variant says whether retrying
//! the same call can help ([`KvClientError::is_retryable`]); the error is `Clone` so one
//! failure can be reported to every waiter of a shared connection.

use shoal_proto::{ErrorDetail, ErrorResponse, LimitKind, NodeInfo};

/// Where the leader of a group is, as a node reported it in a `NotLeader` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderHint {
    /// The leader's node id.
    pub node_id: u64,
    /// The leader's client address (`host:port`); every shard accepts requests there.
    pub addr: String,
    /// The leader's per-shard client addresses (empty, or one per shard).
    pub shard_addrs: Vec<String>,
}

impl From<NodeInfo> for LeaderHint {
    fn from(n: NodeInfo) -> Self {
        LeaderHint {
            node_id: n.node_id,
            addr: n.addr,
            shard_addrs: n.shard_addrs,
        }
    }
}

impl From<&LeaderHint> for NodeInfo {
    fn from(h: &LeaderHint) -> Self {
        NodeInfo {
            node_id: h.node_id,
            addr: h.addr.clone(),
            shard_addrs: h.shard_addrs.clone(),
        }
    }
}

/// Why a `KvClient` call failed.
///
/// The contract's three variants are [`ChannelClosed`](Self::ChannelClosed),
/// [`Timeout`](Self::Timeout) and [`ServerError`](Self::ServerError); the others let a
/// caller branch on what it can do about the failure. Each variant documents whether a
/// retry can help; [`is_retryable`](Self::is_retryable) answers the same in code.
///
/// `RemoteKvClient` already retries every retryable failure within its retry budget and
/// request timeout (see the crate's README); what reaches the caller is either not
/// retryable or the budget ran out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvClientError {
    /// The node is shutting down (status `ShuttingDown`), or the channel to an embedded
    /// node is closed. Retryable against another node of a cluster; an embedded node
    /// that was shut down stays closed.
    #[error("channel closed: the node is shutting down ({reason})")]
    ChannelClosed {
        /// What was closed.
        reason: String,
    },

    /// The operation did not complete in time: the client's request timeout (covering
    /// every retry) ran out, the retry budget was spent on transient failures (the
    /// last one is in `last_error`), or a node answered status `Timeout`. A write may
    /// or may not have been applied. Retryable: puts and deletes are idempotent.
    #[error("timed out: {detail}{}", last_error_suffix(last_error))]
    Timeout {
        /// What timed out (elapsed time and attempts for client-side timeouts).
        detail: String,
        /// The last transient failure before the client gave up, if any.
        last_error: Option<Box<KvClientError>>,
    },

    /// An unexpected failure on the node (status `Internal`: a bug, poisoned storage).
    /// The request may or may not have been applied. Not retryable.
    #[error("server error: {message}")]
    ServerError {
        /// The node's message.
        message: String,
    },

    /// The node does not lead the key's group (status `NotLeader`). `RemoteKvClient`
    /// follows the hint itself; callers only see it from clients that cannot (or when
    /// the retry budget is spent). Retryable, against `leader` when known.
    #[error("not leader{}", leader_suffix(leader))]
    NotLeader {
        /// Where the leader is, when the node knows.
        leader: Option<LeaderHint>,
    },

    /// The request named a shard that does not own the key (status `WrongShard`): the
    /// client's topology is stale. `RemoteKvClient` refreshes its topology and resends.
    /// Retryable.
    #[error("wrong shard: owner is shard {owner_shard} of {shard_count}")]
    WrongShard {
        /// The owning shard under the node's shard count.
        owner_shard: u32,
        /// The node's shard count.
        shard_count: u32,
    },

    /// A key, value, batch, frame or TTL exceeds a limit of `shoal_proto::limits`
    /// (checked by the client before sending, or status `TooLarge`). Not retryable.
    #[error("{limit} too large: {actual} > {max}")]
    TooLarge {
        /// Which limit.
        limit: LimitKind,
        /// The limit's value.
        max: u64,
        /// The offending size.
        actual: u64,
    },

    /// The arguments are invalid (for example a TTL of 0 seconds or above
    /// `MAX_TTL_SECS`), or a node answered `InvalidRequest` (a client bug). Not
    /// retryable.
    #[error("invalid argument: {reason}")]
    InvalidArgument {
        /// What is wrong.
        reason: String,
    },

    /// The key's group has no quorum or is not ready (status `Unavailable`: election,
    /// recovery). Retryable after a backoff.
    #[error("unavailable: {reason}")]
    Unavailable {
        /// The node's explanation.
        reason: String,
    },

    /// Backpressure (status `Busy`): the request was not executed. Retryable after
    /// `retry_after_ms`.
    #[error("busy: retry after {retry_after_ms} ms")]
    Busy {
        /// How long the node asks the client to wait.
        retry_after_ms: u32,
    },

    /// A node could not be reached, or the connection broke (connect refused, reset,
    /// closed). A request that was sent may or may not have been applied. Retryable
    /// (the client reconnects, possibly to another node).
    #[error("connection to {addr} failed: {reason}")]
    Connection {
        /// The address.
        addr: String,
        /// The I/O failure.
        reason: String,
    },

    /// The node sent something this client cannot decode or did not expect; the
    /// connection was closed. Not retryable (a bug on one side).
    #[error("protocol violation from {addr}: {reason}")]
    Protocol {
        /// The address.
        addr: String,
        /// What was wrong.
        reason: String,
    },

    /// The node speaks no protocol version this client speaks (status
    /// `IncompatibleVersion`). Not retryable: upgrade one side.
    #[error("incompatible protocol: node speaks {min_version}..={max_version}")]
    IncompatibleVersion {
        /// Oldest version the node speaks.
        min_version: u8,
        /// Newest version the node speaks.
        max_version: u8,
    },

    /// A node belongs to another cluster than the one the client first joined. Not
    /// retryable: the address list is wrong.
    #[error("node at {addr} belongs to cluster {found:#x}, expected {expected:#x}")]
    WrongCluster {
        /// The node's address.
        addr: String,
        /// The cluster the client joined.
        expected: u64,
        /// The node's cluster.
        found: u64,
    },
}

fn last_error_suffix(e: &Option<Box<KvClientError>>) -> String {
    e.as_ref()
        .map(|e| format!("; last error: {e}"))
        .unwrap_or_default()
}

fn leader_suffix(l: &Option<LeaderHint>) -> String {
    l.as_ref()
        .map(|l| format!(" (leader: node {} at {})", l.node_id, l.addr))
        .unwrap_or_default()
}

impl KvClientError {
    /// True when the same call may succeed if tried again (possibly after a backoff, on
    /// another node, or after a topology refresh); false when it would fail the same way.
    pub fn is_retryable(&self) -> bool {
        use KvClientError::*;
        match self {
            ChannelClosed { .. }
            | Timeout { .. }
            | NotLeader { .. }
            | WrongShard { .. }
            | Unavailable { .. }
            | Busy { .. }
            | Connection { .. } => true,
            ServerError { .. }
            | TooLarge { .. }
            | InvalidArgument { .. }
            | Protocol { .. }
            | IncompatibleVersion { .. }
            | WrongCluster { .. } => false,
        }
    }

    /// True when the request certainly was not executed by any node, so resending it
    /// cannot apply a write twice.
    pub fn certainly_not_applied(&self) -> bool {
        use KvClientError::*;
        matches!(
            self,
            NotLeader { .. }
                | WrongShard { .. }
                | Busy { .. }
                | TooLarge { .. }
                | InvalidArgument { .. }
                | IncompatibleVersion { .. }
                | WrongCluster { .. }
        )
    }

    /// Maps a node's `Error` frame (every status of `docs/PROTOCOL.md` §5) to a variant.
    pub fn from_error_response(e: ErrorResponse) -> KvClientError {
        let message = e.message;
        match e.detail {
            ErrorDetail::NotLeader { leader } => KvClientError::NotLeader {
                leader: leader.map(LeaderHint::from),
            },
            ErrorDetail::WrongShard {
                owner_shard,
                shard_count,
            } => KvClientError::WrongShard {
                owner_shard,
                shard_count,
            },
            ErrorDetail::TooLarge { limit, max, actual } => {
                KvClientError::TooLarge { limit, max, actual }
            }
            ErrorDetail::InvalidRequest => KvClientError::InvalidArgument {
                reason: format!("node refused the request: {message}"),
            },
            ErrorDetail::Timeout => KvClientError::Timeout {
                detail: format!("node gave up: {message}"),
                last_error: None,
            },
            ErrorDetail::Unavailable => KvClientError::Unavailable { reason: message },
            ErrorDetail::ShuttingDown => KvClientError::ChannelClosed { reason: message },
            ErrorDetail::Busy { retry_after_ms } => KvClientError::Busy { retry_after_ms },
            ErrorDetail::Internal => KvClientError::ServerError { message },
            ErrorDetail::IncompatibleVersion {
                min_version,
                max_version,
            } => KvClientError::IncompatibleVersion {
                min_version,
                max_version,
            },
        }
    }

    /// A `TooLarge` for `limit` (sizes in bytes or counts).
    pub fn too_large(limit: LimitKind, max: usize, actual: usize) -> KvClientError {
        KvClientError::TooLarge {
            limit,
            max: max as u64,
            actual: actual as u64,
        }
    }
}

/// Converts a `shoal_proto` encoding failure (a limit checked while encoding).
impl From<shoal_proto::EncodeError> for KvClientError {
    fn from(e: shoal_proto::EncodeError) -> Self {
        match e {
            shoal_proto::EncodeError::TooLarge { limit, max, actual } => {
                KvClientError::TooLarge { limit, max, actual }
            }
            other => KvClientError::InvalidArgument {
                reason: other.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(detail: ErrorDetail) -> ErrorResponse {
        ErrorResponse::new(detail, "m")
    }

    #[test]
    fn every_status_maps_to_its_variant() {
        use KvClientError as E;
        type Case = (ErrorDetail, fn(&E) -> bool, bool);
        let cases: Vec<Case> = vec![
            (
                ErrorDetail::NotLeader { leader: None },
                |e| matches!(e, E::NotLeader { leader: None }),
                true,
            ),
            (
                ErrorDetail::WrongShard {
                    owner_shard: 1,
                    shard_count: 2,
                },
                |e| {
                    matches!(
                        e,
                        E::WrongShard {
                            owner_shard: 1,
                            shard_count: 2
                        }
                    )
                },
                true,
            ),
            (
                ErrorDetail::TooLarge {
                    limit: LimitKind::Value,
                    max: 1,
                    actual: 2,
                },
                |e| {
                    matches!(
                        e,
                        E::TooLarge {
                            limit: LimitKind::Value,
                            max: 1,
                            actual: 2
                        }
                    )
                },
                false,
            ),
            (
                ErrorDetail::InvalidRequest,
                |e| matches!(e, E::InvalidArgument { .. }),
                false,
            ),
            (
                ErrorDetail::Timeout,
                |e| matches!(e, E::Timeout { .. }),
                true,
            ),
            (
                ErrorDetail::Unavailable,
                |e| matches!(e, E::Unavailable { .. }),
                true,
            ),
            (
                ErrorDetail::ShuttingDown,
                |e| matches!(e, E::ChannelClosed { .. }),
                true,
            ),
            (
                ErrorDetail::Busy { retry_after_ms: 7 },
                |e| matches!(e, E::Busy { retry_after_ms: 7 }),
                true,
            ),
            (
                ErrorDetail::Internal,
                |e| matches!(e, E::ServerError { .. }),
                false,
            ),
            (
                ErrorDetail::IncompatibleVersion {
                    min_version: 2,
                    max_version: 3,
                },
                |e| {
                    matches!(
                        e,
                        E::IncompatibleVersion {
                            min_version: 2,
                            max_version: 3
                        }
                    )
                },
                false,
            ),
        ];
        for (detail, is, retryable) in cases {
            let status = detail.status();
            let e = E::from_error_response(resp(detail));
            assert!(is(&e), "{status:?} mapped to {e:?}");
            assert_eq!(e.is_retryable(), retryable, "{status:?}");
        }
    }

    #[test]
    fn not_leader_hint_is_kept() {
        let node = NodeInfo {
            node_id: 2,
            addr: "10.0.0.2:7000".into(),
            shard_addrs: vec![],
        };
        let e = KvClientError::from_error_response(resp(ErrorDetail::NotLeader {
            leader: Some(node.clone()),
        }));
        match e {
            KvClientError::NotLeader { leader: Some(h) } => {
                assert_eq!(NodeInfo::from(&h), node);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
