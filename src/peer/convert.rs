//! Conversions between openraft's RPC types (for Shoal's [`TypeConfig`]) and their rkyv
//! mirrors in `shoal_proto::peer`.
//!
//! Invariants: openraft → mirror is total (every openraft value has a mirror). Mirror →
//! openraft is total too but fallible: a mirror decoded from a peer's bytes can hold
//! values openraft cannot represent (a vote without a node id, a membership whose voters
//! are not members, two members with the same id), and those are [`ConvertError`]s, never
//! panics. Round trips are exact: `from_mirror(to_mirror(x)) == x`.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use bytes::Bytes;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::SnapshotResponse;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use openraft::type_config::alias::LeaderIdOf;
use shoal_proto::peer as wire;

use crate::raft::TypeConfig;
use crate::raft::types::Entry;
use crate::raft::types::EntryPayload;
use crate::raft::types::LogId;
use crate::raft::types::NodeId;
use crate::raft::types::Request;
use crate::raft::types::ShoalNode;
use crate::raft::types::SnapshotMeta;
use crate::raft::types::StoredMembership;
use crate::raft::types::Vote;

/// A mirror value that has no openraft counterpart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// openraft's leader ids always name a node; a vote without one is malformed.
    #[error("vote in term {term} names no node")]
    VoteWithoutNode {
        /// Term of the malformed vote.
        term: u64,
    },
    /// The same node id appears twice among a membership's members.
    #[error("node {0} appears twice in a membership")]
    DuplicateMember(u64),
    /// openraft refused the membership (for example a voter that is not a member).
    #[error("invalid membership: {0}")]
    InvalidMembership(String),
}

type LeaderId = LeaderIdOf<TypeConfig>;
type Membership = openraft::Membership<NodeId, ShoalNode>;

/// openraft log id → mirror.
pub fn log_id_to_wire(id: &LogId) -> wire::LogId {
    wire::LogId {
        term: id.leader_id.term,
        node_id: id.leader_id.node_id,
        index: id.index,
    }
}

/// Mirror log id → openraft (always valid).
pub fn log_id_from_wire(id: &wire::LogId) -> LogId {
    LogId {
        leader_id: LeaderId {
            term: id.term,
            node_id: id.node_id,
        },
        index: id.index,
    }
}

fn opt_log_id_to_wire(id: &Option<LogId>) -> Option<wire::LogId> {
    id.as_ref().map(log_id_to_wire)
}

fn opt_log_id_from_wire(id: &Option<wire::LogId>) -> Option<LogId> {
    id.as_ref().map(log_id_from_wire)
}

/// openraft vote → mirror.
pub fn vote_to_wire(vote: &Vote) -> wire::Vote {
    wire::Vote {
        term: vote.leader_id.term,
        node_id: Some(vote.leader_id.node_id),
        committed: vote.committed,
    }
}

/// Mirror vote → openraft. With openraft's "advanced" leader ids every vote names its
/// candidate, so `node_id: None` is refused.
pub fn vote_from_wire(vote: &wire::Vote) -> Result<Vote, ConvertError> {
    let node_id = vote
        .node_id
        .ok_or(ConvertError::VoteWithoutNode { term: vote.term })?;
    Ok(Vote {
        leader_id: LeaderId {
            term: vote.term,
            node_id,
        },
        committed: vote.committed,
    })
}

/// openraft membership → mirror.
pub fn membership_to_wire(m: &Membership) -> wire::Membership {
    wire::Membership {
        configs: m
            .get_joint_config()
            .iter()
            .map(|set| set.iter().copied().collect())
            .collect(),
        nodes: m
            .nodes()
            .map(|(id, node)| wire::PeerNode {
                node_id: *id,
                client_addr: node.client_addr.clone(),
                peer_addr: node.peer_addr.clone(),
            })
            .collect(),
    }
}

/// Mirror membership → openraft: members must be unique and every voter a member.
pub fn membership_from_wire(m: &wire::Membership) -> Result<Membership, ConvertError> {
    let mut nodes = BTreeMap::new();
    for n in &m.nodes {
        let node = ShoalNode {
            client_addr: n.client_addr.clone(),
            peer_addr: n.peer_addr.clone(),
        };
        if nodes.insert(n.node_id, node).is_some() {
            return Err(ConvertError::DuplicateMember(n.node_id));
        }
    }
    let configs: Vec<BTreeSet<u64>> = m
        .configs
        .iter()
        .map(|c| c.iter().copied().collect())
        .collect();
    Membership::new(configs, nodes).map_err(|e| ConvertError::InvalidMembership(e.to_string()))
}

