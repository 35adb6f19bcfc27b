//! Storage of simulated nodes, behind the [`StorageModel`] trait the cluster harness is
//! generic over: [`MemStorage`] (the simulation's own log-store model) and
//! [`wal_storage::WalStorage`] (Shoal's real WAL log store). Both run Shoal's production
//! state machine and snapshot store ([`real_sm`]) over a simulated snapshot directory
//! ([`snapshot_fs`]).
//!
//! Invariants of any `StorageModel`:
//! - `open` builds a node's log store and state machine from what is *durable* on its
//!   disk (everything else was lost by the last crash).
//! - `crash` loses unsynced writes (a torn tail may survive) and invalidates every store
//!   object of the crashed incarnation.
//! - `durable_has` answers from the durable image only (what a crash right now would
//!   keep, minus the random torn tail), which the quorum-durability invariant relies on.

pub mod disk;
pub mod log_store;
pub mod real_sm;
pub mod sim_disk;
pub mod snapshot_fs;
pub mod wal_log;
pub mod wal_storage;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use bytes::Bytes;
use openraft::storage::RaftLogStorage;
use openraft::storage::RaftStateMachine;
use shoal::raft::types::SnapshotData;

use crate::invariants::Checker;
use crate::runtime::Stream;
use crate::runtime::rng;
use crate::types::LogId;
use crate::types::SimConfig;
use disk::NodeDisk;
use log_store::SimLogStore;
use real_sm::CheckedSm;
use real_sm::SmNodes;

/// What the cluster harness needs from a node's storage: [`MemStorage`] (the simulation's
/// own log-store model) or [`wal_storage::WalStorage`] (the real WAL log store).
#[allow(async_fn_in_trait)] // One thread: the futures need not be Send.
pub trait StorageModel: 'static {
    /// The state machine's snapshot data (also the network's).
    type SnapshotData: 'static;
    /// The log store.
    type Log: RaftLogStorage<SimConfig>;
    /// The state machine.
    type Sm: RaftStateMachine<SimConfig, SnapshotData = Self::SnapshotData>;

    /// Open node `node`'s storage for a new incarnation, from its durable state. Called
    /// from a task of the node (background tasks it spawns die with the node). An error
    /// (recovery refused the disk) fails the node's start.
    async fn open(&self, node: u64, checker: Checker) -> Result<(Self::Log, Self::Sm), String>;

    /// Crash node `node`: lose what is not durable. Returns how many writes were lost.
    fn crash(&self, node: u64) -> usize;

    /// Whether entry `log_id` is durable on `node` (in its durable log, or covered by its
    /// durable snapshot).
    fn durable_has(&self, node: u64, log_id: &LogId) -> bool;

    /// Whether `node`'s current (in-memory) log holds `log_id`, or its snapshot covers it.
    fn log_has(&self, node: u64, log_id: &LogId) -> bool;

    /// Digest of the key-value content of `node`'s current state machine.
    fn state_digest(&self, node: u64) -> Option<u64>;

    /// The committed log id `node` saved durably (what it reads back at restart).
    fn durable_committed(&self, node: u64) -> Option<LogId>;

    /// Read `key` from the state machine of `node`'s current incarnation.
    fn read(&self, node: u64, key: &[u8]) -> Option<Bytes>;

    /// Last applied log id of `node`'s current state machine.
    fn last_applied(&self, node: u64) -> Option<LogId>;

    /// Disk counters over all nodes: (durable writes completed, writes torn by a crash).
    fn disk_stats(&self) -> (u64, u64) {
        (0, 0)
    }

    /// Snapshot counters of the state machines over all nodes.
    fn snapshot_stats(&self) -> SnapshotStats;
}

/// What the production state machines did with snapshots during a run (all nodes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotStats {
    /// Snapshot files made durable (renamed into place) by the real snapshot store, built
    /// locally or installed.
    pub persisted: u64,
    /// Snapshots sent by a leader and installed.
    pub installed: u64,
    /// Incarnations whose state was restored from a snapshot file at open.
    pub restored: u64,
}

/// The simulation-owned log store ([`SimLogStore`] over a [`NodeDisk`] per node) with the
/// production state machine ([`SmNodes`]).
#[derive(Debug)]
pub struct MemStorage {
    disks: RefCell<BTreeMap<u64, Rc<RefCell<NodeDisk>>>>,
    sm: SmNodes,
    ack_before_sync: bool,
}

impl MemStorage {
    /// Storage for a run. `ack_before_sync` is the negative control (see [`NodeDisk`]).
    pub fn new(ack_before_sync: bool) -> Self {
        MemStorage {
            disks: RefCell::new(BTreeMap::new()),
            sm: SmNodes::new(),
            ack_before_sync,
        }
    }

    fn disk(&self, node: u64) -> Rc<RefCell<NodeDisk>> {
        self.disks
            .borrow_mut()
            .entry(node)
            .or_insert_with(|| Rc::new(RefCell::new(NodeDisk::new(self.ack_before_sync))))
            .clone()
    }
}

impl StorageModel for MemStorage {
    type SnapshotData = SnapshotData;
    type Log = SimLogStore;
    type Sm = CheckedSm;

    async fn open(&self, node: u64, checker: Checker) -> Result<(Self::Log, Self::Sm), String> {
        let log = SimLogStore::open(node, self.disk(node), checker.clone());
        let sm = self.sm.open(node, checker).await?;
        Ok((log, sm))
    }

    fn crash(&self, node: u64) -> usize {
        let disk = self.disk(node);
        let mut disk = disk.borrow_mut();
        let units = disk.pending_units();
        // A random prefix of the unsynced writes reached the platter before the crash.
        let keep = if units == 0 {
            0
        } else {
            usize::try_from(rng::below(
                Stream::Disk,
                u64::try_from(units + 1).unwrap_or(1),
            ))
            .unwrap_or(0)
        };
        let lost = disk.crash(keep);
        drop(disk);
        self.sm.crash(node);
        lost
    }

    fn durable_has(&self, node: u64, log_id: &LogId) -> bool {
        let disk = self.disk(node);
        let disk = disk.borrow();
        if disk.durable.entries.get(&log_id.index).map(|e| e.log_id) == Some(*log_id) {
            return true;
        }
        let covered = |last: Option<LogId>| last.is_some_and(|l| l.index >= log_id.index);
        self.sm.durable_covers(node, log_id.index) || covered(disk.durable.last_purged)
    }

    fn log_has(&self, node: u64, log_id: &LogId) -> bool {
        let disk = self.disk(node);
        let disk = disk.borrow();
        if disk.mem.entries.get(&log_id.index).map(|e| e.log_id) == Some(*log_id) {
            return true;
        }
        let covered = |last: Option<LogId>| last.is_some_and(|l| l.index >= log_id.index);
        self.sm.covers(node, log_id.index) || covered(disk.mem.last_purged)
    }

    fn state_digest(&self, node: u64) -> Option<u64> {
        self.sm.state_digest(node)
    }

    fn snapshot_stats(&self) -> SnapshotStats {
        self.sm.stats()
    }

    fn durable_committed(&self, node: u64) -> Option<LogId> {
        self.disk(node).borrow().durable.committed
    }

    fn read(&self, node: u64, key: &[u8]) -> Option<Bytes> {
        self.sm.read(node, key)
    }

    fn last_applied(&self, node: u64) -> Option<LogId> {
        self.sm.last_applied(node)
    }
}
