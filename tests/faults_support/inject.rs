//! One nemesis cycle: break the cluster for a window of 0.1-2 s, then heal it, recording
//! the harness's own probes in the history.
//!
//! The leader-targeting nemeses (pause, isolate) also probe for stale reads: once the
//! others elected a new leader, a key is overwritten through them (recorded, so the
//! write completes before the read is invoked), then read through a client pinned to the
//! old leader. A correct node fails that read (it cannot confirm its leadership) or
//! redirects it; a node serving reads from its local state returns the overwritten value,
//! which the checker reports as not linearizable.
//!
//! The client nemeses break only (client, node) links: some workload clients lose or
//! stall their connections to the leader while the cluster itself is whole. The cycle
//! records which clients and when, so the run can count the unknown outcomes they got.
//!
//! Invariant: when `inject` returns, every link passes, no node is stopped and every node
//! runs and is ready (a restart that fails panics with the node's log).

use std::time::{Duration, Instant};

use rand::RngExt;
use rand::rngs::SmallRng;
use shoal_checker::Recorder;
use shoal_testkit::proxy::Fault;

use crate::faults_support::nemesis::{FaultyCluster, Nemesis};
use crate::faults_support::workload::{
    client_options, get_recorded, key_name, one_shot_options, put_recorded,
};

/// Client id of the stale-read probes (writes through the majority, reads through the old
/// leader). One call at a time, like every client id.
pub const STALE_PROBE_CLIENT: u64 = 1002;

/// Bound on the election of a new leader by the others during a leader fault.
const ELECTION_WAIT: Duration = Duration::from_secs(5);

/// What one cycle did.
#[derive(Debug, Default)]
pub struct Injected {
    /// What ran (a leader fault with no leader to target runs `SplitRandom` instead).
    pub kind: Option<Nemesis>,
    /// From the fault's start until it was healed (restarts included).
    pub window: Duration,
    /// Stale-read probes whose read reached the old leader and was answered (any value).
    pub probe_reads_answered: usize,
    pub probe_reads: usize,
    /// Workload clients whose links a client nemesis broke, and the recorder's clock at
    /// the fault's start and heal.
    pub client_victims: Vec<u64>,
    pub client_fault_ns: (u64, u64),
}

