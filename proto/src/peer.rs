//! Peer (node ↔ node) messages: plain mirrors of openraft's RPC types, rkyv-encoded.
//!
//! openraft's own types cannot derive rkyv, so the node converts to and from these. A peer
//! connection serves one (node pair, shard): its first frame is a [`PeerHello`] naming the
//! cluster, the sender node, the intended receiver, the group and the shard count; every
//! later frame is one Raft RPC or its response, matched by the header's request id.
//!
//! Invariants: peer bytes are never trusted. A body is validated by rkyv's bytecheck
//! before anything is read ([`decode_peer_body`]), then checked against the protocol's
//! limits ([`PeerMessage::validate`]); neither step can panic. Bodies are copied once into
//! an aligned buffer when the read buffer is misaligned (rkyv needs 16-byte alignment).
//! Encoding serializes straight into the frame buffer.

use bytes::BytesMut;
use rkyv::rancor;
use rkyv::ser::{Positional, Writer};
use rkyv::util::AlignedVec;
use rkyv::{Archive, Deserialize, Serialize};

use crate::error::{BodyError, EncodeError};
use crate::limits::{MAX_ADDR_LEN, MAX_NODES, MAX_PEER_FRAME_LEN, MAX_SHARDS, SNAPSHOT_CHUNK_LEN};
use crate::opcode::Opcode;
use crate::status::LimitKind;

/// Longest snapshot id, in bytes.
pub const MAX_SNAPSHOT_ID_LEN: usize = 255;

/// Alignment rkyv needs for the buffer it validates.
const RKYV_ALIGN: usize = 16;

/// A Raft log id. Mirrors openraft's `LogId`: its committed leader id is `(term, node_id)`
/// (with the "standard" leader id mode, which commits only the term, send `node_id = 0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Archive, Serialize, Deserialize)]
pub struct LogId {
    /// Term of the leader that proposed the entry.
    pub term: u64,
    /// Node id of that leader.
    pub node_id: u64,
    /// Log index.
    pub index: u64,
}

/// A Raft vote. Mirrors openraft's `Vote`: a leader id `(term, node)` and whether a quorum
/// granted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Archive, Serialize, Deserialize)]
pub struct Vote {
    /// Term.
    pub term: u64,
    /// The candidate or leader voted for (`None`: no vote cast in this term).
    pub node_id: Option<u64>,
    /// Granted by a quorum (the vote of an established leader).
    pub committed: bool,
}

/// A member node and its addresses (both are part of the replicated membership, so every
/// replica can redirect clients to a leader and dial its peers).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Archive, Serialize, Deserialize)]
pub struct PeerNode {
    /// Node id.
    pub node_id: u64,
    /// Client protocol address of the node, `host:port`.
    pub client_addr: String,
    /// Peer (Raft) address of the node's shard 0, `host:port`.
    pub peer_addr: String,
}

/// A group membership. Mirrors openraft's `Membership`: a list of voter sets (one set, or
/// two during a joint change) and every member's address; learners are the nodes that are
/// in no voter set.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Archive, Serialize, Deserialize)]
pub struct Membership {
    /// Voter sets: `[old, new]` during a joint change, `[current]` otherwise, `[]` for
    /// the initial empty membership.
    pub configs: Vec<Vec<u64>>,
    /// Every member (voters and learners) with its address.
    pub nodes: Vec<PeerNode>,
}

impl Membership {
    /// Members that are in no voter set.
    pub fn learners(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .map(|n| n.node_id)
            .filter(|id| !self.configs.iter().any(|c| c.contains(id)))
            .collect()
    }
}

/// A membership and the log id of the entry that introduced it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Archive, Serialize, Deserialize)]
pub struct StoredMembership {
    /// Log id of the membership entry (`None`: the initial empty membership).
    pub log_id: Option<LogId>,
    /// The membership.
    pub membership: Membership,
}

/// What a log entry carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Archive, Serialize, Deserialize)]
pub enum EntryPayload {
    /// A leader's no-op at the start of its term.
    Blank,
    /// An application command, opaque here (the state machine's own encoding).
    Normal(Vec<u8>),
    /// A membership change.
    Membership(Membership),
}

/// One Raft log entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Archive, Serialize, Deserialize)]
pub struct Entry {
    /// Its log id.
    pub log_id: LogId,
    /// Its payload.
    pub payload: EntryPayload,
}

