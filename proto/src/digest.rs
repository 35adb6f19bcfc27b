//! `StateDigest` (`0x33`): the digest of one group's state machine on the answering
//! node, with the log position it was computed at, so that an operator or a test can
//! check that the replicas of a group hold identical state (compare digests taken at the
//! same applied index).
//!
//! Invariants: the digest is a function of the keys visible at the node's clock, their
//! values and absolute expiries only (not of history, table layout or reclamation);
//! `applied_index` is `None` only when the group applied nothing, and then
//! `applied_term` is 0.

use bytes::{BufMut, BytesMut};

use crate::error::BodyError;
use crate::limits::MAX_SHARDS;
use crate::wire::{Reader, put_opt_u64};

/// One group's digest on one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupDigest {
    /// The group.
    pub group: u32,
    /// Term of the last log entry applied when the digest was computed (0 with none).
    pub applied_term: u64,
    /// Index of that entry, if any.
    pub applied_index: Option<u64>,
    /// Keys visible when the digest was computed.
    pub keys: u64,
    /// The order-independent hash of those keys, their values and expiries.
    pub digest: u64,
}

impl GroupDigest {
    pub(crate) fn encode(&self, buf: &mut BytesMut) -> Result<(), BodyError> {
        if self.group as usize >= MAX_SHARDS {
            return Err(BodyError::Invalid("group id"));
        }
        buf.put_u32_le(self.group);
        buf.put_u64_le(self.applied_term);
        put_opt_u64(buf, self.applied_index);
        buf.put_u64_le(self.keys);
        buf.put_u64_le(self.digest);
        Ok(())
    }

    pub(crate) fn decode(r: &mut Reader) -> Result<GroupDigest, BodyError> {
        let group = r.u32()?;
        if group as usize >= MAX_SHARDS {
            return Err(BodyError::Invalid("group id"));
        }
        Ok(GroupDigest {
            group,
            applied_term: r.u64()?,
            applied_index: r.opt_u64("applied index presence")?,
            keys: r.u64()?,
            digest: r.u64()?,
        })
    }
}
