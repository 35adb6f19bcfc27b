//! [`WalLog`]: Shoal's real Raft log store (`shoal::raft::WalLogStore` over the real WAL on
//! a [`SimDisk`]) seen as a `RaftLogStorage<SimConfig>`.
//!
//! `WalLogStore` is written for `shoal::raft::TypeConfig`; the simulated group uses
//! `SimConfig`, which differs only in the runtime. This thin wrapper converts log ids,
//! votes and entries between the two (field by field: same term, node id, index and
//! payload) and reports every append, truncation and vote to the invariant [`Checker`]. It
//! adds no storage logic: what is written, when it is durable and what a restart reads back
//! is the real code's.
//!
//! Invariants:
//! - Append completions reach openraft in the order the real store reports them (one
//!   forwarding task awaits them first in, first out), so the IOFlushed watermark is the
//!   real store's.
//! - The checker sees an append only once the real store accepted it, a vote only once the
//!   real store saved it durably, a truncation before the real store runs it.

use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;

use futures::StreamExt;
use futures::channel::mpsc;
use openraft::LogState;
use openraft::OptionalSend;
use openraft::RaftLogReader;
use openraft::impls::leader_id_adv::LeaderId;
use openraft::storage::IOFlushed;
use openraft::storage::RaftLogStorage;
use openraft_rt::AsyncRuntime;
use openraft_rt::Oneshot;
use shoal::raft::GlommioRuntime;
use shoal::raft::TypeConfig;
use shoal::raft::WalLogStore;
use shoal::raft::types as real;

use super::sim_disk::SimDisk;
use crate::invariants::Checker;
use crate::runtime::SimRuntime;
use crate::types::Entry;
use crate::types::EntryPayload;
use crate::types::LogId;
use crate::types::SimConfig;
use crate::types::Vote;
use crate::types::payload_digest;

/// A real log id as the simulation's.
pub fn log_id_from_real(id: real::LogId) -> LogId {
    LogId {
        leader_id: LeaderId {
            term: id.leader_id.term,
            node_id: id.leader_id.node_id,
        },
        index: id.index,
    }
}

/// A simulated log id as the real store's.
pub fn log_id_to_real(id: LogId) -> real::LogId {
    real::LogId {
        leader_id: LeaderId {
            term: id.leader_id.term,
            node_id: id.leader_id.node_id,
        },
        index: id.index,
    }
}

fn vote_to_real(v: &Vote) -> real::Vote {
    real::Vote {
        leader_id: LeaderId {
            term: v.leader_id.term,
            node_id: v.leader_id.node_id,
        },
        committed: v.committed,
    }
}

fn vote_from_real(v: real::Vote) -> Vote {
    Vote {
        leader_id: LeaderId {
            term: v.leader_id.term,
            node_id: v.leader_id.node_id,
        },
        committed: v.committed,
    }
}

fn entry_to_real(e: Entry) -> real::Entry {
    let payload = match e.payload {
        EntryPayload::Blank => real::EntryPayload::Blank,
        EntryPayload::Normal(r) => real::EntryPayload::Normal(r),
        EntryPayload::Membership(m) => real::EntryPayload::Membership(m),
    };
    real::Entry {
        log_id: log_id_to_real(e.log_id),
        payload,
    }
}

fn entry_from_real(e: real::Entry) -> Entry {
    let payload = match e.payload {
        real::EntryPayload::Blank => EntryPayload::Blank,
        real::EntryPayload::Normal(r) => EntryPayload::Normal(r),
        real::EntryPayload::Membership(m) => EntryPayload::Membership(m),
    };
    Entry {
        log_id: log_id_from_real(e.log_id),
        payload,
    }
}

type Completion = (
    tokio::sync::oneshot::Receiver<Result<(), io::Error>>,
    IOFlushed<SimConfig>,
);

