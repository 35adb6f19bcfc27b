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
        "seed={} hash={:#018x} events={} vtime={:?} ops(ok/fail/unknown)={:?} appends={} applies={} faults={:?} net={:?} disk(durable/torn)={:?} snapshots={:?}",
        r.seed,
        r.trace_hash,
        r.events,
        r.virtual_time,
        r.ops,
        r.appends,
        r.applies,
        r.faults,
        r.net,
        r.disk,
        r.snapshots
    )
}

/// Seeds of the CI sweep with the simulation's log-store model (split over two tests so the
/// harness runs them on both cores). With [`CI_WAL_SEEDS`] the sweep runs 300 seeds; every
/// one of them runs Shoal's production state machine and snapshot store on every node.
const CI_SEEDS: u64 = 200;

fn run_seeds(first: u64, count: u64, tweak: impl Fn(&mut SimParams)) -> Vec<RunReport> {
    let mut failed = Vec::new();
    let (mut ops, mut faults, mut msgs) = ((0u64, 0u64, 0u64), Vec::new(), (0u64, 0u64, 0u64));
    let mut disk = (0u64, 0u64);
    let mut snaps = (0u64, 0u64, 0u64);
    for seed in first..first + count {
        let mut params = SimParams::for_seed(seed);
        tweak(&mut params);
        let r = shoal_sim::run(&params);
        ops = (ops.0 + r.ops.0, ops.1 + r.ops.1, ops.2 + r.ops.2);
        disk = (disk.0 + r.disk.0, disk.1 + r.disk.1);
        snaps = (
            snaps.0 + r.snapshots.persisted,
            snaps.1 + r.snapshots.installed,
            snaps.2 + r.snapshots.restored,
        );
        msgs = (
            msgs.0 + r.net.delivered,
            msgs.1 + r.net.dropped + r.net.cut,
            msgs.2 + r.net.duplicated,
        );
        faults.push(r.faults);
        if !r.violations.is_empty() {
            eprintln!("{}", r.failure());
            failed.push(r);
        }
    }
    let sum = |f: fn(&shoal_sim::nemesis::FaultStats) -> u64| faults.iter().map(f).sum::<u64>();
    eprintln!(
        "seeds {first}..{}: client ops ok/fail/unknown {ops:?}; faults: crashes {} leader crashes {} \
         isolations {} splits {} bridges {} lossy periods {} bad links {}; messages delivered/lost/duplicated {msgs:?}; \
         WAL disk writes durable/torn at crash {disk:?}; real state machine snapshots persisted/installed/restored at restart {snaps:?}",
        first + count,
        sum(|f| f.crashes),
        sum(|f| f.leader_crashes),
        sum(|f| f.isolations),
        sum(|f| f.splits),
        sum(|f| f.bridges),
        sum(|f| f.lossy_periods),
        sum(|f| f.bad_links),
    );
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
    params.leader_restore = std::env::var("SHOAL_SIM_LEADER_RESTORE").is_ok();
    // Replay a negative-control seed.
    params.ack_before_sync = std::env::var("SHOAL_SIM_ACK_BEFORE_SYNC").is_ok();
    params.check_durable_quorum = std::env::var("SHOAL_SIM_NO_DURABILITY_CHECK").is_err();
    params.stale_reads = std::env::var("SHOAL_SIM_STALE_READS").is_ok();
    params.wal = std::env::var("SHOAL_SIM_WAL").is_ok();
    if let Some(secs) = env_u64("SHOAL_SIM_SECS") {
        params.duration = std::time::Duration::from_secs(secs);
    }
    let r = shoal_sim::run(&params);
    eprintln!("{}", summary(&r));
    assert!(r.violations.is_empty(), "{}", r.failure());
}

fn sweep(first: u64, count: u64, wal: bool) {
    // Wall time of the test itself (outside any simulation), for the report only.
    #[allow(clippy::disallowed_methods)]
    let started = std::time::Instant::now();
    let failed = run_seeds(first, count, |p| p.wal = wal);
    eprintln!(
        "swept seeds {first}..{} (wal: {wal}): {} failed, {:?} wall",
        first + count,
        failed.len(),
        started.elapsed()
    );
    assert!(
        failed.is_empty(),
        "{} of {count} seeds failed: {:?}\n{}",
        failed.len(),
        failed.iter().map(|r| r.seed).collect::<Vec<_>>(),
        failed[0].failure()
    );
}

