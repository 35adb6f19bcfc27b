//! The openraft type configuration of a Shoal Raft group: what a log entry carries, what
//! applying it answers, how nodes are named and addressed, and which runtime drives it.
//!
//! Invariants:
//! - A [`Request`] is an opaque, already-encoded state-machine command: Raft replicates
//!   and orders it but never looks inside. Decoding is the state machine's business, so
//!   the encoding can evolve without touching consensus.
//! - Every node of a group has a [`ShoalNode`] with both its client and peer address; the
//!   addresses are part of the membership stored in the log, so all replicas agree on them.
//! - The runtime is [`GlommioRuntime`]: a `Raft<TypeConfig>` is `!Send` and lives on the
//!   executor thread that created it.

use std::fmt;

use bytes::Bytes;

use super::runtime::GlommioRuntime;
use super::sm_runtime::SmRuntime;

/// The client command a log entry carries, encoded by the state machine's codec.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    /// The encoded command (put, put-with-expiry, delete...).
    pub command: Bytes,
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Commands may hold user data: log their size, not their bytes.
        write!(f, "Request({} bytes)", self.command.len())
    }
}

/// What applying one entry answers, encoded by the state machine's codec. Blank and
/// membership entries answer an empty reply.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Response {
    /// The encoded outcome of the command.
    pub reply: Bytes,
}

/// Where a node can be reached: clients connect to `client_addr`, the peers of its Raft
/// groups to `peer_addr` (both `host:port`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShoalNode {
    /// Address of the client protocol listener.
    pub client_addr: String,
    /// Address of the peer (Raft RPC) listener.
    pub peer_addr: String,
}

impl fmt::Display for ShoalNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ShoalNode(client {}, peer {})",
            self.client_addr, self.peer_addr
        )
    }
}

/// A node's id inside a cluster (the same for all its shards' groups).
pub type NodeId = u64;

/// Declares a Shoal group type configuration named `$name` on the runtime `$runtime`:
/// Shoal's [`Request`], [`Response`], [`NodeId`] and [`ShoalNode`], openraft's defaults for
/// the rest. Production declares [`TypeConfig`] with it on glommio, and the deterministic
/// simulation (`shoal-sim`) declares its own on a simulated runtime, so the code under test
/// sees the same entries as a real shard and the two configurations cannot drift apart.
#[macro_export]
macro_rules! declare_shoal_raft_types {
    ($(#[$meta:meta])* $vis:vis $name:ident, $runtime:ty) => {
        ::openraft::declare_raft_types!(
            $(#[$meta])*
            $vis $name:
                D = $crate::raft::types::Request,
                R = $crate::raft::types::Response,
                NodeId = $crate::raft::types::NodeId,
                Node = $crate::raft::types::ShoalNode,
                AsyncRuntime = $runtime,
        );
    };
}

declare_shoal_raft_types!(
    /// The openraft type configuration of every Shoal Raft group. Vote, LeaderId
    /// (`leader_id_adv`), Entry, Responder and Batch are openraft's defaults.
    pub TypeConfig, GlommioRuntime
);

/// A type configuration the shard's state machine runs under: Shoal's entries, replies and
/// nodes, openraft's default `leader_id_adv` leader ids (so log ids, entries, snapshot
/// metadata and memberships are the very types of [`TypeConfig`]), on any runtime that
/// implements [`SmRuntime`]. [`TypeConfig`] is one; the simulation's configuration (same
/// types on a virtual-time runtime) is the other.
pub trait ShoalTypeConfig:
    openraft::RaftTypeConfig<
        D = Request,
        R = Response,
        NodeId = NodeId,
        Node = ShoalNode,
        LeaderId = openraft::type_config::alias::LeaderIdOf<TypeConfig>,
        Entry = Entry,
        AsyncRuntime: SmRuntime,
    >
{
}

impl<C> ShoalTypeConfig for C where
    C: openraft::RaftTypeConfig<
            D = Request,
            R = Response,
            NodeId = NodeId,
            Node = ShoalNode,
            LeaderId = openraft::type_config::alias::LeaderIdOf<TypeConfig>,
            Entry = Entry,
            AsyncRuntime: SmRuntime,
        >
{
}

/// A log id (leader id + index) of a Shoal group.
pub type LogId = openraft::type_config::alias::LogIdOf<TypeConfig>;
/// A vote (term, candidate, committed flag) of a Shoal group.
pub type Vote = openraft::type_config::alias::VoteOf<TypeConfig>;
/// A log entry of a Shoal group: `log_id` + `payload` (`Blank`, `Normal(Request)` or
/// `Membership`).
pub type Entry = openraft::type_config::alias::EntryOf<TypeConfig>;
/// The payload of an [`Entry`].
pub type EntryPayload = openraft::type_config::alias::EntryPayloadOf<TypeConfig>;
/// A membership config together with the log id that introduced it.
pub type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;
/// What a snapshot covers: last included log id and membership.
pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;
/// A snapshot whose data is `SD` (the state machine's `SnapshotData`).
pub type Snapshot<SD> = openraft::type_config::alias::SnapshotOf<TypeConfig, SD>;
/// A Raft handle of a Shoal group whose state machine is `SM` (openraft 0.10 makes the state
/// machine a type parameter of `Raft`).
pub type Raft<SM> = openraft::Raft<TypeConfig, SM>;

/// The bytes of a whole state-machine snapshot, as the state machine, the snapshot store
/// and the peer transport exchange them (the `SnapshotData` of the state machine and of
/// the network). A shard's state lives in memory, so holding one encoded copy of it while
/// building, sending or installing a snapshot is within the node's memory budget; the
/// durable copy is a file in the shard's directory (`docs/SNAPSHOT.md`).
pub type SnapshotData = Bytes;