/// openraft stored membership → mirror.
pub fn stored_membership_to_wire(m: &StoredMembership) -> wire::StoredMembership {
    wire::StoredMembership {
        log_id: opt_log_id_to_wire(m.log_id()),
        membership: membership_to_wire(m.membership()),
    }
}

/// Mirror stored membership → openraft.
pub fn stored_membership_from_wire(
    m: &wire::StoredMembership,
) -> Result<StoredMembership, ConvertError> {
    Ok(StoredMembership::new(
        opt_log_id_from_wire(&m.log_id),
        membership_from_wire(&m.membership)?,
    ))
}

/// openraft entry → mirror (copies the command bytes once, into the frame's archive).
pub fn entry_to_wire(e: &Entry) -> wire::Entry {
    let payload = match &e.payload {
        EntryPayload::Blank => wire::EntryPayload::Blank,
        EntryPayload::Normal(r) => wire::EntryPayload::Normal(r.command.to_vec()),
        EntryPayload::Membership(m) => wire::EntryPayload::Membership(membership_to_wire(m)),
    };
    wire::Entry {
        log_id: log_id_to_wire(&e.log_id),
        payload,
    }
}

/// Mirror entry → openraft (consumes the mirror: the command bytes move, not copy).
pub fn entry_from_wire(e: wire::Entry) -> Result<Entry, ConvertError> {
    let payload = match e.payload {
        wire::EntryPayload::Blank => EntryPayload::Blank,
        wire::EntryPayload::Normal(bytes) => EntryPayload::Normal(Request {
            command: Bytes::from(bytes),
        }),
        wire::EntryPayload::Membership(m) => EntryPayload::Membership(membership_from_wire(&m)?),
    };
    Ok(Entry {
        log_id: log_id_from_wire(&e.log_id),
        payload,
    })
}

/// openraft append-entries request → mirror.
pub fn append_request_to_wire(
    rpc: &AppendEntriesRequest<TypeConfig>,
) -> wire::AppendEntriesRequest {
    append_request_to_wire_prefix(rpc, rpc.entries.len())
}

/// openraft append-entries request → mirror, with only its first `n` entries.
pub fn append_request_to_wire_prefix(
    rpc: &AppendEntriesRequest<TypeConfig>,
    n: usize,
) -> wire::AppendEntriesRequest {
    wire::AppendEntriesRequest {
        vote: vote_to_wire(&rpc.vote),
        prev_log_id: opt_log_id_to_wire(&rpc.prev_log_id),
        entries: rpc.entries.iter().take(n).map(entry_to_wire).collect(),
        leader_commit: opt_log_id_to_wire(&rpc.leader_commit),
    }
}

/// Mirror append-entries request → openraft.
pub fn append_request_from_wire(
    rpc: wire::AppendEntriesRequest,
) -> Result<AppendEntriesRequest<TypeConfig>, ConvertError> {
    Ok(AppendEntriesRequest {
        vote: vote_from_wire(&rpc.vote)?,
        prev_log_id: opt_log_id_from_wire(&rpc.prev_log_id),
        entries: rpc
            .entries
            .into_iter()
            .map(entry_from_wire)
            .collect::<Result<_, _>>()?,
        leader_commit: opt_log_id_from_wire(&rpc.leader_commit),
    })
}

/// openraft append-entries response → mirror.
pub fn append_response_to_wire(
    resp: &AppendEntriesResponse<TypeConfig>,
) -> wire::AppendEntriesResponse {
    match resp {
        AppendEntriesResponse::Success => wire::AppendEntriesResponse::Success,
        AppendEntriesResponse::PartialSuccess(id) => {
            wire::AppendEntriesResponse::PartialSuccess(opt_log_id_to_wire(id))
        }
        AppendEntriesResponse::Conflict => wire::AppendEntriesResponse::Conflict,
        AppendEntriesResponse::HigherVote(v) => {
            wire::AppendEntriesResponse::HigherVote(vote_to_wire(v))
        }
    }
}

