//! RemoteKvClient against the in-test mock cluster (`tests/mock`): the conformance suite,
//! pipelining, redirects, topology refresh, timeouts, failures, limits, Send-ness.

#![allow(clippy::unwrap_used)]

mod mock;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mock::MockCluster;
use shoal_client::conformance::{self, SuiteOptions};
use shoal_client::{
    KvClient, KvClientError, LimitKind, ReadConsistency, RemoteKvClient, RemoteOptions, RetryPolicy,
};
use shoal_proto::limits::{MAX_KEY_LEN, MAX_VALUE_LEN};
use shoal_proto::shard_for_key;
use tokio::time::Instant;

fn opts(timeout_ms: u64) -> RemoteOptions {
    RemoteOptions {
        connect_timeout: Duration::from_millis(timeout_ms.min(1000)),
        request_timeout: Duration::from_millis(timeout_ms),
        ..RemoteOptions::default()
    }
}

async fn client(m: &MockCluster) -> RemoteKvClient {
    RemoteKvClient::connect(m.seeds(), opts(5000))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_on_two_mock_nodes() {
    let m = MockCluster::start(2, 4).await;
    let c = Arc::new(client(&m).await);
    let opts = SuiteOptions {
        key_prefix: "remote-mock:".into(),
        ..SuiteOptions::default()
    };
    conformance::run_all(c.clone(), &opts).await.unwrap();
    // Every request went straight to its shard's port: no server hop.
    for n in 0..2 {
        let s = m.stats(n);
        assert_eq!(s.hops, 0, "node {n}: {s:?}");
        assert_eq!(s.not_leader, 0, "node {n}: {s:?}");
    }
}

#[tokio::test]
async fn conformance_suite_on_current_thread_runtime() {
    let m = MockCluster::start(1, 3).await;
    let c = Arc::new(client(&m).await);
    let opts = SuiteOptions {
        key_prefix: "ct:".into(),
        concurrent_tasks: 64,
        ..SuiteOptions::default()
    };
    conformance::check_concurrent_tasks(c.clone(), &opts)
        .await
        .unwrap();
    conformance::check_get_multi_order(&*c, &opts)
        .await
        .unwrap();
}

#[test]
fn futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    fn assert_sync_client<T: Send + Sync + Clone + 'static>() {}
    assert_sync_client::<RemoteKvClient>();
    // Build (not run) every future on a client that is never connected.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let m = MockCluster::start(1, 1).await;
        let c = client(&m).await;
        let keys = vec![Bytes::from("a")];
        assert_send(&c.put(b"k", b"v"));
        assert_send(&c.put_with_ttl(b"k", b"v", 1));
        assert_send(&c.get(b"k"));
        assert_send(&c.get_multi(&keys));
        assert_send(&c.delete(b"k"));
        assert_send(&c.get_with(b"k", ReadConsistency::Lease));
        assert_send(&c.get_multi_with(&keys, ReadConsistency::Stale));
        assert_send(&c.delete_existed(b"k"));
        assert_send(&c.ping());
        assert_send(&c.topology());
        assert_send(&RemoteKvClient::connect(["x:1"], RemoteOptions::default()));
        // And spawnable from a current-thread runtime.
        let c2 = c.clone();
        let h = tokio::spawn(async move { c2.put(b"spawned", b"ok").await });
        h.await.unwrap().unwrap();
        assert_eq!(
            c.get(b"spawned").await.unwrap().as_deref(),
            Some(&b"ok"[..])
        );
    });
}

