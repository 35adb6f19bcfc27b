//! A 3-node cluster of real `shoal` processes on 127.0.0.1: every group elects a leader,
//! every operation works through a client that knows only one node (leader routing by
//! topology and `NotLeader` hints), a write through one node is read through every other,
//! the `KvClient` conformance suite passes against the cluster, and `shoal cluster status`
//! reports every node and every group's leader.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster_support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cluster_support::Cluster;
use shoal_client::conformance::{SuiteOptions, run_all};
use shoal_client::{KvClient, ReadConsistency, RemoteOptions};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn opts() -> RemoteOptions {
    RemoteOptions {
        request_timeout: Duration::from_secs(10),
        ..RemoteOptions::default()
    }
}

#[test]
fn three_nodes_serve_every_operation_through_any_node() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(tmp.path(), 3, 2, &[]);
    let leaders = rt().block_on(async {
        let leaders = cluster.wait_leaders().await;
        assert_eq!(leaders.len(), 2);

        let clients = [
            cluster.client_on(1, opts()).await,
            cluster.client_on(2, opts()).await,
            cluster.client_on(3, opts()).await,
        ];
        // Writes through each node; reads through every node, at every consistency.
        for (w, writer) in clients.iter().enumerate() {
            for i in 0..20u32 {
                let key = format!("k:{w}:{i}");
                writer.put(&key, format!("v{i}")).await.unwrap();
            }
            for (r, reader) in clients.iter().enumerate() {
                for i in 0..20u32 {
                    let key = format!("k:{w}:{i}");
                    let want = Some(Bytes::from(format!("v{i}")));
                    assert_eq!(reader.get(&key).await.unwrap(), want, "{key} via node {r}");
                    let lease = reader.get_with(&key, ReadConsistency::Lease).await;
                    assert_eq!(lease.unwrap(), want, "{key} lease via node {r}");
                }
            }
        }
        // Stale reads on every replica converge to the written value.
        let key = "stale:probe";
        clients[0].put(key, "x").await.unwrap();
        for c in &clients {
            let seen = shoal_testkit::wait::wait_for_async(
                "a stale read to see the write",
                Duration::from_secs(10),
                Duration::from_millis(10),
                || async {
                    let v = c.get_with(key, ReadConsistency::Stale).await.ok()?;
                    (v.as_deref() == Some(&b"x"[..])).then_some(())
                },
            )
            .await;
            seen.unwrap();
        }

        // Delete, overwrite, TTL and get_multi across nodes.
        clients[1].put("d", "1").await.unwrap();
        assert!(clients[2].delete_existed("d").await.unwrap());
        assert_eq!(clients[0].get("d").await.unwrap(), None);
        assert!(!clients[0].delete_existed("d").await.unwrap());
        clients[2].put_with_ttl("ttl", "t", 3600).await.unwrap();
        assert_eq!(
            clients[1].get("ttl").await.unwrap(),
            Some(Bytes::from_static(b"t"))
        );
        let keys: Vec<Bytes> = (0..20u32)
            .map(|i| Bytes::from(format!("k:0:{i}")))
            .chain([Bytes::from_static(b"absent")])
            .collect();
        let values = clients[2].get_multi(&keys).await.unwrap();
        for (i, v) in values.iter().take(20).enumerate() {
            assert_eq!(v.as_deref(), Some(format!("v{i}").as_bytes()));
        }
        assert_eq!(values[20], None);

        // Topology from every node names all three nodes and the agreed leaders.
        for c in &clients {
            let t = c.topology().await.unwrap();
            assert_eq!(t.nodes.len(), 3);
            assert_eq!(t.shard_count, 2);
            let seen: Vec<Option<u64>> = t.leaders.iter().map(|l| l.leader).collect();
            assert_eq!(seen, leaders.iter().map(|&l| Some(l)).collect::<Vec<_>>());
        }
        leaders
    });

    // `shoal cluster status` through any node: every node up, each group's leader named,
    // and each node's digest of each group, the same on all three once they converged.
    let digests = rt().block_on(cluster.wait_converged(&[1, 2, 3]));
    let addr = cluster.node(2).client_addr.to_string();
    let out = cluster_status(&addr);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}\n{out:?}");
    for d in &digests {
        let shown = format!("{}/{:016x}@", d.keys, d.digest);
        assert_eq!(
            text.matches(&shown).count(),
            3,
            "group {}: {shown}\n{text}",
            d.group
        );
    }
    for id in 1..=3 {
        assert!(text.contains(&format!("node {id} at ")), "{text}");
    }
    for (g, l) in leaders.iter().enumerate() {
        let line = format!("group {g}: leader node {l}, term ");
        assert!(text.contains(&line), "{text}");
    }
    assert!(!text.contains("UNREACHABLE"), "{text}");
    // With a node down, the status still prints and says so, exiting 3.
    cluster.kill(3);
    let out = cluster_status(&addr);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{text}\n{out:?}");
    assert!(text.contains("node 3 at "), "{text}");
    assert!(text.contains("UNREACHABLE"), "{text}");
}

fn cluster_status(addr: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["cluster", "status", "--addr", addr, "--timeout-ms", "2000"])
        .output()
        .unwrap()
}

#[test]
fn conformance_suite_on_a_three_node_cluster() {
    let tmp = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(tmp.path(), 3, 2, &[]);
    rt().block_on(async {
        cluster.wait_leaders().await;
        // A client that knows a single node: the suite runs through leader routing.
        for id in [1, 3] {
            let client = Arc::new(cluster.client_on(id, opts()).await);
            let suite = SuiteOptions {
                key_prefix: format!("cluster-via-{id}:"),
                ..SuiteOptions::default()
            };
            run_all(client, &suite)
                .await
                .unwrap_or_else(|e| panic!("via node {id}: {e}\n{}", cluster.logs()));
        }
    });
}
