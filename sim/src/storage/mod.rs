//! Storage of simulated nodes, behind the [`StorageModel`] trait the cluster harness is
//! generic over, and [`MemStorage`], the simulation-owned model used until the real WAL
//! and state-machine adapters exist.
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
pub mod sim_disk;
pub mod state_machine;
pub mod wal_log;
pub mod wal_storage;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use bytes::Bytes;
use openraft::storage::RaftLogStorage;
use openraft::storage::RaftStateMachine;

use crate::invariants::Checker;
use crate::runtime::Stream;
use crate::runtime::rng;
use crate::types::LogId;
use crate::types::SimConfig;
use disk::NodeDisk;
use log_store::SimLogStore;
use state_machine::KvState;
use state_machine::SimStateMachine;

/// What the cluster harness needs from a node's storage: [`MemStorage`] (the simulation's
/// own model) or [`wal_storage::WalStorage`] (the real WAL log store).
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
}

#[derive(Debug)]
struct MemNode {
    disk: Rc<RefCell<NodeDisk<KvState>>>,
    state: Option<Rc<RefCell<KvState>>>,
}

/// The simulation-owned storage: [`SimLogStore`] + [`SimStateMachine`] over a
/// [`NodeDisk`] per node.
#[derive(Debug)]
pub struct MemStorage {
    nodes: RefCell<BTreeMap<u64, MemNode>>,
    ack_before_sync: bool,
}

impl MemStorage {
    /// Storage for a run. `ack_before_sync` is the negative control (see [`NodeDisk`]).
    pub fn new(ack_before_sync: bool) -> Self {
        MemStorage {
            nodes: RefCell::new(BTreeMap::new()),
            ack_before_sync,
        }
    }

    /// Open node `node`'s state machine (over its snapshot) for a new incarnation.
    pub fn open_sm(&self, node: u64, checker: Checker) -> SimStateMachine {
        let sm = SimStateMachine::open(node, self.disk(node), checker);
        if let Some(n) = self.nodes.borrow_mut().get_mut(&node) {
            n.state = Some(sm.state());
        }
        sm
    }

    /// Last log id covered by node `node`'s durable snapshot.
    pub fn snapshot_last(&self, node: u64) -> Option<LogId> {
        let disk = self.disk(node);
        let disk = disk.borrow();
        disk.snapshot.as_ref().and_then(|s| s.meta.last_log_id)
    }

    fn disk(&self, node: u64) -> Rc<RefCell<NodeDisk<KvState>>> {
        self.nodes
            .borrow_mut()
            .entry(node)
            .or_insert_with(|| MemNode {
                disk: Rc::new(RefCell::new(NodeDisk::new(self.ack_before_sync))),
                state: None,
            })
            .disk
            .clone()
    }
}

impl StorageModel for MemStorage {
    type SnapshotData = KvState;
    type Log = SimLogStore<KvState>;
    type Sm = SimStateMachine;

    async fn open(&self, node: u64, checker: Checker) -> Result<(Self::Log, Self::Sm), String> {
        let log = SimLogStore::open(node, self.disk(node), checker.clone());
        Ok((log, self.open_sm(node, checker)))
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
        if let Some(n) = self.nodes.borrow_mut().get_mut(&node) {
            n.state = None;
        }
        lost
    }

    fn durable_has(&self, node: u64, log_id: &LogId) -> bool {
        let disk = self.disk(node);
        let disk = disk.borrow();
        if disk.durable.entries.get(&log_id.index).map(|e| e.log_id) == Some(*log_id) {
            return true;
        }
        let covered = |last: Option<LogId>| last.is_some_and(|l| l.index >= log_id.index);
        let snap_last = disk.snapshot.as_ref().and_then(|s| s.meta.last_log_id);
        covered(snap_last) || covered(disk.durable.last_purged)
    }

    fn log_has(&self, node: u64, log_id: &LogId) -> bool {
        let disk = self.disk(node);
        let disk = disk.borrow();
        if disk.mem.entries.get(&log_id.index).map(|e| e.log_id) == Some(*log_id) {
            return true;
        }
        let covered = |last: Option<LogId>| last.is_some_and(|l| l.index >= log_id.index);
        let snap_last = disk.snapshot.as_ref().and_then(|s| s.meta.last_log_id);
        covered(snap_last) || covered(disk.mem.last_purged)
    }

    fn state_digest(&self, node: u64) -> Option<u64> {
        let nodes = self.nodes.borrow();
        let state = nodes.get(&node)?.state.as_ref()?.clone();
        let state = state.borrow();
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for (k, v) in &state.kv {
            for b in k
                .iter()
                .chain([0xffu8].iter())
                .chain(v.iter())
                .chain([0xfeu8].iter())
            {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
        Some(h)
    }

    fn durable_committed(&self, node: u64) -> Option<LogId> {
        self.disk(node).borrow().durable.committed
    }

    fn read(&self, node: u64, key: &[u8]) -> Option<Bytes> {
        let nodes = self.nodes.borrow();
        let state = nodes.get(&node)?.state.as_ref()?.clone();
        state.borrow().kv.get(key).cloned()
    }

    fn last_applied(&self, node: u64) -> Option<LogId> {
        let nodes = self.nodes.borrow();
        let state = nodes.get(&node)?.state.as_ref()?.clone();
        state.borrow().last_applied
    }
}
