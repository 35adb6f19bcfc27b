//! TEST-ONLY in-process network: every group member is a `Raft` handle on the same glommio
//! executor, and an RPC is a direct call on the target's handle.
//!
//! The `Router` is the cluster's switchboard: a node is reachable while it is registered;
//! removing it (after shutting it down) makes every RPC to it fail with `Unreachable`,
//! which is what a crashed peer looks like to openraft.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::rc::Rc;

use openraft::OptionalSend;
use openraft::RaftNetworkFactory;
use openraft::RaftNetworkV2;
use openraft::errors::RPCError;
use openraft::errors::ReplicationClosed;
use openraft::errors::StreamingError;
use openraft::errors::Unreachable;
use openraft::network::RPCOption;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::SnapshotResponse;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use shoal::raft::TypeConfig;
use shoal::raft::types::NodeId;
use shoal::raft::types::Raft;
use shoal::raft::types::ShoalNode;
use shoal::raft::types::Snapshot;
use shoal::raft::types::Vote;

use super::mem_store::MemSnapshotData;
use super::mem_store::MemStateMachine;

/// A test node's Raft handle.
pub type MemRaft = Raft<MemStateMachine>;

/// Which nodes are up; clones share the same table.
#[derive(Debug, Clone, Default)]
pub struct Router {
    nodes: Rc<RefCell<BTreeMap<NodeId, MemRaft>>>,
}

impl Router {
    /// Make `id` reachable through `raft`.
    pub fn add(&self, id: NodeId, raft: MemRaft) {
        self.nodes.borrow_mut().insert(id, raft);
    }

    /// Make `id` unreachable; returns its handle if it was registered.
    pub fn remove(&self, id: NodeId) -> Option<MemRaft> {
        self.nodes.borrow_mut().remove(&id)
    }

    /// The handle of `id` if it is reachable.
    pub fn get(&self, id: NodeId) -> Option<MemRaft> {
        self.nodes.borrow().get(&id).cloned()
    }
}

impl RaftNetworkFactory<TypeConfig> for Router {
    type Network = MemNetwork;

    async fn new_client(&mut self, target: NodeId, _node: &ShoalNode) -> MemNetwork {
        MemNetwork {
            target,
            router: self.clone(),
        }
    }
}

/// The connection from one node to `target`.
#[derive(Debug)]
pub struct MemNetwork {
    target: NodeId,
    router: Router,
}

impl MemNetwork {
    fn peer(&self) -> Result<MemRaft, Unreachable<TypeConfig>> {
        // Clone the handle out: the table's borrow must not live across an await.
        self.router
            .get(self.target)
            .ok_or_else(|| Unreachable::from_string(format!("node {} is down", self.target)))
    }
}

impl RaftNetworkV2<TypeConfig> for MemNetwork {
    type SnapshotData = MemSnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let peer = self.peer()?;
        // The only error a peer's `append_entries` returns is Fatal (it is shutting down).
        peer.append_entries(rpc)
            .await
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let peer = self.peer()?;
        peer.vote(rpc)
            .await
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot<MemSnapshotData>,
        _cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let peer = self.peer()?;
        peer.install_full_snapshot(vote, snapshot)
            .await
            .map_err(|e| StreamingError::Unreachable(Unreachable::new(&e)))
    }
}
