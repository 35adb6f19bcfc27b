//! openraft 0.10.0-alpha.37 on glommio: snapshot policy, log purge, and catching up a new
//! member through `full_snapshot` / `install_full_snapshot` because the log it needs is gone.
//! Then the learner is promoted to voter and the two-node group keeps committing.
// Test binary: a failed unwrap is how a helper fails the test.
#![allow(clippy::unwrap_used)]

mod raft_support;

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use openraft::ReadPolicy;
use openraft::SnapshotPolicy;
use openraft::async_runtime::WatchReceiver;
use raft_support::mem_network::Router;
use raft_support::mem_store::MemLogStore;
use raft_support::mem_store::MemStateMachine;
use shoal::raft::types::Raft;
use shoal::raft::types::Request;

#[test]
fn lagging_learner_catches_up_from_a_snapshot_after_purge() {
    raft_support::executor().run(async {
        let config = Arc::new(
            openraft::Config {
                snapshot_policy: SnapshotPolicy::LogsSinceLast(5),
                max_in_snapshot_log_to_keep: 0,
                purge_batch_size: 1,
                ..(*raft_support::config()).clone()
            }
            .validate()
            .unwrap(),
        );
        let router = Router::default();

        let sm1 = MemStateMachine::default();
        let applied1 = sm1.state();
        let raft1 = Raft::new(
            1,
            config.clone(),
            router.clone(),
            MemLogStore::default(),
            sm1,
        )
        .await
        .unwrap();
        router.add(1, raft1.clone());
        raft1
            .initialize(BTreeMap::from([(1, raft_support::node(1))]))
            .await
            .unwrap();
        raft1
            .wait(Some(raft_support::WAIT))
            .leader_with_quorum_acked(None, "leader")
            .await
            .unwrap();

        let mut last = 0;
        for i in 0..12_u32 {
            let resp = raft1
                .client_write(Request {
                    command: Bytes::from(format!("w{i}")),
                })
                .await
                .unwrap();
            last = resp.log_id.index;
        }
        // The policy built a snapshot and the log before it was purged.
        let m = raft1
            .wait(Some(raft_support::WAIT))
            .metrics(
                |m| m.snapshot.is_some() && m.purged.is_some(),
                "snapshot + purge",
            )
            .await
            .unwrap();
        let purged = m.purged.unwrap().index;
        assert!(purged >= 5, "purged only up to {purged}");

        // A new node: the entries it needs are purged, so the leader must send a snapshot.
        let sm2 = MemStateMachine::default();
        let applied2 = sm2.state();
        let installed2 = sm2.installed_snapshots();
        let raft2 = Raft::new(
            2,
            config.clone(),
            router.clone(),
            MemLogStore::default(),
            sm2,
        )
        .await
        .unwrap();
        router.add(2, raft2.clone());
        raft1
            .add_learner(2, raft_support::node(2), true)
            .await
            .unwrap();
        raft2
            .wait(Some(raft_support::WAIT))
            .applied_index_at_least(Some(last), "learner caught up")
            .await
            .unwrap();
        let m2 = raft2.metrics().borrow_watched().clone();
        assert_eq!(
            installed2.get(),
            1,
            "the learner must catch up through a snapshot"
        );
        assert!(m2.snapshot.is_some(), "{m2:?}");
        assert_eq!(applied2.borrow().commands, applied1.borrow().commands);

        // Promote it; the group now needs both nodes to commit.
        raft1
            .change_membership(BTreeSet::from([1, 2]), false)
            .await
            .unwrap();
        let resp = raft1
            .client_write(Request {
                command: Bytes::from_static(b"after"),
            })
            .await
            .unwrap();
        raft2
            .wait(Some(raft_support::WAIT))
            .applied_index_at_least(Some(resp.log_id.index), "voter applies")
            .await
            .unwrap();
        assert_eq!(
            applied2.borrow().commands.last().unwrap().as_ref(),
            b"after"
        );
        raft1
            .ensure_linearizable(ReadPolicy::ReadIndex)
            .await
            .unwrap();

        raft2.shutdown().await.unwrap();
        raft1.shutdown().await.unwrap();
    });
}
