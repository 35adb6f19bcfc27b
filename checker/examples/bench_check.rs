//! Prints how long the checker takes on synthetic Jepsen-style histories of several shapes:
//! `cargo run --release -p shoal-checker --example bench_check`.
//! Figures only (no assertions); compare shapes within one run on a noisy machine.

use std::time::Instant;

use shoal_checker::{CheckOptions, SynthConfig, Verdict, check, synthesize};

fn main() -> Result<(), shoal_checker::CheckerError> {
    let shapes: [(&str, usize, usize, usize); 6] = [
        ("many keys", 50_000, 500, 16),
        ("many keys, large", 100_000, 1000, 32),
        ("few keys", 50_000, 10, 32),
        ("one hot key", 50_000, 1, 16),
        ("three keys, 64 clients", 50_000, 3, 64),
        ("one hot key, 20% unknown", 20_000, 1, 16),
    ];
    println!(
        "{:<26} {:>7} {:>5} {:>7} {:>10} {:>10} {:>10}  verdict",
        "shape", "ops", "keys", "clients", "gen ms", "check ms", "steps"
    );
    for (i, (name, ops, keys, clients)) in shapes.into_iter().enumerate() {
        let cfg = SynthConfig {
            seed: i as u64 + 1,
            ops,
            keys,
            clients,
            p_unknown: if name.contains("unknown") { 0.2 } else { 0.03 },
            ..SynthConfig::default()
        };
        let t = Instant::now();
        let history = synthesize(&cfg);
        let gen_ms = t.elapsed().as_secs_f64() * 1e3;
        let report = check(&history, &CheckOptions::default())?;
        let verdict = match report.verdict {
            Verdict::Linearizable => "linearizable",
            Verdict::NotLinearizable { .. } => "NOT linearizable",
            Verdict::CouldNotDecide { .. } => "could not decide",
        };
        println!(
            "{name:<26} {ops:>7} {keys:>5} {clients:>7} {gen_ms:>10.1} {:>10.1} {:>10}  {verdict}",
            report.stats.elapsed.as_secs_f64() * 1e3,
            report.stats.steps
        );
    }
    Ok(())
}
