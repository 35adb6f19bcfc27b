//! Membership at runtime with real processes: a one-node cluster with data (snapshotted,
//! its log purged) grows to three nodes while a writer runs. Nodes 2 and 3 start with
//! `--join`, are added as learners of every group (through the client API and the
//! `shoal cluster add-learner` CLI), catch up by snapshot plus log, and are promoted
//! (`shoal cluster promote`). Then the original node is killed: the two new nodes elect a
//! leader and serve every acknowledged write; the dead node is removed from every group.
//! A second test replaces a node whose data directory was wiped by a fresh node.
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
    // The three replicas of every group hold identical state.
    rt.block_on(async {
        let digests = cluster.wait_converged(&[1, 2, 3]).await;
        let keys: u64 = digests.iter().map(|d| d.keys).sum();
        assert_eq!(keys, 600 + live, "{digests:?}");
    });

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
        // The topology is the groups' membership, not the static configuration: the
        // removed node (configured on every node) is no longer listed.
        let mut listed: Vec<u64> = t.nodes.iter().map(|n| n.node_id).collect();
        listed.sort_unstable();
        assert_eq!(listed, [2, 3], "{t:?}");
    });
}

/// Replacing a node whose data directory was lost, the way the README's cluster section
/// tells an operator to: the dead node is removed from every group (`shoal cluster
/// change-membership` with the survivors), a fresh node with a new id and an empty data
/// directory starts with `--join`, is added as a learner and promoted. Node ids are never
/// reused: a voter that comes back empty under its old id would have forgotten its vote
/// and its log, which Raft's safety rests on. Writers run throughout; the survivors keep
/// serving; the new node catches up by snapshot plus log and ends with the same state
/// digest as the others.
#[test]
fn replace_a_node_whose_data_directory_was_wiped() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("shoal.toml");
    std::fs::write(
        &config,
        "[snapshot]\nevery_entries = 100\nkeep_entries = 10\n",
    )
    .unwrap();
    let config = config.to_str().unwrap().to_string();
    // Ports and a directory for node 4, the replacement; nodes 1..=3 form the cluster.
    let mut cluster = Cluster::start_partial(tmp.path(), 4, 3, SHARDS, &["--config", &config]);
    let rt = rt();
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let leaders = rt.block_on(cluster.wait_leaders());
    // Lose a follower of group 0 (a leader loss is the failover tests' subject).
    let lost = (1..=3u64).find(|id| *id != leaders[0]).unwrap();
    let survivor = (1..=3u64).find(|id| *id != lost).unwrap();
    let survivors: Vec<u64> = (1..=3u64).filter(|id| *id != lost).collect();
    let client = rt.block_on(async {
        let client = cluster.client_on(survivor, opts()).await;
        for i in 0..400u64 {
            client.put(format!("pre:{i}"), i.to_string()).await.unwrap();
        }
        client
    });
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

    // The disk of `lost` dies.
    cluster.kill(lost);
    std::fs::remove_dir_all(&cluster.node(lost).data_dir).unwrap();
    // As an operator would (`shoal cluster status`), wait until the survivors lead every
    // group before changing the members: the lost node may have led some (the client's
    // retry budget can run out on a dead leader's refused connections before an election
    // ends on a loaded machine).
    rt.block_on(cluster.wait_leaders_among(&survivors));
    let seed = cluster.node(survivor).client_addr.to_string();
    let voters: Vec<String> = survivors.iter().map(u64::to_string).collect();
    let out = cli(&[
        "cluster",
        "change-membership",
        "--voters",
        &voters.join(","),
        "--addr",
        &seed,
        "--timeout-ms",
        "30000",
    ]);
    assert!(out.status.success(), "{out:?}\n{}", cluster.logs());

    // The replacement: fresh id, empty directory.
    cluster.join(4);
    let n4 = cluster.node(4);
    let (peer4, client4) = (n4.peer_addr.to_string(), n4.client_addr.to_string());
    let out = cli(&[
        "cluster",
        "add-learner",
        "--node-id",
        "4",
        "--peer-addr",
        &peer4,
        "--client-addr",
        &client4,
        "--addr",
        &seed,
        "--timeout-ms",
        "30000",
    ]);
    assert!(out.status.success(), "{out:?}\n{}", cluster.logs());
    let mut new_voters = voters.clone();
    new_voters.push("4".to_string());
    let out = cli(&[
        "cluster",
        "promote",
        "--voters",
        &new_voters.join(","),
        "--addr",
        &seed,
        "--timeout-ms",
        "30000",
    ]);
    assert!(out.status.success(), "{out:?}\n{}", cluster.logs());

    rt.block_on(async {
        // The writer kept going through the whole replacement.
        let from = acked.load(Ordering::Acquire);
        wait_for_async(
            "writes with the new voter set",
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
    let log = cluster.node(4).process.as_ref().unwrap().log();
    assert!(
        log.contains("installed a snapshot sent by the leader"),
        "node 4 did not catch up by snapshot:\n{log}"
    );
    let mut members = survivors.clone();
    members.push(4);
    rt.block_on(async {
        let digests = cluster.wait_converged(&members).await;
        let keys: u64 = digests.iter().map(|d| d.keys).sum();
        assert_eq!(keys, 400 + live, "{digests:?}");
        let admin = cluster.client_on(4, opts()).await;
        for &id in &members {
            let report = admin
                .node_status(&cluster.node(id).client_addr.to_string())
                .await
                .unwrap();
            for g in &report.groups {
                assert_eq!(g.voters, members, "node {id}: {g:?}");
                assert!(g.learners.is_empty(), "node {id}: {g:?}");
            }
        }
        // A client that knows only the new node reads every acknowledged write.
        for i in [0, 399] {
            let v = admin.get(format!("pre:{i}")).await.unwrap();
            assert_eq!(v.as_deref(), Some(i.to_string().as_bytes()));
        }
        if live > 0 {
            let v = admin.get(format!("live:{}", live - 1)).await.unwrap();
            assert_eq!(v.as_deref(), Some((live - 1).to_string().as_bytes()));
        }
    });
    // `shoal cluster status` counts the cluster healthy: the lost node, removed from
    // every group, is not part of the topology any more (although configured); the
    // replacement is listed as up.
    let out = cli(&["cluster", "status", "--addr", &seed, "--timeout-ms", "5000"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}\n{out:?}");
    assert!(!text.contains(&format!("node {lost} at ")), "{text}");
    assert!(text.contains("node 4 at "), "{text}");
}
