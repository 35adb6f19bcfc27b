//! `ShardCore`'s linearizable reads on a one-node group (real shard state machine,
//! test-only in-memory log): concurrent reads share ReadIndex rounds instead of running
//! one each, every read is answered, and a read that starts after a write was
//! acknowledged sees that write (also while other reads keep rounds running). Concurrent
//! writes share batches (one `client_write_many` per tick), in submission order.
// Test binary: a failed unwrap is how a helper fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod raft_support;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use openraft::OptionalSend;
use openraft::RaftNetworkFactory;
use openraft::RaftNetworkV2;
use openraft::async_runtime::WatchReceiver;
use openraft::errors::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use raft_support::mem_store::MemLogStore;
use shoal::node::ShardService;
use shoal::raft::ShardStateMachine;
use shoal::raft::TypeConfig;
use shoal::raft::types::{NodeId, Raft, ShoalNode, Snapshot, SnapshotData, Vote};
use shoal::shard::ShardCore;
use shoal::state::State;
use shoal_proto::{Get, Put, ReadConsistency, Request, Response};

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
        cluster_name: "shoal-reads-test".to_string(),
        heartbeat_interval: 50,
        election_timeout_min: 150,
        election_timeout_max: 300,
        // docs/RAFT.md pitfall 14.
        enable_leader_restore: Some(false),
        ..Default::default()
    };
    Arc::new(config.validate().unwrap())
}

/// A leading one-node group behind a `ShardCore`.
async fn start(dir: &std::path::Path) -> Rc<ShardCore> {
    let state = Rc::new(RefCell::new(State::new()));
    let sm = ShardStateMachine::open(dir.to_path_buf(), state.clone(), Rc::new(now_ms))
        .await
        .unwrap();
    let raft: Raft<ShardStateMachine> = Raft::new(1, config(), NoPeers, MemLogStore::default(), sm)
        .await
        .unwrap();
    raft.initialize(BTreeMap::from([(1, raft_support::node(1))]))
        .await
        .unwrap();
    raft.wait(Some(raft_support::WAIT))
        .leader_with_quorum_acked(None, "single node leads")
        .await
        .unwrap();
    Rc::new(ShardCore::new(0, 1, 1, raft, state))
}

fn deadline() -> Instant {
    Instant::now() + raft_support::WAIT
}

fn get(key: &str) -> Request {
    Request::Get(Get {
        shard: None,
        key: Bytes::copy_from_slice(key.as_bytes()),
        consistency: ReadConsistency::Linearizable,
    })
}

fn put(key: &str, value: &str) -> Request {
    Request::Put(Put {
        shard: None,
        key: Bytes::copy_from_slice(key.as_bytes()),
        value: Bytes::copy_from_slice(value.as_bytes()),
    })
}

#[test]
fn concurrent_reads_share_read_index_rounds_and_all_see_the_acknowledged_write() {
    const READS: usize = 200;
    raft_support::executor().run(async {
        let tmp = tempfile::tempdir().unwrap();
        let core = start(tmp.path()).await;
        let r = core.execute(put("k", "v1"), deadline()).await;
        assert!(matches!(r, Response::Put), "{r:?}");
        // Rounds are what this test is about: no single-voter shortcut.
        core.set_read_fast_path(false);

        let before = core.read_rounds();
        // Every read starts after the put was acknowledged: each must see v1.
        let reads: Vec<_> = (0..READS)
            .map(|_| {
                let core = core.clone();
                glommio::spawn_local(async move { core.execute(get("k"), deadline()).await })
            })
            .collect();
        for (i, read) in reads.into_iter().enumerate() {
            let r = read.await;
            assert!(
                matches!(&r, Response::Get(Some(v)) if v.as_ref() == b"v1"),
                "read {i}: {r:?}"
            );
        }
        let rounds = core.read_rounds() - before;
        assert!(rounds >= 1, "a linearizable read runs a round");
        // Spawned in one tick, the reads join at most a few rounds (the first round may
        // start before the later reads joined; everything else waits for the next).
        assert!(
            rounds * 10 <= READS as u64,
            "{READS} concurrent reads ran {rounds} ReadIndex rounds"
        );
    });
}

