//! Reading a shard's Raft log back: [`WalLogReader`] (handed by openraft to replication
//! tasks and the state machine worker) and the read side of [`WalLogStore`].
//!
//! Invariants: reads return the live entries of the requested range clamped to the live
//! log, contiguous and in order, each checked to be the entry of its index; entries are
//! visible as soon as `append` returned (the WAL's tail cache), before they are durable;
//! a replication read stops after [`MAX_REPLICATION_READ_BYTES`] of entries (at least one).

use std::fmt;
use std::fmt::Debug;
use std::io;
use std::ops::Bound;
use std::ops::RangeBounds;
use std::rc::Rc;

use futures::Stream;
use futures::StreamExt;
use futures::stream;
use openraft::OptionalSend;
use openraft::RaftLogReader;
use shoal_wal::Disk;

use super::TypeConfig;
use super::log_codec;
use super::log_shared::{LogStoreError, Shared, decode_at};
use super::log_store::WalLogStore;
use super::types::Entry;
use super::types::EntryPayload;
use super::types::Vote;
use crate::limits::MAX_REPLICATION_READ_BYTES;

/// Entries read per WAL read while filling a byte-capped replication batch.
const LIMITED_READ_CHUNK: u64 = 64;

/// A reader of the log (handed to replication tasks and the state machine worker).
pub struct WalLogReader<D: Disk + Clone + 'static> {
    pub(super) shared: Rc<Shared<D>>,
}

impl<D: Disk + Clone + 'static> Clone for WalLogReader<D> {
    fn clone(&self) -> Self {
        WalLogReader {
            shared: self.shared.clone(),
        }
    }
}

impl<D: Disk + Clone + 'static> Debug for WalLogReader<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WalLogReader").finish_non_exhaustive()
    }
}

impl<D: Disk + Clone + 'static> Shared<D> {
    /// Reads and decodes the live entries in `lo..hi`, clamped to the live range.
    pub(super) async fn read(&self, lo: u64, hi: u64) -> Result<Vec<Entry>, LogStoreError> {
        self.usable()?;
        let (Some(first), Some(last)) = (self.wal.first_index(), self.wal.last_index()) else {
            return Ok(Vec::new());
        };
        let (lo, hi) = (lo.max(first), hi.min(last.saturating_add(1)));
        if lo >= hi {
            return Ok(Vec::new());
        }
        let records = self.wal.read_range(lo, hi).await?;
        let mut out = Vec::with_capacity(records.len());
        for (index, payload) in records {
            let entry = decode_at(index, &payload)?;
            out.push(entry);
        }
        Ok(out)
    }
}

fn bounds<RB: RangeBounds<u64>>(range: &RB) -> (u64, u64) {
    let lo = match range.start_bound() {
        Bound::Included(&i) => i,
        Bound::Excluded(&i) => i.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let hi = match range.end_bound() {
        Bound::Included(&i) => i.saturating_add(1),
        Bound::Excluded(&i) => i,
        Bound::Unbounded => u64::MAX,
    };
    (lo, hi)
}

impl<D: Disk + Clone + 'static> WalLogReader<D> {
    /// Entries from `start` (clamped to the live log) up to `end`, stopping once
    /// [`MAX_REPLICATION_READ_BYTES`] of entries were collected (at least one entry).
    async fn limited(&self, start: u64, end: u64) -> Result<Vec<Entry>, LogStoreError> {
        let mut out: Vec<Entry> = Vec::new();
        let mut bytes = 0usize;
        let mut lo = start;
        while lo < end {
            let hi = end.min(lo.saturating_add(LIMITED_READ_CHUNK));
            let chunk = self.shared.read(lo, hi).await?;
            let Some(last) = chunk.last().map(|e| e.log_id.index) else {
                break;
            };
            for e in chunk {
                if !out.is_empty() && bytes >= MAX_REPLICATION_READ_BYTES {
                    return Ok(out);
                }
                bytes += entry_size(&e);
                out.push(e);
            }
            lo = last + 1;
        }
        Ok(out)
    }
}

/// Approximate encoded size of an entry (what a replication batch costs on the wire).
fn entry_size(e: &Entry) -> usize {
    log_codec::ENTRY_HEADER_LEN
        + match &e.payload {
            EntryPayload::Blank => 0,
            EntryPayload::Normal(r) => r.command.len(),
            EntryPayload::Membership(m) => m
                .nodes()
                .map(|(_, n)| 12 + n.client_addr.len() + n.peer_addr.len())
                .sum::<usize>()
                .saturating_add(64),
        }
}

impl<D: Disk + Clone + 'static> RaftLogReader<TypeConfig> for WalLogReader<D> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let (lo, hi) = bounds(&range);
        Ok(self.shared.read(lo, hi).await?)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        self.shared.usable()?;
        Ok(self.shared.st.borrow().vote)
    }

    /// Caps the batch at [`MAX_REPLICATION_READ_BYTES`] of entry bytes (at least one entry).
    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry>, io::Error> {
        Ok(self.limited(start, end).await?)
    }

    /// The state machine's apply path: streams the range in byte-capped chunks (at most
    /// [`MAX_REPLICATION_READ_BYTES`] plus one entry in memory at a time) instead of reading
    /// the whole range at once, which after a restart can be the whole log since the last
    /// snapshot. Entries missing at the start (purged) are skipped, as openraft allows; a
    /// gap after the first chunk is an error.
    async fn entries_stream<RB>(
        &mut self,
        range: RB,
    ) -> impl Stream<Item = Result<Entry, io::Error>> + OptionalSend
    where
        RB: RangeBounds<u64> + Clone + Debug + OptionalSend,
    {
        let (lo, hi) = bounds(&range);
        let reader = self.clone();
        // State: (next index, whether a chunk was read, stop).
        stream::unfold((lo, false, false), move |(next, started, stop)| {
            let reader = reader.clone();
            async move {
                if stop || next >= hi {
                    return None;
                }
                let chunk = match reader.limited(next, hi).await {
                    Ok(chunk) => chunk,
                    Err(e) => return Some((stream::iter(vec![Err(e.into())]), (next, true, true))),
                };
                let (first, last) = match (chunk.first(), chunk.last()) {
                    (Some(f), Some(l)) => (f.log_id.index, l.log_id.index),
                    _ => return None,
                };
                if started && first != next {
                    let e = LogStoreError::Inconsistent(format!(
                        "log entries {next}..{first} vanished while being streamed"
                    ));
                    return Some((stream::iter(vec![Err(e.into())]), (next, true, true)));
                }
                let items: Vec<Result<Entry, io::Error>> = chunk.into_iter().map(Ok).collect();
                Some((stream::iter(items), (last + 1, true, false)))
            }
        })
        .flatten()
    }
}

impl<D: Disk + Clone + 'static> RaftLogReader<TypeConfig> for WalLogStore<D> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let (lo, hi) = bounds(&range);
        Ok(self.shared.read(lo, hi).await?)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        self.shared.usable()?;
        Ok(self.shared.st.borrow().vote)
    }
}
