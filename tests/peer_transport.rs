//! The peer transport end to end: Raft groups on separate glommio executor threads,
//! connected only by `PeerNetwork`/`PeerServer` over real TCP on 127.0.0.1.
//!
//! - `three_groups_over_tcp_elect_replicate_fail_over_and_snapshot`: initialize, elect,
//!   replicate; stop the leader, re-elect, keep writing; the dead node is dialed with
//!   backoff (RPCs refused without touching the network); a new learner catches up by a
//!   chunked full snapshot; garbage and wrong-cluster/wrong-group connections are refused
//!   and the group keeps working.
//! - `connection_refused_is_unreachable_and_backs_off`: a client towards a closed port.
//!
//! Every node runs group 1 of 2 shards, so each dial exercises the "shard-0 port + group"
//! addressing. Every wait is bounded.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test binary: a failed unwrap fails the test

mod raft_support;

use std::cell::Cell;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::io::Read;
use std::io::Write;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use bytes::Bytes;
use bytes::BytesMut;
use openraft::AsyncRuntime;
use openraft::RaftNetworkV2;
use openraft::SnapshotPolicy;
use openraft::errors::RPCError;
use openraft::network::RPCOption;
use openraft::raft::VoteRequest;
use raft_support::bytes_sm::BytesSm;
use raft_support::mem_store::MemLogStore;
use raft_support::mem_store::MemState;
use shoal::peer::LocalPeer;
use shoal::peer::PeerConfig;
use shoal::peer::PeerNetwork;
use shoal::peer::PeerServer;
use shoal::raft::GlommioRuntime;
use shoal::raft::types::NodeId;
use shoal::raft::types::Raft;
use shoal::raft::types::Request;
use shoal::raft::types::ShoalNode;
use shoal::raft::types::Vote;
use shoal_proto::Frame;
use shoal_proto::FrameDecoder;
use shoal_proto::PeerMessage;
use shoal_proto::Role;
use shoal_proto::peer::PeerErrorKind;
use shoal_proto::peer::PeerHello;

const CLUSTER: u64 = 0x5a0a1;
const SHARDS: u32 = 2;
const GROUP: u32 = 1;
/// Bound on every wait inside a node.
const WAIT: Duration = Duration::from_secs(10);
/// Bound on a whole job as seen from the test thread.
const JOB_WAIT: Duration = Duration::from_secs(30);

fn raft_config() -> Arc<openraft::Config> {
    let config = openraft::Config {
        cluster_name: "shoal-peer-test".to_string(),
        heartbeat_interval: 50,
        election_timeout_min: 300,
        election_timeout_max: 600,
        // Snapshots only when the test asks, so it controls what the learner must fetch.
        snapshot_policy: SnapshotPolicy::Never,
        max_in_snapshot_log_to_keep: 0,
        install_snapshot_timeout: 2_000,
        // Elections go through PreVote frames too.
        enable_pre_vote: Some(true),
        // docs/RAFT.md pitfall 14.
        enable_leader_restore: Some(false),
        ..Default::default()
    };
    Arc::new(config.validate().unwrap())
}

fn peer_config(id: NodeId) -> PeerConfig {
    let mut c = PeerConfig::new(
        LocalPeer {
            cluster_id: CLUSTER,
            node_id: id,
            shard_count: SHARDS,
        },
        GROUP,
    );
    // Many chunks even for this test's small snapshot.
    c.snapshot_chunk_len = 64;
    c.validate().unwrap();
    c
}

/// What a job running on a node's executor sees.
struct NodeCtx {
    raft: Raft<BytesSm>,
    state: Rc<RefCell<MemState>>,
    installed_snapshots: Rc<Cell<u64>>,
    network: PeerNetwork,
}

type Job = Box<dyn FnOnce(Rc<NodeCtx>) -> Pin<Box<dyn Future<Output = ()>>> + Send>;

