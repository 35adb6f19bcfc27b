//! The durability model of one simulated node's disk: what the log store has written,
//! what of it an fsync has made durable, and what a crash leaves behind.
//!
//! Invariants:
//! - Writes (appends, truncations, purges, vote, committed) are applied to the durable
//!   image in submission order, never reordered: a flush makes a *prefix* of the pending
//!   queue durable (the whole queue at a sync, a random prefix at a crash).
//! - An append's `IOFlushed` callback fires only when the flush that made it durable
//!   completes, in submission order (openraft treats it as a watermark), unless the
//!   negative-control switch [`NodeDisk::ack_before_sync`] is on.
//! - The vote is durable before `save_vote` returns (it syncs everything queued before it).
//! - A crash keeps the durable image plus a random prefix of the unsynced writes (a torn
//!   tail: cut at an entry boundary, as a WAL's recovery scan cuts at the last valid
//!   record) and loses the rest; the in-memory view restarts from that image.
//! - Snapshots are not here: the state machine's snapshot files live in the node's
//!   `SimSnapshotFs` (`snapshot_fs.rs`).
//! - Every store object carries the incarnation it was opened in; a write from an older
//!   incarnation (a zombie after a crash) panics.

use std::collections::BTreeMap;
use std::collections::VecDeque;

use openraft::storage::IOFlushed;

use crate::types::Entry;
use crate::types::LogId;
use crate::types::SimConfig;
use crate::types::Vote;

/// A log image: the durable one, or the in-memory view the store serves.
#[derive(Debug, Clone, Default)]
pub struct LogImage {
    /// Last saved vote.
    pub vote: Option<Vote>,
    /// Last saved committed log id.
    pub committed: Option<LogId>,
    /// Last purged log id.
    pub last_purged: Option<LogId>,
    /// Present entries, by index, without holes.
    pub entries: BTreeMap<u64, Entry>,
}

impl LogImage {
    fn apply(&mut self, op: &Op) {
        match op {
            Op::Append(entries) => {
                for e in entries {
                    self.entries.insert(e.log_id.index, e.clone());
                }
            }
            Op::Truncate(after) => {
                let keep_until = after.map_or(0, |id| id.index + 1);
                drop(self.entries.split_off(&keep_until));
            }
            Op::Purge(upto) => {
                self.entries = self.entries.split_off(&(upto.index + 1));
                self.last_purged = Some(*upto);
            }
            Op::Vote(v) => self.vote = Some(*v),
            Op::Committed(c) => self.committed = *c,
        }
    }

    /// Log id of the last present entry, else the last purged one.
    pub fn last_log_id(&self) -> Option<LogId> {
        self.entries
            .last_key_value()
            .map(|(_, e)| e.log_id)
            .or(self.last_purged)
    }
}

/// One queued write.
#[derive(Debug)]
pub enum Op {
    /// Entries appended.
    Append(Vec<Entry>),
    /// Entries after this id removed.
    Truncate(Option<LogId>),
    /// Entries up to this id removed.
    Purge(LogId),
    /// Vote saved.
    Vote(Vote),
    /// Committed id saved.
    Committed(Option<LogId>),
}

/// A queued write and the callback to fire once it is durable.
pub struct Pending {
    /// The write.
    pub op: Op,
    /// Fired when the write is durable (appends only).
    pub callback: Option<IOFlushed<SimConfig>>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("op", &self.op)
            .field("callback", &self.callback.is_some())
            .finish()
    }
}

/// One node's disk: durable image, in-memory view, pending writes.
#[derive(Debug)]
pub struct NodeDisk {
    /// What survives a crash.
    pub durable: LogImage,
    /// What the running incarnation's store serves (durable + pending).
    pub mem: LogImage,
    /// Writes not yet synced, oldest first.
    pub pending: VecDeque<Pending>,
    /// Incarnation counter: bumped at every crash.
    pub incarnation: u64,
    /// NEGATIVE CONTROL: acknowledge appends (fire `IOFlushed`) at submission, before the
    /// data is synced, so a crash loses acknowledged entries. Must make the suite fail.
    pub ack_before_sync: bool,
    /// Number of syncs performed.
    pub syncs: u64,
}

impl NodeDisk {
    /// An empty disk.
    pub fn new(ack_before_sync: bool) -> Self {
        NodeDisk {
            durable: LogImage::default(),
            mem: LogImage::default(),
            pending: VecDeque::new(),
            incarnation: 0,
            ack_before_sync,
            syncs: 0,
        }
    }

    /// Panic if a store of an older incarnation writes.
    pub fn check_incarnation(&self, incarnation: u64) {
        assert_eq!(
            incarnation, self.incarnation,
            "a store of a crashed incarnation wrote to the disk (zombie write)"
        );
    }

    /// Queue `op`: apply it to the in-memory view now, to the durable image at the next sync.
    pub fn submit(&mut self, op: Op, callback: Option<IOFlushed<SimConfig>>) {
        self.mem.apply(&op);
        let callback = match (callback, self.ack_before_sync) {
            (Some(cb), true) => {
                // Negative control: acknowledged before it is durable.
                cb.io_completed(Ok(()));
                None
            }
            (cb, _) => cb,
        };
        self.pending.push_back(Pending { op, callback });
    }

    /// Make every pending write durable; returns the callbacks to fire (in order), which
    /// the caller fires after releasing its borrow of the disk.
    #[must_use]
    pub fn sync(&mut self) -> Vec<IOFlushed<SimConfig>> {
        self.syncs += 1;
        let mut callbacks = Vec::new();
        while let Some(p) = self.pending.pop_front() {
            self.durable.apply(&p.op);
            if let Some(cb) = p.callback {
                callbacks.push(cb);
            }
        }
        callbacks
    }

    /// A crash: the first `keep` pending entries-or-writes reach the disk (torn tail), the
    /// rest is lost; the in-memory view restarts from the durable image. Returns how many
    /// writes were lost.
    pub fn crash(&mut self, mut keep: usize) -> usize {
        let mut lost = 0;
        while let Some(p) = self.pending.pop_front() {
            if keep == 0 {
                lost += 1;
                continue;
            }
            match p.op {
                Op::Append(entries) if entries.len() > keep => {
                    // Torn inside a batch: only a prefix of its records survives.
                    let prefix: Vec<Entry> = entries.into_iter().take(keep).collect();
                    self.durable.apply(&Op::Append(prefix));
                    keep = 0;
                    lost += 1;
                }
                Op::Append(entries) => {
                    keep -= entries.len().max(1);
                    self.durable.apply(&Op::Append(entries));
                }
                op => {
                    keep -= 1;
                    self.durable.apply(&op);
                }
            }
            // Callbacks of a dead incarnation are dropped, never fired.
        }
        self.mem = self.durable.clone();
        self.incarnation += 1;
        lost
    }

    /// Number of writes (an append batch counts its entries) in the pending queue.
    pub fn pending_units(&self) -> usize {
        self.pending
            .iter()
            .map(|p| match &p.op {
                Op::Append(e) => e.len().max(1),
                _ => 1,
            })
            .sum()
    }
}
