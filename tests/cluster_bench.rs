//! Figures, not a check: a 3-node cluster of real processes on this machine, 1 shard
//! each, 100-byte values; durable puts and linearizable gets through `RemoteKvClient` at 1
//! and 64 requests in flight; prints throughput, p50 and p99 per run. Ignored (it only
//! means something in release: `cargo test --release --test cluster_bench -- --ignored
//! --nocapture`); `SHOAL_BENCH_SECS` sets the length of each run (default 5).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster_support::Cluster;
use shoal_client::{KvClient, RemoteKvClient, RemoteOptions};

const KEYS: u64 = 10_000;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn run(client: &RemoteKvClient, in_flight: usize, puts: bool, secs: u64) -> String {
    let value = Arc::new(vec![b'v'; 100]);
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    let tasks: Vec<_> = (0..in_flight)
        .map(|t| {
            let client = client.clone();
            let value = value.clone();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut i = t as u64;
                while Instant::now() < end {
                    let key = format!("bench:{:08}", i % KEYS);
                    let began = Instant::now();
                    if puts {
                        client.put(&key, &value[..]).await.unwrap();
                    } else {
                        client.get(&key).await.unwrap();
                    }
                    lat.push(began.elapsed());
                    i += in_flight as u64;
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = start.elapsed();
    all.sort_unstable();
    format!(
        "{:<16} in flight {in_flight:>3}: {:>8.0} ops/s  p50 {:>7.0} us  p99 {:>7.0} us  ({} ops)",
        if puts {
            "durable puts"
        } else {
            "linearizable gets"
        },
        all.len() as f64 / elapsed.as_secs_f64(),
        percentile(&all, 0.50).as_secs_f64() * 1e6,
        percentile(&all, 0.99).as_secs_f64() * 1e6,
        all.len()
    )
}

#[test]
#[ignore = "benchmark: prints figures; run in release"]
fn three_node_put_and_get_figures() {
    let secs: u64 = std::env::var("SHOAL_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let tmp = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(tmp.path(), 3, 1, &[]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        cluster.wait_leaders().await;
        let opts = RemoteOptions {
            request_timeout: Duration::from_secs(10),
            ..RemoteOptions::default()
        };
        let client = RemoteKvClient::connect(cluster.client_addrs(), opts)
            .await
            .unwrap();
        // Every key exists before the gets.
        let value = vec![b'v'; 100];
        let preload: Vec<_> = (0..64u64)
            .map(|t| {
                let client = client.clone();
                let value = value.clone();
                tokio::spawn(async move {
                    for i in (t..KEYS).step_by(64) {
                        client.put(format!("bench:{i:08}"), &value).await.unwrap();
                    }
                })
            })
            .collect();
        for p in preload {
            p.await.unwrap();
        }
        println!("3 nodes on 127.0.0.1, 1 shard each, 100-byte values, {secs} s per run:");
        for (puts, in_flight) in [(true, 1), (true, 64), (false, 1), (false, 64)] {
            println!("{}", run(&client, in_flight, puts, secs).await);
        }
    });
}
