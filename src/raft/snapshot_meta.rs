//! The Raft metadata a shard snapshot carries in the opaque `meta` field of its header
//! (`docs/SNAPSHOT.md`): openraft's `SnapshotMeta` (last log id + membership with every
//! node's addresses), and the conversions between openraft's and the state machine's
//! log ids.
//!
//! Invariants:
//! - `decode(encode(m)) == m` for every meta whose membership `Membership::new` accepts.
//! - Decoding is strict and never panics: every count is checked against the bytes left
//!   before anything is allocated for it, strings must be UTF-8, and no byte may follow.
//! - The encoding is versioned (first byte); a reader refuses versions it does not know.
//!
//! Layout (little endian), version 1:
//! ```text
//! u8 version = 1
//! log id  last_log_id          (u8 flag 0|1, then u64 term, u64 node_id, u64 index if 1)
//! log id  membership log id
//! u32 configs, each: u32 voters, each u64 node id
//! u32 nodes,   each: u64 node id, u32 len + client_addr, u32 len + peer_addr
//! ```

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use openraft::Membership;
use openraft::vote::leader_id_adv::LeaderId;
use thiserror::Error;

use super::types::LogId;
use super::types::NodeId;
use super::types::ShoalNode;
use super::types::SnapshotMeta;
use super::types::StoredMembership;
use crate::state;

/// Version byte of the encoding below.
pub const META_VERSION: u8 = 1;

/// The snapshot metadata bytes are not a valid encoding.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MetaError {
    /// The bytes end before the metadata does.
    #[error("snapshot metadata truncated at offset {0}")]
    Truncated(usize),
    /// Unknown version byte.
    #[error("unsupported snapshot metadata version {0}")]
    UnsupportedVersion(u8),
    /// A structural rule is broken.
    #[error("invalid snapshot metadata: {0}")]
    Invalid(String),
    /// Bytes follow the metadata.
    #[error("{0} trailing bytes after the snapshot metadata")]
    TrailingBytes(usize),
}

/// openraft log id → state machine log id (lossless: `leader_id_adv` is `(term, node_id)`).
pub fn to_state_log_id(id: LogId) -> state::LogId {
    state::LogId {
        term: id.leader_id.term,
        node_id: id.leader_id.node_id,
        index: id.index,
    }
}

/// State machine log id → openraft log id.
pub fn from_state_log_id(id: state::LogId) -> LogId {
    LogId {
        leader_id: LeaderId {
            term: id.term,
            node_id: id.node_id,
        },
        index: id.index,
    }
}

/// Encodes `meta` (version 1).
pub fn encode_meta(meta: &SnapshotMeta) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.push(META_VERSION);
    put_log_id(&mut out, meta.last_log_id);
    put_log_id(&mut out, *meta.last_membership.log_id());
    let configs = meta.last_membership.get_joint_config();
    put_u32(&mut out, configs.len());
    for config in configs {
        put_u32(&mut out, config.len());
        for id in config {
            out.extend_from_slice(&id.to_le_bytes());
        }
    }
    let nodes: Vec<(&NodeId, &ShoalNode)> = meta.last_membership.nodes().collect();
    put_u32(&mut out, nodes.len());
    for (id, node) in nodes {
        out.extend_from_slice(&id.to_le_bytes());
        put_str(&mut out, &node.client_addr);
        put_str(&mut out, &node.peer_addr);
    }
    out
}