/// First frame of a peer connection (opcode `PeerHello`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Archive, Serialize, Deserialize)]
pub struct PeerHello {
    /// Oldest protocol version the sender speaks.
    pub min_version: u8,
    /// Newest protocol version the sender speaks.
    pub max_version: u8,
    /// Cluster identity; a mismatch is refused (`WrongCluster`).
    pub cluster_id: u64,
    /// The sending node.
    pub from_node: u64,
    /// The node the sender believes it reached; a mismatch is refused (`WrongNode`).
    pub to_node: u64,
    /// The Raft group (= shard) this connection carries.
    pub group: u32,
    /// The sender's shard count; a mismatch is refused (`ShardCountMismatch`).
    pub shard_count: u32,
}

/// Accepting answer to a [`PeerHello`] (opcode `PeerHelloResp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Archive, Serialize, Deserialize)]
pub struct PeerHelloOk {
    /// The version both sides speak from now on.
    pub version: u8,
    /// The accepting node.
    pub node_id: u64,
}

/// Append-entries (and heartbeat) request. Mirrors openraft's `AppendEntriesRequest`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Archive, Serialize, Deserialize)]
pub struct AppendEntriesRequest {
    /// The leader's vote.
    pub vote: Vote,
    /// Log id just before `entries`.
    pub prev_log_id: Option<LogId>,
    /// Entries to append (empty for a heartbeat).
    pub entries: Vec<Entry>,
    /// The leader's committed log id.
    pub leader_commit: Option<LogId>,
}

/// Mirrors openraft's `AppendEntriesResponse`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Archive, Serialize, Deserialize)]
pub enum AppendEntriesResponse {
    /// All entries appended.
    Success,
    /// Entries up to this log id appended.
    PartialSuccess(Option<LogId>),
    /// `prev_log_id` does not match the follower's log.
    Conflict,
    /// The follower has seen a higher vote.
    HigherVote(Vote),
}

/// Mirrors openraft's `VoteRequest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Archive, Serialize, Deserialize)]
pub struct VoteRequest {
    /// The candidate's vote.
    pub vote: Vote,
    /// The candidate's last log id.
    pub last_log_id: Option<LogId>,
    /// The election is part of a leadership transfer the current leader asked for (a
    /// voter then grants it even while the leader's lease holds).
    pub leadership_transfer: bool,
}

/// Mirrors openraft's `VoteResponse`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Archive, Serialize, Deserialize)]
pub struct VoteResponse {
    /// The responder's vote after handling the request.
    pub vote: Vote,
    /// Whether the vote was granted.
    pub vote_granted: bool,
    /// The responder's last log id.
    pub last_log_id: Option<LogId>,
}

/// Identifies a snapshot. Mirrors openraft's `SnapshotMeta`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Archive, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// Last log id the snapshot covers.
    pub last_log_id: Option<LogId>,
    /// Membership as of the snapshot.
    pub last_membership: StoredMembership,
    /// Unique id of the snapshot, at most `MAX_SNAPSHOT_ID_LEN` bytes.
    pub snapshot_id: String,
}

/// One chunk of a snapshot transfer (at most `SNAPSHOT_CHUNK_LEN` bytes of data). Chunks
/// of one snapshot travel in order, offsets contiguous from 0; `done` marks the last one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Archive, Serialize, Deserialize)]
pub struct InstallSnapshotRequest {
    /// The leader's vote.
    pub vote: Vote,
    /// The snapshot being sent.
    pub meta: SnapshotMeta,
    /// Byte offset of `data` in the snapshot.
    pub offset: u64,
    /// The chunk.
    pub data: Vec<u8>,
    /// Last chunk.
    pub done: bool,
}

/// Answer to each snapshot chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Archive, Serialize, Deserialize)]
pub struct InstallSnapshotResponse {
    /// The follower's vote.
    pub vote: Vote,
}

/// Mirrors openraft's `TransferLeaderRequest`: the leader asks `to_node` to campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Archive, Serialize, Deserialize)]
pub struct TransferLeaderRequest {
    /// The current leader's vote.
    pub from_leader: Vote,
    /// The node that should take over.
    pub to_node: u64,
    /// The leader's last log id.
    pub last_log_id: Option<LogId>,
}

