//! Cluster description carried by client frames: nodes, topology and Raft status.
//!
//! Invariants: every count is checked against its limit (`MAX_NODES`, `MAX_SHARDS`)
//! before a vector is allocated; addresses are UTF-8 of at most `MAX_ADDR_LEN` bytes; a
//! topology always has `1..=MAX_SHARDS` shards, exactly one leader entry per shard, and
//! per-shard addresses either absent or one per shard. The hash is fixed (see
//! [`routing`](crate::routing)) and stated on the wire so a client can refuse a cluster
//! that routes differently.

use bytes::{BufMut, BytesMut};

use crate::error::BodyError;
use crate::limits::{MAX_ADDR_LEN, MAX_NODES, MAX_SHARDS};
use crate::routing::HASH_XXH3_64_SEED0;
use crate::wire::{Reader, put_opt_u64, put_string, put_u64_list};

/// A node of the cluster and the address clients reach it at.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeInfo {
    /// Raft node id.
    pub node_id: u64,
    /// Client address, `host:port` (any shard of the node is reachable through it; the
    /// node forwards to the owning shard).
    pub addr: String,
    /// Optional per-shard client addresses: empty, or one per shard (index = shard).
    /// When present, a client should prefer them: no forwarding hop.
    pub shard_addrs: Vec<String>,
}

/// The leader of one Raft group, as last known by the answering node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GroupLeader {
    /// Leader's node id; `None` during an election.
    pub leader: Option<u64>,
    /// Raft term of that knowledge (a client keeps the entry with the higher term).
    pub term: u64,
}

/// Everything a client needs to route requests by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// Cluster identity, so a client never mixes two clusters.
    pub cluster_id: u64,
    /// Number of shards S (= Raft groups); a key belongs to `shard_for_key(key, S)`.
    pub shard_count: u32,
    /// All nodes, voters and learners.
    pub nodes: Vec<NodeInfo>,
    /// One entry per shard, index = shard = group id.
    pub leaders: Vec<GroupLeader>,
}

/// A node's role in one Raft group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RaftRole {
    /// Leads the group.
    Leader = 0,
    /// Voter following a leader.
    Follower = 1,
    /// Voter campaigning.
    Candidate = 2,
    /// Non-voting replica.
    Learner = 3,
    /// The group is stopped on this node (shutting down, or poisoned storage).
    Shutdown = 4,
}

impl RaftRole {
    fn from_u8(v: u8) -> Option<RaftRole> {
        Some(match v {
            0 => RaftRole::Leader,
            1 => RaftRole::Follower,
            2 => RaftRole::Candidate,
            3 => RaftRole::Learner,
            4 => RaftRole::Shutdown,
            _ => return None,
        })
    }
}

/// Raft status of one group on the answering node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupStatus {
    /// Group id (= shard).
    pub group: u32,
    /// This node's role.
    pub role: RaftRole,
    /// Current term.
    pub term: u64,
    /// Known leader.
    pub leader: Option<u64>,
    /// Index of the last log entry.
    pub last_log_index: Option<u64>,
    /// Index of the last committed entry.
    pub committed_index: Option<u64>,
    /// Index of the last entry applied to the state machine.
    pub applied_index: Option<u64>,
    /// Voter ids of the effective membership (the union during a joint change).
    pub voters: Vec<u64>,
    /// Learner ids.
    pub learners: Vec<u64>,
}

/// Answer to a `Status` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    /// The answering node.
    pub node_id: u64,
    /// The requested group, or every group of the node.
    pub groups: Vec<GroupStatus>,
}

pub(crate) fn check_addr(addr: &str) -> Result<(), BodyError> {
    if addr.len() > MAX_ADDR_LEN {
        return Err(BodyError::Invalid("address longer than MAX_ADDR_LEN"));
    }
    Ok(())
}

pub(crate) fn check_node_list(v: &[u64]) -> Result<(), BodyError> {
    if v.len() > MAX_NODES {
        return Err(BodyError::Invalid("more node ids than MAX_NODES"));
    }
    Ok(())
}

pub(crate) fn put_node(buf: &mut BytesMut, n: &NodeInfo) -> Result<(), BodyError> {
    check_addr(&n.addr)?;
    buf.put_u64_le(n.node_id);
    put_string(buf, &n.addr);
    if n.shard_addrs.len() > MAX_SHARDS {
        return Err(BodyError::Invalid("more shard addresses than MAX_SHARDS"));
    }
    buf.put_u16_le(n.shard_addrs.len() as u16);
    for a in &n.shard_addrs {
        check_addr(a)?;
        put_string(buf, a);
    }
    Ok(())
}

pub(crate) fn read_node(r: &mut Reader) -> Result<NodeInfo, BodyError> {
    let node_id = r.u64()?;
    let addr = r.string(MAX_ADDR_LEN, "node address")?;
    let n = r.u16()? as usize;
    if n > MAX_SHARDS {
        return Err(BodyError::Invalid("more shard addresses than MAX_SHARDS"));
    }
    let mut shard_addrs = Vec::with_capacity(n);
    for _ in 0..n {
        shard_addrs.push(r.string(MAX_ADDR_LEN, "shard address")?);
    }
    Ok(NodeInfo {
        node_id,
        addr,
        shard_addrs,
    })
}