#[tokio::test]
async fn pipelined_requests_answered_out_of_order_are_matched_by_id() {
    let m = MockCluster::start(1, 1).await;
    let c = client(&m).await;
    for i in 0..8 {
        c.put(format!("p{i}"), format!("value {i}")).await.unwrap();
    }
    // The mock now holds answers until 8 requests are queued on the connection, then
    // answers them in reverse: only a pipelining client completes, and only id matching
    // gives each caller its own value.
    m.with(|s| s.reverse_batch = 8);
    let gets = (0..8).map(|i| {
        let c = c.clone();
        async move { (i, c.get(format!("p{i}")).await) }
    });
    let results = tokio::time::timeout(Duration::from_secs(10), futures::future::join_all(gets))
        .await
        .expect("requests were not pipelined");
    for (i, r) in results {
        assert_eq!(r.unwrap(), Some(Bytes::from(format!("value {i}"))));
    }
    assert_eq!(
        m.stats(0).connections,
        1,
        "one connection carried everything"
    );
}

#[tokio::test]
async fn not_leader_hint_is_followed_transparently() {
    let m = MockCluster::start(2, 2).await;
    // Node 2 (index 1) leads every group, but the topology claims node 1 does.
    m.with(|s| {
        s.leaders = vec![1, 1];
        s.advertised_leaders = Some(vec![Some(0), Some(0)]);
    });
    let c = RemoteKvClient::connect(vec![m.seeds()[0].clone()], opts(5000))
        .await
        .unwrap();
    let keys: Vec<Bytes> = (0..16).map(|i| Bytes::from(format!("nl{i}"))).collect();
    for k in &keys {
        c.put(k, k).await.unwrap();
    }
    assert_eq!(
        c.get_multi(&keys).await.unwrap(),
        keys.iter().cloned().map(Some).collect::<Vec<_>>()
    );
    let (s0, s1) = (m.stats(0), m.stats(1));
    assert!(s0.not_leader >= 1, "{s0:?}");
    assert!(
        s0.not_leader <= 2,
        "the hint is remembered per group: {s0:?}"
    );
    assert_eq!(
        s1.hops, 0,
        "redirected requests use the leader's shard ports: {s1:?}"
    );
    assert_eq!(
        c.cached_topology()
            .unwrap()
            .leaders
            .iter()
            .map(|l| l.leader)
            .collect::<Vec<_>>(),
        vec![Some(2), Some(2)]
    );

    // Leadership moves back to node 1: followed again, no error surfaces.
    m.with(|s| s.leaders = vec![0, 0]);
    for k in &keys {
        c.delete(k).await.unwrap();
        assert_eq!(c.get(k).await.unwrap(), None);
    }
    assert!(m.stats(1).not_leader >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_mid_run_is_followed_transparently() {
    let m = Arc::new(MockCluster::start(3, 2).await);
    m.with(|s| s.leaders = vec![0, 0]);
    let c = client(&m).await;
    let opts = SuiteOptions {
        key_prefix: "failover:".into(),
        ..SuiteOptions::default()
    };
    let m2 = m.clone();
    let disrupt = || async move {
        // Node 1 dies; the survivors still name it leader until an "election" ends.
        m2.kill(0);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            m2.with(|s| {
                s.leaders = vec![1, 2];
                s.term = 2;
            });
        });
    };
    conformance::check_continuity_through(&c, &opts, 60, 20, disrupt)
        .await
        .unwrap();
    assert_eq!(m.stats(0).data_requests, 40, "node 1 served until it died");
    let leaders: Vec<_> = c
        .cached_topology()
        .unwrap()
        .leaders
        .iter()
        .map(|l| l.leader)
        .collect();
    assert_eq!(leaders, vec![Some(2), Some(3)]);
}

