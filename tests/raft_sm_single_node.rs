//! A one-node Raft group on a glommio executor with the real shard state machine
//! (`ShardStateMachine`) and the test-only in-memory log: client writes answer
//! `ApplyReply`s (written, deleted with/without a live key, rejected), a triggered
//! snapshot is persisted, and a restart from the same snapshot directory restores the
//! state before the log is re-applied.
// Test binary: a failed unwrap is how a helper fails the test.
#![allow(clippy::unwrap_used)]

mod raft_support;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use openraft::OptionalSend;
use openraft::RaftNetworkFactory;
use openraft::RaftNetworkV2;
use openraft::ReadPolicy;
use openraft::SnapshotPolicy;
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
use raft_support::mem_store::MemLogStore;
use shoal::raft::ApplyReply;
use shoal::raft::ShardStateMachine;
use shoal::raft::TypeConfig;
use shoal::raft::types::LogId;
use shoal::raft::types::NodeId;
use shoal::raft::types::Raft;
use shoal::raft::types::Request;
use shoal::raft::types::ShoalNode;
use shoal::raft::types::Snapshot;
use shoal::raft::types::SnapshotData;
use shoal::raft::types::Vote;
use shoal::state::Command;
use shoal::state::State;

/// The network of a one-node group: there is no peer to reach.
#[derive(Debug, Clone)]
struct NoPeers;

impl RaftNetworkFactory<TypeConfig> for NoPeers {
    type Network = NoPeers;

    async fn new_client(&mut self, _target: NodeId, _node: &ShoalNode) -> NoPeers {
        NoPeers
    }
}

fn unreachable() -> Unreachable<TypeConfig> {
    Unreachable::from_string("single-node group: no peers".to_string())
}

