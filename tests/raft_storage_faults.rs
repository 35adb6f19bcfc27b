//! How openraft 0.10.0-alpha.37 on the glommio runtime reacts when the log storage fails:
//! a failed flush (what a poisoned WAL reports) and a panic inside the storage both stop
//! the Raft node with `Fatal`, surface in `metrics().running_state`, and leave the glommio
//! executor running (the runtime catches task panics).
// Test binary: a failed unwrap is how a helper fails the test.
#![allow(clippy::unwrap_used)]

mod raft_support;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use openraft::errors::Fatal;
use openraft_rt::AsyncRuntime;
use raft_support::mem_network::MemRaft;
use raft_support::mem_network::Router;
use raft_support::mem_store::AppendFault;
use raft_support::mem_store::MemLogStore;
use raft_support::mem_store::MemStateMachine;
use shoal::raft::GlommioRuntime;
use shoal::raft::TypeConfig;
use shoal::raft::types::Raft;
use shoal::raft::types::Request;

async fn leader_with(log: MemLogStore) -> MemRaft {
    let router = Router::default();
    let raft = Raft::new(
        1,
        raft_support::config(),
        router.clone(),
        log,
        MemStateMachine::default(),
    )
    .await
    .unwrap();
    router.add(1, raft.clone());
    raft.initialize(BTreeMap::from([(1, raft_support::node(1))]))
        .await
        .unwrap();
    raft.wait(Some(raft_support::WAIT))
        .leader_with_quorum_acked(None, "leader")
        .await
        .unwrap();
    raft.client_write(Request {
        command: Bytes::from_static(b"ok"),
    })
    .await
    .unwrap();
    raft
}

async fn write_fails_fatally(raft: &MemRaft) -> Fatal<TypeConfig> {
    let res = GlommioRuntime::timeout(
        raft_support::WAIT,
        raft.client_write(Request {
            command: Bytes::from_static(b"doomed"),
        }),
    )
    .await
    .expect("a write to a failed store must fail, not hang");
    let err = res.unwrap_err();
    err.into_fatal()
        .unwrap_or_else(|| panic!("expected a Fatal error"))
}

async fn running_state_is_fatal(raft: &MemRaft) -> Fatal<TypeConfig> {
    let m = raft
        .wait(Some(raft_support::WAIT))
        .metrics(|m| m.running_state.is_err(), "stopped")
        .await
        .unwrap();
    m.running_state.unwrap_err()
}

#[test]
fn failed_flush_stops_the_node_with_a_storage_error() {
    raft_support::executor().run(async {
        let log = MemLogStore::default();
        let raft = leader_with(log.clone()).await;
        log.inject(AppendFault::FlushError);

        let fatal = write_fails_fatally(&raft).await;
        assert!(matches!(fatal, Fatal::StorageError(_)), "{fatal}");
        assert!(matches!(
            running_state_is_fatal(&raft).await,
            Fatal::StorageError(_)
        ));
        raft.shutdown().await.unwrap();
    });
}

#[test]
fn storage_panic_stops_the_node_but_not_the_executor() {
    let ex = raft_support::executor();
    ex.run(async {
        let log = MemLogStore::default();
        let raft = leader_with(log.clone()).await;
        log.inject(AppendFault::Panic);

        let fatal = write_fails_fatally(&raft).await;
        assert!(matches!(fatal, Fatal::Panicked), "{fatal}");
        raft.shutdown().await.unwrap();
    });
    // The executor survived the panic and still runs tasks.
    let v = ex.run(async {
        GlommioRuntime::sleep(Duration::from_millis(1)).await;
        7
    });
    assert_eq!(v, 7);
}
