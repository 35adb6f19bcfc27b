//! [`WalStorage`]: the [`StorageModel`] whose log store is Shoal's real one
//! (`WalLogStore` over the real WAL on a [`SimDisk`] per node), with the simulation's
//! state machine and snapshot store (`SimStateMachine`: the real state machine and snapshot
//! store still call glommio directly).
//!
//! Invariants:
//! - A node's [`SimDisk`] outlives its incarnations; `open` runs the real WAL recovery on
//!   whatever the last crash left (torn in-flight writes included), and a recovery error
//!   fails the node's start, which the harness reports.
//! - What the invariants call *durable* is computed independently of the running store:
//!   the durable image of the disk is replayed with the WAL's sans-IO recovery
//!   (`shoal_wal::recovery::Replay`) and its records decoded with `log_codec`, cached per
//!   [`SimDisk::durable_version`].

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use bytes::Bytes;
use futures::FutureExt;
use openraft::RaftLogReader;
use shoal::raft::AckMode;
use shoal::raft::TypeConfig;
use shoal::raft::WalLogStore;
use shoal::raft::log_codec;
use shoal_wal::BLOCK;
use shoal_wal::WalConfig;
use shoal_wal::meta;
use shoal_wal::recovery::Replay;
use shoal_wal::wal::parse_segment_name;

use super::StorageModel;
use super::real_sm::CheckedSm;
use super::real_sm::SmNodes;
use super::sim_disk::SimDisk;
use super::wal_log::WalLog;
use super::wal_log::log_id_from_real;
use crate::invariants::Checker;
use crate::types::LogId;
use shoal::raft::types::SnapshotData;

/// The WAL configuration of simulated nodes: small segments and writes, so segment
/// rotation, preallocation, deletion after purges and multi-write group commits all happen
/// within a few seconds of virtual time.
pub fn sim_wal_config() -> WalConfig {
    WalConfig {
        segment_size: 32 << 10,
        max_write: 8 << 10,
        max_payload: 2 << 10,
        cache_bytes: 16 << 10,
        max_read: 8 << 10,
    }
}

/// What a crash right now would leave of a node's log: the durable image, recovered.
#[derive(Debug, Clone, Default)]
struct DurableLog {
    entries: BTreeMap<u64, LogId>,
    committed: Option<LogId>,
    last_purged: Option<LogId>,
}

#[derive(Debug)]
struct WalNode {
    disk: SimDisk,
    log: Option<WalLog>,
    durable: Option<(u64, Rc<DurableLog>)>,
}

/// Real log stores over simulated disks, with the real state machines.
#[derive(Debug)]
pub struct WalStorage {
    nodes: RefCell<BTreeMap<u64, WalNode>>,
    sm: SmNodes,
    ack: AckMode,
}

impl WalStorage {
    /// Storage for a run. `ack_before_sync` opens every store in the real store's own
    /// negative-control mode (`AckMode::BeforeFsyncUnsafe`).
    pub fn new(ack_before_sync: bool) -> Self {
        WalStorage {
            nodes: RefCell::new(BTreeMap::new()),
            sm: SmNodes::new(),
            ack: if ack_before_sync {
                AckMode::BeforeFsyncUnsafe
            } else {
                AckMode::AfterFsync
            },
        }
    }

    fn disk(&self, node: u64) -> SimDisk {
        self.nodes
            .borrow_mut()
            .entry(node)
            .or_insert_with(|| WalNode {
                disk: SimDisk::new(node),
                log: None,
                durable: None,
            })
            .disk
            .clone()
    }

    fn durable(&self, node: u64) -> Rc<DurableLog> {
        let disk = self.disk(node);
        let version = disk.durable_version();
        if let Some((v, d)) = self
            .nodes
            .borrow()
            .get(&node)
            .and_then(|n| n.durable.clone())
        {
            if v == version {
                return d;
            }
        }
        let d = match recover_durable(&disk) {
            Ok(d) => Rc::new(d),
            // Only damage makes a durable image fail recovery (a torn tail is cut, not an
            // error). Say so in the trace and treat the node as holding nothing durable:
            // the quorum check then reports any committed entry that relied on it, and the
            // next start after a crash fails with the real recovery's own error.
            Err(e) => {
                crate::runtime::note(format!(
                    "node {node}: the durable WAL image does not recover: {e}"
                ));
                Rc::new(DurableLog::default())
            }
        };
        if let Some(n) = self.nodes.borrow_mut().get_mut(&node) {
            n.durable = Some((version, d.clone()));
        }
        d
    }
}