#[tokio::test]
async fn wrong_shard_refreshes_topology() {
    // The cluster really has 4 shards but first announces 1: the client routes every
    // key to shard 0 until a WrongShard makes it refresh.
    let m = MockCluster::start_with(1, 4, 4).await;
    m.with(|s| {
        s.advertised_shard_count = 1;
        s.fix_topology_after_wrong_shard = true;
    });
    let c = client(&m).await;
    assert_eq!(c.cached_topology().unwrap().shard_count, 1);
    let fetches = c.topology_fetches();
    let key = (0..100)
        .map(|i| format!("ws{i}"))
        .find(|k| shard_for_key(k.as_bytes(), 4) != 0)
        .unwrap();
    c.put(&key, b"v").await.unwrap();
    assert_eq!(c.get(&key).await.unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(m.stats(0).wrong_shard, 1);
    assert!(c.topology_fetches() > fetches);
    assert_eq!(c.cached_topology().unwrap().shard_count, 4);
    // get_multi re-splits under the new shard count too.
    let keys: Vec<Bytes> = (0..40).map(|i| Bytes::from(format!("ws{i}"))).collect();
    let got = c.get_multi(&keys).await.unwrap();
    assert_eq!(got.iter().filter(|v| v.is_some()).count(), 1);
}

#[tokio::test]
async fn get_multi_reshards_a_stale_split() {
    let m = MockCluster::start_with(1, 4, 4).await;
    m.with(|s| {
        s.advertised_shard_count = 1;
        s.fix_topology_after_wrong_shard = true;
    });
    let c = client(&m).await;
    let keys: Vec<Bytes> = (0..50).map(|i| Bytes::from(format!("rs{i}"))).collect();
    m.with(|s| {
        for k in keys.iter().step_by(2) {
            s.store.insert(k.clone(), (k.clone(), None));
        }
    });
    let got = c.get_multi(&keys).await.unwrap();
    for (i, (k, v)) in keys.iter().zip(&got).enumerate() {
        assert_eq!(v.as_ref(), (i % 2 == 0).then_some(k), "position {i}");
    }
}

#[tokio::test]
async fn get_multi_splits_when_the_answer_is_too_large() {
    let m = MockCluster::start(1, 2).await;
    let c = client(&m).await;
    let keys: Vec<Bytes> = (0..100)
        .map(|i| Bytes::from(format!("tl{}", i % 60)))
        .collect();
    for k in keys.iter().take(60).step_by(3) {
        c.put(k, k).await.unwrap();
    }
    m.with(|s| s.max_multi_answer = 7);
    let got = c.get_multi(&keys).await.unwrap();
    for (i, (k, v)) in keys.iter().zip(&got).enumerate() {
        let present = (i % 60) % 3 == 0;
        assert_eq!(v.as_ref(), present.then_some(k), "position {i}");
    }
}

#[tokio::test]
async fn silent_server_gives_timeout_within_the_request_timeout() {
    let m = MockCluster::start(1, 1).await;
    let c = RemoteKvClient::connect(m.seeds(), opts(300)).await.unwrap();
    m.with(|s| s.silent = true);
    let start = Instant::now();
    let r = c.get(b"k").await;
    let took = start.elapsed();
    assert!(matches!(r, Err(KvClientError::Timeout { .. })), "{r:?}");
    assert!(
        took >= Duration::from_millis(250),
        "gave up early: {took:?}"
    );
    assert!(took < Duration::from_secs(3), "not bounded: {took:?}");
    // The abandoned request does not poison the connection.
    m.with(|s| s.silent = false);
    c.put(b"k", b"v").await.unwrap();
}

#[tokio::test]
async fn unreachable_cluster_gives_timeout_within_the_request_timeout() {
    // Ports that were just free: connections are refused.
    let mut addrs = Vec::new();
    for _ in 0..2 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        addrs.push(l.local_addr().unwrap().to_string());
    }
    let start = Instant::now();
    let r = RemoteKvClient::connect(addrs.clone(), opts(400)).await;
    let took = start.elapsed();
    match r {
        Err(KvClientError::Timeout { last_error, .. }) => {
            assert!(
                matches!(
                    last_error.as_deref(),
                    Some(KvClientError::Connection { .. })
                ),
                "{last_error:?}"
            );
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(took < Duration::from_secs(3), "not bounded: {took:?}");
}

#[tokio::test]
async fn cluster_going_away_after_connect_gives_timeout() {
    let m = MockCluster::start(1, 2).await;
    let c = RemoteKvClient::connect(m.seeds(), opts(400)).await.unwrap();
    drop(m);
    let start = Instant::now();
    let r = c.put(b"k", b"v").await;
    assert!(matches!(r, Err(KvClientError::Timeout { .. })), "{r:?}");
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn oversize_arguments_fail_before_any_request() {
    let m = MockCluster::start(1, 2).await;
    let c = client(&m).await;
    let before = m.total_data_requests();
    let r = c.put(b"k", vec![0u8; MAX_VALUE_LEN + 1]).await;
    assert_eq!(
        r,
        Err(KvClientError::TooLarge {
            limit: LimitKind::Value,
            max: MAX_VALUE_LEN as u64,
            actual: MAX_VALUE_LEN as u64 + 1
        })
    );
    let long_key = vec![b'k'; MAX_KEY_LEN + 1];
    let r = c.get(&long_key).await;
    assert!(
        matches!(
            r,
            Err(KvClientError::TooLarge {
                limit: LimitKind::Key,
                ..
            })
        ),
        "{r:?}"
    );
    let r = c.put_with_ttl(b"k", b"v", 0).await;
    assert!(
        matches!(r, Err(KvClientError::InvalidArgument { .. })),
        "{r:?}"
    );
    assert_eq!(m.total_data_requests(), before, "nothing was sent");
}

#[tokio::test]
async fn connection_dropped_mid_request_is_retried_on_a_new_connection() {
    let m = MockCluster::start(1, 1).await;
    let c = client(&m).await;
    c.put(b"k", b"v").await.unwrap();
    let conns = m.stats(0).connections;
    m.with(|s| s.drop_next = 1);
    assert_eq!(c.get(b"k").await.unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(m.stats(0).dropped, 1);
    assert!(m.stats(0).connections > conns, "reconnected");

    // Without retries the caller gets a clear error naming the broken connection.
    let no_retry = RemoteKvClient::connect(
        m.seeds(),
        RemoteOptions {
            retry: RetryPolicy {
                max_attempts: 1,
                ..RetryPolicy::default()
            },
            ..opts(2000)
        },
    )
    .await
    .unwrap();
    m.with(|s| s.drop_next = 1);
    match no_retry.get(b"k").await {
        Err(KvClientError::Timeout { last_error, .. }) => assert!(
            matches!(
                last_error.as_deref(),
                Some(KvClientError::Connection { .. })
            ),
            "{last_error:?}"
        ),
        other => panic!("expected the retry budget to be spent, got {other:?}"),
    }
}

#[tokio::test]
async fn uncertain_writes_are_not_resent_when_disabled() {
    let m = MockCluster::start(1, 1).await;
    let c = RemoteKvClient::connect(
        m.seeds(),
        RemoteOptions {
            retry: RetryPolicy {
                retry_uncertain_writes: false,
                ..RetryPolicy::default()
            },
            ..opts(2000)
        },
    )
    .await
    .unwrap();
    m.with(|s| s.drop_next = 1);
    let r = c.put(b"k", b"v").await;
    assert!(matches!(r, Err(KvClientError::Connection { .. })), "{r:?}");
    assert_eq!(m.stats(0).data_requests, 1, "not resent");
    // Reads are still retried.
    m.with(|s| s.drop_next = 1);
    assert_eq!(c.get(b"k").await.unwrap(), None);
}

#[tokio::test]
async fn busy_is_retried_after_its_delay() {
    let m = MockCluster::start(1, 1).await;
    let c = client(&m).await;
    m.with(|s| s.busy_next = 3);
    c.put(b"k", b"v").await.unwrap();
    assert_eq!(m.stats(0).data_requests, 4);
}

#[tokio::test]
async fn shutting_down_cluster_fails_every_method_without_hanging() {
    let m = MockCluster::start(1, 2).await;
    let c = RemoteKvClient::connect(m.seeds(), opts(500)).await.unwrap();
    conformance::check_shutdown(
        &c,
        || async { m.with(|s| s.shutting_down = true) },
        |e| match e {
            KvClientError::ChannelClosed { .. } => true,
            KvClientError::Timeout { last_error, .. } => matches!(
                last_error.as_deref(),
                Some(KvClientError::ChannelClosed { .. } | KvClientError::Connection { .. })
            ),
            _ => false,
        },
        Duration::from_secs(3),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn ping_and_topology() {
    let m = MockCluster::start(3, 2).await;
    // Socket addresses work as well as strings.
    let addr: std::net::SocketAddr = m.seeds()[2].parse().unwrap();
    let c = RemoteKvClient::connect([addr], opts(5000)).await.unwrap();
    let rtt = c.ping().await.unwrap();
    assert!(rtt < Duration::from_secs(5));
    let t = c.topology().await.unwrap();
    assert_eq!(t.cluster_id, mock::CLUSTER_ID);
    assert_eq!(t.shard_count, 2);
    assert_eq!(t.nodes.len(), 3);
    assert_eq!(t.nodes[1].shard_addrs, m.addrs[1]);
}

#[tokio::test]
async fn bad_options_are_refused() {
    let r = RemoteKvClient::connect(
        ["127.0.0.1:1"],
        RemoteOptions {
            connections_per_shard: 0,
            ..RemoteOptions::default()
        },
    )
    .await;
    assert!(
        matches!(r, Err(KvClientError::InvalidArgument { .. })),
        "{r:?}"
    );
    let r = RemoteKvClient::connect(Vec::<String>::new(), RemoteOptions::default()).await;
    assert!(
        matches!(r, Err(KvClientError::InvalidArgument { .. })),
        "{r:?}"
    );
}

#[tokio::test]
async fn undecodable_answer_fails_with_a_protocol_error_and_the_client_recovers() {
    let m = MockCluster::start(1, 1).await;
    let c = client(&m).await;
    c.put(b"k", b"v").await.unwrap();
    m.with(|s| s.garbage_next = 1);
    let r = c.get(b"k").await;
    assert!(matches!(r, Err(KvClientError::Protocol { .. })), "{r:?}");
    assert!(!r.unwrap_err().is_retryable());
    // The broken connection was closed; the next call uses a new one.
    assert_eq!(c.get(b"k").await.unwrap().as_deref(), Some(&b"v"[..]));
}

#[tokio::test]
async fn incompatible_version_is_reported_not_retried() {
    let m = MockCluster::start(1, 1).await;
    m.with(|s| s.refuse_version = true);
    let r = RemoteKvClient::connect(m.seeds(), opts(2000)).await;
    assert_eq!(
        r.unwrap_err(),
        KvClientError::IncompatibleVersion {
            min_version: 7,
            max_version: 9
        }
    );
    assert_eq!(m.stats(0).connections, 1, "not retried");
}

#[tokio::test]
async fn requests_spread_over_several_connections_per_shard() {
    let m = MockCluster::start(1, 1).await;
    let c = RemoteKvClient::connect(
        m.seeds(),
        RemoteOptions {
            connections_per_shard: 3,
            ..opts(5000)
        },
    )
    .await
    .unwrap();
    for i in 0..30 {
        c.put(format!("k{i}"), b"v").await.unwrap();
    }
    assert_eq!(m.stats(0).connections, 3);
    assert_eq!(c.connections_opened(), 3);
}

#[tokio::test]
async fn read_consistency_reaches_the_node() {
    let m = MockCluster::start(1, 1).await;
    let c = client(&m).await;
    let keys = [Bytes::from("a")];
    c.get(b"a").await.unwrap();
    c.get_with(b"a", ReadConsistency::Lease).await.unwrap();
    c.get_with(b"a", ReadConsistency::Stale).await.unwrap();
    c.get_multi(&keys).await.unwrap();
    c.get_multi_with(&keys, ReadConsistency::Lease)
        .await
        .unwrap();
    use ReadConsistency::*;
    assert_eq!(
        m.with(|s| s.consistencies.clone()),
        vec![Linearizable, Lease, Stale, Linearizable, Lease]
    );
}
