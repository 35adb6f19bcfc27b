//! The Raft peer transport of one shard's group: openraft's network (client side) and the
//! listener that feeds peer RPCs to the local `Raft` (server side), over TCP on glommio.
//!
//! Group `g` of every node talks only to group `g` of the other nodes. Each node's
//! membership record ([`ShoalNode`](crate::raft::types::ShoalNode)) carries the peer
//! address of its shard 0; group `g` listens at the same host, port + `g`
//! ([`client::group_addr`], the same rule as `config::NodeConfig::shard_peer_addr`).
//!
//! Owns: [`client`] (`PeerNetwork`: `RaftNetworkFactory`, `PeerClient`: `RaftNetworkV2`),
//! [`server`] (`PeerServer`, the `PeerHandler` seam, implemented by `Raft`), [`convert`]
//! (openraft ↔ `shoal_proto::peer` mirrors), [`assembly`] (snapshot reassembly), [`backoff`] (reconnect backoff),
//! `conn` (one framed connection). Wire format and connection rules: docs/PROTOCOL.md §7.
//!
//! Invariants: everything here runs on the group's executor thread (`!Send`); every
//! network wait is bounded (RPC deadline, connect, handshake, idle timeouts); every
//! buffer is bounded (frames by `MAX_PEER_FRAME_LEN`, snapshots by `max_snapshot_len`).

pub mod assembly;
pub mod backoff;
pub mod client;
mod conn;
pub mod convert;
mod pipeline;
pub mod server;

use std::time::Duration;

pub use client::{PeerClient, PeerNetwork, PeerStats};
pub use conn::ConnError;
pub use server::{PeerHandler, PeerServer};
pub use shoal_proto::LocalPeer;

use crate::limits::{
    DEFAULT_MAX_PEER_CONNECTIONS, MAX_PIPELINED_APPENDS, MAX_SNAPSHOT_LEN, SNAPSHOT_CHUNK_LEN,
};

/// Default of [`PeerConfig::append_pipeline_depth`]: a batch of entries per request
/// already amortizes the round trip under load; a few requests in flight keep the
/// follower's WAL busy (its flusher groups what arrives during one fdatasync). Depths 1,
/// 2, 4 and 8 measured alike within noise on 3 nodes sharing 2 cores (docs/RAFT.md);
/// configurable as `replication.append_pipeline_depth`.
pub const DEFAULT_APPEND_PIPELINE_DEPTH: usize = 8;

/// Default of [`PeerConfig::commit_linger`]: longer than the gap between one write's
/// commit and the next write's entry with one client writing back to back, far below the
/// heartbeat interval (which carries the commit index anyway). Measured against 0 and
/// 500 us on 3 nodes (docs/RAFT.md): 2 ms gave the most puts at 64 in flight (~15-25%
/// over 0); configurable as `replication.commit_linger_us`.
pub const DEFAULT_COMMIT_LINGER: Duration = Duration::from_millis(2);

/// Identity and limits of one group's transport, shared by its client and server side.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// This node: cluster id, node id, shard count (checked in every handshake).
    pub local: LocalPeer,
    /// The group (= shard index) this transport carries.
    pub group: u32,
    /// Bound on one TCP connect (the RPC deadline bounds it too).
    pub connect_timeout: Duration,
    /// First delay after a failed connect; doubles per consecutive failure...
    pub backoff_min: Duration,
    /// ...up to this.
    pub backoff_max: Duration,
    /// Bytes of snapshot per `InstallSnapshot` frame (at most `SNAPSHOT_CHUNK_LEN`).
    pub snapshot_chunk_len: usize,
    /// Largest snapshot sent or reassembled (at most `MAX_SNAPSHOT_LEN`).
    pub max_snapshot_len: usize,
    /// A new connection must complete its handshake within this.
    pub handshake_timeout: Duration,
    /// A connection with no frame for this long is closed (peers reconnect on demand).
    pub idle_timeout: Duration,
    /// Connections one group's listener serves at once.
    pub max_connections: usize,
    /// Floor of the deadline of an `AppendEntries` that carries entries. openraft offers
    /// only the heartbeat interval for those (and does not enforce it on replication),
    /// which a batch of large entries plus the follower's fdatasync can exceed on a busy
    /// machine: every attempt would time out and the group would never catch up.
    pub append_timeout: Duration,
    /// Most `AppendEntries` a replication session has on the wire at once, answers still
    /// due (`pipeline`). The receiving side serves at most [`MAX_PIPELINED_APPENDS`] per
    /// connection at once and stops reading beyond that (backpressure, not an error).
    pub append_pipeline_depth: usize,
    /// Longest a commit-only `AppendEntries` (no entries, only a newer commit index) is
    /// held back for the next request to carry it (`pipeline`); zero sends each at once.
    pub commit_linger: Duration,
    /// Nodes dialed at a local override (shard-0 address) instead of the peer address
    /// their membership entry advertises (`config::PeerRoute`).
    pub routes: std::collections::HashMap<u64, std::net::SocketAddr>,
}

impl PeerConfig {
    /// Defaults for group `group` of node `local`.
    pub fn new(local: LocalPeer, group: u32) -> PeerConfig {
        PeerConfig {
            local,
            group,
            connect_timeout: Duration::from_secs(1),
            backoff_min: Duration::from_millis(20),
            backoff_max: Duration::from_millis(500),
            snapshot_chunk_len: SNAPSHOT_CHUNK_LEN,
            max_snapshot_len: MAX_SNAPSHOT_LEN,
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            max_connections: DEFAULT_MAX_PEER_CONNECTIONS,
            append_timeout: Duration::from_secs(1),
            append_pipeline_depth: DEFAULT_APPEND_PIPELINE_DEPTH,
            commit_linger: DEFAULT_COMMIT_LINGER,
            routes: std::collections::HashMap::new(),
        }
    }

    /// Checks the limits against the protocol's hard maxima.
    pub fn validate(&self) -> Result<(), String> {
        if self.snapshot_chunk_len == 0 || self.snapshot_chunk_len > SNAPSHOT_CHUNK_LEN {
            return Err(format!(
                "snapshot_chunk_len must be in 1..={SNAPSHOT_CHUNK_LEN}, got {}",
                self.snapshot_chunk_len
            ));
        }
        if self.max_snapshot_len > MAX_SNAPSHOT_LEN {
            return Err(format!(
                "max_snapshot_len must be at most {MAX_SNAPSHOT_LEN}, got {}",
                self.max_snapshot_len
            ));
        }
        if self.backoff_min.is_zero() || self.backoff_min > self.backoff_max {
            return Err("backoff_min must be > 0 and <= backoff_max".to_string());
        }
        if self.group >= self.local.shard_count {
            return Err(format!(
                "group {} does not exist with {} shards",
                self.group, self.local.shard_count
            ));
        }
        if self.append_pipeline_depth == 0 || self.append_pipeline_depth > MAX_PIPELINED_APPENDS {
            return Err(format!(
                "append_pipeline_depth must be in 1..={MAX_PIPELINED_APPENDS}, got {}",
                self.append_pipeline_depth
            ));
        }
        if self.commit_linger > Duration::from_secs(1) {
            return Err(format!(
                "commit_linger must be at most 1 s, got {:?}",
                self.commit_linger
            ));
        }
        if self.max_connections == 0 {
            return Err("max_connections must be > 0".to_string());
        }
        Ok(())
    }
}
