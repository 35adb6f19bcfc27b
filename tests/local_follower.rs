//! `LocalKvClient` on a node that does not lead its key's group (three embedded nodes in
//! this process, one shard each): writes and linearizable reads fail with `NotLeader`
//! carrying the leader's client address (the node never forwards, like for a remote
//! client), stale reads are served locally, and the same calls through the leader's
//! embedded client succeed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use shoal::config::{Member, NodeConfig};
use shoal::local_client::LocalKvClient;
use shoal::node::Node;
use shoal_client::{KvClient, KvClientError};
use shoal_proto::{RaftRole, ReadConsistency, Request, Response};
use shoal_testkit::ports::{free_port_block, localhost};
use shoal_testkit::wait::wait_for_async;

const WAIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(20);

/// Group 0's role as node `node` sees it, and the leader it knows.
async fn role(node: &Node) -> (RaftRole, Option<u64>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    match node
        .mesh()
        .call(0, Request::Status { group: Some(0) }, deadline)
        .await
    {
        Response::Status(s) => (s.groups[0].role, s.groups[0].leader),
        r => panic!("status: {r:?}"),
    }
}

#[test]
fn a_local_client_on_a_follower_gets_not_leader_with_the_leaders_address() {
    let tmp = tempfile::tempdir().unwrap();
    let members: Vec<Member> = (1..=3)
        .map(|id| Member {
            id,
            client_addr: localhost(free_port_block(1).unwrap()),
            peer_addr: localhost(free_port_block(1).unwrap()),
        })
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut nodes = Vec::new();
        for m in &members {
            let mut config = NodeConfig {
                node_id: m.id,
                data_dir: tmp.path().join(format!("n{}", m.id)),
                client_addr: m.client_addr,
                peer_addr: m.peer_addr,
                shards: 1,
                members: members.clone(),
                ..NodeConfig::default()
            };
            config.wal.segment_mib = 8;
            config.validate().unwrap();
            nodes.push(Node::start(config).unwrap());
        }
        for n in &mut nodes {
            tokio::time::timeout(WAIT, n.ready())
                .await
                .unwrap()
                .unwrap();
        }
        // Every node knows the same leader, which is the one node leading.
        let leader = wait_for_async("an agreed leader of group 0", WAIT, POLL, || async {
            let mut seen = Vec::new();
            for n in &nodes {
                seen.push(role(n).await);
            }
            let leaders: Vec<u64> = seen.iter().filter_map(|(_, l)| *l).collect();
            let one_leader = seen.iter().filter(|(r, _)| *r == RaftRole::Leader).count() == 1;
            (one_leader && leaders.len() == 3 && leaders.iter().all(|l| *l == leaders[0]))
                .then(|| leaders[0])
        })
        .await
        .unwrap();
        let leader_node = &nodes[(leader - 1) as usize];
        let follower_id = if leader == 1 { 2 } else { 1 };
        let follower = &nodes[(follower_id - 1) as usize];
        let leader_addr = members[(leader - 1) as usize].client_addr.to_string();

        let on_leader = LocalKvClient::new(leader_node.mesh().clone());
        on_leader.put(b"k", b"v").await.unwrap();

        let on_follower = LocalKvClient::new(follower.mesh().clone());
        let expect_not_leader = |what: &str, e: KvClientError| match &e {
            KvClientError::NotLeader { leader: Some(h) } => {
                assert_eq!(h.node_id, leader, "{what}: {e}");
                assert_eq!(h.addr, leader_addr, "{what}: {e}");
            }
            _ => panic!("{what}: expected NotLeader with a hint, got {e}"),
        };
        // The follower knows the leader for sure (a committed vote) only once that leader's
        // first append reached it; the put above may have committed on the other follower
        // alone, and until then this one answers NotLeader without a hint (seen in about 1
        // run in 20). Any other answer ends the wait, and is checked below.
        let first = wait_for_async(
            "a NotLeader with a hint from the follower",
            WAIT,
            POLL,
            || async {
                match on_follower.put(b"k", b"w").await {
                    Err(KvClientError::NotLeader { leader: None }) => None,
                    other => Some(other),
                }
            },
        )
        .await
        .unwrap();
        expect_not_leader("put", first.unwrap_err());
        expect_not_leader("delete", on_follower.delete(b"k").await.unwrap_err());
        expect_not_leader("get", on_follower.get(b"k").await.unwrap_err());
        expect_not_leader(
            "get_multi",
            on_follower
                .get_multi(&[Bytes::from_static(b"k")])
                .await
                .unwrap_err(),
        );

        // A stale read is served by the follower itself, once it applied the write.
        let stale = on_follower.clone().with_consistency(ReadConsistency::Stale);
        wait_for_async("the follower applied the put", WAIT, POLL, || async {
            (stale.get(b"k").await.unwrap().as_deref() == Some(&b"v"[..])).then_some(())
        })
        .await
        .unwrap();
        assert_eq!(on_leader.get(b"k").await.unwrap(), Some(Bytes::from("v")));

        for n in nodes {
            tokio::time::timeout(WAIT, n.stop()).await.unwrap().unwrap();
        }
    });
}
