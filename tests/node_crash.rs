//! Crash durability: writers stream puts and record each acknowledged one; the node is
//! killed with SIGKILL at a random moment, restarted, and every acknowledged write must
//! be there. 20 cycles in CI (`SHOAL_CRASH_CYCLES` for more; the `#[ignore]` soak runs 200).
//!
//! The negative control runs the same loop against a node started with the test-only
//! `--unsafe-ack-before-fsync` switch and requires that some acknowledged write is lost:
//! it proves the check can see a loss, so the positive test passing means something.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod node_support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use node_support::NodeProcess;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use shoal_client::{KvClient, RemoteOptions, RetryPolicy};

/// Concurrent writers: enough that a group commit is always in flight when the kill lands.
const WRITERS: usize = 32;

#[derive(Debug, Default)]
struct Outcome {
    cycles: usize,
    acked: usize,
    lost: Vec<String>,
}

fn crash_cycles(cycles: usize, extra: &[&str], seed: u64) -> Outcome {
    let tmp = tempfile::tempdir().unwrap();
    let mut node = NodeProcess::start(&tmp.path().join("data"), 2, extra);
    let mut rng = SmallRng::seed_from_u64(seed);
    let acked: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let mut outcome = Outcome::default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for cycle in 0..cycles {
        // No retries: a writer must stop at the crash, not retry into the next life.
        let client = rt.block_on(node.client_with(RemoteOptions {
            request_timeout: Duration::from_secs(10),
            retry: RetryPolicy {
                max_attempts: 1,
                ..RetryPolicy::default()
            },
            ..RemoteOptions::default()
        }));
        // Writers run until the connection dies under them.
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let client = client.clone();
                let acked = acked.clone();
                rt.spawn(async move {
                    for seq in 0u64.. {
                        let key = format!("c{cycle}-w{w}-{seq}");
                        let value = format!("value of {key}");
                        if client.put(&key, &value).await.is_err() {
                            return;
                        }
                        acked.lock().unwrap().insert(key, value);
                    }
                })
            })
            .collect();
        // Let some writes be acknowledged, then crash at a random moment.
        let before = acked.lock().unwrap().len();
        shoal_testkit::wait::wait_for(
            "first acknowledged writes",
            Duration::from_secs(30),
            Duration::from_millis(1),
            || (acked.lock().unwrap().len() > before + 50).then_some(()),
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(rng.random_range(0..200)));
        node.process.kill().unwrap();
        rt.block_on(async {
            for w in writers {
                // Each writer stops at its first failed put (connection gone).
                tokio::time::timeout(Duration::from_secs(30), w)
                    .await
                    .expect("writers stop once the node is dead")
                    .unwrap();
            }
        });
        drop(client);

        node.restart();
        let client = rt.block_on(node.client());
        let expected: Vec<(String, String)> = acked
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        rt.block_on(async {
            for chunk in expected.chunks(1000) {
                let keys: Vec<Bytes> = chunk.iter().map(|(k, _)| Bytes::from(k.clone())).collect();
                let got = client.get_multi(&keys).await.unwrap();
                for ((k, v), g) in chunk.iter().zip(got) {
                    if g.as_deref() != Some(v.as_bytes()) {
                        outcome.lost.push(k.clone());
                    }
                }
            }
        });
        outcome.cycles += 1;
        outcome.acked = expected.len();
        if !outcome.lost.is_empty() {
            break;
        }
    }
    node.process.kill().unwrap();
    outcome
}

fn cycles_from_env(default: usize) -> usize {
    std::env::var("SHOAL_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn every_acknowledged_write_survives_kill_9() {
    let cycles = cycles_from_env(20);
    let o = crash_cycles(cycles, &[], 0x5eed);
    eprintln!(
        "{} cycles, {} acknowledged writes, all present",
        o.cycles, o.acked
    );
    assert!(
        o.lost.is_empty(),
        "{} acknowledged writes lost after a crash, e.g. {:?}",
        o.lost.len(),
        &o.lost[..o.lost.len().min(5)]
    );
    assert_eq!(o.cycles, cycles);
    assert!(o.acked > cycles * 50, "the writers made progress");
}

#[test]
fn negative_control_acking_before_fsync_loses_writes() {
    let o = crash_cycles(cycles_from_env(20), &["--unsafe-ack-before-fsync"], 0xbad);
    eprintln!(
        "negative control: loss detected after {} cycles ({} writes lost of {})",
        o.cycles,
        o.lost.len(),
        o.acked
    );
    assert!(
        !o.lost.is_empty(),
        "acknowledging before fsync lost nothing in {} crashes: the crash test cannot see loss",
        o.cycles
    );
}

#[test]
#[ignore = "soak: 200 crash cycles (~10 min); run with --ignored"]
fn soak_every_acknowledged_write_survives_200_kills() {
    let o = crash_cycles(cycles_from_env(200), &[], 0x50a4);
    assert!(
        o.lost.is_empty(),
        "lost: {:?}",
        &o.lost[..o.lost.len().min(5)]
    );
}