/// Mirror append-entries response → openraft.
pub fn append_response_from_wire(
    resp: &wire::AppendEntriesResponse,
) -> Result<AppendEntriesResponse<TypeConfig>, ConvertError> {
    Ok(match resp {
        wire::AppendEntriesResponse::Success => AppendEntriesResponse::Success,
        wire::AppendEntriesResponse::PartialSuccess(id) => {
            AppendEntriesResponse::PartialSuccess(opt_log_id_from_wire(id))
        }
        wire::AppendEntriesResponse::Conflict => AppendEntriesResponse::Conflict,
        wire::AppendEntriesResponse::HigherVote(v) => {
            AppendEntriesResponse::HigherVote(vote_from_wire(v)?)
        }
    })
}

/// openraft vote request → mirror.
pub fn vote_request_to_wire(rpc: &VoteRequest<TypeConfig>) -> wire::VoteRequest {
    wire::VoteRequest {
        vote: vote_to_wire(&rpc.vote),
        last_log_id: opt_log_id_to_wire(&rpc.last_log_id),
        leadership_transfer: rpc.leadership_transfer,
    }
}

/// Mirror vote request → openraft.
pub fn vote_request_from_wire(
    rpc: &wire::VoteRequest,
) -> Result<VoteRequest<TypeConfig>, ConvertError> {
    Ok(VoteRequest {
        vote: vote_from_wire(&rpc.vote)?,
        last_log_id: opt_log_id_from_wire(&rpc.last_log_id),
        leadership_transfer: rpc.leadership_transfer,
    })
}

/// openraft vote response → mirror.
pub fn vote_response_to_wire(resp: &VoteResponse<TypeConfig>) -> wire::VoteResponse {
    wire::VoteResponse {
        vote: vote_to_wire(&resp.vote),
        vote_granted: resp.vote_granted,
        last_log_id: opt_log_id_to_wire(&resp.last_log_id),
    }
}

/// Mirror vote response → openraft.
pub fn vote_response_from_wire(
    resp: &wire::VoteResponse,
) -> Result<VoteResponse<TypeConfig>, ConvertError> {
    Ok(VoteResponse {
        vote: vote_from_wire(&resp.vote)?,
        vote_granted: resp.vote_granted,
        last_log_id: opt_log_id_from_wire(&resp.last_log_id),
    })
}

/// openraft snapshot meta → mirror. openraft 0.10's meta has no snapshot id; the mirror's
/// id is derived from the last log id (it only labels the transfer in logs).
pub fn snapshot_meta_to_wire(meta: &SnapshotMeta) -> wire::SnapshotMeta {
    let snapshot_id = match &meta.last_log_id {
        Some(id) => format!(
            "{}-{}-{}",
            id.leader_id.term, id.leader_id.node_id, id.index
        ),
        None => "empty".to_string(),
    };
    wire::SnapshotMeta {
        last_log_id: opt_log_id_to_wire(&meta.last_log_id),
        last_membership: stored_membership_to_wire(&meta.last_membership),
        snapshot_id,
    }
}

/// Mirror snapshot meta → openraft (the mirror's `snapshot_id` is not kept).
pub fn snapshot_meta_from_wire(meta: &wire::SnapshotMeta) -> Result<SnapshotMeta, ConvertError> {
    Ok(SnapshotMeta {
        last_log_id: opt_log_id_from_wire(&meta.last_log_id),
        last_membership: stored_membership_from_wire(&meta.last_membership)?,
    })
}

/// openraft snapshot response → mirror.
pub fn snapshot_response_to_wire(
    resp: &SnapshotResponse<TypeConfig>,
) -> wire::InstallSnapshotResponse {
    wire::InstallSnapshotResponse {
        vote: vote_to_wire(&resp.vote),
    }
}

/// Mirror snapshot response → openraft.
pub fn snapshot_response_from_wire(
    resp: &wire::InstallSnapshotResponse,
) -> Result<SnapshotResponse<TypeConfig>, ConvertError> {
    Ok(SnapshotResponse {
        vote: vote_from_wire(&resp.vote)?,
    })
}

#[cfg(test)]
#[path = "convert_tests.rs"]
mod tests;