#[test]
fn ci_seed_sweep_first_half() {
    sweep(0, CI_SEEDS / 2, false);
}

#[test]
fn ci_seed_sweep_second_half() {
    sweep(CI_SEEDS / 2, CI_SEEDS - CI_SEEDS / 2, false);
}

/// Seeds of the CI sweep with the real WAL log store (`SimParams::wal`), split in two:
/// nothing but the disk, network and clock is simulated (real WAL, log store, state
/// machine, snapshot builder and snapshot store).
const CI_WAL_SEEDS: u64 = 100;

#[test]
fn ci_wal_seed_sweep_first_half() {
    sweep(0, CI_WAL_SEEDS / 2, true);
}

#[test]
fn ci_wal_seed_sweep_second_half() {
    sweep(CI_WAL_SEEDS / 2, CI_WAL_SEEDS - CI_WAL_SEEDS / 2, true);
}

/// NEGATIVE CONTROL for the real store: `WalLogStore` in its own unsafe mode
/// (`AckMode::BeforeFsyncUnsafe`: IOFlushed before the WAL write) must be caught.
#[test]
fn negative_control_wal_ack_before_fsync_is_caught() {
    let failed = run_seeds(0, 20, |p| {
        p.wal = true;
        p.ack_before_sync = true;
    });
    eprintln!(
        "negative control (real WAL, ack before fsync): {} of 20 seeds caught: {:?}; first: {:?}",
        failed.len(),
        failed.iter().map(|r| r.seed).collect::<Vec<_>>(),
        failed.first().map(|r| &r.violations)
    );
    assert!(
        !failed.is_empty(),
        "the real store acknowledging before fsync went unnoticed"
    );
}

#[test]
fn one_seed_run_twice_gives_the_same_trace() {
    // Seed 3: FIFO scheduling, 3 nodes; 4: shuffled; 5: 5 nodes, shuffled; each with the
    // simulation's storage model and with the real WAL log store.
    for (seed, wal) in [
        (3, false),
        (4, false),
        (5, false),
        (3, true),
        (4, true),
        (5, true),
    ] {
        let params = SimParams {
            wal,
            ..SimParams::for_seed(seed)
        };
        let a = shoal_sim::run(&params);
        let b = shoal_sim::run(&params);
        assert!(a.violations.is_empty(), "{}", a.failure());
        assert_eq!(
            a.trace_hash, b.trace_hash,
            "seed {seed} (wal: {wal}) did not replay exactly"
        );
        assert_eq!(a.events, b.events);
        assert_eq!(a.ops, b.ops);
        assert_eq!(a.recent, b.recent);
    }
    let a = shoal_sim::run(&SimParams::for_seed(10));
    let b = shoal_sim::run(&SimParams::for_seed(11));
    assert_ne!(
        a.trace_hash, b.trace_hash,
        "different seeds must explore different runs"
    );
}

/// NEGATIVE CONTROL: a storage that acknowledges appends before they are synced must be
/// caught within the CI seed budget.
#[test]
fn negative_control_ack_before_sync_is_caught() {
    let failed = run_seeds(0, 20, |p| p.ack_before_sync = true);
    eprintln!(
        "negative control (ack before sync): {} of 20 seeds caught; first: {:?}",
        failed.len(),
        failed.first().map(|r| &r.violations)
    );
    assert!(
        !failed.is_empty(),
        "acknowledging unsynced appends went unnoticed"
    );
}

/// NEGATIVE CONTROL, end to end: with the direct quorum-durability check switched off, the
/// loss of acknowledged-but-unsynced entries at crashes must still be caught by the other
/// invariants or by the client-history check.
#[test]
fn negative_control_ack_before_sync_is_caught_without_the_durability_check() {
    let failed = run_seeds(0, 150, |p| {
        p.ack_before_sync = true;
        p.check_durable_quorum = false;
    });
    eprintln!(
        "negative control without the durability check: {} of 150 seeds caught; seeds {:?}; first: {:?}",
        failed.len(),
        failed.iter().map(|r| r.seed).collect::<Vec<_>>(),
        failed.first().map(|r| &r.violations)
    );
    assert!(
        !failed.is_empty(),
        "lost acknowledged entries went unnoticed end to end"
    );
}

