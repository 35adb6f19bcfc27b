//! Writes a synthetic linearizable history as JSON lines to stdout, for measuring the
//! checker: `cargo run --release -p shoal-checker --example synth_history -- 50000 500 16 1`
//! (ops, keys, clients, seed, then optionally the TTL-put and unknown-outcome
//! percentages).

use std::io::{BufWriter, stdout};

use shoal_checker::{SynthConfig, synthesize};

fn arg(n: usize, default: u64) -> u64 {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<(), shoal_checker::CheckerError> {
    let cfg = SynthConfig {
        ops: arg(1, 50_000) as usize,
        keys: arg(2, 500) as usize,
        clients: arg(3, 16) as usize,
        seed: arg(4, 1),
        p_put_ttl: arg(5, 10) as f64 / 100.0,
        p_unknown: arg(6, 3) as f64 / 100.0,
        ..SynthConfig::default()
    };
    let history = synthesize(&cfg);
    history.write_jsonl(BufWriter::new(stdout().lock()))
}