impl Topology {
    fn validate(&self) -> Result<(), BodyError> {
        let s = self.shard_count as usize;
        if s == 0 || s > MAX_SHARDS {
            return Err(BodyError::Invalid("shard count outside 1..=MAX_SHARDS"));
        }
        if self.nodes.len() > MAX_NODES {
            return Err(BodyError::Invalid("more nodes than MAX_NODES"));
        }
        if self.leaders.len() != s {
            return Err(BodyError::Invalid(
                "leader list length differs from shard count",
            ));
        }
        if self
            .nodes
            .iter()
            .any(|n| !n.shard_addrs.is_empty() && n.shard_addrs.len() != s)
        {
            return Err(BodyError::Invalid(
                "per-shard address list length differs from shard count",
            ));
        }
        Ok(())
    }

    pub(crate) fn encode(&self, buf: &mut BytesMut) -> Result<(), BodyError> {
        self.validate()?;
        buf.put_u8(HASH_XXH3_64_SEED0);
        buf.put_u64_le(self.cluster_id);
        buf.put_u32_le(self.shard_count);
        buf.put_u16_le(self.nodes.len() as u16);
        for n in &self.nodes {
            put_node(buf, n)?;
        }
        for l in &self.leaders {
            put_opt_u64(buf, l.leader);
            buf.put_u64_le(l.term);
        }
        Ok(())
    }

    pub(crate) fn decode(r: &mut Reader) -> Result<Topology, BodyError> {
        if r.u8()? != HASH_XXH3_64_SEED0 {
            return Err(BodyError::Invalid("unknown shard hash"));
        }
        let cluster_id = r.u64()?;
        let shard_count = r.u32()?;
        if shard_count == 0 || shard_count as usize > MAX_SHARDS {
            return Err(BodyError::Invalid("shard count outside 1..=MAX_SHARDS"));
        }
        let n = r.u16()? as usize;
        if n > MAX_NODES {
            return Err(BodyError::Invalid("more nodes than MAX_NODES"));
        }
        let mut nodes = Vec::with_capacity(n);
        for _ in 0..n {
            nodes.push(read_node(r)?);
        }
        let mut leaders = Vec::with_capacity(shard_count as usize);
        for _ in 0..shard_count {
            let leader = r.opt_u64("leader presence")?;
            let term = r.u64()?;
            leaders.push(GroupLeader { leader, term });
        }
        let t = Topology {
            cluster_id,
            shard_count,
            nodes,
            leaders,
        };
        t.validate()?;
        Ok(t)
    }
}

impl GroupStatus {
    fn encode(&self, buf: &mut BytesMut) -> Result<(), BodyError> {
        check_node_list(&self.voters)?;
        check_node_list(&self.learners)?;
        if self.group as usize >= MAX_SHARDS {
            return Err(BodyError::Invalid("group id"));
        }
        buf.put_u32_le(self.group);
        buf.put_u8(self.role as u8);
        buf.put_u64_le(self.term);
        put_opt_u64(buf, self.leader);
        put_opt_u64(buf, self.last_log_index);
        put_opt_u64(buf, self.committed_index);
        put_opt_u64(buf, self.applied_index);
        put_u64_list(buf, &self.voters);
        put_u64_list(buf, &self.learners);
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<GroupStatus, BodyError> {
        let group = r.u32()?;
        if group as usize >= MAX_SHARDS {
            return Err(BodyError::Invalid("group id"));
        }
        let role = RaftRole::from_u8(r.u8()?).ok_or(BodyError::Invalid("raft role"))?;
        Ok(GroupStatus {
            group,
            role,
            term: r.u64()?,
            leader: r.opt_u64("leader presence")?,
            last_log_index: r.opt_u64("last log index presence")?,
            committed_index: r.opt_u64("committed index presence")?,
            applied_index: r.opt_u64("applied index presence")?,
            voters: r.u64_list(MAX_NODES, "voter count")?,
            learners: r.u64_list(MAX_NODES, "learner count")?,
        })
    }
}

impl StatusReport {
    pub(crate) fn encode(&self, buf: &mut BytesMut) -> Result<(), BodyError> {
        if self.groups.len() > MAX_SHARDS {
            return Err(BodyError::Invalid("more groups than MAX_SHARDS"));
        }
        buf.put_u64_le(self.node_id);
        buf.put_u16_le(self.groups.len() as u16);
        for g in &self.groups {
            g.encode(buf)?;
        }
        Ok(())
    }

    pub(crate) fn decode(r: &mut Reader) -> Result<StatusReport, BodyError> {
        let node_id = r.u64()?;
        let n = r.u16()? as usize;
        if n > MAX_SHARDS {
            return Err(BodyError::Invalid("more groups than MAX_SHARDS"));
        }
        let mut groups = Vec::with_capacity(n);
        for _ in 0..n {
            groups.push(GroupStatus::decode(r)?);
        }
        Ok(StatusReport { node_id, groups })
    }
}
