//! openraft 0.10.0-alpha.37 end to end on the glommio runtime, one node: initialize, become
//! leader with a quorum-acked lease, write, read linearizably, shut down.
// Test binary: a failed unwrap is how a helper fails the test.
#![allow(clippy::unwrap_used)]

mod raft_support;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use openraft::ReadPolicy;
use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;
use raft_support::mem_network::Router;
use raft_support::mem_store::MemLogStore;
use raft_support::mem_store::MemStateMachine;
use shoal::raft::types::Raft;
use shoal::raft::types::Request;

#[test]
fn single_node_elects_writes_reads_and_shuts_down() {
    raft_support::executor().run(async {
        let router = Router::default();
        let sm = MemStateMachine::default();
        let applied = sm.state();
        let raft = Raft::new(
            1,
            raft_support::config(),
            router.clone(),
            MemLogStore::default(),
            sm,
        )
        .await
        .unwrap();
        router.add(1, raft.clone());

        assert!(!raft.is_initialized().await.unwrap());
        raft.initialize(BTreeMap::from([(1, raft_support::node(1))]))
            .await
            .unwrap();

        let metrics = raft
            .wait(Some(raft_support::WAIT))
            .leader_with_quorum_acked(None, "single node leads")
            .await
            .unwrap();
        assert_eq!(metrics.state, ServerState::Leader);
        assert_eq!(metrics.current_leader, Some(1));
        assert!(raft.is_leader());

        let mut expected = Vec::new();
        for i in 0..5_u32 {
            let command = Bytes::from(format!("put k{i} v{i}"));
            let resp = raft
                .client_write(Request {
                    command: command.clone(),
                })
                .await
                .unwrap();
            // The test state machine answers the index it applied the entry at.
            assert_eq!(resp.data.reply.as_ref(), &resp.log_id.index.to_le_bytes());
            assert!(resp.membership.is_none());
            expected.push(command);
        }

        // ReadIndex: confirms leadership, then waits until the state machine applied up to
        // the returned read log id; after it returns the local state machine may be read.
        let read_log_id = raft
            .ensure_linearizable(ReadPolicy::ReadIndex)
            .await
            .unwrap();
        {
            let state = applied.borrow();
            let last_applied = state.last_applied.unwrap();
            assert!(last_applied.index >= read_log_id.index());
            assert_eq!(state.commands, expected);
        }
        // The two-step form gives the read log id first and a bounded wait for apply.
        let linearizer = raft
            .get_read_linearizer(ReadPolicy::ReadIndex)
            .await
            .unwrap();
        let ready = linearizer
            .try_await_ready(&raft, Some(Duration::from_secs(5)))
            .await
            .unwrap();
        let ready = ready.unwrap_or_else(|s| panic!("not applied in time: {s:?}"));
        assert!(ready.applied().unwrap().index >= ready.read_log_id().index());

        // `metrics()` is a watch receiver; `borrow_watched` is openraft_rt's name for `borrow`.
        let metrics = raft.metrics().borrow_watched().clone();
        assert_eq!(metrics.last_applied, applied.borrow().last_applied);
        assert_eq!(metrics.local_committed, metrics.last_applied);
        assert_eq!(metrics.cluster_committed, metrics.last_applied);

        raft.shutdown().await.unwrap();
        // After shutdown every API call fails with Fatal instead of hanging.
        let err = raft
            .client_write(Request {
                command: Bytes::from_static(b"late"),
            })
            .await
            .unwrap_err();
        assert!(
            matches!(err.fatal(), Some(openraft::errors::Fatal::Stopped)),
            "{err}"
        );
    });
}