/// Why a peer refused a handshake or an RPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Archive, Serialize, Deserialize)]
pub enum PeerErrorKind {
    /// No common protocol version.
    IncompatibleVersion,
    /// `cluster_id` differs.
    WrongCluster,
    /// `to_node` is not this node.
    WrongNode,
    /// The group does not exist on this node.
    WrongGroup,
    /// The shard counts differ.
    ShardCountMismatch,
    /// The group is not started yet; retry later.
    NotReady,
    /// The node is stopping.
    ShuttingDown,
    /// The RPC failed on the receiver (for example poisoned storage).
    Internal,
}

/// A refusal, in place of a response.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Archive, Serialize, Deserialize)]
pub struct PeerError {
    /// Why.
    pub kind: PeerErrorKind,
    /// Human-readable detail, at most `MAX_ERROR_MESSAGE_LEN` bytes.
    pub message: String,
}

/// Everything that travels on a peer connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Archive, Serialize, Deserialize)]
pub enum PeerMessage {
    /// Handshake request (opcode `PeerHello`).
    Hello(PeerHello),
    /// Handshake accepted (opcode `PeerHelloResp`).
    HelloOk(PeerHelloOk),
    /// Raft append entries (opcode `PeerRpc`).
    AppendEntries(AppendEntriesRequest),
    /// Its answer (opcode `PeerRpcResp`).
    AppendEntriesResponse(AppendEntriesResponse),
    /// Raft vote (opcode `PeerRpc`).
    Vote(VoteRequest),
    /// Its answer (opcode `PeerRpcResp`).
    VoteResponse(VoteResponse),
    /// One snapshot chunk (opcode `PeerRpc`).
    InstallSnapshot(InstallSnapshotRequest),
    /// Its answer (opcode `PeerRpcResp`).
    InstallSnapshotResponse(InstallSnapshotResponse),
    /// Leadership transfer (opcode `PeerRpc`).
    TransferLeader(TransferLeaderRequest),
    /// Its answer: received (opcode `PeerRpcResp`).
    TransferLeaderAck,
    /// A refusal of a handshake (`PeerHelloResp`) or of an RPC (`PeerRpcResp`).
    Error(PeerError),
    /// Raft pre-vote: would the receiver grant this vote? Changes nothing on the receiver
    /// (opcode `PeerRpc`). Appended after `Error` so earlier variants keep their tags.
    PreVote(VoteRequest),
    /// Its answer (opcode `PeerRpcResp`).
    PreVoteResponse(VoteResponse),
}

impl PeerMessage {
    /// The opcode a frame carrying this message uses.
    pub fn opcode(&self) -> Opcode {
        match self {
            PeerMessage::Hello(_) => Opcode::PeerHello,
            PeerMessage::HelloOk(_) => Opcode::PeerHelloResp,
            PeerMessage::AppendEntries(_)
            | PeerMessage::Vote(_)
            | PeerMessage::PreVote(_)
            | PeerMessage::InstallSnapshot(_)
            | PeerMessage::TransferLeader(_) => Opcode::PeerRpc,
            PeerMessage::AppendEntriesResponse(_)
            | PeerMessage::VoteResponse(_)
            | PeerMessage::PreVoteResponse(_)
            | PeerMessage::InstallSnapshotResponse(_)
            | PeerMessage::TransferLeaderAck
            | PeerMessage::Error(_) => Opcode::PeerRpcResp,
        }
    }

    /// True when `opcode` may carry this message (an `Error` answers either request).
    pub fn fits_opcode(&self, opcode: Opcode) -> bool {
        match self {
            PeerMessage::Error(_) => matches!(opcode, Opcode::PeerHelloResp | Opcode::PeerRpcResp),
            _ => self.opcode() == opcode,
        }
    }

