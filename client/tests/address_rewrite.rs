//! `RemoteOptions::address_rewrite` against the in-test mock cluster (`tests/mock`): every
//! address the client dials (seeds, topology, NotLeader hints) goes through the rewrite,
//! and a client cannot reach a node around it.

#![allow(clippy::unwrap_used)]

mod mock;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mock::MockCluster;
use shoal_client::{AddressRewrite, KvClient, RemoteKvClient, RemoteOptions};

fn opts(timeout_ms: u64) -> RemoteOptions {
    RemoteOptions {
        connect_timeout: Duration::from_millis(timeout_ms.min(1000)),
        request_timeout: Duration::from_millis(timeout_ms),
        ..RemoteOptions::default()
    }
}

/// A client seeded with node 1 only, dialling through `rewrite`.
async fn connect_rewritten(m: &MockCluster, rewrite: AddressRewrite, ms: u64) -> RemoteKvClient {
    let opts = RemoteOptions {
        address_rewrite: Some(rewrite),
        ..opts(ms)
    };
    RemoteKvClient::connect(vec![m.seeds()[0].clone()], opts)
        .await
        .unwrap()
}

/// A counting TCP forwarder on a free loopback port to `upstream`; returns its address.
async fn forwarder(upstream: String, forwarded: Arc<AtomicUsize>) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = l.accept().await {
            let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await else {
                continue;
            };
            forwarded.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn address_rewrite_applies_to_seeds_topology_and_hints() {
    let m = MockCluster::start(2, 2).await;
    // Node 2 leads every group but the topology names node 1: node 2's shard addresses
    // are learned from the topology and reached through NotLeader hints.
    m.with(|s| {
        s.leaders = vec![1, 1];
        s.advertised_leaders = Some(vec![Some(0), Some(0)]);
    });
    let forwarded = Arc::new(AtomicUsize::new(0));
    let mut map = HashMap::new();
    for node in &m.addrs {
        for a in node {
            map.insert(a.clone(), forwarder(a.clone(), forwarded.clone()).await);
        }
    }
    let asked = Arc::new(Mutex::new(BTreeSet::new()));
    let (asked2, map2) = (asked.clone(), map.clone());
    let rewrite = AddressRewrite::new(move |a| {
        asked2.lock().unwrap().insert(a.to_string());
        map2.get(a).cloned().unwrap_or_else(|| a.to_string())
    });
    let c = connect_rewritten(&m, rewrite, 5000).await;
    for i in 0..16 {
        let k = format!("rw{i}");
        c.put(&k, &k).await.unwrap();
        assert_eq!(c.get(&k).await.unwrap().as_deref(), Some(k.as_bytes()));
    }
    assert!(m.stats(0).not_leader >= 1, "the hint path ran");
    // Every connection any node accepted came through a forwarder, and the client dialled
    // node 2's shard ports, which it learned only from the topology and the hints.
    let accepted: usize = (0..2).map(|n| m.stats(n).connections).sum();
    assert_eq!(forwarded.load(Ordering::SeqCst), accepted);
    let asked = asked.lock().unwrap().clone();
    for a in &m.addrs[1] {
        assert!(asked.contains(a), "{a} not rewritten: {asked:?}");
    }

    // A rewrite to a dead port for node 2: its groups cannot be reached at all (the client
    // has no way around the rewrite), while the seed still answers.
    let dead = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().to_string()
    };
    let node2: BTreeSet<String> = m.addrs[1].iter().cloned().collect();
    let blackhole = AddressRewrite::new(move |a| {
        if node2.contains(a) {
            dead.clone()
        } else {
            a.to_string()
        }
    });
    let c = connect_rewritten(&m, blackhole, 800).await;
    let before = m.stats(1).data_requests;
    assert!(c.put("rw-cut", "v").await.is_err());
    assert_eq!(m.stats(1).data_requests, before, "node 2 was never reached");
}
