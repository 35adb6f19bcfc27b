//! Snapshots and log purge on a 3-node cluster of real processes, under a sustained write
//! load with one follower down:
//! - the WAL of every running node stays bounded: its segment count never exceeds a bound
//!   derived from the snapshot policy and the segment size, while the load writes many
//!   times that bound (without purge the count would grow with every segment filled);
//! - the snapshot files stay bounded too (the current one, and a newer one being made);
//! - the stopped follower, restarted after the leader purged the log it missed, catches
//!   up by a snapshot larger than one peer chunk (`SNAPSHOT_CHUNK_LEN`), so sent in several
//!   chunks, plus the log since, and ends with the same state digest as the others.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster_support;

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use cluster_support::Cluster;
use futures::future::join_all;
use shoal_client::{KvClient, RemoteOptions};
use shoal_proto::limits::SNAPSHOT_CHUNK_LEN;
use shoal_testkit::wait::wait_for;

/// Snapshot policy of the test (`[snapshot]` in the node's TOML).
const EVERY_ENTRIES: u64 = 200;
const KEEP_ENTRIES: u64 = 50;
/// Segment size the cluster support starts nodes with (`--wal-segment-mib 8`).
const SEGMENT_BYTES: u64 = 8 << 20;
const VALUE_LEN: usize = 16 * 1024;
/// Keys overwritten in turn: the state (and so each snapshot) stays ~4 MiB while the log
/// receives every write.
const KEYS: u64 = 256;
const WRITES: u64 = 8_000;
const IN_FLIGHT: u64 = 32;

fn opts() -> RemoteOptions {
    RemoteOptions {
        request_timeout: Duration::from_secs(20),
        ..RemoteOptions::default()
    }
}

fn value(i: u64) -> Bytes {
    let mut v = vec![(i % 251) as u8; VALUE_LEN];
    v[..8].copy_from_slice(&i.to_le_bytes());
    Bytes::from(v)
}

/// (files, bytes) of the entries of `dir` whose name ends with `suffix`.
fn files(dir: &Path, suffix: &str) -> (u64, u64) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (0, 0);
    };
    let mut out = (0, 0);
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().ends_with(suffix) {
            out.0 += 1;
            out.1 += e.metadata().map_or(0, |m| m.len());
        }
    }
    out
}

/// The largest snapshot file of `dir`.
fn largest(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".snap"))
        .map(|e| e.metadata().unwrap().len())
        .max()
        .unwrap_or(0)
}

#[test]
fn wal_stays_bounded_and_a_lagging_follower_catches_up_by_a_chunked_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("shoal.toml");
    std::fs::write(
        &config,
        format!("[snapshot]\nevery_entries = {EVERY_ENTRIES}\nkeep_entries = {KEEP_ENTRIES}\n"),
    )
    .unwrap();
    let config = config.to_str().unwrap().to_string();
    let mut cluster = Cluster::start(tmp.path(), 3, 1, &["--config", &config]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let leader = rt.block_on(cluster.wait_leaders())[0];
    let lagging = (1..=3).find(|&id| id != leader).unwrap();
    let running: Vec<u64> = (1..=3).filter(|&id| id != lagging).collect();
    cluster.kill(lagging);

    // The log may hold what the policy keeps behind the newest snapshot, the entries
    // since it, and those applied while the next one is built, synced and the log purged:
    // writes go on meanwhile, and at this write rate a debug build's snapshot cycle of a
    // ~4 MiB state spans several intervals (runs reached 5 segments, 1.7 segments above
    // the policy's floor), so that is allowed five intervals. Each entry is a framed
    // value. Plus the segment holding the purge floor's neighbourhood, the active segment
    // and the preallocated next one. Without purge the count would reach ~16.
    let entry_bytes = (VALUE_LEN + 256) as u64;
    let bound = ((KEEP_ENTRIES + 6 * EVERY_ENTRIES) * entry_bytes).div_ceil(SEGMENT_BYTES) + 3;
    let written_segments = (WRITES * entry_bytes).div_ceil(SEGMENT_BYTES);
    assert!(
        written_segments > 2 * bound,
        "the load must write far more than the bound ({written_segments} vs {bound} segments)"
    );
    let wal = |id: u64| cluster.node(id).data_dir.join("shard-0").join("wal");
    let snaps = |id: u64| cluster.node(id).data_dir.join("shard-0").join("snapshots");

    let mut max_segments = 0;
    let mut max_snapshots = 0;
    rt.block_on(async {
        let client = cluster.client_on(leader, opts()).await;
        let mut i = 0;
        while i < WRITES {
            let batch = (i..(i + IN_FLIGHT).min(WRITES)).map(|j| {
                let client = client.clone();
                async move { client.put(format!("k{}", j % KEYS), value(j)).await }
            });
            for r in join_all(batch).await {
                r.unwrap_or_else(|e| panic!("put: {e}\n{}", cluster.logs()));
            }
            i += IN_FLIGHT;
            for &id in &running {
                max_segments = max_segments.max(files(&wal(id), ".seg").0);
                max_snapshots = max_snapshots.max(files(&snaps(id), ".snap").0);
            }
        }
    });
    eprintln!(
        "{WRITES} writes of {VALUE_LEN} B (~{written_segments} segments of log): at most \
         {max_segments} WAL segments and {max_snapshots} snapshot files on a running node \
         (bound {bound} segments)"
    );
    assert!(
        max_segments <= bound,
        "WAL grew to {max_segments} segments, bound {bound}"
    );
    assert!(max_snapshots <= 2, "{max_snapshots} snapshot files");

    // The leader purged what the lagging follower missed: it needs a snapshot, bigger than
    // one chunk.
    let snapshot_len = largest(&snaps(leader));
    assert!(
        snapshot_len > 2 * SNAPSHOT_CHUNK_LEN as u64,
        "snapshot of {snapshot_len} B would fit in one chunk"
    );
    cluster.restart(lagging);
    let log = wait_for(
        "the lagging follower to install a snapshot",
        Duration::from_secs(60),
        Duration::from_millis(50),
        || {
            let log = cluster.node(lagging).process.as_ref().unwrap().log();
            log.contains("installed a snapshot sent by the leader")
                .then_some(log)
        },
    );
    log.unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    rt.block_on(async {
        // Writes go on while it catches up, then every replica holds the same state.
        let client = cluster.client_on(leader, opts()).await;
        for j in WRITES..WRITES + 100 {
            client
                .put(format!("k{}", j % KEYS), value(j))
                .await
                .unwrap();
        }
        let digests = cluster.wait_converged(&[1, 2, 3]).await;
        assert_eq!(digests[0].keys, KEYS, "{digests:?}");
        // And a client that knows only the restarted follower reads the latest value.
        let last = WRITES + 99;
        let follower = cluster.client_on(lagging, opts()).await;
        let got = follower
            .get(format!("k{}", last % KEYS))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, value(last));
    });
    eprintln!("snapshot sent to the lagging follower: {snapshot_len} B");
}
