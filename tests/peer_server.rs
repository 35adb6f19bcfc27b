//! `PeerServer` and `PeerClient` against a test-double `PeerHandler`, over TCP on
//! 127.0.0.1, in one executor: a heartbeat is answered while a snapshot install is in
//! progress on another connection; an append batch larger than a frame is sent as the
//! prefix that fits (`PartialSuccess`); snapshots arrive whole through many chunks; an
//! oversized snapshot is refused without breaking the connection; a cancelled transfer
//! returns `Closed`; after shutdown the port is unreachable.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test binary: a failed unwrap fails the test

mod raft_support;

use std::cell::Cell;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use std::time::Instant;

use bytes::Bytes;
use openraft::AsyncRuntime;
use openraft::RaftNetworkV2;
use openraft::errors::ReplicationClosed;
use openraft::errors::StreamingError;
use openraft::network::RPCOption;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::SnapshotResponse;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use shoal::peer::LocalPeer;
use shoal::peer::PeerConfig;
use shoal::peer::PeerHandler;
use shoal::peer::PeerNetwork;
use shoal::peer::PeerServer;
use shoal::raft::GlommioRuntime;
use shoal::raft::TypeConfig;
use shoal::raft::types::Entry;
use shoal::raft::types::EntryPayload;
use shoal::raft::types::LogId;
use shoal::raft::types::Request;
use shoal::raft::types::ShoalNode;
use shoal::raft::types::Snapshot;
use shoal::raft::types::SnapshotMeta;
use shoal::raft::types::Vote;
use shoal_proto::peer::PeerError;
use tokio::sync::Notify;

const WAIT: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Double {
    appends: Cell<u64>,
    snapshots: RefCell<Vec<Bytes>>,
    gate: Notify,
    gated: Cell<bool>,
}

#[derive(Clone, Default)]
struct Handler(Rc<Double>);

impl PeerHandler for Handler {
    async fn append_entries(
        &self,
        _rpc: AppendEntriesRequest<TypeConfig>,
    ) -> Result<AppendEntriesResponse<TypeConfig>, PeerError> {
        self.0.appends.set(self.0.appends.get() + 1);
        Ok(AppendEntriesResponse::Success)
    }

    async fn vote(
        &self,
        rpc: VoteRequest<TypeConfig>,
    ) -> Result<VoteResponse<TypeConfig>, PeerError> {
        Ok(VoteResponse::new(rpc.vote, None, true))
    }

    async fn pre_vote(
        &self,
        rpc: VoteRequest<TypeConfig>,
    ) -> Result<VoteResponse<TypeConfig>, PeerError> {
        // Distinguishable from `vote`: pre-votes are refused by this double.
        Ok(VoteResponse::new(rpc.vote, None, false))
    }

    async fn install_full_snapshot(
        &self,
        vote: Vote,
        snapshot: Snapshot<Bytes>,
    ) -> Result<SnapshotResponse<TypeConfig>, PeerError> {
        self.0.snapshots.borrow_mut().push(snapshot.snapshot);
        if self.0.gated.get() {
            self.0.gate.notified().await;
        }
        Ok(SnapshotResponse { vote })
    }
}

fn config(node_id: u64) -> PeerConfig {
    let mut c = PeerConfig::new(
        LocalPeer {
            cluster_id: 7,
            node_id,
            shard_count: 1,
        },
        0,
    );
    c.snapshot_chunk_len = 1024;
    c.max_snapshot_len = 8 * 1024;
    c
}

fn heartbeat() -> AppendEntriesRequest<TypeConfig> {
    AppendEntriesRequest {
        vote: Vote::new_committed(1, 1),
        prev_log_id: None,
        entries: vec![],
        leader_commit: None,
    }
}

fn snapshot(len: usize) -> Snapshot<Bytes> {
    Snapshot {
        meta: SnapshotMeta::default(),
        snapshot: Bytes::from((0..len).map(|i| (i % 251) as u8).collect::<Vec<u8>>()),
    }
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        GlommioRuntime::sleep(Duration::from_millis(5)).await;
    }
}

