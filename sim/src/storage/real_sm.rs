//! The production state machine in the simulation: Shoal's `ShardStateMachine` (with its
//! snapshot builder and snapshot store) under [`SimConfig`], its snapshot files in a
//! [`SimSnapshotFs`] per node, plus the invariant hooks.
//!
//! [`CheckedSm`] delegates every `RaftStateMachine` call to the real state machine; it
//! only reports to the [`Checker`] what is applied (each entry as the real state machine
//! pulls it from openraft's stream, before applying it) and installed. It adds no state
//! machine logic: decoding, applying, answering, building, persisting, installing and
//! restoring snapshots are the production code's.
//!
//! Invariants:
//! - A node's snapshot directory outlives its incarnations; `open` runs the real
//!   `ShardStateMachine::open_on` on whatever the last crash left of it, and an error
//!   (a corrupt newest snapshot) fails the node's start, which the harness reports.
//! - The state of the current incarnation is readable by the harness (digest, reads,
//!   last applied) until the node crashes.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;
use std::rc::Rc;

use bytes::Bytes;
use futures::Stream;
use futures::StreamExt;
use openraft::OptionalSend;
use openraft::storage::EntryResponder;
use openraft::storage::RaftStateMachine;
use shoal::raft::ShardStateMachine;
use shoal::raft::SharedState;
use shoal::raft::snapshot_builder::ShardSnapshotBuilder;
use shoal::raft::types::SnapshotData;
use shoal::state::State;

use super::SnapshotStats;
use super::snapshot_fs::SimSnapshotFs;
use crate::invariants::Checker;
use crate::types::EntryPayload;
use crate::types::LogId;
use crate::types::SimConfig;
use crate::types::Snapshot;
use crate::types::SnapshotMeta;
use crate::types::StoredMembership;
use crate::types::payload_digest;

/// The production state machine on the simulated runtime and snapshot directory.
pub type RealSm = ShardStateMachine<SimConfig, SimSnapshotFs>;

/// The wall clock the state machine is given: virtual milliseconds since the run began.
fn virtual_wall_ms() -> u64 {
    u64::try_from(crate::runtime::now().since_start().as_millis()).unwrap_or(u64::MAX)
}

/// [`RealSm`] with the invariant hooks.
#[derive(Debug)]
pub struct CheckedSm {
    node: u64,
    inner: RealSm,
    checker: Checker,
    stats: Rc<RefCell<SnapshotStats>>,
}

#[derive(Debug)]
struct SmNode {
    fs: SimSnapshotFs,
    state: Option<SharedState>,
}

/// The real state machines of every node of a run.
#[derive(Debug, Default)]
pub struct SmNodes {
    nodes: RefCell<BTreeMap<u64, SmNode>>,
    stats: Rc<RefCell<SnapshotStats>>,
}

impl SmNodes {
    /// No node yet.
    pub fn new() -> Self {
        SmNodes::default()
    }

    fn fs(&self, node: u64) -> SimSnapshotFs {
        self.nodes
            .borrow_mut()
            .entry(node)
            .or_insert_with(|| SmNode {
                fs: SimSnapshotFs::new(node),
                state: None,
            })
            .fs
            .clone()
    }

    fn state(&self, node: u64) -> Option<SharedState> {
        self.nodes.borrow().get(&node)?.state.clone()
    }

    /// Opens node `node`'s state machine for a new incarnation: the real `open_on`
    /// restores the newest durable snapshot.
    pub async fn open(&self, node: u64, checker: Checker) -> Result<CheckedSm, String> {
        let fs = self.fs(node);
        let state: SharedState = Rc::new(RefCell::new(State::new()));
        let inner = RealSm::open_on(fs, state.clone(), Rc::new(virtual_wall_ms))
            .await
            .map_err(|e| format!("the real state machine refused to open: {e}"))?;
        checker.on_sm_restart(node);
        let restored = state
            .borrow()
            .last_applied()
            .map(shoal::raft::snapshot_meta::from_state_log_id);
        if restored.is_some() {
            checker.on_snapshot_installed(node, restored);
            self.stats.borrow_mut().restored += 1;
        }
        if let Some(n) = self.nodes.borrow_mut().get_mut(&node) {
            n.state = Some(state);
        }
        Ok(CheckedSm {
            node,
            inner,
            checker,
            stats: self.stats.clone(),
        })
    }

    /// Snapshot counters over all nodes.
    pub fn stats(&self) -> SnapshotStats {
        let mut stats = *self.stats.borrow();
        stats.persisted = self.nodes.borrow().values().map(|n| n.fs.persisted()).sum();
        stats
    }

    /// Crash node `node`: its state is lost, its directory keeps what was durable.
    pub fn crash(&self, node: u64) {
        let fs = self.fs(node);
        if let Some(n) = self.nodes.borrow_mut().get_mut(&node) {
            n.state = None;
        }
        fs.crash();
    }

    /// Whether node `node`'s durable snapshot covers index `index`.
    pub fn durable_covers(&self, node: u64, index: u64) -> bool {
        self.fs(node)
            .durable_snapshot_index()
            .flatten()
            .is_some_and(|last| last >= index)
    }

    /// Whether node `node`'s current snapshot covers index `index`.
    pub fn covers(&self, node: u64, index: u64) -> bool {
        self.fs(node)
            .snapshot_index()
            .flatten()
            .is_some_and(|last| last >= index)
    }

    /// Digest of the keys and values of `node`'s current state machine.
    pub fn state_digest(&self, node: u64) -> Option<u64> {
        let state = self.state(node)?;
        let d = state.borrow().digest(virtual_wall_ms());
        Some(d.hash ^ d.keys.rotate_left(32))
    }

    /// Read `key` from `node`'s current state machine.
    pub fn read(&self, node: u64, key: &[u8]) -> Option<Bytes> {
        let state = self.state(node)?;
        state.borrow().get(key, virtual_wall_ms())
    }

    /// Last applied log id of `node`'s current state machine.
    pub fn last_applied(&self, node: u64) -> Option<LogId> {
        let state = self.state(node)?;
        let last = state.borrow().last_applied();
        last.map(shoal::raft::snapshot_meta::from_state_log_id)
    }
}

impl RaftStateMachine<SimConfig> for CheckedSm {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = ShardSnapshotBuilder<SimConfig, SimSnapshotFs>;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        self.inner.applied_state().await
    }

    async fn apply<Strm>(&mut self, entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<SimConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let node = self.node;
        let checker = self.checker.clone();
        let reported = entries.map(move |item| {
            if let Ok((entry, _)) = &item {
                let command = match &entry.payload {
                    EntryPayload::Normal(req) => Some(req.command.clone()),
                    _ => None,
                };
                checker.on_apply(node, entry.log_id, payload_digest(&entry.payload), command);
            }
            item
        });
        self.inner.apply(reported).await
    }

    async fn try_create_snapshot_builder(&mut self, force: bool) -> Option<Self::SnapshotBuilder> {
        self.inner.try_create_snapshot_builder(force).await
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.inner.get_snapshot_builder().await
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotData,
    ) -> Result<(), io::Error> {
        self.inner.install_snapshot(meta, snapshot).await?;
        self.checker
            .on_snapshot_installed(self.node, meta.last_log_id);
        self.stats.borrow_mut().installed += 1;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<SnapshotData>>, io::Error> {
        self.inner.get_current_snapshot().await
    }
}
