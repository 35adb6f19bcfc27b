//! TEST-ONLY state machine whose snapshots are `Bytes` (Shoal's `SnapshotData`, what the
//! peer transport carries), built on [`MemStateMachine`].
//!
//! The snapshot bytes encode the applied commands (each as u32 little-endian length +
//! bytes); `last_applied` and the membership travel in the snapshot's meta. Decoding
//! refuses malformed bytes with an `io::Error` (openraft stops the node on it).

use std::io;

use bytes::BufMut;
use bytes::Bytes;
use bytes::BytesMut;
use futures::Stream;
use openraft::OptionalSend;
use openraft::RaftSnapshotBuilder;
use openraft::storage::EntryResponder;
use openraft::storage::RaftStateMachine;
use shoal::raft::TypeConfig;
use shoal::raft::types::LogId;
use shoal::raft::types::Snapshot;
use shoal::raft::types::SnapshotMeta;
use shoal::raft::types::StoredMembership;

use super::mem_store::MemState;
use super::mem_store::MemStateMachine;

/// [`MemStateMachine`] with `Bytes` snapshots.
#[derive(Debug, Clone, Default)]
pub struct BytesSm {
    pub inner: MemStateMachine,
}

/// Encodes the commands of `state`.
pub fn encode(state: &MemState) -> Bytes {
    let mut buf = BytesMut::new();
    for c in &state.commands {
        buf.put_u32_le(c.len() as u32);
        buf.put_slice(c);
    }
    buf.freeze()
}

/// Decodes snapshot bytes into a state, taking `last_applied` and membership from `meta`.
pub fn decode(meta: &SnapshotMeta, data: &Bytes) -> io::Result<MemState> {
    let mut commands = Vec::new();
    let mut at = 0usize;
    while at < data.len() {
        let len_bytes: [u8; 4] = data
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| io::Error::other("truncated snapshot length"))?;
        let len = u32::from_le_bytes(len_bytes) as usize;
        at += 4;
        let end = at
            .checked_add(len)
            .filter(|&e| e <= data.len())
            .ok_or_else(|| io::Error::other("truncated snapshot command"))?;
        commands.push(data.slice(at..end));
        at = end;
    }
    Ok(MemState {
        last_applied: meta.last_log_id,
        membership: meta.last_membership.clone(),
        commands,
    })
}

fn to_bytes(s: Snapshot<MemState>) -> Snapshot<Bytes> {
    Snapshot {
        snapshot: encode(&s.snapshot),
        meta: s.meta,
    }
}

impl RaftSnapshotBuilder<TypeConfig> for BytesSm {
    type SnapshotData = Bytes;

    async fn build_snapshot(&mut self) -> Result<Snapshot<Bytes>, io::Error> {
        Ok(to_bytes(self.inner.build_snapshot().await?))
    }
}

impl RaftStateMachine<TypeConfig> for BytesSm {
    type SnapshotData = Bytes;
    type SnapshotBuilder = BytesSm;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        self.inner.applied_state().await
    }

    async fn apply<Strm>(&mut self, entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        self.inner.apply(entries).await
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Bytes,
    ) -> Result<(), io::Error> {
        let state = decode(meta, &snapshot)?;
        self.inner.install_snapshot(meta, state).await
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<Bytes>>, io::Error> {
        Ok(self.inner.get_current_snapshot().await?.map(to_bytes))
    }
}
