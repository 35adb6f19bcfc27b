//! Cost of `State::digest` (the `StateDigest` admin request, `shoal cluster status`): the
//! digest of a state of N keys of 16 bytes with 100-byte values, one in ten with a TTL,
//! computed several times; prints each run's time and ns per key. The digest runs on the
//! shard's executor in one pass, so this is also the pause it causes on a node.
//!
//! Run: `cargo run --release -p shoal-bench --bin digest-bench` (`-- --keys N`, default 1M).

use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use shoal::state::{Command, LogId, State};

const RUNS: usize = 7;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = args
        .iter()
        .position(|a| a == "--keys")
        .and_then(|i| args.get(i + 1))
        .map_or(1_000_000, |v| v.parse().expect("--keys N"));
    let mut state = State::new();
    for i in 0..n {
        let key = Bytes::from(format!("key:{i:012}"));
        let value = Bytes::from(vec![(i % 251) as u8; 100]);
        let cmd = if i % 10 == 0 {
            Command::PutWithTtl {
                key,
                value,
                expire_at_ms: u64::MAX / 2,
            }
        } else {
            Command::Put { key, value }
        };
        let log = LogId {
            term: 1,
            node_id: 1,
            index: i + 1,
        };
        if let Err(e) = state.apply(log, &cmd) {
            panic!("apply {i}: {e}");
        }
    }
    let mut ms = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let start = Instant::now();
        let d = black_box(state.digest(0));
        let took = start.elapsed();
        assert_eq!(d.keys, n);
        ms.push(took.as_secs_f64() * 1e3);
    }
    let mut sorted = ms.clone();
    sorted.sort_by(f64::total_cmp);
    let per_key = |m: f64| m * 1e6 / n as f64;
    println!(
        "digest of {n} keys: runs {:?} ms; min {:.1} ms ({:.0} ns/key), median {:.1} ms ({:.0} ns/key), max {:.1} ms",
        ms.iter()
            .map(|m| (m * 10.0).round() / 10.0)
            .collect::<Vec<_>>(),
        sorted[0],
        per_key(sorted[0]),
        sorted[RUNS / 2],
        per_key(sorted[RUNS / 2]),
        sorted[RUNS - 1]
    );
}