/// Runs `kind` once on `c`; `key` is the key the stale-read probe overwrites.
pub fn inject(
    c: &mut FaultyCluster,
    rt: &tokio::runtime::Runtime,
    rng: &mut SmallRng,
    rec: &Recorder,
    kind: Nemesis,
    probe_seq: &mut u64,
) -> Injected {
    let hold = Duration::from_millis(rng.random_range(100..2000));
    let mut out = Injected {
        kind: Some(kind),
        ..Injected::default()
    };
    let began = Instant::now();
    match kind {
        Nemesis::KillRandom | Nemesis::KillLeader => {
            let victim = match kind {
                Nemesis::KillLeader => rt.block_on(c.leader_of(0)),
                _ => None,
            }
            .unwrap_or_else(|| c.random_node(rng));
            c.kill(victim);
            std::thread::sleep(hold);
            c.restart(victim);
        }
        Nemesis::KillMajority => {
            let leader = rt
                .block_on(c.leader_of(0))
                .unwrap_or_else(|| c.random_node(rng));
            // A majority: the leader and n/2 others (1 of 3, 2 of 5).
            let mut victims = c.random_nodes(rng, (c.n / 2) as usize, &[leader]);
            victims.push(leader);
            // The survivors are cut off first, so what the victims acknowledge meanwhile
            // lives only on nodes that crash (a delay would not do: the proxy still
            // delivers what a dead node sent).
            let survivor = |x: u64| !victims.contains(&x);
            c.set_links(Fault::Cut, |x, y| survivor(x) || survivor(y));
            std::thread::sleep(Duration::from_millis(300));
            // Crash right after an acknowledgement: a burst of puts, and the victims are
            // frozen together (signals microseconds apart) as the first is acked, then
            // killed. With kills milliseconds apart, the last node would still write out
            // what the first lost: no majority crash for the last writes.
            *probe_seq += 1;
            rt.block_on(burst_then_freeze(c, rec, &victims, *probe_seq));
            for &v in &victims {
                c.kill(v);
            }
            c.heal_links();
            std::thread::sleep(hold);
            for &v in &victims {
                c.restart(v);
            }
        }
        Nemesis::PauseLeader | Nemesis::IsolateLeader => {
            // Right after an earlier fault (a restart, a heal) the nodes may not agree on a
            // leader yet: wait for one (bounded) rather than run another kind instead.
            let Some(old) = rt.block_on(c.wait_leader(0, None, ELECTION_WAIT)) else {
                // Still mid-election: no leader to target; a random node's links instead.
                return inject(c, rt, rng, rec, Nemesis::SplitRandom, probe_seq);
            };
            let key = key_name(probe_key(rng));
            let pinned =
                rt.block_on(c.pinned_client(old, one_shot_options(Duration::from_secs(2))));
            if kind == Nemesis::PauseLeader {
                c.pause(old);
            } else {
                c.set_links(Fault::Cut, |x, y| x == old || y == old);
            }
            let others: Vec<_> = c
                .client_addrs()
                .into_iter()
                .enumerate()
                .filter(|(i, _)| *i as u64 + 1 != old)
                .map(|(_, a)| a)
                .collect();
            rt.block_on(async {
                let new = c.wait_leader(0, Some(old), ELECTION_WAIT).await;
                let (Some(_), Some(pinned)) = (new, pinned) else {
                    return;
                };
                let opts = c.options(crate::faults_support::links::HARNESS, client_options());
                let Ok(majority) = shoal_client::RemoteKvClient::connect(others, opts).await else {
                    return;
                };
                *probe_seq += 1;
                let value = format!("probe-{probe_seq}");
                if !put_recorded(rec, STALE_PROBE_CLIENT, &majority, &key, &value).await {
                    return;
                }
                out.probe_reads += 1;
                if kind == Nemesis::PauseLeader {
                    // The read waits in the stopped node's socket; it runs when the node
                    // resumes, before or after it learns of the new term.
                    let read = async { get_recorded(rec, STALE_PROBE_CLIENT, &pinned, &key).await };
                    let resume = async {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        c.resume(old);
                    };
                    let (got, ()) = tokio::join!(read, resume);
                    out.probe_reads_answered += usize::from(got.is_some());
                } else {
                    let got = get_recorded(rec, STALE_PROBE_CLIENT, &pinned, &key).await;
                    out.probe_reads_answered += usize::from(got.is_some());
                }
            });
            let left = hold.saturating_sub(began.elapsed());
            std::thread::sleep(left);
            if kind == Nemesis::PauseLeader {
                // Resumed already unless the probe was skipped; SIGCONT twice is harmless.
                c.resume(old);
            } else {
                c.heal_links();
            }
        }
        Nemesis::SplitRandom => {
            let minority = c.random_nodes(rng, ((c.n - 1) / 2) as usize, &[]);
            let inside = |x: u64| minority.contains(&x);
            c.set_links(Fault::Cut, |x, y| inside(x) != inside(y));
            std::thread::sleep(hold);
            c.heal_links();
        }
        Nemesis::Bridge => {
            let bridge = c.random_node(rng);
            let half = c.random_nodes(rng, ((c.n - 1) / 2) as usize, &[bridge]);
            let side = |x: u64| (x != bridge).then(|| half.contains(&x));
            c.set_links(Fault::Cut, |x, y| match (side(x), side(y)) {
                (Some(a), Some(b)) => a != b,
                _ => false,
            });
            std::thread::sleep(hold);
            c.heal_links();
        }
        Nemesis::OneWayLeader => {
            let l = rt
                .block_on(c.leader_of(0))
                .unwrap_or_else(|| c.random_node(rng));
            c.set_links(Fault::Cut, |x, _| x == l);
            std::thread::sleep(hold);
            c.heal_links();
        }
        Nemesis::LossyLinks => {
            c.set_links(Fault::Lossy { per_mille: 20 }, |_, _| true);
            std::thread::sleep(hold);
            c.heal_links();
        }
        Nemesis::JitterLinks => {
            let fault = Fault::Jitter {
                min: Duration::from_millis(5),
                max: Duration::from_millis(60),
            };
            c.set_links(fault, |_, _| true);
            std::thread::sleep(hold);
            c.heal_links();
        }
        Nemesis::SlowLinks => {
            c.set_links(Fault::Delay(Duration::from_millis(40)), |_, _| true);
            std::thread::sleep(hold);
            c.heal_links();
        }
        Nemesis::ClientCutLeader | Nemesis::ClientHoldLeader | Nemesis::ClientLossyLinks => {
            client_fault(c, rt, rng, rec, kind, hold, &mut out);
        }
    }
    out.window = began.elapsed();
    out
}

