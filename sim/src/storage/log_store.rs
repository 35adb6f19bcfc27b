//! `RaftLogStorage` over a simulated [`NodeDisk`]: the simulation's stand-in for the WAL
//! adapter, with the WAL's durability contract.
//!
//! Invariants (the contract of `docs/RAFT.md`):
//! - `append` returns once the entries are in the in-memory view (readable by every
//!   reader); its `IOFlushed` fires when the background flusher's simulated fdatasync
//!   completes (group commit: one sync covers everything queued before it).
//! - `save_vote` returns only after a sync that covers the vote and every earlier write.
//! - `save_committed` is queued behind the writes before it, so it is never durable ahead
//!   of the log it refers to.
//! - Every append, truncation and vote is reported to the invariant [`Checker`] as it
//!   happens.

use std::cell::RefCell;
use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::rc::Rc;
use std::time::Duration;

use openraft::LogState;
use openraft::OptionalSend;
use openraft::RaftLogReader;
use openraft::storage::IOFlushed;
use openraft::storage::RaftLogStorage;
use openraft_rt::AsyncRuntime;
use tokio::sync::Notify;

use super::disk::NodeDisk;
use super::disk::Op;
use crate::invariants::Checker;
use crate::runtime::SimRuntime;
use crate::runtime::Stream;
use crate::runtime::rng;
use crate::types::Entry;
use crate::types::LogId;
use crate::types::SimConfig;
use crate::types::Vote;
use crate::types::payload_digest;

/// A simulated fdatasync's latency: usually sub-millisecond, sometimes a slow disk.
pub fn fsync_latency() -> Duration {
    if rng::chance(Stream::Disk, 0.05) {
        Duration::from_micros(2_000 + rng::below(Stream::Disk, 18_000))
    } else {
        Duration::from_micros(50 + rng::below(Stream::Disk, 950))
    }
}

/// The log store (and reader: clones share the disk).
#[derive(Debug)]
pub struct SimLogStore {
    node: u64,
    incarnation: u64,
    disk: Rc<RefCell<NodeDisk>>,
    flush: Rc<Notify>,
    checker: Checker,
}

impl Clone for SimLogStore {
    fn clone(&self) -> Self {
        SimLogStore {
            node: self.node,
            incarnation: self.incarnation,
            disk: self.disk.clone(),
            flush: self.flush.clone(),
            checker: self.checker.clone(),
        }
    }
}

impl SimLogStore {
    /// Open node `node`'s log on `disk` for the current incarnation and start its flusher
    /// (a task of the calling node: it dies with the node). Call from a task of the node.
    pub fn open(node: u64, disk: Rc<RefCell<NodeDisk>>, checker: Checker) -> Self {
        let incarnation = disk.borrow().incarnation;
        let flush = Rc::new(Notify::new());
        let store = SimLogStore {
            node,
            incarnation,
            disk,
            flush: flush.clone(),
            checker,
        };
        let flusher = store.clone();
        drop(SimRuntime::spawn(
            async move { flusher.run_flusher().await },
        ));
        store
    }

    async fn run_flusher(self) {
        loop {
            self.flush.notified().await;
            SimRuntime::sleep(fsync_latency()).await;
            self.sync_now();
        }
    }

    fn sync_now(&self) {
        let callbacks = {
            let mut disk = self.disk.borrow_mut();
            disk.check_incarnation(self.incarnation);
            let units = disk.pending_units() as u64;
            crate::runtime::context::with(|sim| {
                sim.trace.record(crate::trace::Kind::Disk, self.node, units);
            });
            disk.sync()
        };
        for cb in callbacks {
            cb.io_completed(Ok(()));
        }
    }
}

impl RaftLogReader<SimConfig> for SimLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let disk = self.disk.borrow();
        Ok(disk
            .mem
            .entries
            .range(range)
            .map(|(_, e)| e.clone())
            .collect())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.disk.borrow().mem.vote)
    }
}

impl RaftLogStorage<SimConfig> for SimLogStore {
    type LogReader = SimLogStore;

    async fn get_log_state(&mut self) -> Result<LogState<SimConfig>, io::Error> {
        let disk = self.disk.borrow();
        Ok(LogState {
            last_purged_log_id: disk.mem.last_purged,
            last_log_id: disk.mem.last_log_id(),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        {
            let mut disk = self.disk.borrow_mut();
            disk.check_incarnation(self.incarnation);
            disk.submit(Op::Vote(*vote), None);
        }
        self.checker.on_vote_saved(self.node, vote);
        // Durable before returning: this sync covers the vote and everything before it.
        SimRuntime::sleep(fsync_latency()).await;
        self.sync_now();
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        let mut disk = self.disk.borrow_mut();
        disk.check_incarnation(self.incarnation);
        disk.submit(Op::Committed(committed), None);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.disk.borrow().mem.committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<SimConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let mut reported = Vec::with_capacity(entries.len());
        {
            let mut disk = self.disk.borrow_mut();
            disk.check_incarnation(self.incarnation);
            let mut prev = disk.mem.last_log_id();
            for e in &entries {
                let expected = prev.map_or(e.log_id.index, |p| p.index + 1);
                assert_eq!(
                    e.log_id.index, expected,
                    "node {}: append would leave a hole or overlap (prev {prev:?}, entry {})",
                    self.node, e.log_id
                );
                reported.push((e.log_id, payload_digest(&e.payload), prev));
                prev = Some(e.log_id);
            }
            disk.submit(Op::Append(entries), Some(callback));
        }
        for (log_id, digest, prev) in reported {
            self.checker.on_append(self.node, log_id, digest, prev);
        }
        self.flush.notify_one();
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let removed: Vec<LogId> = {
            let mut disk = self.disk.borrow_mut();
            disk.check_incarnation(self.incarnation);
            let from = last_log_id.map_or(0, |id| id.index + 1);
            let removed = disk
                .mem
                .entries
                .range(from..)
                .map(|(_, e)| e.log_id)
                .collect();
            disk.submit(Op::Truncate(last_log_id), None);
            removed
        };
        self.checker.on_truncate(self.node, &removed);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let mut disk = self.disk.borrow_mut();
        disk.check_incarnation(self.incarnation);
        disk.submit(Op::Purge(log_id), None);
        Ok(())
    }
}