/// A node on its own thread and executor; jobs are closures run there.
struct Node {
    id: NodeId,
    record: ShoalNode,
    jobs: Option<tokio::sync::mpsc::UnboundedSender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Node {
    fn start(id: NodeId) -> Node {
        let base = shoal_testkit::ports::free_port_block(SHARDS as u16).unwrap();
        let record = ShoalNode {
            client_addr: format!("127.0.0.1:{}", base + 1000),
            peer_addr: format!("127.0.0.1:{base}"),
        };
        let listen: SocketAddr = format!("127.0.0.1:{}", base + GROUP as u16)
            .parse()
            .unwrap();
        let (jobs_tx, mut jobs_rx) = tokio::sync::mpsc::unbounded_channel::<Job>();
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let thread = std::thread::spawn(move || {
            raft_support::executor().run(async move {
                let sm = BytesSm::default();
                let state = sm.inner.state();
                let installed_snapshots = sm.inner.installed_snapshots();
                let network = PeerNetwork::new(peer_config(id));
                let raft = Raft::new(
                    id,
                    raft_config(),
                    network.clone(),
                    MemLogStore::default(),
                    sm,
                )
                .await
                .unwrap();
                let server = PeerServer::bind(listen, peer_config(id), raft.clone()).unwrap();
                let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
                let server_task = glommio::spawn_local(server.run(async move {
                    let _ = stop_rx.await;
                }));
                let ctx = Rc::new(NodeCtx {
                    raft: raft.clone(),
                    state,
                    installed_snapshots,
                    network,
                });
                ready_tx.send(()).unwrap();
                while let Some(job) = jobs_rx.recv().await {
                    glommio::spawn_local(job(ctx.clone())).detach();
                }
                // The handle was dropped: stop like a crashed node (no goodbye).
                raft.shutdown().await.unwrap();
                let _ = stop_tx.send(());
                server_task.await;
            });
        });
        ready_rx.recv_timeout(JOB_WAIT).expect("node did not start");
        Node {
            id,
            record,
            jobs: Some(jobs_tx),
            thread: Some(thread),
        }
    }

    /// Runs `f` on the node's executor and returns its result.
    fn call<R, F>(&self, f: impl FnOnce(Rc<NodeCtx>) -> F + Send + 'static) -> R
    where
        R: Send + 'static,
        F: Future<Output = R> + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let job: Job = Box::new(move |ctx| {
            Box::pin(async move {
                let r = f(ctx).await;
                let _ = tx.send(r);
            })
        });
        self.jobs.as_ref().unwrap().send(job).ok().unwrap();
        rx.recv_timeout(JOB_WAIT).expect("node job did not finish")
    }

    fn group_addr(&self) -> SocketAddr {
        shoal::peer::client::group_addr(&self.record.peer_addr, GROUP).unwrap()
    }

    fn leader(&self, not: Option<NodeId>) -> NodeId {
        self.call(move |ctx| async move {
            let m = ctx
                .raft
                .wait(Some(WAIT))
                .metrics(
                    |m| m.current_leader.is_some() && m.current_leader != not,
                    "a leader",
                )
                .await
                .unwrap();
            m.current_leader.unwrap()
        })
    }

    /// Writes `commands` on this node (the leader); returns the last log index.
    fn write(&self, commands: Vec<String>) -> u64 {
        self.call(move |ctx| async move {
            ctx.raft
                .wait(Some(WAIT))
                .leader_with_quorum_acked(None, "quorum before writes")
                .await
                .unwrap();
            let mut last = 0;
            for c in commands {
                let resp = ctx
                    .raft
                    .client_write(Request {
                        command: Bytes::from(c),
                    })
                    .await
                    .unwrap();
                last = resp.log_id.index;
            }
            last
        })
    }

    /// Waits until `index` is applied here; returns the applied commands.
    fn applied(&self, index: u64) -> Vec<Bytes> {
        self.call(move |ctx| async move {
            ctx.raft
                .wait(Some(WAIT))
                .applied_index_at_least(Some(index), "applied")
                .await
                .unwrap();
            ctx.state.borrow().commands.clone()
        })
    }

    fn stop(mut self) {
        drop(self.jobs.take());
        self.thread.take().unwrap().join().unwrap();
    }
}

fn commands(prefix: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{prefix}-{i:03}-padding-to-make-chunks"))
        .collect()
}

fn strings(v: &[Bytes]) -> Vec<String> {
    v.iter()
        .map(|b| String::from_utf8(b.to_vec()).unwrap())
        .collect()
}

#[test]
fn three_groups_over_tcp_elect_replicate_fail_over_and_snapshot() {
    let mut nodes: BTreeMap<NodeId, Node> = (1..=3).map(|id| (id, Node::start(id))).collect();
    let members: BTreeMap<NodeId, ShoalNode> = nodes
        .iter()
        .map(|(id, n)| (*id, n.record.clone()))
        .collect();
    nodes[&1].call(move |ctx| async move { ctx.raft.initialize(members).await.unwrap() });

    // Elect and replicate.
    let first = nodes[&1].leader(None);
    let mut expected = commands("a", 5);
    let index = nodes[&first].write(expected.clone());
    for n in nodes.values() {
        assert_eq!(strings(&n.applied(index)), expected, "node {}", n.id);
    }

    // Stop the leader: the survivors elect another one and keep taking writes.
    nodes.remove(&first).unwrap().stop();
    let survivor = *nodes.keys().next().unwrap();
    let second = nodes[&survivor].leader(Some(first));
    assert_ne!(second, first);
    let more = commands("b", 5);
    expected.extend(more.iter().cloned());
    let index = nodes[&second].write(more);
    for n in nodes.values() {
        assert_eq!(strings(&n.applied(index)), expected, "node {}", n.id);
    }

    // The dead node is still dialed by the new leader, but through the backoff: RPCs are
    // refused locally while it runs, so connects stay far below the RPC count.
    let (attempts, refusals) = nodes[&second].call(move |ctx| async move {
        let start = Instant::now();
        loop {
            let s = ctx.network.stats(first);
            if s.backoff_refusals >= 5 || start.elapsed() > WAIT {
                return (s.connect_attempts, s.backoff_refusals);
            }
            GlommioRuntime::sleep(Duration::from_millis(20)).await;
        }
    });
    assert!(
        refusals >= 5,
        "no RPC was refused by the backoff ({refusals})"
    );
    assert!(attempts >= 1, "the dead node was never dialed");
    // And the dialing is paced: replication sessions toward the dead node wait out
    // openraft's backoff instead of restarting at once (before the fix, the pipelined
    // stream refused ~15k sessions a second and starved the leader's executor).
    let refused_in_a_second = nodes[&second].call(move |ctx| async move {
        let before = ctx.network.stats(first).backoff_refusals;
        GlommioRuntime::sleep(Duration::from_secs(1)).await;
        ctx.network.stats(first).backoff_refusals - before
    });
    assert!(
        refused_in_a_second < 500,
        "{refused_in_a_second} RPCs to a dead node refused in one second: a busy loop"
    );

    // A new node joins as a learner after the log was compacted into a snapshot: it can
    // only catch up through a full snapshot sent over TCP in many 64-byte chunks.
    nodes[&second].call(move |ctx| async move {
        ctx.raft.trigger().snapshot().await.unwrap();
        ctx.raft
            .wait(Some(WAIT))
            .metrics(
                |m| m.snapshot.map(|s| s.index) >= Some(index),
                "snapshot built",
            )
            .await
            .unwrap();
        ctx.raft.trigger().purge_log(index).await.unwrap();
        ctx.raft
            .wait(Some(WAIT))
            .metrics(|m| m.purged.map(|p| p.index) >= Some(index), "log purged")
            .await
            .unwrap();
    });
    let learner = Node::start(4);
    let record = learner.record.clone();
    nodes[&second].call(move |ctx| async move {
        GlommioRuntime::timeout(WAIT, ctx.raft.add_learner(4, record, true))
            .await
            .expect("add_learner timed out")
            .unwrap();
    });
    assert_eq!(strings(&learner.applied(index)), expected);
    let installed = learner.call(|ctx| async move { ctx.installed_snapshots.get() });
    assert!(installed >= 1, "the learner did not install a snapshot");
    nodes.insert(4, learner);

    // Garbage and misconfigured peers are refused; the group does not notice.
    let target = nodes[&survivor].group_addr();
    expect_closed_after(target, &[0xAB; 64]);
    let hello = |cluster_id, group| PeerHello {
        min_version: 1,
        max_version: 1,
        cluster_id,
        from_node: 9,
        to_node: survivor,
        group,
        shard_count: SHARDS,
    };
    assert_eq!(
        refusal(target, hello(CLUSTER + 1, GROUP)),
        PeerErrorKind::WrongCluster
    );
    assert_eq!(
        refusal(target, hello(CLUSTER, 0)),
        PeerErrorKind::WrongGroup
    );
    let last = commands("c", 3);
    expected.extend(last.iter().cloned());
    let index = nodes[&second].write(last);
    for n in nodes.values() {
        assert_eq!(strings(&n.applied(index)), expected, "node {}", n.id);
    }

    for (_, n) in nodes {
        n.stop();
    }
}

/// Sends `bytes` on a fresh connection and expects the server to close it.
fn expect_closed_after(addr: SocketAddr, bytes: &[u8]) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(JOB_WAIT)).unwrap();
    s.write_all(bytes).unwrap();
    let mut buf = [0u8; 256];
    let mut total = 0;
    loop {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                total += n;
                assert!(total < 4096, "server keeps talking to garbage");
            }
            // A reset is a close too.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
            Err(e) => panic!("server did not close the garbage connection: {e}"),
        }
    }
}

