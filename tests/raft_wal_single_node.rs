//! One openraft node on a glommio executor with the WAL-backed log store on real files
//! (`<tmp>/shard-0/wal`, glommio O_DIRECT) and the test-only state machine: initialize,
//! write 100 entries, shut down, close the store, then start a new `Raft` over the same
//! directory and check the log, the vote and the committed id came back and the state
//! machine was re-applied up to the committed id before the node even campaigned; and that
//! without `close` the log still comes back and the state machine catches up.
// Test binary: a failed unwrap is how a helper fails the test.
#![allow(clippy::unwrap_used)]

mod raft_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use openraft::async_runtime::WatchReceiver;
use raft_support::mem_network::Router;
use raft_support::mem_store::MemStateMachine;
use shoal::raft::log_store::AckMode;
use shoal::raft::log_store::WalLogStore;
use shoal::raft::types::Raft;
use shoal::raft::types::Request;
use shoal_wal::GlommioDisk;
use shoal_wal::SyncMode;
use shoal_wal::WalConfig;

fn wal_config() -> WalConfig {
    WalConfig {
        segment_size: 1 << 20,
        max_write: 256 << 10,
        max_payload: 64 << 10,
        cache_bytes: 64 << 10,
        max_read: 256 << 10,
    }
}

fn config() -> Arc<openraft::Config> {
    let config = openraft::Config {
        cluster_name: "shoal-wal-test".to_string(),
        heartbeat_interval: 50,
        election_timeout_min: 150,
        election_timeout_max: 300,
        // docs/RAFT.md pitfall 14: every Shoal config turns leader restore off.
        enable_leader_restore: Some(false),
        ..Default::default()
    };
    Arc::new(config.validate().unwrap())
}

async fn start(
    wal_dir: &Path,
) -> (
    Raft<MemStateMachine>,
    WalLogStore<GlommioDisk>,
    MemStateMachine,
    Router,
) {
    let disk = GlommioDisk::open(wal_dir, SyncMode::DEFAULT).await.unwrap();
    let (store, report) = WalLogStore::open(disk, wal_config(), AckMode::AfterFsync)
        .await
        .unwrap();
    assert_eq!(report.torn_tail, None);
    let router = Router::default();
    let sm = MemStateMachine::default();
    let raft = Raft::new(1, config(), router.clone(), store.clone(), sm.clone())
        .await
        .unwrap();
    router.add(1, raft.clone());
    (raft, store, sm, router)
}

#[test]
fn log_vote_and_committed_survive_a_restart_on_real_files() {
    raft_support::executor().run(async {
        let dir = tempfile::tempdir().unwrap();
        let wal_dir = dir.path().join("shard-0").join("wal");

        let (raft, store, sm, _router) = start(&wal_dir).await;
        assert!(!raft.is_initialized().await.unwrap());
        raft.initialize(BTreeMap::from([(1, raft_support::node(1))]))
            .await
            .unwrap();
        raft.wait(Some(raft_support::WAIT))
            .leader_with_quorum_acked(None, "single node leads")
            .await
            .unwrap();
        let mut commands = Vec::new();
        for i in 0..100_u32 {
            let command = Bytes::from(format!("put k{i} v{i}"));
            raft.client_write(Request {
                command: command.clone(),
            })
            .await
            .unwrap();
            commands.push(command);
        }
        let before = raft.metrics().borrow_watched().clone();
        let last_index = before.last_log_index.unwrap();
        assert!(last_index >= 101, "membership + blank + 100 writes");
        assert_eq!(before.local_committed.map(|c| c.index), Some(last_index));
        assert_eq!(sm.state().borrow().commands, commands);
        assert!(store.stats().wal.writes > 0);
        raft.shutdown().await.unwrap();
        store.close().await.unwrap();
        drop(raft);

        let (raft, store, sm, _router) = start(&wal_dir).await;
        // Raft::new re-applied the log up to the saved committed id before returning.
        {
            let state = sm.state();
            let state = state.borrow();
            assert_eq!(state.last_applied, before.local_committed);
            assert_eq!(state.commands, commands);
        }
        let after = raft.metrics().borrow_watched().clone();
        assert_eq!(after.last_log_index, Some(last_index));
        assert!(after.vote.leader_id.term >= before.vote.leader_id.term);
        assert!(raft.is_initialized().await.unwrap());
        // It leads again (a new term) and the log continues after the old last index.
        raft.wait(Some(raft_support::WAIT))
            .leader_with_quorum_acked(None, "single node leads again")
            .await
            .unwrap();
        let resp = raft
            .client_write(Request {
                command: Bytes::from_static(b"put after restart"),
            })
            .await
            .unwrap();
        assert!(resp.log_id.index > last_index);
        assert!(resp.log_id.leader_id.term > before.vote.leader_id.term);
        raft.shutdown().await.unwrap();
        store.close().await.unwrap();
    });
}

#[test]
fn without_close_the_log_comes_back_and_the_state_machine_catches_up() {
    raft_support::executor().run(async {
        let dir = tempfile::tempdir().unwrap();
        let wal_dir = dir.path().join("shard-0").join("wal");

        let (raft, store, sm, _router) = start(&wal_dir).await;
        raft.initialize(BTreeMap::from([(1, raft_support::node(1))]))
            .await
            .unwrap();
        raft.wait(Some(raft_support::WAIT))
            .leader_with_quorum_acked(None, "single node leads")
            .await
            .unwrap();
        let mut commands = Vec::new();
        for i in 0..100_u32 {
            let command = Bytes::from(format!("put k{i} v{i}"));
            raft.client_write(Request {
                command: command.clone(),
            })
            .await
            .unwrap();
            commands.push(command);
        }
        let before = raft.metrics().borrow_watched().clone();
        assert_eq!(sm.state().borrow().commands, commands);
        // Every write was applied, so (one voter) every entry was flushed first. Stop
        // without closing the store: the committed id on disk is only the lazily saved one.
        raft.shutdown().await.unwrap();
        drop(raft);
        drop(store);

        let (raft, _store, sm, _router) = start(&wal_dir).await;
        let after = raft.metrics().borrow_watched().clone();
        assert_eq!(after.last_log_index, before.last_log_index);
        let restarted_at = sm.state().borrow().last_applied;
        assert!(restarted_at <= before.local_committed);
        // Once it leads again and commits, the state machine applies the rest of the log.
        raft.wait(Some(raft_support::WAIT))
            .leader_with_quorum_acked(None, "single node leads again")
            .await
            .unwrap();
        raft.wait(Some(raft_support::WAIT))
            .applied_index_at_least(before.last_log_index, "re-applied the old log")
            .await
            .unwrap();
        assert_eq!(sm.state().borrow().commands, commands);
        raft.shutdown().await.unwrap();
    });
}
