//! A shard's Raft log and vote, stored in its WAL: openraft's [`RaftLogStorage`] and
//! `RaftLogReader` ([`WalLogReader`]) over `shoal_wal::Wal`.
//!
//! Layout: the Raft log entry with index `i` is the WAL record with index `i` (payload:
//! `log_codec::encode_entry`); vote, a committed log id and the last purged log id live in
//! the WAL's metadata slot (`log_codec::LogMeta`). Formats: `docs/WAL.md`, "Raft entries in
//! the WAL".
//!
//! Invariants:
//! - Writes are ordered as openraft issues them and each completion covers everything
//!   before it (IOFlushed is a watermark, `docs/RAFT.md` pitfall 10): append tickets are
//!   awaited in order by one completion task; `save_vote` first waits until every earlier
//!   append is durable, then writes the metadata durably; `truncate_after` and `purge` are
//!   durable when they return.
//! - The live log has no holes: an append must continue the last entry (or, on an empty
//!   log, start at or above the purge floor).
//! - Entries are readable by every reader as soon as `append` returns (the WAL's tail
//!   cache), before they are durable (pitfall 9).
//! - The persisted committed log id never names an entry that was not durable in this log
//!   when it was written; it is persisted lazily (every [`COMMITTED_PERSIST_INTERVAL`]
//!   entries, with every vote or purge, and at [`WalLogStore::close`]).
//! - The last purged log id is made durable before the WAL drops entries, so a crash in
//!   between leaves purged entries that `open` drops again, never a floor without its id.
//! - Any WAL failure poisons the store: the failing flush reports `Err` to openraft and
//!   every later call fails. Nothing is retried.

use std::cell::RefCell;
use std::fmt;
use std::fmt::Debug;
use std::io;
use std::rc::Rc;

use bytes::Bytes;
use futures::StreamExt;
use futures::channel::mpsc;
use openraft::LogState;
use openraft::OptionalSend;
use openraft::storage::IOFlushed;
use openraft::storage::RaftLogStorage;
use shoal_wal::Disk;
use shoal_wal::RecoveryReport;
use shoal_wal::Ticket;
use shoal_wal::Wal;
use shoal_wal::WalConfig;

use super::TypeConfig;
use super::log_codec::{self, LogMeta};
use super::log_shared::{Shared, State, codec_err, decode_at};
use super::types::Entry;
use super::types::LogId;
use super::types::Vote;

pub use super::log_reader::WalLogReader;
pub use super::log_shared::{LogStoreError, LogStoreStats};

/// The committed log id is persisted (in the background) once it has advanced this many
/// entries past the persisted one. After a crash the state machine is therefore re-applied
/// at startup up to at most this many entries short of what it had applied; the rest comes
/// back with the leader's next commit. Votes, purges and `close` persist it too.
pub const COMMITTED_PERSIST_INTERVAL: u64 = 512;

/// When openraft is told that appended entries are flushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckMode {
    /// Production: `IOFlushed` fires once the fdatasync covering the entries (and every
    /// earlier write) returned.
    AfterFsync,
    /// **UNSAFE, TEST-ONLY negative control**: `IOFlushed` fires as soon as the entries are
    /// encoded in memory, before any write or fdatasync. A crash can then lose entries
    /// openraft counted towards a quorum: committed writes can vanish. Exists only so tests
    /// can show that the durability checks catch it. Votes stay durable in this mode.
    BeforeFsyncUnsafe,
}

/// One shard's Raft log store. Clones share the same log: give one to `Raft::new` and keep
/// another to [`close`](Self::close) it after `raft.shutdown()`.
pub struct WalLogStore<D: Disk + Clone + 'static> {
    pub(super) shared: Rc<Shared<D>>,
}

impl<D: Disk + Clone + 'static> Clone for WalLogStore<D> {
    fn clone(&self) -> Self {
        WalLogStore {
            shared: self.shared.clone(),
        }
    }
}

