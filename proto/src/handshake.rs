//! The client handshake: the `Hello` request and its answer, and version negotiation.
//!
//! Invariants: `Hello` is the first frame of every client connection and is the same in
//! every protocol version (magic, version range), so any two versions can find out that
//! they disagree. A node answers a `Hello` whose range does not contain a version it
//! speaks with an `IncompatibleVersion` error listing its own range, then closes.

use bytes::{BufMut, BytesMut};

use crate::error::BodyError;
use crate::frame::{MAX_PROTOCOL_VERSION, MIN_PROTOCOL_VERSION};
use crate::limits::MAX_SHARDS;
use crate::wire::{Reader, put_opt_index};

/// Magic at the start of every `Hello` body: ASCII "SHOL".
pub const MAGIC: [u8; 4] = *b"SHOL";

/// A client's opening frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    /// Oldest protocol version the client speaks.
    pub min_version: u8,
    /// Newest protocol version the client speaks.
    pub max_version: u8,
}

impl Default for Hello {
    fn default() -> Self {
        Hello {
            min_version: MIN_PROTOCOL_VERSION,
            max_version: MAX_PROTOCOL_VERSION,
        }
    }
}

/// The node's answer to an acceptable `Hello`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HelloOk {
    /// The version both sides speak from now on (the highest common one).
    pub version: u8,
    /// Cluster identity.
    pub cluster_id: u64,
    /// The answering node's id.
    pub node_id: u64,
    /// The cluster's shard count.
    pub shard_count: u32,
    /// The shard that serves this connection when it was opened on a per-shard address;
    /// `None` when the node routes each request to its shard.
    pub connection_shard: Option<u32>,
    /// Largest request body the node accepts (at most `MAX_FRAME_LEN`).
    pub max_frame_len: u32,
    /// Requests this connection may have in flight before the node answers `Busy`.
    pub max_in_flight: u32,
}

/// Picks the highest version both `hello` and this crate speak; `None` when the ranges
/// do not overlap (answer `IncompatibleVersion` and close).
pub fn negotiate_version(hello: &Hello) -> Option<u8> {
    let hi = hello.max_version.min(MAX_PROTOCOL_VERSION);
    let lo = hello.min_version.max(MIN_PROTOCOL_VERSION);
    (lo <= hi).then_some(hi)
}

impl Hello {
    pub(crate) fn encode(&self, buf: &mut BytesMut) -> Result<(), BodyError> {
        if self.min_version > self.max_version {
            return Err(BodyError::Invalid("hello version range"));
        }
        buf.put_slice(&MAGIC);
        buf.put_u8(self.min_version);
        buf.put_u8(self.max_version);
        Ok(())
    }

    pub(crate) fn decode(r: &mut Reader) -> Result<Hello, BodyError> {
        let magic = r.bytes(MAGIC.len())?;
        if magic[..] != MAGIC {
            return Err(BodyError::Invalid("hello magic (not a Shoal client)"));
        }
        let min_version = r.u8()?;
        let max_version = r.u8()?;
        if min_version > max_version {
            return Err(BodyError::Invalid("hello version range"));
        }
        Ok(Hello {
            min_version,
            max_version,
        })
    }
}

impl HelloOk {
    pub(crate) fn encode(&self, buf: &mut BytesMut) -> Result<(), BodyError> {
        if self.shard_count == 0 || self.shard_count as usize > MAX_SHARDS {
            return Err(BodyError::Invalid("shard count outside 1..=MAX_SHARDS"));
        }
        buf.put_u8(self.version);
        buf.put_u64_le(self.cluster_id);
        buf.put_u64_le(self.node_id);
        buf.put_u32_le(self.shard_count);
        put_opt_index(buf, self.connection_shard, self.shard_count as usize)?;
        buf.put_u32_le(self.max_frame_len);
        buf.put_u32_le(self.max_in_flight);
        Ok(())
    }

    pub(crate) fn decode(r: &mut Reader) -> Result<HelloOk, BodyError> {
        let version = r.u8()?;
        let cluster_id = r.u64()?;
        let node_id = r.u64()?;
        let shard_count = r.u32()?;
        if shard_count == 0 || shard_count as usize > MAX_SHARDS {
            return Err(BodyError::Invalid("shard count outside 1..=MAX_SHARDS"));
        }
        let connection_shard = r.opt_index(shard_count as usize, "connection shard")?;
        Ok(HelloOk {
            version,
            cluster_id,
            node_id,
            shard_count,
            connection_shard,
            max_frame_len: r.u32()?,
            max_in_flight: r.u32()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_picks_highest_common_or_refuses() {
        assert_eq!(negotiate_version(&Hello::default()), Some(1));
        assert_eq!(
            negotiate_version(&Hello {
                min_version: 1,
                max_version: 9
            }),
            Some(1)
        );
        assert_eq!(
            negotiate_version(&Hello {
                min_version: 2,
                max_version: 9
            }),
            None
        );
        assert_eq!(
            negotiate_version(&Hello {
                min_version: 0,
                max_version: 0
            }),
            None
        );
    }
}