#[test]
fn concurrent_writes_share_batches_keep_their_order_and_are_all_applied() {
    const WRITES: usize = 200;
    raft_support::executor().run(async {
        let tmp = tempfile::tempdir().unwrap();
        let core = start(tmp.path()).await;
        let before = core.write_batches();
        // Spawned in one tick: distinct keys, plus two writes of one key in order.
        let mut writes: Vec<_> = (0..WRITES)
            .map(|i| {
                let core = core.clone();
                glommio::spawn_local(async move {
                    core.execute(put(&format!("k{i}"), &format!("v{i}")), deadline())
                        .await
                })
            })
            .collect();
        for value in ["first", "second"] {
            let core = core.clone();
            writes.push(glommio::spawn_local(async move {
                core.execute(put("same", value), deadline()).await
            }));
        }
        for (i, write) in writes.into_iter().enumerate() {
            let r = write.await;
            assert!(matches!(r, Response::Put), "write {i}: {r:?}");
        }
        let batches = core.write_batches() - before;
        assert!(batches >= 1, "a write goes through a batch");
        assert!(
            batches * 10 <= WRITES as u64,
            "{WRITES} concurrent writes took {batches} batches"
        );
        // Every write was applied, and the later of two writes of one key won.
        for i in 0..WRITES {
            let r = core.execute(get(&format!("k{i}")), deadline()).await;
            let want = format!("v{i}");
            assert!(
                matches!(&r, Response::Get(Some(v)) if v.as_ref() == want.as_bytes()),
                "k{i}: {r:?}"
            );
        }
        let r = core.execute(get("same"), deadline()).await;
        assert!(
            matches!(&r, Response::Get(Some(v)) if v.as_ref() == b"second"),
            "{r:?}"
        );
    });
}

#[test]
fn a_sole_voter_that_applied_its_log_serves_reads_without_a_round_and_they_are_fresh() {
    raft_support::executor().run(async {
        let tmp = tempfile::tempdir().unwrap();
        let core = start(tmp.path()).await;
        for i in 0..50 {
            let value = format!("v{i}");
            let r = core.execute(put("k", &value), deadline()).await;
            assert!(matches!(r, Response::Put), "{r:?}");
            // The put was applied before it was acknowledged; the metrics the fast path
            // reads say so once RaftCore has handled the apply's completion.
            let last = core.raft().metrics().borrow_watched().last_log_index;
            core.raft()
                .wait(Some(raft_support::WAIT))
                .applied_index_at_least(last, "the put applied")
                .await
                .unwrap();
            let (rounds, fast) = (core.read_rounds(), core.fast_reads());
            let r = core.execute(get("k"), deadline()).await;
            assert!(
                matches!(&r, Response::Get(Some(v)) if v.as_ref() == value.as_bytes()),
                "after put {value}: {r:?}"
            );
            // The whole log is applied: the read takes the fast path.
            assert_eq!(core.fast_reads(), fast + 1, "read {i} took the fast path");
            assert_eq!(core.read_rounds(), rounds, "read {i} ran no round");
        }
        // Off: the same read runs a round and sees the same value.
        core.set_read_fast_path(false);
        let rounds = core.read_rounds();
        let r = core.execute(get("k"), deadline()).await;
        assert!(
            matches!(&r, Response::Get(Some(v)) if v.as_ref() == b"v49"),
            "{r:?}"
        );
        assert_eq!(core.read_rounds(), rounds + 1);
    });
}

#[test]
fn a_read_started_after_a_write_was_acknowledged_sees_it_under_interleaving() {
    for fast_path in [true, false] {
        interleaved_reads_see_acknowledged_writes(fast_path);
    }
}

fn interleaved_reads_see_acknowledged_writes(fast_path: bool) {
    raft_support::executor().run(async move {
        let tmp = tempfile::tempdir().unwrap();
        let core = start(tmp.path()).await;
        core.set_read_fast_path(fast_path);
        // A background stream of reads keeps rounds running, so the checked reads mostly
        // arrive while a round is in flight and must wait for the next one. (On one node
        // a reused round would still read the applied state, so this checks freshness and
        // liveness under batching, not the round-reuse rule itself: that rule is argued in
        // `src/shard/read_batch.rs` and exercised on clusters by the history checks.)
        let stop = Rc::new(std::cell::Cell::new(false));
        let background: Vec<_> = (0..8)
            .map(|_| {
                let (core, stop) = (core.clone(), stop.clone());
                glommio::spawn_local(async move {
                    let mut n = 0u64;
                    while !stop.get() {
                        let r = core.execute(get("k"), deadline()).await;
                        assert!(matches!(r, Response::Get(_)), "{r:?}");
                        n += 1;
                        // A fast-path read completes without yielding; each real request
                        // is its own task, so let the others (the puts) run.
                        glommio::executor().yield_now().await;
                    }
                    n
                })
            })
            .collect();
        for i in 0..200 {
            let value = format!("v{i}");
            let r = core.execute(put("k", &value), deadline()).await;
            assert!(matches!(r, Response::Put), "{r:?}");
            let r = core.execute(get("k"), deadline()).await;
            assert!(
                matches!(&r, Response::Get(Some(v)) if v.as_ref() == value.as_bytes()),
                "after put {value}: {r:?}"
            );
        }
        stop.set(true);
        let mut background_reads = 0;
        for b in background {
            background_reads += glommio::timer::timeout(raft_support::WAIT, async { Ok(b.await) })
                .await
                .unwrap();
        }
        assert!(background_reads > 0);
    });
}