/// NEGATIVE CONTROL for the history checker: reads served from any node without ReadIndex
/// must be reported as non-linearizable.
#[test]
fn negative_control_stale_reads_are_caught() {
    let failed = run_seeds(0, 20, |p| p.stale_reads = true);
    let caught: Vec<u64> = failed
        .iter()
        .filter(|r| {
            r.violations
                .iter()
                .any(|v| v.contains("non-linearizable read"))
        })
        .map(|r| r.seed)
        .collect();
    eprintln!(
        "negative control (stale reads): {} of 20 seeds caught: {caught:?}",
        caught.len()
    );
    assert!(!caught.is_empty(), "stale reads went unnoticed");
}

/// Found by this simulation: openraft's default `enable_leader_restore = true` lets a leader
/// that crashed with an unsynced (but already replicated) log tail come back as leader of
/// the same term and reuse those log ids for different entries. Seed 12 shows it (seed 51 did
/// with the simulation's former model state machine; with the production state machine the
/// runs differ, and of seeds 0..=40 only 12 hits it); this test pins that the simulation
/// keeps catching it (Shoal must set the option to false).
#[test]
fn openraft_leader_restore_with_a_lost_tail_is_caught() {
    let mut params = SimParams::for_seed(12);
    params.leader_restore = true;
    let r = shoal_sim::run(&params);
    eprintln!("leader restore, seed 12: {:?}", r.violations);
    assert!(
        r.violations.iter().any(|v| v.contains("log matching")),
        "expected a log matching violation: {:?}",
        r.violations
    );
}

/// Soak: `SHOAL_SIM_SEEDS=<count>` seeds from `SHOAL_SIM_FIRST_SEED` (default 1000), each
/// with `SHOAL_SIM_SECS` seconds of virtual fault phase (default 4).
#[test]
#[ignore]
fn soak() {
    let count = env_u64("SHOAL_SIM_SEEDS").unwrap_or(5_000);
    let first = env_u64("SHOAL_SIM_FIRST_SEED").unwrap_or(1_000);
    #[allow(clippy::disallowed_methods)]
    let started = std::time::Instant::now();
    let secs = env_u64("SHOAL_SIM_SECS");
    let wal = std::env::var("SHOAL_SIM_WAL").is_ok();
    let failed = run_seeds(first, count, |p| {
        p.wal = wal;
        if let Some(secs) = secs {
            p.duration = std::time::Duration::from_secs(secs);
        }
    });
    eprintln!(
        "soak: {count} seeds from {first} (wal: {wal}), {} failed, {:?} wall",
        failed.len(),
        started.elapsed()
    );
    assert!(failed.is_empty(), "{}", failed[0].failure());
}

/// The trace hash of a seed is the same in another process (no per-process randomness such
/// as std's `RandomState` leaks into a run): the test binary replays the seed in a child.
#[test]
fn a_seed_replays_exactly_in_another_process() {
    let seed = 5;
    for wal in [false, true] {
        let here = shoal_sim::run(&SimParams {
            wal,
            ..SimParams::for_seed(seed)
        });
        let mut child = std::process::Command::new(std::env::current_exe().unwrap());
        child
            .args([
                "replay_one_seed",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("SHOAL_SIM_SEED", seed.to_string())
            .env_remove("SHOAL_SIM_ECHO")
            .env_remove("SHOAL_SIM_LEADER_RESTORE");
        if wal {
            child.env("SHOAL_SIM_WAL", "1");
        } else {
            child.env_remove("SHOAL_SIM_WAL");
        }
        let out = child.output().unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        let expected = format!("seed={seed} hash={:#018x} ", here.trace_hash);
        assert!(
            out.status.success(),
            "child replay (wal: {wal}) failed:\n{text}"
        );
        assert!(
            text.contains(&expected),
            "child (wal: {wal}) printed a different trace: expected {expected:?} in\n{text}"
        );
    }
}