/// The real log store of one node incarnation (also its reader: clones share the store).
#[derive(Clone)]
pub struct WalLog {
    node: u64,
    store: WalLogStore<SimDisk>,
    completions: mpsc::UnboundedSender<Completion>,
    checker: Checker,
}

impl Debug for WalLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalLog")
            .field("node", &self.node)
            .field("store", &self.store)
            .finish()
    }
}

impl WalLog {
    /// Wraps node `node`'s opened store and starts its completion forwarder (a task of the
    /// calling node). Call from a task of the node.
    pub fn new(node: u64, store: WalLogStore<SimDisk>, checker: Checker) -> Self {
        let (tx, mut rx) = mpsc::unbounded::<Completion>();
        drop(SimRuntime::spawn(async move {
            while let Some((done, callback)) = rx.next().await {
                let r = match done.await {
                    Ok(r) => r,
                    Err(_) => Err(io::Error::other("the real log store dropped a completion")),
                };
                callback.io_completed(r);
            }
        }));
        WalLog {
            node,
            store,
            completions: tx,
            checker,
        }
    }

    /// The real store.
    pub fn store(&self) -> &WalLogStore<SimDisk> {
        &self.store
    }
}

impl RaftLogReader<SimConfig> for WalLog {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let entries =
            RaftLogReader::<TypeConfig>::try_get_log_entries(&mut self.store, range).await?;
        Ok(entries.into_iter().map(entry_from_real).collect())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        let v = RaftLogReader::<TypeConfig>::read_vote(&mut self.store).await?;
        Ok(v.map(vote_from_real))
    }
}

impl RaftLogStorage<SimConfig> for WalLog {
    type LogReader = WalLog;

    async fn get_log_state(&mut self) -> Result<LogState<SimConfig>, io::Error> {
        let s = RaftLogStorage::<TypeConfig>::get_log_state(&mut self.store).await?;
        Ok(LogState {
            last_purged_log_id: s.last_purged_log_id.map(log_id_from_real),
            last_log_id: s.last_log_id.map(log_id_from_real),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        RaftLogStorage::<TypeConfig>::save_vote(&mut self.store, &vote_to_real(vote)).await?;
        self.checker.on_vote_saved(self.node, vote);
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        RaftLogStorage::<TypeConfig>::save_committed(&mut self.store, committed.map(log_id_to_real))
            .await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        let c = RaftLogStorage::<TypeConfig>::read_committed(&mut self.store).await?;
        Ok(c.map(log_id_from_real))
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
        let mut prev = RaftLogStorage::<TypeConfig>::get_log_state(&mut self.store)
            .await?
            .last_log_id
            .map(log_id_from_real);
        let mut reported = Vec::with_capacity(entries.len());
        for e in &entries {
            reported.push((e.log_id, payload_digest(&e.payload), prev));
            prev = Some(e.log_id);
        }
        let (tx, rx) = <GlommioRuntime as AsyncRuntime>::Oneshot::channel();
        RaftLogStorage::<TypeConfig>::append(
            &mut self.store,
            entries.into_iter().map(entry_to_real),
            IOFlushed::signal(tx),
        )
        .await?;
        for (log_id, digest, prev) in reported {
            self.checker.on_append(self.node, log_id, digest, prev);
        }
        if self.completions.unbounded_send((rx, callback)).is_err() {
            return Err(io::Error::other("completion forwarder is gone"));
        }
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = last_log_id.map_or(0, |id| id.index + 1);
        let removed: Vec<LogId> =
            RaftLogReader::<TypeConfig>::try_get_log_entries(&mut self.store, from..)
                .await?
                .into_iter()
                .map(|e| log_id_from_real(e.log_id))
                .collect();
        self.checker.on_truncate(self.node, &removed);
        RaftLogStorage::<TypeConfig>::truncate_after(
            &mut self.store,
            last_log_id.map(log_id_to_real),
        )
        .await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        RaftLogStorage::<TypeConfig>::purge(&mut self.store, log_id_to_real(log_id)).await
    }
}