    /// Checks the protocol limits rkyv's structural validation does not know about.
    pub fn validate(&self) -> Result<(), BodyError> {
        match self {
            PeerMessage::Hello(h) => {
                if h.min_version > h.max_version {
                    return Err(BodyError::Invalid("peer hello version range"));
                }
                if h.shard_count == 0
                    || h.shard_count as usize > MAX_SHARDS
                    || h.group >= h.shard_count
                {
                    return Err(BodyError::Invalid("peer hello group or shard count"));
                }
            }
            PeerMessage::AppendEntries(a) => {
                for e in &a.entries {
                    if let EntryPayload::Membership(m) = &e.payload {
                        validate_membership(m)?;
                    }
                }
            }
            PeerMessage::InstallSnapshot(s) => {
                if s.data.len() > SNAPSHOT_CHUNK_LEN {
                    return Err(BodyError::TooLarge {
                        limit: LimitKind::PeerFrame,
                        max: SNAPSHOT_CHUNK_LEN as u64,
                        actual: s.data.len() as u64,
                    });
                }
                if s.meta.snapshot_id.len() > MAX_SNAPSHOT_ID_LEN {
                    return Err(BodyError::Invalid(
                        "snapshot id longer than MAX_SNAPSHOT_ID_LEN",
                    ));
                }
                validate_membership(&s.meta.last_membership.membership)?;
            }
            PeerMessage::Error(e) => {
                if e.message.len() > crate::limits::MAX_ERROR_MESSAGE_LEN {
                    return Err(BodyError::Invalid("peer error message too long"));
                }
            }
            PeerMessage::HelloOk(_)
            | PeerMessage::AppendEntriesResponse(_)
            | PeerMessage::Vote(_)
            | PeerMessage::VoteResponse(_)
            | PeerMessage::InstallSnapshotResponse(_)
            | PeerMessage::TransferLeader(_)
            | PeerMessage::TransferLeaderAck
            | PeerMessage::PreVote(_)
            | PeerMessage::PreVoteResponse(_) => {}
        }
        Ok(())
    }
}

fn validate_membership(m: &Membership) -> Result<(), BodyError> {
    // Zero voter sets is openraft's initial, empty membership (a snapshot taken before
    // the group was initialized carries it).
    if m.configs.len() > 2 {
        return Err(BodyError::Invalid(
            "membership must have at most two (joint) voter sets",
        ));
    }
    if m.configs.iter().any(|c| c.len() > MAX_NODES) || m.nodes.len() > MAX_NODES {
        return Err(BodyError::Invalid("membership larger than MAX_NODES"));
    }
    if m.nodes
        .iter()
        .any(|n| n.client_addr.len() > MAX_ADDR_LEN || n.peer_addr.len() > MAX_ADDR_LEN)
    {
        return Err(BodyError::Invalid(
            "member address longer than MAX_ADDR_LEN",
        ));
    }
    Ok(())
}

/// rkyv writer appending to a `BytesMut`, positions relative to the body start so the
/// archive is self-contained wherever the body lands.
struct BodyWriter<'a> {
    buf: &'a mut BytesMut,
    start: usize,
}

impl Positional for BodyWriter<'_> {
    fn pos(&self) -> usize {
        self.buf.len() - self.start
    }
}

impl<E> Writer<E> for BodyWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), E> {
        self.buf.extend_from_slice(bytes);
        Ok(())
    }
}

/// Serializes `msg` at the end of `buf` (the body of a peer frame). On error `buf` is
/// restored to its previous length.
pub(crate) fn encode_peer_body(buf: &mut BytesMut, msg: &PeerMessage) -> Result<(), EncodeError> {
    msg.validate()?;
    let start = buf.len();
    let writer = BodyWriter {
        buf: &mut *buf,
        start,
    };
    if let Err(e) = rkyv::api::high::to_bytes_in::<_, rancor::Error>(msg, writer) {
        buf.truncate(start);
        return Err(EncodeError::Peer(e.to_string()));
    }
    let len = buf.len() - start;
    if len > MAX_PEER_FRAME_LEN {
        buf.truncate(start);
        return Err(EncodeError::TooLarge {
            limit: LimitKind::PeerFrame,
            max: MAX_PEER_FRAME_LEN as u64,
            actual: len as u64,
        });
    }
    Ok(())
}

/// Validates and deserializes one peer body (never trusts it: bytecheck first, then the
/// protocol limits). The body's length was already checked against `MAX_PEER_FRAME_LEN`.
pub fn decode_peer_body(body: &[u8]) -> Result<PeerMessage, BodyError> {
    let msg = if (body.as_ptr() as usize) % RKYV_ALIGN == 0 {
        from_aligned(body)?
    } else {
        let mut aligned = AlignedVec::<RKYV_ALIGN>::with_capacity(body.len());
        aligned.extend_from_slice(body);
        from_aligned(&aligned)?
    };
    msg.validate()?;
    Ok(msg)
}

fn from_aligned(bytes: &[u8]) -> Result<PeerMessage, BodyError> {
    rkyv::from_bytes::<PeerMessage, rancor::Error>(bytes)
        .map_err(|e| BodyError::Peer(e.to_string()))
}