/// Sends `hello` and returns the refusal's kind; the server must close afterwards.
fn refusal(addr: SocketAddr, hello: PeerHello) -> PeerErrorKind {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(JOB_WAIT)).unwrap();
    let mut out = BytesMut::new();
    shoal_proto::encode_peer(&mut out, 7, &PeerMessage::Hello(hello)).unwrap();
    s.write_all(&out).unwrap();
    let mut input = BytesMut::new();
    let mut decoder = FrameDecoder::new(Role::Peer);
    let mut buf = [0u8; 4096];
    let kind = loop {
        if let Some(frame) = decoder.decode(&mut input).unwrap() {
            let Frame::Peer(f) = frame else {
                panic!("unexpected frame {frame:?}");
            };
            assert_eq!(f.request_id, 7);
            let PeerMessage::Error(e) = f.message else {
                panic!("handshake accepted: {:?}", f.message);
            };
            break e.kind;
        }
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed without an answer");
        input.extend_from_slice(&buf[..n]);
    };
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "connection left open after a refusal");
    kind
}

#[test]
fn connection_refused_is_unreachable_and_backs_off() {
    raft_support::executor().run(async {
        // A port that was free a moment ago: nothing listens there.
        let port = shoal_testkit::ports::free_port_block(SHARDS as u16).unwrap();
        let mut config = peer_config(1);
        config.backoff_min = Duration::from_secs(60);
        config.backoff_max = Duration::from_secs(60);
        let network = PeerNetwork::new(config);
        let node = ShoalNode {
            client_addr: String::new(),
            peer_addr: format!("127.0.0.1:{port}"),
        };
        let mut client = network.client(2, &node, "test");
        let vote = || VoteRequest::new(Vote::new(1, 1), None);
        let option = RPCOption::new(Duration::from_secs(5));
        for round in 1..=3u64 {
            let err = client.vote(vote(), option.clone()).await.unwrap_err();
            assert!(
                matches!(err, RPCError::Unreachable(_)),
                "round {round}: {err:?}"
            );
            let s = network.stats(2);
            assert_eq!(
                s.connect_attempts, 1,
                "round {round}: reconnected during the backoff"
            );
            assert_eq!(s.connect_failures, 1);
            assert_eq!(s.backoff_refusals, round - 1);
        }
        // Another client of the same target shares the backoff.
        let mut other = network.client(2, &node, "test");
        let err = other.vote(vote(), option.clone()).await.unwrap_err();
        assert!(matches!(err, RPCError::Unreachable(_)), "{err:?}");
        assert_eq!(network.stats(2).connect_attempts, 1);
        assert!(!client.is_connected());
    });
}
