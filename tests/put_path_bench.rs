//! Figures, not a check: where the time of one durable put goes on a single node, without
//! the network. In one glommio executor, in the same run, one write at a time:
//! - `wal`: a 126-byte record appended to the WAL and awaited until durable (the floor of
//!   any durable put through this WAL: write + fdatasync through io_uring);
//! - `raft+memdisk`: `client_write` of a 100-byte command on a single-voter group over the
//!   WAL log store on an in-memory disk (no I/O: openraft's rounds, the store, the flusher
//!   and completion tasks, the apply and the reply);
//! - `raft+wal`: the same over real files (everything a put costs inside a shard).
//!
//! So `raft+wal - wal` is the cost of consensus bookkeeping around the fdatasync, and
//! `raft+memdisk` bounds it from below. Ignored (meaningful in release only):
//! `cargo test --release --test put_path_bench -- --ignored --nocapture`;
//! `SHOAL_BENCH_N` sets the writes per case (default 2000).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod raft_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use raft_support::mem_network::Router;
use raft_support::mem_store::MemStateMachine;
use shoal::raft::log_store::{AckMode, WalLogStore};
use shoal::raft::types::{Raft, Request};
use shoal_wal::{Disk, GlommioDisk, MemDisk, SyncMode, Wal, WalConfig};

fn report(name: &str, mut lat: Vec<Duration>) {
    lat.sort_unstable();
    let p = |q: f64| lat[((lat.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e6;
    println!(
        "{name:<14} n {:>5}  p50 {:>7.1} us  p90 {:>7.1} us  p99 {:>7.1} us",
        lat.len(),
        p(0.5),
        p(0.9),
        p(0.99)
    );
}

async fn raft_writes<D: Disk + Clone + 'static>(disk: D, n: usize) -> Vec<Duration> {
    let (store, _) = WalLogStore::open(disk, WalConfig::default(), AckMode::AfterFsync)
        .await
        .unwrap();
    let router = Router::default();
    let sm = MemStateMachine::default();
    let raft: Raft<MemStateMachine> = Raft::new(
        1,
        raft_support::config(),
        router.clone(),
        store.clone(),
        sm.clone(),
    )
    .await
    .unwrap();
    router.add(1, raft.clone());
    raft.initialize(BTreeMap::from([(1, raft_support::node(1))]))
        .await
        .unwrap();
    raft.wait(Some(raft_support::WAIT))
        .leader_with_quorum_acked(None, "single node leads")
        .await
        .unwrap();
    let command = Bytes::from(vec![b'v'; 100]);
    let mut lat = Vec::with_capacity(n);
    let before = store.stats();
    for i in 0..n + 100 {
        let began = Instant::now();
        raft.client_write(Request {
            command: command.clone(),
        })
        .await
        .unwrap();
        if i >= 100 {
            lat.push(began.elapsed());
        }
    }
    let after = store.stats();
    println!(
        "  per write: {:.2} WAL writes, {:.2} log appends, {:.2} metadata writes",
        (after.wal.writes - before.wal.writes) as f64 / (n + 100) as f64,
        (after.appends - before.appends) as f64 / (n + 100) as f64,
        (after.meta_writes - before.meta_writes) as f64 / (n + 100) as f64,
    );
    raft.shutdown().await.unwrap();
    store.close().await.unwrap();
    lat
}

#[test]
#[ignore = "benchmark: prints figures; run in release"]
fn single_node_put_path_breakdown() {
    // SHOAL_BENCH_TRACE=1: openraft's and the store's debug events with microsecond
    // timestamps on stderr (use a small SHOAL_BENCH_N), to see one write's timeline.
    if std::env::var_os("SHOAL_BENCH_TRACE").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter("openraft=debug,shoal=debug,shoal_wal=debug")
            .with_writer(std::io::stderr)
            .init();
    }
    let n: usize = std::env::var("SHOAL_BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    raft_support::executor().run(async move {
        let dir = tempfile::tempdir().unwrap();

        let disk = GlommioDisk::open(dir.path().join("raw"), SyncMode::DEFAULT)
            .await
            .unwrap();
        let (wal, _) = Wal::open(disk, WalConfig::default()).await.unwrap();
        let payload = Bytes::from(vec![b'r'; 126]);
        let mut lat = Vec::with_capacity(n);
        for i in 0..(n + 100) as u64 {
            let began = Instant::now();
            wal.append([(i, payload.clone())]).unwrap().await.unwrap();
            if i >= 100 {
                lat.push(began.elapsed());
            }
        }
        drop(wal);
        report("wal", lat);

        report("raft+memdisk", raft_writes(MemDisk::new(), n).await);

        let disk = GlommioDisk::open(dir.path().join("raft"), SyncMode::DEFAULT)
            .await
            .unwrap();
        report("raft+wal", raft_writes(disk, n).await);
    });
}
