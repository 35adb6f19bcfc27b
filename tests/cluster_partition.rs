//! Partition of a 3-node cluster of real processes: every directed peer link X -> Y goes
//! through its own fault proxy (node X dials Y's peers through it, `--peer-route`).
//! Cutting the four links of the leader isolates it: the other two elect a new leader and
//! keep serving, the old leader serves no stale linearizable read, and after healing all
//! three replicas converge (same leader, same applied index, and identical state: the
//! same state digest at that index) and serve the latest value.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster_support;

use std::collections::HashMap;
use std::time::Duration;

use cluster_support::Cluster;
use shoal_client::{KvClient, RemoteKvClient, RemoteOptions};
use shoal_testkit::ports::localhost;
use shoal_testkit::proxy::{Fault, Proxy};
use shoal_testkit::wait::wait_for_async;

fn opts(timeout: Duration) -> RemoteOptions {
    RemoteOptions {
        request_timeout: timeout,
        ..RemoteOptions::default()
    }
}

#[test]
fn isolated_leader_is_replaced_serves_no_stale_read_and_converges_after_heal() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::plan(tmp.path(), 3, 3, 1, &[]);
    let mut links: HashMap<(u64, u64), Proxy> = HashMap::new();
    for x in 1..=3u64 {
        let mut flags = Vec::new();
        for y in (1..=3u64).filter(|&y| y != x) {
            let proxy = Proxy::start(&[(localhost(0), cluster.node(y).peer_addr)]).unwrap();
            flags.push("--peer-route".to_string());
            flags.push(format!("{y}={}", proxy.addrs()[0]));
            links.insert((x, y), proxy);
        }
        cluster.set_flags(x, flags);
    }
    cluster.launch();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let old = cluster.wait_leaders().await[0];
        let majority: Vec<u64> = (1..=3).filter(|&id| id != old).collect();
        let everywhere =
            RemoteKvClient::connect(cluster.client_addrs(), opts(Duration::from_secs(10)))
                .await
                .unwrap();
        everywhere.put("k", "old").await.unwrap();

        // Isolate the leader: nothing flows between it and the others, either way.
        for ((x, y), proxy) in &links {
            if *x == old || *y == old {
                proxy.set(Fault::Cut);
            }
        }
        let leaders = cluster.wait_leaders_among(&majority).await;
        assert_ne!(leaders[0], old);
        let side = cluster
            .client_on(majority[0], opts(Duration::from_secs(10)))
            .await;
        side.put("k", "new").await.unwrap();
        for i in 0..50u32 {
            side.put(format!("during:{i}"), "x").await.unwrap();
        }

        // A client that only knows the old leader never reads the overwritten value: the
        // old leader cannot confirm its leadership, so it fails the read (or the client
        // finds the new leader through a hint and reads the new value).
        // With one attempt, the read goes where the old leader's own topology points.
        let isolated = cluster.client_on(old, opts(Duration::from_secs(10))).await;
        let one_shot = RemoteOptions {
            retry: shoal_client::RetryPolicy {
                max_attempts: 1,
                ..shoal_client::RetryPolicy::default()
            },
            ..opts(Duration::from_secs(5))
        };
        let direct = cluster.client_on(old, one_shot).await;
        for client in [&direct, &isolated] {
            for _ in 0..3 {
                match client.get("k").await {
                    Ok(v) => assert_eq!(v.as_deref(), Some(&b"new"[..]), "stale read"),
                    Err(e) => eprintln!("read through the isolated node failed: {e}"),
                }
            }
        }

        // Heal: every node converges on the new leader and the same applied index.
        for proxy in links.values() {
            proxy.heal();
        }
        let admin = cluster
            .client_on(majority[0], opts(Duration::from_secs(2)))
            .await;
        let addrs: Vec<String> = (1..=3)
            .map(|id| cluster.node(id).client_addr.to_string())
            .collect();
        let converged = wait_for_async(
            "replicas to converge",
            Duration::from_secs(30),
            Duration::from_millis(20),
            || async {
                let mut seen = Vec::new();
                for addr in &addrs {
                    let g = admin.node_status(addr).await.ok()?.groups.pop()?;
                    seen.push((g.leader?, g.applied_index?, g.last_log_index?));
                }
                let first = seen[0];
                (first.1 == first.2 && seen.iter().all(|s| *s == first)).then_some(first)
            },
        )
        .await;
        converged.unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
        // Identical state on the three replicas, compared at one applied index. The old
        // leader's log had no entry of its own to discard here (it could not commit
        // without the others); its state still came entirely from the new leader's log.
        let digests = cluster.wait_converged(&[1, 2, 3]).await;
        assert_eq!(digests[0].keys, 51, "k and during:0..50: {digests:?}");
        let healed = cluster.client_on(old, opts(Duration::from_secs(10))).await;
        assert_eq!(healed.get("k").await.unwrap().as_deref(), Some(&b"new"[..]));
        assert_eq!(
            healed.get("during:49").await.unwrap().as_deref(),
            Some(&b"x"[..])
        );
    });
}