/// The key a stale-read probe overwrites: one of the workload's first keys.
fn probe_key(rng: &mut SmallRng) -> usize {
    rng.random_range(0..4)
}

/// Breaks some workload clients' links (see [`Nemesis::on_clients`]) for `hold`, or for
/// longer than their request timeout when holding bytes, so that calls end in `Timeout`.
fn client_fault(
    c: &FaultyCluster,
    rt: &tokio::runtime::Runtime,
    rng: &mut SmallRng,
    rec: &Recorder,
    kind: Nemesis,
    hold: Duration,
    out: &mut Injected,
) {
    let leader = rt
        .block_on(c.leader_of(0))
        .unwrap_or_else(|| c.random_node(rng));
    let mut victims: Vec<u64> = c
        .clients
        .iter()
        .copied()
        .filter(|_| rng.random_bool(0.5))
        .collect();
    if victims.is_empty() && !c.clients.is_empty() {
        victims.push(c.clients[rng.random_range(0..c.clients.len())]);
    }
    let (fault, hold) = match kind {
        Nemesis::ClientCutLeader => (Fault::Cut, hold),
        // The workload's request timeout is 1.5 s: a call held for 1.6 s or more times out.
        Nemesis::ClientHoldLeader => (
            Fault::Hold,
            Duration::from_millis(rng.random_range(1600..2500)),
        ),
        _ => {
            victims = c.clients.clone();
            (Fault::Lossy { per_mille: 33 }, hold)
        }
    };
    let from = rec.now_ns();
    let on_leader_only = kind != Nemesis::ClientLossyLinks;
    c.links.set_clients(fault, |client, node| {
        victims.contains(&client) && (!on_leader_only || node == leader)
    });
    std::thread::sleep(hold);
    c.heal_links();
    out.client_fault_ns = (from, rec.now_ns());
    out.client_victims = victims;
}

/// Client ids of the burst writers of a majority crash (one per burst key).
pub const BURST_CLIENT_BASE: u64 = 2000;
/// Keys of a burst (the workload's first keys; every setup has at least this many).
const BURST_KEYS: usize = 8;

/// Puts a value to each of the first `BURST_KEYS` keys at once (recorded) and freezes
/// `victims` as soon as one put is acknowledged (or when none is, after the burst).
async fn burst_then_freeze(c: &FaultyCluster, rec: &Recorder, victims: &[u64], seq: u64) {
    use futures::StreamExt;
    use futures::stream::FuturesUnordered;

    let freeze = || {
        for &v in victims {
            c.pause(v);
        }
    };
    let Some(client) = c.harness_client(client_options()).await else {
        freeze();
        return;
    };
    let values: Vec<(String, String)> = (0..BURST_KEYS)
        .map(|k| (key_name(k), format!("burst-{seq}-{k}")))
        .collect();
    let mut puts: FuturesUnordered<_> = values
        .iter()
        .enumerate()
        .map(|(i, (key, value))| {
            put_recorded(rec, BURST_CLIENT_BASE + i as u64, &client, key, value)
        })
        .collect();
    let mut frozen = false;
    while let Some(acked) = puts.next().await {
        if acked && !frozen {
            freeze();
            frozen = true;
        }
    }
    if !frozen {
        freeze();
    }
}
