//! The state one shard's Raft log store shares between the store handle, its readers and
//! its background tasks: the WAL, what is known about the log (vote, committed, last
//! purged and last log ids), the poison flag, and the metadata write path.
//!
//! Invariants: no `RefCell` borrow is held across an `.await`; metadata writes are
//! serialized by `meta_lock` and each writes the whole current [`LogMeta`]; the committed id
//! written never names an entry this log does not hold durably (see `write_meta`); the
//! first failure is kept and every later call fails with it.

use std::cell::RefCell;
use std::io;

use bytes::Bytes;
use futures::channel::mpsc;
use openraft::storage::IOFlushed;
use shoal_wal::Disk;
use shoal_wal::Ticket;
use shoal_wal::Wal;
use shoal_wal::WalError;
use shoal_wal::WalStats;

use super::TypeConfig;
use super::log_codec::{self, CodecError, EncodeError, LogMeta};
use super::log_store::AckMode;
use super::types::Entry;
use super::types::LogId;
use super::types::Vote;

/// Why the log store failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LogStoreError {
    /// The WAL failed (I/O, corruption, poisoned, closed).
    #[error(transparent)]
    Wal(#[from] WalError),
    /// A WAL record or the metadata did not decode.
    #[error("undecodable {what} in the WAL: {source}")]
    Codec {
        /// What was being decoded.
        what: String,
        /// Why it failed.
        #[source]
        source: CodecError,
    },
    /// An entry cannot be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The WAL and its metadata disagree, or openraft broke the storage contract.
    #[error("Raft log inconsistency: {0}")]
    Inconsistent(String),
    /// An earlier write failed; the store refuses every call (never retried).
    #[error("Raft log store is poisoned by an earlier failure: {0}")]
    Poisoned(String),
    /// The store was closed.
    #[error("Raft log store is closed")]
    Closed,
}

impl From<LogStoreError> for io::Error {
    fn from(e: LogStoreError) -> io::Error {
        io::Error::other(e)
    }
}

/// Figures of one log store since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStoreStats {
    /// The WAL's own counters (durable writes, entries, bytes).
    pub wal: WalStats,
    /// `append` calls.
    pub appends: u64,
    /// Entries appended.
    pub entries: u64,
    /// Encoded entry bytes appended.
    pub entry_bytes: u64,
    /// Durable metadata writes (votes, committed, purges).
    pub meta_writes: u64,
    /// Flush completions reported to openraft (Ok or Err).
    pub flushes_reported: u64,
    /// Last index in the WAL (submitted, maybe not yet durable).
    pub last_index: Option<u64>,
    /// Purge floor of the WAL: every index below it is gone.
    pub floor: u64,
}

#[derive(Debug, Default)]
pub(super) struct State {
    pub(super) poison: Option<String>,
    pub(super) closed: bool,
    pub(super) vote: Option<Vote>,
    /// The latest committed log id openraft gave (memory only).
    pub(super) committed: Option<LogId>,
    /// What the metadata slot holds as committed.
    pub(super) saved_committed: Option<LogId>,
    pub(super) last_purged: Option<LogId>,
    pub(super) last_log_id: Option<LogId>,
    pub(super) committed_persist_running: bool,
    pub(super) stats: LogStoreStats,
}

pub(super) struct Shared<D: Disk> {
    pub(super) wal: Wal<D>,
    pub(super) ack: AckMode,
    pub(super) st: RefCell<State>,
    /// Serializes metadata writes; each writes the whole current [`LogMeta`].
    pub(super) meta_lock: futures::lock::Mutex<()>,
    /// Append tickets with their callbacks, completed in order by the completion task.
    pub(super) completions: mpsc::UnboundedSender<(Ticket, IOFlushed<TypeConfig>)>,
}

pub(super) fn codec_err(what: impl Into<String>, source: CodecError) -> LogStoreError {
    LogStoreError::Codec {
        what: what.into(),
        source,
    }
}

