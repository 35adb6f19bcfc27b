//! Jepsen-style suite on 3- and 5-node clusters of real `shoal` processes: every directed
//! peer link and every (client, node) pair goes through a fault proxy (clients reach the
//! nodes through `RemoteOptions::address_rewrite`), each node may run with its own clock
//! offset, recorded clients run put, put_with_ttl, get, get_multi and delete on a small
//! key space while the nemeses of `faults_support::nemesis` (kills of a random node, of
//! the leader, of a majority; a paused leader; an isolated leader; majority/minority
//! split; bridge; one-way cut; lossy, jittery and slow links; clients' links to the leader
//! cut or held past their timeout; lossy client links) break and heal the cluster. The
//! calls the client faults break end with unknown outcomes, which the run counts (and
//! requires), and the checks must accept. At the end:
//!
//! - the history is linearizable per key (`shoal_checker::check`; the clock uncertainty
//!   `eps` covers the longest fault window, the longest acknowledged write and the largest
//!   clock-offset difference between nodes, as `faults_support::checks` documents);
//! - no acknowledged write is missing from the final reads;
//! - no TTL'd value is read after its expiry (slack: 5 ms plus the largest offset
//!   difference), across failovers and restarts, so a TTL reset by a new leader shows;
//! - liveness: after the last fault healed, every group elects a leader, and every key is
//!   read, written and read back, each call within a deadline;
//! - convergence: every replica of each group reaches the same applied index and reports
//!   the same state digest there (`Cluster::digests`).
//!
//! Negative controls (a suite that cannot fail proves nothing): `--unsafe-ack-before-fsync`
//! on every node with majority kills must be reported as a lost or non-linearizable write,
//! and `--unsafe-local-reads` with an isolated or paused leader as a stale read; each test
//! fails if its control goes unreported within a bounded number of attempts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster_support;
mod faults_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use faults_support::checks::{Checked, check_history};
use faults_support::inject::inject;
use faults_support::nemesis::{FaultyCluster, Nemesis};
use faults_support::workload::{
    Workload, client_options, cycles_from_env, get_recorded, key_name, put_recorded, read_all,
};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use shoal_checker::{Outcome, Recorder};
use shoal_client::{RemoteOptions, RetryPolicy};

/// Client ids of the harness's own reads and writes.
const PROBE_CLIENT: u64 = 1000;
const FINAL_CLIENT: u64 = 1001;
const LIVENESS_CLIENT: u64 = 1003;
/// Liveness: after healing, each call must complete within this.
const LIVENESS_DEADLINE: Duration = Duration::from_secs(10);
/// Bound on every group electing a leader after the last fault healed.
const HEAL_DEADLINE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
struct Setup {
    clients: u64,
    keys: usize,
    shards: u16,
    cycles: usize,
    kinds: Vec<Nemesis>,
    extra: Vec<&'static str>,
    /// Clock offset of each node in ms; their number is the node count (3 or 5).
    offsets: Vec<i64>,
    /// Negative control: the checks are not told about `offsets` (they assume synchronized
    /// clocks), so a skew beyond their slack must show as a TTL violation.
    hide_offsets: bool,
    seed: u64,
}

#[derive(Debug, Default)]
struct Figures {
    /// The safety checks' findings and coverage.
    checked: Checked,
    faults: BTreeMap<Nemesis, usize>,
    stale_probes: usize,
    stale_probes_answered: usize,
    /// Calls of the client nemeses' victims in flight during those faults, and how many
    /// of them ended with an unknown outcome.
    client_fault_calls: usize,
    client_fault_unknown: usize,
    /// Connections the client proxies carried at the end of the workload (every recorded
    /// client dials through them).
    client_proxy_connections: usize,
    liveness_failures: Vec<String>,
    slowest_liveness_call: Duration,
    divergence: Option<String>,
    /// Applied index of each group where every replica's digest matched.
    converged_at: Vec<Option<u64>>,
    elapsed: Duration,
}

impl Figures {
    fn violated(&self) -> bool {
        self.checked.violated()
    }
}

