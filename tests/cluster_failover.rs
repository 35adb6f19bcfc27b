//! Failover of a 3-node cluster of real processes: the leader of a group is killed with
//! SIGKILL while writers run, repeatedly, and restarted each time; the remote client hides
//! every failover within its request timeout; every acknowledged write is present
//! afterwards and every read returned the latest acknowledged value of its key or a later
//! one. Then the whole cluster is killed and restarted with its state intact.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use cluster_support::Cluster;
use shoal_client::{KvClient, RemoteKvClient, RemoteOptions};
use shoal_testkit::wait::wait_for_async;

/// Kill/restart cycles of the CI test.
const CYCLES: usize = 10;
const WRITERS: u64 = 4;

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

/// What one writer had acknowledged: its keys `w{t}:{0..acked}`, each holding its index.
struct Writer {
    acked: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<Result<(), String>>,
}

/// A writer: puts `w{t}:{i}` = i and `w{t}:last` = i, then reads `w{t}:last` back, which
/// must hold i or a later value (only this writer writes it, in order).
fn spawn_writer(client: RemoteKvClient, t: u64, stop: Arc<AtomicBool>) -> Writer {
    let acked = Arc::new(AtomicU64::new(0));
    let count = acked.clone();
    let task = tokio::spawn(async move {
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let value = i.to_string();
            client
                .put(format!("w{t}:{i}"), &value)
                .await
                .map_err(|e| format!("writer {t}: put {i}: {e}"))?;
            client
                .put(format!("w{t}:last"), &value)
                .await
                .map_err(|e| format!("writer {t}: put last={i}: {e}"))?;
            i += 1;
            count.store(i, Ordering::Release);
            let last = client
                .get(format!("w{t}:last"))
                .await
                .map_err(|e| format!("writer {t}: get last: {e}"))?;
            let seen: Option<u64> = last.and_then(|b| std::str::from_utf8(&b).ok()?.parse().ok());
            match seen {
                Some(v) if v + 1 >= i => {}
                other => {
                    return Err(format!(
                        "writer {t}: read last={other:?} after acking {}",
                        i - 1
                    ));
                }
            }
        }
        Ok(())
    });
    Writer { acked, task }
}

async fn acked_total(writers: &[Writer]) -> u64 {
    writers
        .iter()
        .map(|w| w.acked.load(Ordering::Acquire))
        .sum()
}

/// Waits until the writers acknowledged `more` writes past what they had.
async fn wait_progress(writers: &[Writer], more: u64, cluster: &Cluster) {
    let from = acked_total(writers).await;
    let progressed = wait_for_async(
        "writers to make progress",
        Duration::from_secs(30),
        Duration::from_millis(10),
        || async { (acked_total(writers).await >= from + more).then_some(()) },
    )
    .await;
    if let Err(e) = progressed {
        panic!("{e}\n{}", cluster.logs());
    }
}

async fn check_all_present(client: &RemoteKvClient, acked: &[u64]) {
    for (t, &n) in acked.iter().enumerate() {
        let keys: Vec<Bytes> = (0..n).map(|i| Bytes::from(format!("w{t}:{i}"))).collect();
        for (chunk_no, chunk) in keys.chunks(256).enumerate() {
            let values = client.get_multi(chunk).await.unwrap();
            for (j, v) in values.iter().enumerate() {
                let i = chunk_no * 256 + j;
                assert_eq!(
                    v.as_deref(),
                    Some(i.to_string().as_bytes()),
                    "acknowledged write w{t}:{i} lost"
                );
            }
        }
    }
}

#[test]
fn killing_the_leader_repeatedly_loses_no_acknowledged_write() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(tmp.path(), 3, 1, &[]);
    let rt = rt();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<Writer> = rt.block_on(async {
        cluster.wait_leaders().await;
        let mut writers = Vec::new();
        for t in 0..WRITERS {
            // Each writer knows every node, as an application would.
            let client = RemoteKvClient::connect(cluster.client_addrs(), opts())
                .await
                .unwrap();
            writers.push(spawn_writer(client, t, stop.clone()));
        }
        wait_progress(&writers, 20, &cluster).await;
        writers
    });
    for cycle in 0..CYCLES {
        let leader = rt.block_on(cluster.wait_leaders())[0];
        cluster.kill(leader);
        // The two others elect a leader and keep serving.
        rt.block_on(async {
            let survivors = cluster.wait_leaders().await;
            assert_ne!(survivors[0], leader, "cycle {cycle}");
            wait_progress(&writers, 20, &cluster).await;
        });
        cluster.restart(leader);
        rt.block_on(wait_progress(&writers, 5, &cluster));
    }
    stop.store(true, Ordering::Relaxed);
    let acked: Vec<u64> = rt.block_on(async {
        let mut acked = Vec::new();
        for w in writers {
            let n = w.acked.clone();
            w.task
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
            acked.push(n.load(Ordering::Acquire));
        }
        acked
    });
    // Every acknowledged write is there, read through each node.
    rt.block_on(async {
        for id in 1..=3 {
            let client = cluster.client_on(id, opts()).await;
            check_all_present(&client, &acked).await;
        }
    });
    eprintln!(
        "{CYCLES} leader kills, {} acknowledged writes",
        acked.iter().sum::<u64>()
    );
}

#[test]
fn whole_cluster_restart_keeps_the_state() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(tmp.path(), 3, 2, &[]);
    let rt = rt();
    let acked = [200u64];
    rt.block_on(async {
        cluster.wait_leaders().await;
        let client = cluster.client_on(2, opts()).await;
        for i in 0..acked[0] {
            client.put(format!("w0:{i}"), i.to_string()).await.unwrap();
        }
        client.put("gone", "x").await.unwrap();
        client.delete("gone").await.unwrap();
    });
    let before = rt.block_on(cluster.wait_converged(&[1, 2, 3]));
    // A crash of every node at once: only what was fdatasync'd on a quorum survives,
    // which is everything acknowledged.
    for id in 1..=3 {
        cluster.kill(id);
    }
    for id in 1..=3 {
        cluster.restart(id);
    }
    rt.block_on(async {
        cluster.wait_leaders().await;
        for id in 1..=3 {
            let client = cluster.client_on(id, opts()).await;
            check_all_present(&client, &acked).await;
            assert_eq!(client.get("gone").await.unwrap(), None);
        }
    });
    // A graceful stop and start of every node keeps it too.
    for id in 1..=3 {
        cluster.stop(id);
    }
    for id in 1..=3 {
        cluster.restart(id);
    }
    rt.block_on(async {
        cluster.wait_leaders().await;
        let client = cluster.client_on(3, opts()).await;
        check_all_present(&client, &acked).await;
        // Identical contents on every replica, and the same as before the restarts (the
        // applied index moved on: each new leader commits a blank entry).
        let after = cluster.wait_converged(&[1, 2, 3]).await;
        for (a, b) in before.iter().zip(&after) {
            assert_eq!(
                (a.keys, a.digest),
                (b.keys, b.digest),
                "{before:?} {after:?}"
            );
        }
    });
}