impl<D: Disk + Clone + 'static> Shared<D> {
    pub(super) fn usable(&self) -> Result<(), LogStoreError> {
        let st = self.st.borrow();
        if let Some(p) = &st.poison {
            return Err(LogStoreError::Poisoned(p.clone()));
        }
        if st.closed {
            return Err(LogStoreError::Closed);
        }
        Ok(())
    }

    /// Records the first failure; every later call fails with it.
    pub(super) fn poison(&self, e: &LogStoreError) {
        let mut st = self.st.borrow_mut();
        if st.poison.is_none() {
            st.poison = Some(e.to_string());
        }
    }

    /// Runs `r`, poisoning the store if it failed.
    pub(super) fn check<T>(&self, r: Result<T, LogStoreError>) -> Result<T, LogStoreError> {
        if let Err(e) = &r {
            self.poison(e);
        }
        r
    }

    /// Whether `id` names an entry of this log (submitted, maybe not durable yet) or one
    /// purged into a snapshot (purges only drop committed entries).
    pub(super) async fn holds(&self, id: LogId) -> Result<bool, LogStoreError> {
        let purged = self.st.borrow().last_purged;
        if purged.is_some_and(|p| id.index <= p.index) {
            return Ok(purged.is_some_and(|p| id <= p));
        }
        let (Some(first), Some(last)) = (self.wal.first_index(), self.wal.last_index()) else {
            return Ok(false);
        };
        if id.index < first || id.index > last {
            return Ok(false);
        }
        let recs = self.wal.read_range(id.index, id.index + 1).await?;
        match recs.first() {
            Some((index, payload)) => Ok(decode_at(*index, payload)?.log_id == id),
            None => Ok(false),
        }
    }

    /// Writes the metadata durably: the current vote (or `vote` if given), the last purged
    /// id (or `purged`), and the newest committed id whose entry is durable. Caller holds
    /// `meta_lock`.
    pub(super) async fn write_meta(
        &self,
        vote: Option<Vote>,
        purged: Option<LogId>,
    ) -> Result<(), LogStoreError> {
        // The committed id is saved only if this log holds exactly that entry (or purged
        // it into a snapshot): a follower may learn of a commit before it has the entry,
        // or hold a conflicting entry at that index that is about to be truncated.
        let (candidate, saved) = {
            let st = self.st.borrow();
            (st.committed, st.saved_committed)
        };
        let committed = match candidate {
            Some(c) if self.holds(c).await? => Some(c),
            _ => saved,
        };
        // Everything submitted so far (that entry included) becomes durable first. This
        // also keeps writes ordered: a vote is a newer IO than every earlier append for
        // openraft's flush watermark, so it must not be durable before them.
        let ticket = self.wal.sync();
        ticket?.await?;
        let meta = {
            let st = self.st.borrow();
            LogMeta {
                vote: vote.or(st.vote),
                committed,
                last_purged: purged.or(st.last_purged),
            }
        };
        self.wal.save_meta(log_codec::encode_meta(&meta)).await?;
        let mut st = self.st.borrow_mut();
        st.vote = meta.vote;
        st.saved_committed = meta.committed;
        st.last_purged = meta.last_purged;
        st.stats.meta_writes += 1;
        Ok(())
    }

    pub(super) async fn persist_committed(&self) -> Result<(), LogStoreError> {
        let _g = self.meta_lock.lock().await;
        self.usable()?;
        let r = self.write_meta(None, None).await;
        self.check(r)
    }
}

/// Decodes the WAL record at `index` and checks it is the entry that belongs there.
pub(super) fn decode_at(index: u64, payload: &Bytes) -> Result<Entry, LogStoreError> {
    let entry =
        log_codec::decode_entry(payload).map_err(|e| codec_err(format!("entry {index}"), e))?;
    if entry.log_id.index != index {
        return Err(LogStoreError::Inconsistent(format!(
            "WAL record {index} holds the entry of log index {}",
            entry.log_id.index
        )));
    }
    Ok(entry)
}