/// Decodes what `encode_meta` wrote.
pub fn decode_meta(bytes: &[u8]) -> Result<SnapshotMeta, MetaError> {
    let mut r = Reader { bytes, pos: 0 };
    let version = r.u8()?;
    if version != META_VERSION {
        return Err(MetaError::UnsupportedVersion(version));
    }
    let last_log_id = r.log_id()?;
    let membership_log_id = r.log_id()?;
    // Each voter id takes 8 bytes, each config at least 4: bound counts by what is left.
    let n_configs = r.count(4)?;
    let mut configs = Vec::with_capacity(n_configs);
    for _ in 0..n_configs {
        let n = r.count(8)?;
        let mut config = BTreeSet::new();
        for _ in 0..n {
            if !config.insert(r.u64()?) {
                return Err(MetaError::Invalid(
                    "a voter appears twice in a config".into(),
                ));
            }
        }
        configs.push(config);
    }
    let n_nodes = r.count(16)?;
    let mut nodes = BTreeMap::new();
    for _ in 0..n_nodes {
        let id = r.u64()?;
        let node = ShoalNode {
            client_addr: r.string()?,
            peer_addr: r.string()?,
        };
        if nodes.insert(id, node).is_some() {
            return Err(MetaError::Invalid("a node appears twice".into()));
        }
    }
    if r.pos != bytes.len() {
        return Err(MetaError::TrailingBytes(bytes.len() - r.pos));
    }
    let membership =
        Membership::new(configs, nodes).map_err(|e| MetaError::Invalid(e.to_string()))?;
    Ok(SnapshotMeta {
        last_log_id,
        last_membership: StoredMembership::new(membership_log_id, membership),
    })
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    // Membership sizes and addresses are tiny; the whole meta is bounded by
    // `state::MAX_META_LEN` (64 KiB) when the snapshot is begun.
    let n = u32::try_from(n).unwrap_or(u32::MAX);
    out.extend_from_slice(&n.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u32(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn put_log_id(out: &mut Vec<u8>, id: Option<LogId>) {
    match id {
        None => out.push(0),
        Some(id) => {
            out.push(1);
            out.extend_from_slice(&id.leader_id.term.to_le_bytes());
            out.extend_from_slice(&id.leader_id.node_id.to_le_bytes());
            out.extend_from_slice(&id.index.to_le_bytes());
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], MetaError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or(MetaError::Truncated(self.pos))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, MetaError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, MetaError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, MetaError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }

    /// A count of items of at least `min_item_len` bytes each, bounded by the bytes left.
    fn count(&mut self, min_item_len: usize) -> Result<usize, MetaError> {
        let n = self.u32()? as usize;
        let left = self.bytes.len() - self.pos;
        if n.saturating_mul(min_item_len) > left {
            return Err(MetaError::Truncated(self.pos));
        }
        Ok(n)
    }

    fn string(&mut self) -> Result<String, MetaError> {
        let n = self.u32()? as usize;
        let b = self.take(n)?;
        std::str::from_utf8(b)
            .map(str::to_string)
            .map_err(|_| MetaError::Invalid("an address is not UTF-8".into()))
    }

    fn log_id(&mut self) -> Result<Option<LogId>, MetaError> {
        match self.u8()? {
            0 => Ok(None),
            1 => {
                let term = self.u64()?;
                let node_id = self.u64()?;
                let index = self.u64()?;
                Ok(Some(LogId {
                    leader_id: LeaderId { term, node_id },
                    index,
                }))
            }
            f => Err(MetaError::Invalid(format!("log id flag {f}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lid(term: u64, node_id: u64, index: u64) -> LogId {
        LogId {
            leader_id: LeaderId { term, node_id },
            index,
        }
    }

    fn node(i: u64) -> ShoalNode {
        ShoalNode {
            client_addr: format!("10.0.0.{i}:7400"),
            peer_addr: format!("10.0.0.{i}:7600"),
        }
    }

    fn sample() -> SnapshotMeta {
        // A joint config with a learner (4).
        let membership = Membership::new(
            vec![BTreeSet::from([1, 2, 3]), BTreeSet::from([2, 3])],
            BTreeMap::from([(1, node(1)), (2, node(2)), (3, node(3)), (4, node(4))]),
        )
        .unwrap();
        SnapshotMeta {
            last_log_id: Some(lid(7, 2, 1234)),
            last_membership: StoredMembership::new(Some(lid(5, 1, 900)), membership),
        }
    }

    #[test]
    fn meta_round_trips() {
        let m = sample();
        assert_eq!(decode_meta(&encode_meta(&m)), Ok(m));
        let empty = SnapshotMeta::default();
        assert_eq!(decode_meta(&encode_meta(&empty)), Ok(empty));
    }

    #[test]
    fn log_id_conversion_is_lossless() {
        let id = lid(3, 9, 77);
        assert_eq!(from_state_log_id(to_state_log_id(id)), id);
    }

    #[test]
    fn every_truncation_and_trailing_byte_is_an_error() {
        let bytes = encode_meta(&sample());
        for n in 0..bytes.len() {
            assert!(decode_meta(&bytes[..n]).is_err(), "prefix of {n} bytes");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(decode_meta(&long), Err(MetaError::TrailingBytes(1)));
        let mut bad_version = bytes;
        bad_version[0] = 2;
        assert_eq!(
            decode_meta(&bad_version),
            Err(MetaError::UnsupportedVersion(2))
        );
    }

    #[test]
    fn huge_counts_are_refused_before_allocating() {
        let mut bytes = vec![META_VERSION, 0, 0];
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode_meta(&bytes), Err(MetaError::Truncated(_))));
    }

    #[test]
    fn a_voter_without_a_node_is_invalid() {
        let mut bytes = vec![META_VERSION, 0, 0];
        bytes.extend_from_slice(&1u32.to_le_bytes());
        bytes.extend_from_slice(&1u32.to_le_bytes());
        bytes.extend_from_slice(&5u64.to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        assert!(matches!(decode_meta(&bytes), Err(MetaError::Invalid(_))));
    }
}