#[test]
fn heartbeats_pass_a_snapshot_in_progress_and_snapshots_are_bounded() {
    raft_support::executor().run(async {
        let double = Rc::new(Double::default());
        let server = PeerServer::bind(
            "127.0.0.1:0".parse().unwrap(),
            config(2),
            Handler(double.clone()),
        )
        .unwrap();
        let node = ShoalNode {
            client_addr: String::new(),
            peer_addr: server.local_addr().to_string(),
        };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server_task = glommio::spawn_local(server.run(async move {
            let _ = stop_rx.await;
        }));

        // Client limits are the defaults (4 GiB), so only the server refuses oversize.
        let network = PeerNetwork::new(PeerConfig {
            snapshot_chunk_len: 1024,
            ..config(1)
        });
        let option = RPCOption::new(WAIT);

        // A 6 KiB snapshot in 6 chunks whose install blocks until released.
        double.gated.set(true);
        let mut snap_client = network.client(2, &node, "snapshot");
        let sent = snapshot(6 * 1024);
        let expected = sent.snapshot.clone();
        let opt = option.clone();
        let transfer = glommio::spawn_local(async move {
            let r = snap_client
                .full_snapshot(
                    Vote::new_committed(1, 1),
                    sent,
                    std::future::pending::<ReplicationClosed>(),
                    opt,
                )
                .await;
            (r, snap_client)
        });
        until("the snapshot to arrive", || {
            !double.snapshots.borrow().is_empty()
        })
        .await;
        assert_eq!(double.snapshots.borrow()[0], expected);

        // The install is still running; a heartbeat on its own connection is answered.
        let mut hb = network.client(2, &node, "heartbeat");
        let resp = hb
            .append_entries(heartbeat(), option.clone())
            .await
            .unwrap();
        assert!(matches!(resp, AppendEntriesResponse::Success));
        assert_eq!(double.appends.get(), 1);

        // Vote and pre-vote reach their own handler methods.
        let req = VoteRequest::new(Vote::new(2, 1), None);
        assert!(
            hb.vote(req.clone(), option.clone())
                .await
                .unwrap()
                .vote_granted
        );
        assert!(!hb.pre_vote(req, option.clone()).await.unwrap().vote_granted);

        // A batch larger than one frame (openraft caps batches by count, not bytes): the
        // prefix that fits is sent and reported as PartialSuccess.
        let big: Vec<Entry> = (1..=40u64)
            .map(|index| Entry {
                log_id: LogId {
                    leader_id: Vote::new_committed(1, 1).leader_id,
                    index,
                },
                payload: EntryPayload::Normal(Request {
                    command: Bytes::from(vec![7u8; 1024 * 1024]),
                }),
            })
            .collect();
        let resp = hb
            .append_entries(
                AppendEntriesRequest {
                    entries: big,
                    ..heartbeat()
                },
                option.clone(),
            )
            .await
            .unwrap();
        match resp {
            AppendEntriesResponse::PartialSuccess(Some(last)) => {
                assert!((1..40).contains(&last.index), "{last:?}");
            }
            other => panic!("expected a partial success, got {other:?}"),
        }
        assert_eq!(double.appends.get(), 2);

        double.gated.set(false);
        double.gate.notify_one();
        let (result, mut snap_client) = transfer.await;
        assert_eq!(result.unwrap().vote, Vote::new_committed(1, 1));

        // Oversized: refused by the server's limit, as Unreachable; the connection stays
        // usable and a later, smaller snapshot goes through.
        let err = snap_client
            .full_snapshot(
                Vote::new_committed(1, 1),
                snapshot(9 * 1024),
                std::future::pending::<ReplicationClosed>(),
                option.clone(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StreamingError::Unreachable(_)), "{err:?}");
        assert_eq!(double.snapshots.borrow().len(), 1);
        let connects = network.stats(2).connections;
        snap_client
            .full_snapshot(
                Vote::new_committed(1, 1),
                snapshot(100),
                std::future::pending::<ReplicationClosed>(),
                option.clone(),
            )
            .await
            .unwrap();
        assert_eq!(double.snapshots.borrow().len(), 2);
        assert_eq!(network.stats(2).connections, connects, "reconnected");

        // Cancelled before the first chunk's answer: Closed, nothing installed.
        let err = snap_client
            .full_snapshot(
                Vote::new_committed(1, 1),
                snapshot(4 * 1024),
                std::future::ready(ReplicationClosed::new("test cancel")),
                option.clone(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StreamingError::Closed(_)), "{err:?}");
        assert!(!snap_client.is_connected());
        assert_eq!(double.snapshots.borrow().len(), 2);

        // Shutdown: the server returns and its connections close.
        stop_tx.send(()).unwrap();
        GlommioRuntime::timeout(WAIT, server_task)
            .await
            .expect("server did not stop");
        let err = hb.append_entries(heartbeat(), option.clone()).await;
        assert!(err.is_err(), "RPC answered after shutdown");
    });
}
