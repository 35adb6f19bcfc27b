//! Sans-IO reassembly of a chunked snapshot transfer on the receiving side.
//!
//! Invariants: chunks of one transfer carry the same vote and meta and arrive
//! in order with contiguous offsets from 0; a chunk at offset 0 starts a new transfer
//! (discarding an unfinished one: the leader restarted the send); the assembled size never
//! exceeds the configured limit, checked before the bytes are copied. Any violation drops
//! the transfer in progress.

use bytes::Bytes;
use bytes::BytesMut;
use shoal_proto::peer::InstallSnapshotRequest;
use shoal_proto::peer::SnapshotMeta;
use shoal_proto::peer::Vote;

/// Why a snapshot chunk was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssemblyError {
    /// A chunk at a non-zero offset arrived with no transfer in progress.
    #[error("snapshot chunk at offset {offset} without a transfer in progress")]
    NoTransfer {
        /// The chunk's offset.
        offset: u64,
    },
    /// A chunk's offset is not where the previous chunk ended.
    #[error("snapshot chunk at offset {offset}, expected {expected}")]
    OutOfOrder {
        /// The chunk's offset.
        offset: u64,
        /// Bytes received so far.
        expected: u64,
    },
    /// A chunk's vote or meta differs from the first chunk's.
    #[error("snapshot chunk belongs to another transfer")]
    Mismatch,
    /// The snapshot grew past the receiver's limit.
    #[error("snapshot larger than the {max}-byte limit")]
    TooLarge {
        /// The limit.
        max: usize,
    },
}

/// What a chunk completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkOutcome {
    /// More chunks are expected.
    Partial,
    /// The last chunk arrived: the whole snapshot.
    Complete {
        /// The sender's vote.
        vote: Vote,
        /// The snapshot's meta.
        meta: SnapshotMeta,
        /// The snapshot's bytes.
        data: Bytes,
    },
}

#[derive(Debug)]
struct Transfer {
    vote: Vote,
    meta: SnapshotMeta,
    data: BytesMut,
}

/// Reassembles the snapshot chunks of one connection.
#[derive(Debug)]
pub struct SnapshotAssembler {
    max_len: usize,
    current: Option<Transfer>,
}

impl SnapshotAssembler {
    /// An assembler that refuses snapshots larger than `max_len` bytes.
    pub fn new(max_len: usize) -> SnapshotAssembler {
        SnapshotAssembler {
            max_len,
            current: None,
        }
    }

    /// Bytes of the transfer in progress (0 when none).
    pub fn in_progress(&self) -> usize {
        self.current.as_ref().map_or(0, |t| t.data.len())
    }

    /// Adds one chunk. On error the transfer in progress is dropped.
    pub fn push(&mut self, chunk: InstallSnapshotRequest) -> Result<ChunkOutcome, AssemblyError> {
        let result = self.push_inner(chunk);
        if result.is_err() {
            self.current = None;
        }
        result
    }

    fn push_inner(&mut self, chunk: InstallSnapshotRequest) -> Result<ChunkOutcome, AssemblyError> {
        if chunk.offset == 0 {
            self.current = Some(Transfer {
                vote: chunk.vote,
                meta: chunk.meta.clone(),
                data: BytesMut::new(),
            });
        }
        let max = self.max_len;
        let Some(t) = self.current.as_mut() else {
            return Err(AssemblyError::NoTransfer {
                offset: chunk.offset,
            });
        };
        if t.vote != chunk.vote || t.meta != chunk.meta {
            return Err(AssemblyError::Mismatch);
        }
        let expected = t.data.len() as u64;
        if chunk.offset != expected {
            return Err(AssemblyError::OutOfOrder {
                offset: chunk.offset,
                expected,
            });
        }
        if t.data.len().saturating_add(chunk.data.len()) > max {
            return Err(AssemblyError::TooLarge { max });
        }
        t.data.extend_from_slice(&chunk.data);
        if !chunk.done {
            return Ok(ChunkOutcome::Partial);
        }
        let Some(t) = self.current.take() else {
            unreachable!("transfer checked above");
        };
        Ok(ChunkOutcome::Complete {
            vote: t.vote,
            meta: t.meta,
            data: t.data.freeze(),
        })
    }
}

#[cfg(test)]
mod tests {
    use shoal_proto::peer::{Membership, StoredMembership};

    use super::*;

    fn meta(id: &str) -> SnapshotMeta {
        SnapshotMeta {
            last_log_id: None,
            last_membership: StoredMembership {
                log_id: None,
                membership: Membership {
                    configs: vec![vec![1]],
                    nodes: vec![],
                },
            },
            snapshot_id: id.into(),
        }
    }

    fn vote() -> Vote {
        Vote {
            term: 1,
            node_id: Some(1),
            committed: true,
        }
    }

    fn chunk(offset: u64, data: &[u8], done: bool) -> InstallSnapshotRequest {
        InstallSnapshotRequest {
            vote: vote(),
            meta: meta("a"),
            offset,
            data: data.to_vec(),
            done,
        }
    }

    #[test]
    fn assembles_in_order_chunks_and_restarts_at_offset_zero() {
        let mut a = SnapshotAssembler::new(10);
        assert_eq!(a.push(chunk(0, b"abc", false)), Ok(ChunkOutcome::Partial));
        // A restart at offset 0 discards the partial transfer.
        assert_eq!(a.push(chunk(0, b"xy", false)), Ok(ChunkOutcome::Partial));
        assert_eq!(a.in_progress(), 2);
        match a.push(chunk(2, b"z", true)) {
            Ok(ChunkOutcome::Complete { data, meta: m, .. }) => {
                assert_eq!(&data[..], b"xyz");
                assert_eq!(m, meta("a"));
            }
            other => panic!("expected a complete snapshot, got {other:?}"),
        }
        assert_eq!(a.in_progress(), 0);
        // An empty snapshot is one empty, final chunk.
        assert!(matches!(
            a.push(chunk(0, b"", true)),
            Ok(ChunkOutcome::Complete { data, .. }) if data.is_empty()
        ));
    }

    #[test]
    fn refuses_gaps_foreign_chunks_and_oversize_and_drops_the_transfer() {
        let mut a = SnapshotAssembler::new(4);
        assert_eq!(
            a.push(chunk(3, b"x", false)),
            Err(AssemblyError::NoTransfer { offset: 3 })
        );
        a.push(chunk(0, b"ab", false)).unwrap();
        assert_eq!(
            a.push(chunk(3, b"x", false)),
            Err(AssemblyError::OutOfOrder {
                offset: 3,
                expected: 2
            })
        );
        assert_eq!(a.in_progress(), 0, "a refused chunk drops the transfer");
        a.push(chunk(0, b"ab", false)).unwrap();
        let mut other = chunk(2, b"c", false);
        other.meta = meta("b");
        assert_eq!(a.push(other), Err(AssemblyError::Mismatch));
        a.push(chunk(0, b"abc", false)).unwrap();
        assert_eq!(
            a.push(chunk(3, b"de", true)),
            Err(AssemblyError::TooLarge { max: 4 })
        );
    }
}