/// Replays the durable image of `disk` with the WAL's recovery and decodes what it holds.
fn recover_durable(disk: &SimDisk) -> Result<DurableLog, String> {
    let cfg = sim_wal_config();
    let mem = disk.mem();
    let mut ids: Vec<u64> = mem
        .durable_names()
        .iter()
        .filter_map(|n| parse_segment_name(n))
        .collect();
    ids.sort_unstable();
    let mut replay = Replay::new(cfg.max_payload, cfg.max_write);
    let mut data = BTreeMap::new();
    for id in ids {
        let name = shoal_wal::wal::segment_name(id);
        let bytes = mem
            .durable_bytes(&name)
            .ok_or_else(|| format!("durable segment {name} has no durable bytes"))?;
        replay.push(id, &name, &bytes).map_err(|e| e.to_string())?;
        data.insert(id, Bytes::from(bytes));
    }
    let (index, _end) = replay.finish().map_err(|e| e.to_string())?;
    let mut out = DurableLog::default();
    for l in index.range(0, u64::MAX) {
        let seg = data
            .get(&l.segment)
            .ok_or_else(|| format!("index names segment {} without data", l.segment))?;
        let s = l.offset as usize + shoal_wal::record::HEADER_LEN;
        let payload = seg.slice(s..s + l.len as usize);
        let e = log_codec::decode_entry(&payload).map_err(|e| e.to_string())?;
        out.entries.insert(l.index, log_id_from_real(e.log_id));
    }
    if let Some(b) = mem.durable_bytes(meta::META_FILE) {
        if b.len() == 2 * BLOCK as usize {
            let a = meta::decode_slot(0, &b[..BLOCK as usize]);
            let c = meta::decode_slot(1, &b[BLOCK as usize..]);
            if let (Some(slot), _, _) = meta::choose(a, c) {
                let m = log_codec::decode_meta(&slot.value).map_err(|e| e.to_string())?;
                out.committed = m.committed.map(log_id_from_real);
                out.last_purged = m.last_purged.map(log_id_from_real);
            }
        }
    }
    Ok(out)
}

impl StorageModel for WalStorage {
    type SnapshotData = SnapshotData;
    type Log = WalLog;
    type Sm = CheckedSm;

    async fn open(&self, node: u64, checker: Checker) -> Result<(Self::Log, Self::Sm), String> {
        let disk = self.disk(node);
        let (store, _report) = WalLogStore::open(disk, sim_wal_config(), self.ack)
            .await
            .map_err(|e| format!("the real WAL log store refused to open: {e}"))?;
        let log = WalLog::new(node, store, checker.clone());
        if let Some(n) = self.nodes.borrow_mut().get_mut(&node) {
            n.log = Some(log.clone());
        }
        let sm = self.sm.open(node, checker).await?;
        Ok((log, sm))
    }

    fn crash(&self, node: u64) -> usize {
        let disk = self.disk(node);
        if let Some(n) = self.nodes.borrow_mut().get_mut(&node) {
            n.log = None;
        }
        let lost = disk.crash();
        self.sm.crash(node);
        lost
    }

    fn durable_has(&self, node: u64, log_id: &LogId) -> bool {
        let d = self.durable(node);
        if d.entries.get(&log_id.index) == Some(log_id) {
            return true;
        }
        let covered = |last: Option<LogId>| last.is_some_and(|l| l.index >= log_id.index);
        self.sm.durable_covers(node, log_id.index) || covered(d.last_purged)
    }

    fn log_has(&self, node: u64, log_id: &LogId) -> bool {
        if self.sm.covers(node, log_id.index) {
            return true;
        }
        let Some(log) = self.nodes.borrow().get(&node).and_then(|n| n.log.clone()) else {
            return false;
        };
        let mut store = log.store().clone();
        let i = log_id.index;
        // Reads of the simulated disk never wait, so the real reader completes in one poll.
        let read =
            RaftLogReader::<TypeConfig>::try_get_log_entries(&mut store, i..=i).now_or_never();
        match read {
            Some(Ok(es)) => es
                .first()
                .is_some_and(|e| log_id_from_real(e.log_id) == *log_id),
            Some(Err(_)) => false,
            None => panic!("node {node}: the real log reader did not complete in one poll"),
        }
    }

    fn state_digest(&self, node: u64) -> Option<u64> {
        self.sm.state_digest(node)
    }

    fn snapshot_stats(&self) -> super::SnapshotStats {
        self.sm.stats()
    }

    fn durable_committed(&self, node: u64) -> Option<LogId> {
        self.durable(node).committed
    }

    fn read(&self, node: u64, key: &[u8]) -> Option<Bytes> {
        self.sm.read(node, key)
    }

    fn last_applied(&self, node: u64) -> Option<LogId> {
        self.sm.last_applied(node)
    }

    fn disk_stats(&self) -> (u64, u64) {
        self.nodes
            .borrow()
            .values()
            .map(|n| n.disk.counts())
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    }
}