impl<D: Disk + Clone + 'static> Debug for WalLogStore<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.shared.st.borrow();
        f.debug_struct("WalLogStore")
            .field("ack", &self.shared.ack)
            .field("last_log_id", &st.last_log_id)
            .field("last_purged", &st.last_purged)
            .field("vote", &st.vote)
            .field("poison", &st.poison)
            .finish()
    }
}

/// Awaits append tickets in submission order and reports each to openraft. WAL tickets
/// resolve in log order and each covers everything before it, so reporting in this order
/// keeps the IOFlushed watermark exact.
async fn complete_flushes(
    mut rx: mpsc::UnboundedReceiver<(Ticket, IOFlushed<TypeConfig>)>,
    on_error: impl Fn(&LogStoreError),
    reported: impl Fn(),
) {
    while let Some((ticket, callback)) = rx.next().await {
        match ticket.await {
            Ok(()) => callback.io_completed(Ok(())),
            Err(e) => {
                let e = LogStoreError::Wal(e);
                on_error(&e);
                callback.io_completed(Err(io::Error::other(e)));
            }
        }
        reported();
    }
}

impl<D: Disk + Clone + 'static> WalLogStore<D> {
    /// Opens the shard's log on `disk` (for a real shard:
    /// `GlommioDisk::open(<data_dir>/shard-<s>/wal, SyncMode::DEFAULT)` on the shard's
    /// executor). Spawns the WAL's flusher and this store's completion task through
    /// `disk` (`Disk::spawn_detached`: on a glommio disk, the current glommio executor).
    pub async fn open(
        disk: D,
        cfg: WalConfig,
        ack: AckMode,
    ) -> Result<(Self, RecoveryReport), LogStoreError> {
        let (wal, report) = Wal::open(disk, cfg).await?;
        let meta = match wal.meta() {
            Some(b) => log_codec::decode_meta(&b).map_err(|e| codec_err("metadata", e))?,
            None => LogMeta::default(),
        };
        // A purge makes its log id durable before the WAL drops entries: redo one a crash
        // interrupted.
        if let Some(p) = meta.last_purged {
            if wal.floor() <= p.index {
                wal.purge(p.index + 1).await?;
            }
            if wal.floor() != p.index + 1 {
                return Err(LogStoreError::Inconsistent(format!(
                    "WAL floor {} is past the last purged log id {p}",
                    wal.floor()
                )));
            }
        } else if wal.floor() != 0 {
            return Err(LogStoreError::Inconsistent(format!(
                "WAL floor is {} but no purged log id is saved",
                wal.floor()
            )));
        }
        let last_log_id = match wal.last_index() {
            Some(i) => {
                let recs = wal.read_range(i, i + 1).await?;
                let (index, payload) = recs.first().ok_or_else(|| {
                    LogStoreError::Inconsistent(format!("last WAL record {i} did not read back"))
                })?;
                Some(decode_at(*index, payload)?.log_id)
            }
            None => None,
        };
        let known_end = last_log_id.or(meta.last_purged).map(|l| l.index);
        if let Some(c) = meta.committed
            && known_end.is_none_or(|end| c.index > end)
        {
            // A cut "torn tail" that held committed entries was damage, not a torn write
            // (a torn write is never acknowledged): name where it was.
            let cut = match &report.torn_tail {
                Some(t) => format!(
                    "; recovery cut the log in {} at byte offset {} ({}), so that was \
                     damage to committed entries, not a torn write",
                    t.file, t.offset, t.reason
                ),
                None => String::new(),
            };
            return Err(LogStoreError::Inconsistent(format!(
                "saved committed log id {c} is past the end of the log ({known_end:?}){cut}"
            )));
        }
        let (tx, rx) = mpsc::unbounded();
        let state = State {
            vote: meta.vote,
            committed: meta.committed,
            saved_committed: meta.committed,
            last_purged: meta.last_purged,
            last_log_id,
            ..State::default()
        };
        let shared = Rc::new(Shared {
            wal,
            ack,
            st: RefCell::new(state),
            meta_lock: futures::lock::Mutex::new(()),
            completions: tx,
        });
        // The task holds only a weak handle so that dropping the store ends it (after it
        // reported every queued flush).
        let weak = Rc::downgrade(&shared);
        let weak2 = weak.clone();
        shared.wal.disk().spawn_detached(complete_flushes(
            rx,
            move |e| {
                if let Some(s) = weak.upgrade() {
                    s.poison(e);
                }
            },
            move || {
                if let Some(s) = weak2.upgrade() {
                    s.st.borrow_mut().stats.flushes_reported += 1;
                }
            },
        ));
        Ok((WalLogStore { shared }, report))
    }

    /// Makes everything durable, saves the exact committed log id, and refuses every later
    /// call (on every clone). For graceful shutdown, after `raft.shutdown()`.
    pub async fn close(self) -> Result<(), LogStoreError> {
        let s = &self.shared;
        let _g = s.meta_lock.lock().await;
        s.usable()?;
        let r = s.write_meta(None, None).await;
        s.check(r)?;
        s.st.borrow_mut().closed = true;
        Ok(())
    }

    /// Counters and positions.
    pub fn stats(&self) -> LogStoreStats {
        let st = self.shared.st.borrow();
        LogStoreStats {
            wal: self.shared.wal.stats(),
            last_index: self.shared.wal.last_index(),
            floor: self.shared.wal.floor(),
            ..st.stats
        }
    }

    /// The ack mode this store was opened with.
    pub fn ack_mode(&self) -> AckMode {
        self.shared.ack
    }

    async fn append_entries(
        &self,
        entries: Vec<Entry>,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), LogStoreError> {
        let s = &self.shared;
        s.usable()?;
        let Some(last) = entries.last().map(|e| e.log_id) else {
            // Nothing to write, but the completion still means "everything before is
            // durable" (a watermark): report it after the earlier writes.
            let ticket = s.check(s.wal.sync().map_err(LogStoreError::from))?;
            return self.queue_completion(ticket, callback);
        };
        let mut next = s.st.borrow().last_log_id.map(|l| l.index + 1);
        let floor = s.wal.floor();
        // One buffer for the whole batch; each record is a slice of it.
        let mut buf = Vec::with_capacity(entries.len() * (log_codec::ENTRY_HEADER_LEN + 64));
        let mut ends = Vec::with_capacity(entries.len());
        for e in &entries {
            let i = e.log_id.index;
            let ok = match next {
                Some(n) => i == n,
                None => i >= floor,
            };
            if !ok {
                return Err(LogStoreError::Inconsistent(format!(
                    "append of index {i} would leave a hole (expected {}, floor {floor})",
                    next.map_or_else(|| format!(">= {floor}"), |n| n.to_string())
                )));
            }
            next = Some(i + 1);
            log_codec::encode_entry(e, &mut buf)?;
            ends.push((i, buf.len()));
        }
        let bytes = buf.len() as u64;
        let buf = Bytes::from(buf);
        let mut start = 0;
        let records: Vec<(u64, Bytes)> = ends
            .into_iter()
            .map(|(i, end)| {
                let r = (i, buf.slice(start..end));
                start = end;
                r
            })
            .collect();
        let n = records.len() as u64;
        let ticket = s.check(s.wal.append(records).map_err(LogStoreError::from))?;
        {
            let mut st = s.st.borrow_mut();
            st.last_log_id = Some(last);
            st.stats.appends += 1;
            st.stats.entries += n;
            st.stats.entry_bytes += bytes;
        }
        self.queue_completion(ticket, callback)
    }

    /// Hands a ticket and its callback to the completion task (or, in the unsafe mode,
    /// reports success at once and lets the task only watch for a failure).
    fn queue_completion(
        &self,
        ticket: Ticket,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), LogStoreError> {
        let s = &self.shared;
        let callback = match s.ack {
            AckMode::AfterFsync => callback,
            AckMode::BeforeFsyncUnsafe => {
                callback.io_completed(Ok(()));
                // The ticket is still awaited, so a failed flush still poisons the store.
                IOFlushed::noop()
            }
        };
        if s.completions.unbounded_send((ticket, callback)).is_err() {
            let e = LogStoreError::Inconsistent("flush completion task is gone".into());
            s.poison(&e);
            return Err(e);
        }
        Ok(())
    }

    async fn truncate(&self, last_log_id: Option<LogId>) -> Result<(), LogStoreError> {
        let s = &self.shared;
        s.usable()?;
        let from = match last_log_id {
            Some(id) => id.index + 1,
            None => s.wal.floor(),
        };
        let cur_last = s.st.borrow().last_log_id;
        if cur_last.is_none_or(|l| from > l.index) {
            return Ok(());
        }
        s.check(s.wal.truncate(from).await.map_err(LogStoreError::from))?;
        let new_last = match s.wal.last_index() {
            None => None,
            Some(i) => {
                let recs = s.check(
                    s.wal
                        .read_range(i, i + 1)
                        .await
                        .map_err(LogStoreError::from),
                )?;
                let entry = match recs.first() {
                    Some((index, payload)) => s.check(decode_at(*index, payload))?,
                    None => {
                        let e =
                            LogStoreError::Inconsistent(format!("record {i} did not read back"));
                        s.poison(&e);
                        return Err(e);
                    }
                };
                if Some(entry.log_id) != last_log_id {
                    let e = LogStoreError::Inconsistent(format!(
                        "truncate_after({last_log_id:?}) left {} as the last entry",
                        entry.log_id
                    ));
                    s.poison(&e);
                    return Err(e);
                }
                Some(entry.log_id)
            }
        };
        s.st.borrow_mut().last_log_id = new_last;
        Ok(())
    }

    async fn purge_upto(&self, log_id: LogId) -> Result<(), LogStoreError> {
        let s = &self.shared;
        {
            let _g = s.meta_lock.lock().await;
            s.usable()?;
            if s.st
                .borrow()
                .last_purged
                .is_some_and(|p| p.index >= log_id.index)
            {
                return Ok(());
            }
            // The id first, then the floor (see the module invariants).
            let r = s.write_meta(None, Some(log_id)).await;
            s.check(r)?;
        }
        s.check(
            s.wal
                .purge(log_id.index + 1)
                .await
                .map_err(LogStoreError::from),
        )?;
        let mut st = s.st.borrow_mut();
        if st.last_log_id.is_some_and(|l| l.index <= log_id.index) {
            st.last_log_id = None;
        }
        Ok(())
    }

    async fn save_vote_durably(&self, vote: Vote) -> Result<(), LogStoreError> {
        let s = &self.shared;
        let _g = s.meta_lock.lock().await;
        s.usable()?;
        let r = s.write_meta(Some(vote), None).await;
        s.check(r)
    }

    fn note_committed(&self, committed: Option<LogId>) -> Result<(), LogStoreError> {
        let s = &self.shared;
        s.usable()?;
        let start = {
            let mut st = s.st.borrow_mut();
            if committed > st.committed {
                st.committed = committed;
            }
            let saved = st.saved_committed.map_or(0, |c| c.index + 1);
            let due = st
                .committed
                .is_some_and(|c| c.index + 1 >= saved + COMMITTED_PERSIST_INTERVAL);
            let start = due && !st.committed_persist_running;
            if start {
                st.committed_persist_running = true;
            }
            start
        };
        if start {
            let shared = s.clone();
            s.wal.disk().spawn_detached(async move {
                // A failure poisons the store; the next call reports it.
                let _ = shared.persist_committed().await;
                shared.st.borrow_mut().committed_persist_running = false;
            });
        }
        Ok(())
    }
}

impl<D: Disk + Clone + 'static> RaftLogStorage<TypeConfig> for WalLogStore<D> {
    type LogReader = WalLogReader<D>;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        self.shared.usable()?;
        let st = self.shared.st.borrow();
        Ok(LogState {
            last_purged_log_id: st.last_purged,
            last_log_id: st.last_log_id.or(st.last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        WalLogReader {
            shared: self.shared.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        Ok(self.save_vote_durably(*vote).await?)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        Ok(self.note_committed(committed)?)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        self.shared.usable()?;
        Ok(self.shared.st.borrow().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        Ok(self.append_entries(entries, callback).await?)
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        Ok(self.truncate(last_log_id).await?)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        Ok(self.purge_upto(log_id).await?)
    }
}