impl RaftNetworkV2<TypeConfig> for NoPeers {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        Err(RPCError::Unreachable(unreachable()))
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        Err(RPCError::Unreachable(unreachable()))
    }

    async fn full_snapshot(
        &mut self,
        _vote: Vote,
        _snapshot: Snapshot<SnapshotData>,
        _cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        Err(StreamingError::Unreachable(unreachable()))
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn config() -> Arc<openraft::Config> {
    let config = openraft::Config {
        cluster_name: "shoal-sm-test".to_string(),
        heartbeat_interval: 50,
        election_timeout_min: 150,
        election_timeout_max: 300,
        // Snapshots only when the test asks.
        snapshot_policy: SnapshotPolicy::Never,
        // docs/RAFT.md pitfall 14.
        enable_leader_restore: Some(false),
        ..Default::default()
    };
    Arc::new(config.validate().unwrap())
}

async fn start(
    dir: &std::path::Path,
    log: &MemLogStore,
) -> (Raft<ShardStateMachine>, Rc<RefCell<State>>) {
    let state = Rc::new(RefCell::new(State::new()));
    let sm = ShardStateMachine::open(dir.to_path_buf(), state.clone(), Rc::new(now_ms))
        .await
        .unwrap();
    let raft = Raft::new(1, config(), NoPeers, log.clone(), sm)
        .await
        .unwrap();
    (raft, state)
}

async fn write(raft: &Raft<ShardStateMachine>, command: Bytes) -> (LogId, ApplyReply) {
    let resp = raft.client_write(Request { command }).await.unwrap();
    (resp.log_id, ApplyReply::from_response(&resp.data).unwrap())
}

fn put(k: &str, v: &str) -> Bytes {
    Command::Put {
        key: Bytes::copy_from_slice(k.as_bytes()),
        value: Bytes::copy_from_slice(v.as_bytes()),
    }
    .to_bytes()
    .unwrap()
}

fn delete(k: &str) -> Bytes {
    Command::Delete {
        key: Bytes::copy_from_slice(k.as_bytes()),
    }
    .to_bytes()
    .unwrap()
}

fn value(state: &RefCell<State>, k: &str) -> Option<Bytes> {
    state.borrow().get(k.as_bytes(), now_ms())
}

#[test]
fn single_node_writes_snapshots_and_restarts_from_its_snapshot() {
    raft_support::executor().run(async {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("shard-0").join("snapshots");
        // The log store outlives the restart, as a WAL would.
        let log = MemLogStore::default();

        let (raft, state) = start(&dir, &log).await;
        raft.initialize(BTreeMap::from([(1, raft_support::node(1))]))
            .await
            .unwrap();
        raft.wait(Some(raft_support::WAIT))
            .leader_with_quorum_acked(None, "single node leads")
            .await
            .unwrap();

        for i in 0..100 {
            let (_, reply) = write(&raft, put(&format!("k{i}"), &format!("v{i}"))).await;
            assert_eq!(reply, ApplyReply::Written);
        }
        assert_eq!(
            write(&raft, delete("k1")).await.1,
            ApplyReply::Deleted { existed: true }
        );
        assert_eq!(
            write(&raft, delete("k1")).await.1,
            ApplyReply::Deleted { existed: false }
        );
        // A key whose expiry has passed is not live: deleting it finds nothing.
        let expired = Command::PutWithTtl {
            key: Bytes::from_static(b"gone"),
            value: Bytes::from_static(b"x"),
            expire_at_ms: now_ms() - 1_000,
        };
        assert_eq!(
            write(&raft, expired.to_bytes().unwrap()).await.1,
            ApplyReply::Written
        );
        assert_eq!(
            write(&raft, delete("gone")).await.1,
            ApplyReply::Deleted { existed: false }
        );
        // Bytes that are no command: rejected, the group goes on.
        let (rejected_at, reply) = write(&raft, Bytes::from_static(b"\xff\x01junk")).await;
        match reply {
            ApplyReply::Rejected { reason } => {
                assert!(reason.contains("version"), "{reason}")
            }
            other => panic!("garbage was {other:?}"),
        }
        assert_eq!(
            state.borrow().last_applied().unwrap().index,
            rejected_at.index
        );
        let (snap_at, _) = write(&raft, put("k0", "new")).await;

        raft.trigger().snapshot().await.unwrap();
        raft.wait(Some(raft_support::WAIT))
            .snapshot(snap_at, "snapshot built")
            .await
            .unwrap();
        let file = dir.join(format!(
            "snapshot-{}-{}.snap",
            snap_at.leader_id.term, snap_at.index
        ));
        assert!(file.exists(), "{} missing", file.display());

        // Writes after the snapshot live only in the log.
        for i in 0..5 {
            write(&raft, put(&format!("after{i}"), "x")).await;
        }
        let keys_at_snapshot = 99; // k0..k99 without k1
        assert_eq!(state.borrow().len(), keys_at_snapshot + 5);
        raft.shutdown().await.unwrap();
        drop(raft);

        // Restart: `open` restores the snapshot before Raft exists...
        let (raft, state) = {
            let state = Rc::new(RefCell::new(State::new()));
            let sm = ShardStateMachine::open(dir.clone(), state.clone(), Rc::new(now_ms))
                .await
                .unwrap();
            assert_eq!(state.borrow().last_applied().unwrap().index, snap_at.index);
            assert_eq!(state.borrow().len(), keys_at_snapshot);
            assert_eq!(value(&state, "k0").as_deref(), Some(&b"new"[..]));
            assert_eq!(value(&state, "after0"), None);
            let raft = Raft::new(1, config(), NoPeers, log.clone(), sm)
                .await
                .unwrap();
            (raft, state)
        };
        // ...and openraft re-applies the committed log after it.
        raft.wait(Some(raft_support::WAIT))
            .leader_with_quorum_acked(None, "leads again")
            .await
            .unwrap();
        raft.ensure_linearizable(ReadPolicy::ReadIndex)
            .await
            .unwrap();
        for i in 0..5 {
            assert_eq!(
                value(&state, &format!("after{i}")).as_deref(),
                Some(&b"x"[..])
            );
        }
        assert_eq!(value(&state, "k1"), None);
        assert_eq!(value(&state, "k42").as_deref(), Some(&b"v42"[..]));
        let (at, reply) = write(&raft, put("late", "y")).await;
        assert_eq!(reply, ApplyReply::Written);
        assert!(at.index > snap_at.index + 5);
        raft.shutdown().await.unwrap();
    });
}