fn run(setup: &Setup) -> Figures {
    let began = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let ids: Vec<u64> = (0..setup.clients).collect();
    let mut c = FaultyCluster::start(tmp.path(), setup.shards, &setup.extra, &setup.offsets, &ids);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(c.cluster.wait_leaders());
    let workload = Workload::start(
        &rt,
        setup.clients,
        c.client_addrs(),
        |id| c.options(id, client_options()),
        setup.keys,
        setup.seed,
    );
    let rec = workload.rec.clone();
    let mut rng = SmallRng::seed_from_u64(setup.seed);
    let mut f = Figures::default();
    let mut longest_fault = Duration::ZERO;
    let mut probe_seq = 0;
    let mut client_faults = Vec::new();
    let first = rng.random_range(0..setup.kinds.len());
    for cycle in 0..setup.cycles {
        std::thread::sleep(Duration::from_millis(rng.random_range(200..600)));
        let kind = setup.kinds[(first + cycle) % setup.kinds.len()];
        let done = inject(&mut c, &rt, &mut rng, &rec, kind, &mut probe_seq);
        longest_fault = longest_fault.max(done.window);
        *f.faults.entry(done.kind.unwrap_or(kind)).or_default() += 1;
        f.stale_probes += done.probe_reads;
        f.stale_probes_answered += done.probe_reads_answered;
        if !done.client_victims.is_empty() {
            client_faults.push((done.client_victims, done.client_fault_ns));
        }
        if kind.restarts() {
            // Read every key at once: a lost write shows before a client overwrites it.
            rt.block_on(async {
                if let Some(p) = c.harness_client(probe_options()).await {
                    read_all(&rec, PROBE_CLIENT, &p, setup.keys).await;
                }
            });
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    f.client_proxy_connections = c.links.client_connections();
    workload.stop(&rt);
    rt.block_on(heal_checks(&c, &rec, setup, &mut f));
    let history = rec.snapshot();
    for (victims, (from, to)) in &client_faults {
        // Calls in flight at any moment of the fault (a call sent just before a hold
        // began times out during it).
        for op in history
            .ops
            .iter()
            .filter(|o| victims.contains(&o.client) && o.invoke_ns <= *to && o.complete_ns >= *from)
        {
            f.client_fault_calls += 1;
            f.client_fault_unknown += usize::from(op.outcome == Outcome::Unknown);
        }
    }
    let skew_ns = offset_spread_ms(setup) * 1_000_000;
    f.checked = check_history(&history, longest_fault, skew_ns, FINAL_CLIENT);
    f.elapsed = began.elapsed();
    if f.violated() || !f.liveness_failures.is_empty() || f.divergence.is_some() {
        eprintln!("node logs of the failed run:\n{}", c.cluster.logs());
    }
    f
}

/// The largest clock-offset difference between two nodes, in ms.
fn offset_spread_ms(setup: &Setup) -> u64 {
    if setup.hide_offsets {
        return 0;
    }
    let max = setup.offsets.iter().max().copied().unwrap_or(0);
    let min = setup.offsets.iter().min().copied().unwrap_or(0);
    (max - min).unsigned_abs()
}

fn probe_options() -> RemoteOptions {
    faults_support::workload::client_options()
}

fn liveness_options() -> RemoteOptions {
    RemoteOptions {
        request_timeout: LIVENESS_DEADLINE,
        retry: RetryPolicy {
            retry_uncertain_writes: false,
            ..RetryPolicy::default()
        },
        ..RemoteOptions::default()
    }
}

/// After the last fault healed: leaders, the final reads (lost writes), liveness (every
/// key written and read back within the deadline), convergence of every replica.
async fn heal_checks(c: &FaultyCluster, rec: &Recorder, setup: &Setup, f: &mut Figures) {
    for g in 0..setup.shards as usize {
        if c.wait_leader(g, None, HEAL_DEADLINE).await.is_none() {
            f.liveness_failures.push(format!(
                "group {g} elected no leader within {HEAL_DEADLINE:?}"
            ));
        }
    }
    let Some(client) = c.harness_client(liveness_options()).await else {
        f.liveness_failures.push("no node accepts a client".into());
        return;
    };
    let failed = read_all(rec, FINAL_CLIENT, &client, setup.keys).await;
    if failed > 0 {
        f.liveness_failures
            .push(format!("{failed} final reads failed after healing"));
    }
    for k in 0..setup.keys {
        let key = key_name(k);
        let value = format!("live-{k}");
        let t = Instant::now();
        let wrote = put_recorded(rec, LIVENESS_CLIENT, &client, &key, &value).await;
        let read = get_recorded(rec, LIVENESS_CLIENT, &client, &key).await;
        f.slowest_liveness_call = f.slowest_liveness_call.max(t.elapsed() / 2);
        if !wrote || read.is_none() {
            f.liveness_failures.push(format!(
                "{key}: write ok {wrote}, read ok {}",
                read.is_some()
            ));
        }
    }
    match convergence(c).await {
        Ok(applied) => f.converged_at = applied,
        Err(e) => f.divergence = Some(e),
    }
}

/// Waits until, for every group, every node reports the same applied index and the same
/// state digest (visible keys, values, expiries) at it. `Err` when two replicas differ at
/// one applied index in two consecutive polls (one poll could straddle a key's expiry),
/// or when they do not meet within `HEAL_DEADLINE`. Returns the groups' applied indexes.
async fn convergence(c: &FaultyCluster) -> Result<Vec<Option<u64>>, String> {
    let began = Instant::now();
    let mut last = String::new();
    let mut differed_before = false;
    while began.elapsed() < HEAL_DEADLINE {
        let mut seen = Vec::new();
        for id in 1..=c.n {
            match c.cluster.digests(id).await {
                Ok(ds) => seen.push((id, ds)),
                Err(e) => last = format!("node {id}: {e}"),
            }
        }
        if seen.len() == c.n as usize {
            let first = &seen[0].1;
            let mut same = true;
            let mut differ = false;
            for (_, ds) in &seen[1..] {
                for (a, b) in first.iter().zip(ds) {
                    if a.applied_index != b.applied_index {
                        same = false;
                    } else if (a.keys, a.digest) != (b.keys, b.digest) {
                        same = false;
                        differ = true;
                    }
                }
            }
            last = format!("{seen:?}");
            if same {
                return Ok(first.iter().map(|d| d.applied_index).collect());
            }
            if differ && differed_before {
                return Err(format!("replicas differ at one applied index: {last}"));
            }
            differed_before = differ;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!(
        "replicas did not converge within {HEAL_DEADLINE:?}: {last}"
    ))
}

fn report(name: &str, f: &Figures) {
    let faults: Vec<String> = f.faults.iter().map(|(k, n)| format!("{k:?} {n}")).collect();
    eprintln!(
        "{name}: {}; faults: {}; stale-read probes {} ({} answered); client-link faults: {} \
         of {} victim calls unknown, {} client proxy connections; liveness failures: {} \
         (slowest call after healing {:?}); divergence: {} (digests equal at applied {:?}); \
         {:.1} s",
        f.checked.summary(),
        faults.join(", "),
        f.stale_probes,
        f.stale_probes_answered,
        f.client_fault_unknown,
        f.client_fault_calls,
        f.client_proxy_connections,
        f.liveness_failures.len(),
        f.slowest_liveness_call,
        f.divergence.as_deref().unwrap_or("none"),
        f.converged_at,
        f.elapsed.as_secs_f64(),
    );
}

fn assert_clean(f: &Figures) {
    f.checked.assert_clean();
    assert!(
        f.liveness_failures.is_empty(),
        "liveness after healing: {:?}",
        f.liveness_failures
    );
    assert_eq!(f.divergence, None, "convergence");
    assert!(f.checked.ok > 300, "the clients made progress");
}

#[test]
fn history_is_linearizable_under_cluster_nemeses() {
    let f = run(&Setup {
        clients: 6,
        keys: 12,
        shards: 2,
        cycles: cycles_from_env(Nemesis::ALL.len()),
        kinds: Nemesis::ALL.to_vec(),
        extra: vec![],
        // Skew below eps: a leader with a late clock keeps a TTL'd key for up to 80 ms
        // longer than one with an early clock; the checks allow for it.
        offsets: vec![0, 40, -40],
        hide_offsets: false,
        seed: 0xc1a5,
    });
    report("cluster nemeses", &f);
    assert_clean(&f);
    if f.faults.values().sum::<usize>() >= Nemesis::ALL.len() {
        // A leader fault finding no leader runs a split instead; rare, but then one kind
        // is missing from this run, which the figures show.
        assert!(
            f.faults.len() >= Nemesis::ALL.len() - 1,
            "the kinds of fault injected: {:?}",
            f.faults
        );
        assert_client_faults_hit(&f);
    }
}

/// The client nemeses reached the clients: their victims' calls during those faults
/// ended with unknown outcomes (which the checks above accepted). The cluster is whole
/// during those faults: only the proxies between clients and nodes make calls fail.
fn assert_client_faults_hit(f: &Figures) {
    assert!(
        f.client_proxy_connections > 0,
        "clients dial through their proxies"
    );
    assert!(
        f.client_fault_unknown > 0,
        "client-link faults left no unknown outcome in {} victim calls",
        f.client_fault_calls
    );
}

#[test]
fn five_node_history_is_linearizable_under_partitions() {
    // Five nodes: the bridge (two halves that each see a bridge node), a 2/3 split, an
    // isolated and a one-way-cut leader; the client nemeses too, two cycles each.
    let mut kinds = Nemesis::PARTITIONS.to_vec();
    kinds.push(Nemesis::ClientHoldLeader);
    let f = run(&Setup {
        clients: 6,
        keys: 12,
        shards: 1,
        cycles: cycles_from_env(2 * kinds.len()),
        kinds: kinds.clone(),
        extra: vec![],
        offsets: vec![0, 30, -30, 15, -15],
        hide_offsets: false,
        seed: 0xb1d9e,
    });
    report("five nodes, partitions", &f);
    assert_clean(&f);
    assert!(
        f.faults.get(&Nemesis::Bridge).is_some_and(|&n| n > 0),
        "the bridge ran: {:?}",
        f.faults
    );
    assert_client_faults_hit(&f);
}

/// Runs `setup` (with `seed` changed per batch) until the suite reports a violation; fails
/// if `batches` runs go unreported.
fn negative_control(name: &str, setup: Setup, batches: u64) {
    let mut faults = 0;
    for batch in 0..batches {
        let f = run(&Setup {
            seed: setup.seed + batch,
            ..setup.clone()
        });
        report(&format!("{name}, batch {batch}"), &f);
        faults += f.faults.values().sum::<usize>();
        if f.violated() {
            return;
        }
    }
    panic!("{name}: went unreported through {faults} faults: the suite cannot see it");
}

#[test]
fn negative_control_acking_before_fsync_with_majority_kills_is_reported() {
    negative_control(
        "negative control --unsafe-ack-before-fsync",
        Setup {
            clients: 6,
            keys: 12,
            shards: 1,
            cycles: 4,
            kinds: vec![Nemesis::KillMajority],
            extra: vec!["--unsafe-ack-before-fsync"],
            offsets: vec![0, 0, 0],
            hide_offsets: false,
            seed: 0xbad0,
        },
        // A batch catches the loss only if a majority is killed while acknowledged entries
        // are not yet written (the unsafe mode holds each WAL write 20 ms for this), and
        // the restarted nodes then elect one of themselves. Caught in batch 0 in 3 of 3
        // quiet runs; ten batches leave room, and a caught control stops at once.
        10,
    );
}

#[test]
fn negative_control_local_reads_with_isolated_or_paused_leader_is_reported() {
    negative_control(
        "negative control --unsafe-local-reads",
        Setup {
            clients: 4,
            keys: 8,
            shards: 1,
            cycles: 4,
            kinds: vec![Nemesis::IsolateLeader, Nemesis::PauseLeader],
            extra: vec!["--unsafe-local-reads"],
            offsets: vec![0, 0, 0],
            hide_offsets: false,
            seed: 0x57a1e,
        },
        3,
    );
}

#[test]
fn negative_control_clock_skew_beyond_the_checks_slack_is_reported() {
    // Node 3's clock runs 6 s late: keys whose expiry another leader fixed stay readable
    // on it for 6 s past their expiry once it leads (leader kills move leadership around).
    negative_control(
        "negative control: 6 s clock skew hidden from the checks",
        Setup {
            // Many keys: a TTL'd value must outlive its expiry unoverwritten to be seen.
            clients: 4,
            keys: 64,
            shards: 2,
            cycles: 3,
            kinds: vec![Nemesis::KillLeader],
            extra: vec![],
            offsets: vec![0, 0, -6000],
            hide_offsets: true,
            seed: 0xc10c,
        },
        3,
    );
}

/// A soak run of every nemesis on `offsets.len()` nodes: `$SHOAL_FAULT_CYCLES` cycles
/// (100 by default), seed `$SHOAL_FAULT_SEED` (else `seed`).
fn soak(name: &str, offsets: Vec<i64>, seed: u64) {
    let f = run(&Setup {
        clients: 8,
        keys: 24,
        shards: 2,
        cycles: cycles_from_env(100),
        kinds: Nemesis::ALL.to_vec(),
        extra: vec![],
        offsets,
        hide_offsets: false,
        seed: std::env::var("SHOAL_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(seed),
    });
    report(name, &f);
    assert_clean(&f);
}

#[test]
#[ignore = "soak: 100 fault cycles by default (SHOAL_FAULT_CYCLES); run with --ignored"]
fn soak_cluster_history_is_linearizable_under_nemeses() {
    soak("cluster soak", vec![0, 40, -40], 0x50a4c);
}

#[test]
#[ignore = "soak: 5 nodes, 100 fault cycles by default (SHOAL_FAULT_CYCLES); run with --ignored"]
fn soak_five_node_history_is_linearizable_under_nemeses() {
    soak("five-node soak", vec![0, 40, -40, 20, -20], 0x5b1d9);
}
