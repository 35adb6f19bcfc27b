//! How openraft's answers become protocol errors a client can act on.
//!
//! Invariants:
//! - `ForwardToLeader` with a known leader becomes `NotLeader` carrying the leader's id and
//!   client addresses, so clients redirect without asking for the topology again.
//! - A `Fatal` error (storage failure, panic, stopped) is `Unavailable`: the group on this
//!   node is stopped and will not come back without a restart.
//! - `LogEntryDiscarded` means the entry may or may not commit: `Unavailable` with a
//!   message saying the outcome is unknown, never a success and never a plain retry hint.

use openraft::errors::{ClientWriteError, ForwardToLeader, LinearizableReadError, RaftError};
use shoal_proto::{ErrorDetail, ErrorResponse, NodeInfo};

use crate::config::client_node_info;
use crate::raft::types::{NodeId, ShoalNode, TypeConfig};

/// A node's client-visible identity: shard 0's address and one address per shard.
pub fn node_info(node_id: NodeId, node: &ShoalNode, shard_count: u32) -> NodeInfo {
    client_node_info(node_id, &node.client_addr, shard_count)
}

/// `NotLeader` with the hint openraft gave.
pub fn not_leader(
    group: u32,
    fwd: &ForwardToLeader<TypeConfig>,
    shard_count: u32,
) -> ErrorResponse {
    let leader = match (fwd.leader_id, &fwd.leader_node) {
        (Some(id), Some(node)) => Some(node_info(id, node, shard_count)),
        _ => None,
    };
    let message = match &leader {
        Some(l) => format!("group {group}: node {} leads, at {}", l.node_id, l.addr),
        None => format!("group {group}: this node does not lead and knows no leader yet"),
    };
    ErrorResponse::new(ErrorDetail::NotLeader { leader }, message)
}

/// The protocol error for a failed write.
pub fn write_error(
    group: u32,
    e: &RaftError<TypeConfig, ClientWriteError<TypeConfig>>,
    shard_count: u32,
) -> ErrorResponse {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
            not_leader(group, f, shard_count)
        }
        RaftError::APIError(ClientWriteError::LogEntryDiscarded(_)) => ErrorResponse::new(
            ErrorDetail::Unavailable,
            format!(
                "group {group}: leadership changed while the write was in flight; \
                 it may or may not have been applied"
            ),
        ),
        // A refused membership change (unknown learner, change in progress...): the
        // request, not the node, is at fault.
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => ErrorResponse::new(
            ErrorDetail::InvalidRequest,
            format!("group {group}: membership change refused: {e}"),
        ),
        RaftError::APIError(other) => {
            ErrorResponse::new(ErrorDetail::Internal, format!("group {group}: {other}"))
        }
        RaftError::Fatal(f) => fatal(group, f),
    }
}

/// The protocol error for a failed read confirmation.
pub fn read_error(
    group: u32,
    e: &RaftError<TypeConfig, LinearizableReadError<TypeConfig>>,
    shard_count: u32,
) -> ErrorResponse {
    match e {
        RaftError::APIError(LinearizableReadError::ForwardToLeader(f)) => {
            not_leader(group, f, shard_count)
        }
        RaftError::APIError(other) => ErrorResponse::new(
            ErrorDetail::Unavailable,
            format!("group {group}: cannot confirm leadership: {other}"),
        ),
        RaftError::Fatal(f) => fatal(group, f),
    }
}

/// The protocol error once the group is stopped.
pub fn fatal(group: u32, f: &openraft::errors::Fatal<TypeConfig>) -> ErrorResponse {
    match f {
        openraft::errors::Fatal::Stopped => ErrorResponse::new(
            ErrorDetail::ShuttingDown,
            format!("group {group} is stopped"),
        ),
        other => ErrorResponse::new(
            ErrorDetail::Unavailable,
            format!("group {group} stopped on this node: {other}"),
        ),
    }
}
