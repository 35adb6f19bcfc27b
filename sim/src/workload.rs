//! Simulated clients: puts, deletes and linearizable reads on a few keys, sent to the
//! current leader, recorded into the run's history.
//!
//! Invariants:
//! - Every write carries a value (put) or token (delete, `client << 32 | seq`) unique in the run, so the history
//!   checker finds it in the committed log.
//! - An outcome is `Fail` only when openraft says the entry was never appended
//!   (`ForwardToLeader`); any other error, a timeout or a crash is `Unknown`.
//! - A read is served only after `ensure_linearizable` returned on the node whose state
//!   machine is then read, with no await in between.
//! - Every operation is bounded by a virtual-time timeout.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use openraft::ReadPolicy;
use openraft::async_runtime::WatchReceiver;
use openraft::errors::ClientWriteError;
use openraft::errors::RaftError;
use openraft_rt::AsyncRuntime;
use shoal::raft::types::NodeId;

use crate::command::Command;
use crate::history::OkValue;
use crate::history::Op;
use crate::history::OpKind;
use crate::history::Outcome;
use crate::network::SimNet;
use crate::runtime::SimRuntime;
use crate::runtime::Stream;
use crate::runtime::note;
use crate::runtime::now;
use crate::runtime::rng;
use crate::storage::StorageModel;

/// Bound on one client operation (virtual time).
pub const OP_TIMEOUT: Duration = Duration::from_secs(2);

/// The shared history of a run.
pub type History = Rc<RefCell<Vec<Op>>>;

/// What clients need from the cluster.
pub struct ClientEnv<S: StorageModel> {
    /// The network (to find node handles).
    pub net: SimNet<S::Sm>,
    /// The storage (to read a node's state machine).
    pub storage: Rc<S>,
    /// All voter ids.
    pub voters: Vec<NodeId>,
    /// Where operations are recorded.
    pub history: History,
    /// Number of keys.
    pub keys: u64,
    /// NEGATIVE CONTROL: serve reads from any up node's state machine, without ReadIndex.
    pub stale_reads: bool,
}

impl<S: StorageModel> std::fmt::Debug for ClientEnv<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientEnv")
            .field("voters", &self.voters)
            .finish()
    }
}

impl<S: StorageModel> Clone for ClientEnv<S> {
    fn clone(&self) -> Self {
        ClientEnv {
            net: self.net.clone(),
            storage: self.storage.clone(),
            voters: self.voters.clone(),
            history: self.history.clone(),
            keys: self.keys,
            stale_reads: self.stale_reads,
        }
    }
}

/// The key with number `k`.
pub fn key(k: u64) -> Bytes {
    Bytes::from(format!("k{k}"))
}

impl<S: StorageModel> ClientEnv<S> {
    /// The node some up node believes to be leader, if it is up.
    pub fn find_leader(&self) -> Option<NodeId> {
        let start = rng::below(Stream::Workload, self.voters.len() as u64);
        for i in 0..self.voters.len() as u64 {
            let id = self.voters[usize::try_from((start + i) % self.voters.len() as u64).ok()?];
            let Some(raft) = self.net.get(id) else {
                continue;
            };
            let leader = raft.metrics().borrow_watched().current_leader;
            if let Some(l) = leader {
                if self.net.get(l).is_some() {
                    return Some(l);
                }
            }
        }
        None
    }

    fn record(&self, client: u64, kind: OpKind, invoke: u64, outcome: Outcome) {
        let complete = now().as_nanos();
        note(format!("client {client}: {kind:?} -> {outcome:?}"));
        self.history.borrow_mut().push(Op {
            client,
            kind,
            invoke,
            complete,
            outcome,
        });
    }

    /// Write `cmd` through `leader`.
    pub async fn write(&self, client: u64, leader: NodeId, cmd: Command) {
        let invoke = now().as_nanos();
        let Some(raft) = self.net.get(leader) else {
            return;
        };
        let r = SimRuntime::timeout(OP_TIMEOUT, raft.client_write(cmd.encode())).await;
        let outcome = match r {
            Ok(Ok(resp)) => Outcome::Ok(OkValue::Written(resp.log_id.index)),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => Outcome::Fail,
            Ok(Err(_)) | Err(_) => Outcome::Unknown,
        };
        self.record(client, OpKind::Write(cmd), invoke, outcome);
    }

    /// Read `k` linearizably through `leader`.
    pub async fn read(&self, client: u64, leader: NodeId, k: Bytes) {
        let invoke = now().as_nanos();
        if self.stale_reads {
            // Negative control: whatever some node has applied, no leadership check.
            let ups: Vec<NodeId> = self
                .voters
                .iter()
                .copied()
                .filter(|id| self.net.get(*id).is_some())
                .collect();
            if let Some(&node) = ups.get(
                usize::try_from(rng::below(Stream::Workload, ups.len().max(1) as u64)).unwrap_or(0),
            ) {
                let value = self.storage.read(node, &k);
                self.record(
                    client,
                    OpKind::Read(k),
                    invoke,
                    Outcome::Ok(OkValue::Read(value)),
                );
            }
            return;
        }
        let Some(raft) = self.net.get(leader) else {
            return;
        };
        let r =
            SimRuntime::timeout(OP_TIMEOUT, raft.ensure_linearizable(ReadPolicy::ReadIndex)).await;
        let outcome = match r {
            // Read right away, in the same poll: the state machine has applied up to the
            // read log id and nothing can run in between.
            Ok(Ok(_)) => Outcome::Ok(OkValue::Read(self.storage.read(leader, &k))),
            Ok(Err(_)) | Err(_) => Outcome::Fail,
        };
        // A node that crashed while the read waited has no state machine to read: the
        // read did not happen.
        let outcome = match outcome {
            Outcome::Ok(_) if self.net.get(leader).is_none() => Outcome::Fail,
            o => o,
        };
        self.record(client, OpKind::Read(k), invoke, outcome);
    }

    /// One client: random operations until virtual time `until`.
    pub async fn run_client(self, client: u64, until: Duration) {
        let mut seq = 0u64;
        while now().since_start() < until {
            let Some(leader) = self.find_leader() else {
                SimRuntime::sleep(Duration::from_millis(20)).await;
                continue;
            };
            let k = key(rng::below(Stream::Workload, self.keys));
            let dice = rng::below(Stream::Workload, 100);
            seq += 1;
            if dice < 45 {
                let value = Bytes::from(format!("c{client}-{seq}"));
                self.write(client, leader, Command::Put { key: k, value })
                    .await;
            } else if dice < 55 {
                let token = (client << 32) | seq;
                self.write(client, leader, Command::Delete { key: k, token })
                    .await;
            } else {
                self.read(client, leader, k).await;
            }
            let think = rng::below(Stream::Workload, 20_000);
            SimRuntime::sleep(Duration::from_micros(think)).await;
        }
    }
}
