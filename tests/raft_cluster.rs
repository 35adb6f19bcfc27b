//! openraft 0.10.0-alpha.37 on glommio, three nodes in one executor with the in-process
//! network: elect, write and replicate, redirect from a follower, stop the leader, elect a
//! new one among the survivors, write again, and read linearizably on the new leader.
// Test binary: a failed unwrap is how a helper fails the test.
#![allow(clippy::unwrap_used)]

mod raft_support;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use bytes::Bytes;
use openraft::ReadPolicy;
use openraft::errors::ClientWriteError;
use raft_support::mem_network::MemRaft;
use raft_support::mem_network::Router;
use raft_support::mem_store::MemLogStore;
use raft_support::mem_store::MemState;
use raft_support::mem_store::MemStateMachine;
use shoal::raft::types::NodeId;
use shoal::raft::types::Raft;
use shoal::raft::types::Request;

struct TestNode {
    raft: MemRaft,
    applied: Rc<RefCell<MemState>>,
}

async fn start(router: &Router, id: NodeId) -> TestNode {
    let sm = MemStateMachine::default();
    let applied = sm.state();
    let raft = Raft::new(
        id,
        raft_support::config(),
        router.clone(),
        MemLogStore::default(),
        sm,
    )
    .await
    .unwrap();
    router.add(id, raft.clone());
    TestNode { raft, applied }
}

/// Waits until `node` sees a leader other than `not` and returns it.
async fn leader_seen_by(node: &MemRaft, not: Option<NodeId>) -> NodeId {
    let metrics = node
        .wait(Some(raft_support::WAIT))
        .metrics(
            |m| m.current_leader.is_some() && m.current_leader != not,
            "a new leader",
        )
        .await
        .unwrap();
    metrics.current_leader.unwrap()
}

async fn write(raft: &MemRaft, command: &'static str) -> u64 {
    let resp = raft
        .client_write(Request {
            command: Bytes::from_static(command.as_bytes()),
        })
        .await
        .unwrap();
    resp.log_id.index
}

#[test]
fn three_nodes_elect_replicate_and_fail_over() {
    raft_support::executor().run(async {
        let router = Router::default();
        let mut nodes = BTreeMap::new();
        for id in 1..=3 {
            nodes.insert(id, start(&router, id).await);
        }
        let members: BTreeMap<_, _> = (1..=3).map(|id| (id, raft_support::node(id))).collect();
        nodes[&1].raft.initialize(members).await.unwrap();

        let first = leader_seen_by(&nodes[&1].raft, None).await;
        let leader = &nodes[&first].raft;
        // Before the first write: a fresh leader's lease is not valid until a quorum acked it.
        leader
            .wait(Some(raft_support::WAIT))
            .leader_with_quorum_acked(None, "lease")
            .await
            .unwrap();

        let mut expected = Vec::new();
        let mut last = 0;
        for cmd in ["a=1", "b=2", "c=3"] {
            last = write(leader, cmd).await;
            expected.push(Bytes::from_static(cmd.as_bytes()));
        }
        for node in nodes.values() {
            node.raft
                .wait(Some(raft_support::WAIT))
                .applied_index_at_least(Some(last), "replicated")
                .await
                .unwrap();
            assert_eq!(node.applied.borrow().commands, expected);
        }

        // A follower refuses writes and names the leader.
        let follower = *nodes.keys().find(|&&id| id != first).unwrap();
        let err = nodes[&follower]
            .raft
            .client_write(Request {
                command: Bytes::from_static(b"nope"),
            })
            .await
            .unwrap_err();
        match err.api_error() {
            Some(ClientWriteError::ForwardToLeader(fwd)) => {
                assert_eq!(fwd.leader_id, Some(first));
                assert_eq!(fwd.leader_node, Some(raft_support::node(first)));
            }
            other => panic!("expected ForwardToLeader, got {other:?}"),
        }
        // ... and cannot serve a linearizable read itself.
        let err = nodes[&follower]
            .raft
            .ensure_linearizable(ReadPolicy::ReadIndex)
            .await
            .unwrap_err();
        assert!(err.forward_to_leader().is_some(), "{err}");

        // Stop the leader: shut it down and cut it off.
        let old = nodes.remove(&first).unwrap();
        old.raft.shutdown().await.unwrap();
        router.remove(first);

        let survivor = *nodes.keys().next().unwrap();
        let second = leader_seen_by(&nodes[&survivor].raft, Some(first)).await;
        assert_ne!(second, first);
        let leader = &nodes[&second].raft;
        leader
            .wait(Some(raft_support::WAIT))
            .leader_with_quorum_acked(None, "new lease")
            .await
            .unwrap();

        let last = write(leader, "d=4").await;
        expected.push(Bytes::from_static(b"d=4"));
        for node in nodes.values() {
            node.raft
                .wait(Some(raft_support::WAIT))
                .applied_index_at_least(Some(last), "replicated")
                .await
                .unwrap();
            // Nothing committed under the old leader was lost.
            assert_eq!(node.applied.borrow().commands, expected);
        }
        let read_log_id = leader
            .ensure_linearizable(ReadPolicy::ReadIndex)
            .await
            .unwrap();
        assert!(nodes[&second].applied.borrow().last_applied.unwrap().index >= read_log_id.index());
        assert!(read_log_id.index() >= last);

        for node in nodes.values() {
            node.raft.shutdown().await.unwrap();
        }
    });
}
