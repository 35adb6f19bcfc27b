//! Membership at runtime with real processes: a one-node cluster with data (snapshotted,
//! its log purged) grows to three nodes while a writer runs. Nodes 2 and 3 start with
//! `--join`, are added as learners of every group (through the client API and the
//! `shoal cluster add-learner` CLI), catch up by snapshot plus log, and are promoted
//! (`shoal cluster promote`). Then the original node is killed: the two new nodes elect a
//! leader and serve every acknowledged write; the dead node is removed from every group.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster_support;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use cluster_support::Cluster;
use shoal_client::{KvClient, RemoteKvClient, RemoteOptions};
use shoal_testkit::wait::wait_for_async;

const SHARDS: u16 = 2;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn opts() -> RemoteOptions {
    RemoteOptions {
        request_timeout: Duration::from_secs(20),
        ..RemoteOptions::default()
    }
}

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn grow_from_one_to_three_nodes_under_load() {
    let tmp = tempfile::tempdir().unwrap();
    // Snapshots every 100 entries, 10 kept behind: a new learner needs the snapshot.
    let config = tmp.path().join("shoal.toml");
    std::fs::write(
        &config,
        "[snapshot]\nevery_entries = 100\nkeep_entries = 10\n",
    )
    .unwrap();
    let config = config.to_str().unwrap().to_string();
    let mut cluster = Cluster::start_partial(tmp.path(), 3, 1, SHARDS, &["--config", &config]);
    let rt = rt();
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let client = rt.block_on(async {
        cluster.wait_leaders().await;
        let client = cluster.client_on(1, opts()).await;
        for i in 0..600u64 {
            client.put(format!("pre:{i}"), i.to_string()).await.unwrap();
        }
        client
    });
    // A writer keeps going through the whole change.
    let writer = {
        let (stop, acked) = (stop.clone(), acked.clone());
        rt.spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                client.put(format!("live:{i}"), i.to_string()).await?;
                i += 1;
                acked.store(i, Ordering::Release);
            }
            Ok::<(), shoal_client::KvClientError>(())
        })
    };

    cluster.join(2);
    cluster.join(3);
    let seed = cluster.node(1).client_addr.to_string();
    rt.block_on(async {
        // Node 2 through the client API, every group.
        let admin = cluster.client_on(1, opts()).await;
        let n2 = cluster.node(2);
        for g in 0..u32::from(SHARDS) {
            admin
                .add_learner(g, 2, &n2.peer_addr.to_string(), &n2.client_addr.to_string())
                .await
                .unwrap_or_else(|e| panic!("add learner 2 to group {g}: {e}\n{}", cluster.logs()));
        }
    });
    // Node 3 through the CLI, asked of node 1 too.
    let n3 = cluster.node(3);
    let (peer3, client3) = (n3.peer_addr.to_string(), n3.client_addr.to_string());
    let out = cli(&[
        "cluster",
        "add-learner",
        "--node-id",
        "3",
        "--peer-addr",
        &peer3,
        "--client-addr",
        &client3,
        "--addr",
        &seed,
        "--timeout-ms",
        "20000",
    ]);
    assert!(out.status.success(), "{out:?}\n{}", cluster.logs());
    let out = cli(&[
        "cluster",
        "promote",
        "--voters",
        "1,2,3",
        "--addr",
        &seed,
        "--timeout-ms",
        "20000",
    ]);
    assert!(out.status.success(), "{out:?}\n{}", cluster.logs());

    rt.block_on(async {
        // Every node sees three voters in every group.
        let admin = cluster.client_on(1, opts()).await;
        for id in 1..=3u64 {
            let addr = cluster.node(id).client_addr.to_string();
            let voters = wait_for_async(
                "three voters everywhere",
                Duration::from_secs(20),
                Duration::from_millis(20),
                || async {
                    let report = admin.node_status(&addr).await.ok()?;
                    report
                        .groups
                        .iter()
                        .all(|g| g.voters == [1, 2, 3] && g.learners.is_empty())
                        .then_some(())
                },
            )
            .await;
            voters.unwrap_or_else(|e| panic!("node {id}: {e}\n{}", cluster.logs()));
        }
        // The joined nodes caught up by snapshot (the log before it was purged).
        for id in [2, 3] {
            let log = cluster.node(id).process.as_ref().unwrap().log();
            assert!(
                log.contains("installed a snapshot sent by the leader"),
                "node {id} did not install a snapshot:\n{log}"
            );
        }
        // The topology now names the joined nodes.
        let t = admin.topology().await.unwrap();
        assert_eq!(t.nodes.len(), 3, "{t:?}");
    });
    // Let the writer go on a little with three voters, then stop it.
    rt.block_on(async {
        let from = acked.load(Ordering::Acquire);
        wait_for_async(
            "writes with three voters",
            Duration::from_secs(20),
            Duration::from_millis(10),
            || async { (acked.load(Ordering::Acquire) >= from + 20).then_some(()) },
        )
        .await
        .unwrap();
        stop.store(true, Ordering::Relaxed);
        writer.await.unwrap().unwrap();
    });
    let live = acked.load(Ordering::Acquire);

    // Without node 1, nodes 2 and 3 hold a quorum, elect, and serve everything.
    cluster.kill(1);
    rt.block_on(async {
        let leaders = cluster.wait_leaders().await;
        assert!(leaders.iter().all(|&l| l != 1), "{leaders:?}");
        let client = RemoteKvClient::connect([cluster.node(3).client_addr], opts())
            .await
            .unwrap();
        let check = |prefix: &'static str, n: u64| {
            let client = client.clone();
            async move {
                let keys: Vec<Bytes> = (0..n)
                    .map(|i| Bytes::from(format!("{prefix}:{i}")))
                    .collect();
                for (c, chunk) in keys.chunks(256).enumerate() {
                    let values = client.get_multi(chunk).await.unwrap();
                    for (j, v) in values.iter().enumerate() {
                        let i = c * 256 + j;
                        assert_eq!(v.as_deref(), Some(i.to_string().as_bytes()), "{prefix}:{i}");
                    }
                }
            }
        };
        check("pre", 600).await;
        check("live", live).await;

        // Remove the dead node: the groups go on with voters {2, 3}.
        for g in 0..u32::from(SHARDS) {
            client.change_membership(g, &[2, 3], false).await.unwrap();
        }
        for id in [2u64, 3] {
            let report = client
                .node_status(&cluster.node(id).client_addr.to_string())
                .await
                .unwrap();
            for g in &report.groups {
                assert_eq!(g.voters, [2, 3], "node {id}: {g:?}");
                assert!(g.learners.is_empty(), "node {id}: {g:?}");
            }
        }
        client.put("after-removal", "ok").await.unwrap();
        let t = client.topology().await.unwrap();
        assert!(
            t.leaders.iter().all(|l| matches!(l.leader, Some(2 | 3))),
            "{t:?}"
        );
    });
}
