//! openraft's own storage conformance suite (`openraft::testing::log::Suite`) run against the
//! test-only in-memory store on a glommio executor. It validates the test store the other
//! `raft_*` tests rely on, and is the harness the WAL-backed `RaftLogStorage` and the real
//! state machine must pass too (swap in their `StoreBuilder`).
// Test binary: a failed unwrap is how a helper fails the test.
#![allow(clippy::unwrap_used)]

mod raft_support;

use openraft::StorageError;
use openraft::testing::log::StoreBuilder;
use openraft::testing::log::Suite;
use raft_support::mem_store::MemLogStore;
use raft_support::mem_store::MemStateMachine;
use shoal::raft::TypeConfig;

struct MemStoreBuilder;

impl StoreBuilder<TypeConfig, MemLogStore, MemStateMachine> for MemStoreBuilder {
    async fn build(&self) -> Result<((), MemLogStore, MemStateMachine), StorageError<TypeConfig>> {
        Ok(((), MemLogStore::default(), MemStateMachine::default()))
    }
}

#[test]
fn mem_store_passes_openraft_storage_suite() {
    raft_support::executor().run(async {
        Suite::test_all(MemStoreBuilder).await.unwrap();
    });
}
