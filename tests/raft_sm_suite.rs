//! openraft's storage conformance suite (`openraft::testing::log::Suite`) on the real shard
//! state machine (`ShardStateMachine`, snapshots in a temporary directory) paired with the
//! test-only in-memory log store. Its own binary: the suite takes several seconds.
// Test binary: a failed unwrap is how a helper fails the test.
#![allow(clippy::unwrap_used)]

mod raft_support;

use std::cell::RefCell;
use std::rc::Rc;

use openraft::StorageError;
use openraft::testing::log::StoreBuilder;
use openraft::testing::log::Suite;
use raft_support::mem_store::MemLogStore;
use shoal::raft::ShardStateMachine;
use shoal::raft::TypeConfig;
use shoal::state::State;

struct ShardSmBuilder;

impl StoreBuilder<TypeConfig, MemLogStore, ShardStateMachine, tempfile::TempDir>
    for ShardSmBuilder
{
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, MemLogStore, ShardStateMachine), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().unwrap();
        let sm = ShardStateMachine::open(
            dir.path().join("snapshots"),
            Rc::new(RefCell::new(State::new())),
            Rc::new(|| 0),
        )
        .await
        .unwrap();
        Ok((dir, MemLogStore::default(), sm))
    }
}

#[test]
fn shard_state_machine_passes_openraft_storage_suite() {
    raft_support::executor().run(async {
        Suite::test_all(ShardSmBuilder).await.unwrap();
    });
}
