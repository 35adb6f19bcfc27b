//! The fault schedule of a run, drawn from the seeded `Nemesis` stream: crashes (of a
//! random node or of the leader) with restarts, partitions (isolate a node, isolate the
//! leader, majority/minority split, bridge), and message faults (drop, duplicate, delay
//! spikes that reorder), on all links or on one directed link.
//!
//! Invariants:
//! - Every fault is undone by a task the nemesis schedules when it injects it (restart,
//!   heal, restore), and everything is healed at the end of the fault phase by the harness.
//! - Every injected fault is counted by kind and noted in the trace.

use std::rc::Rc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft_rt::AsyncRuntime;
use shoal::raft::types::NodeId;

use crate::cluster::Cluster;
use crate::network::LinkFaults;
use crate::runtime::SimRuntime;
use crate::runtime::Stream;
use crate::runtime::note;
use crate::runtime::now;
use crate::runtime::rng::below;
use crate::runtime::spawn_tagged;
use crate::storage::StorageModel;

/// Faults injected, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Crashes of a random node.
    pub crashes: u64,
    /// Crashes of the current leader.
    pub leader_crashes: u64,
    /// Partitions isolating one node (or the leader).
    pub isolations: u64,
    /// Majority/minority splits.
    pub splits: u64,
    /// Bridge partitions.
    pub bridges: u64,
    /// Periods of lossy/duplicating/reordering links (all links).
    pub lossy_periods: u64,
    /// One directed link made lossy.
    pub bad_links: u64,
}

fn ms(lo: u64, hi: u64) -> Duration {
    Duration::from_millis(lo + below(Stream::Nemesis, hi - lo))
}

fn pick(ids: &[NodeId]) -> Option<NodeId> {
    if ids.is_empty() {
        return None;
    }
    let i = usize::try_from(below(Stream::Nemesis, ids.len() as u64)).ok()?;
    ids.get(i).copied()
}

fn leader_of<S: StorageModel>(c: &Cluster<S>) -> Option<NodeId> {
    c.up_nodes().into_iter().find(|id| {
        c.raft(*id)
            .is_some_and(|r| r.metrics().borrow_watched().state == openraft::ServerState::Leader)
    })
}

fn shuffled(ids: &[NodeId]) -> Vec<NodeId> {
    let mut v = ids.to_vec();
    for i in (1..v.len()).rev() {
        let j = usize::try_from(below(Stream::Nemesis, i as u64 + 1)).unwrap_or(0);
        v.swap(i, j);
    }
    v
}

/// Inject faults until virtual time `until`.
pub async fn run<S: StorageModel>(c: Rc<Cluster<S>>, until: Duration) {
    // Let the group elect its first leader undisturbed.
    SimRuntime::sleep(Duration::from_millis(500)).await;
    while now().since_start() < until && !c.checker.failed() {
        SimRuntime::sleep(ms(50, 600)).await;
        // The fault phase may have ended while sleeping: no fault after it (the harness is
        // healing and checking convergence by then).
        if now().since_start() >= until {
            break;
        }
        let dice = below(Stream::Nemesis, 100);
        match dice {
            0..=14 => crash(&c, pick(&c.up_nodes()), false),
            15..=24 => crash(&c, leader_of(&c), true),
            25..=34 => isolate(&c, pick(&c.voters), false),
            35..=39 => isolate(&c, leader_of(&c), true),
            40..=47 => split(&c),
            48..=51 if c.voters.len() >= 5 => bridge(&c),
            52..=61 => lossy(&c),
            62..=67 => bad_link(&c),
            _ => {}
        }
    }
}

fn crash<S: StorageModel>(c: &Rc<Cluster<S>>, id: Option<NodeId>, leader: bool) {
    let Some(id) = id else { return };
    {
        let mut f = c.faults.borrow_mut();
        if leader {
            f.leader_crashes += 1;
        } else {
            f.crashes += 1;
        }
    }
    c.crash(id);
    let down_for = ms(20, 1500);
    let c2 = c.clone();
    drop(spawn_tagged(0, async move {
        SimRuntime::sleep(down_for).await;
        if let Err(e) = c2.start(id).await {
            c2.checker
                .report(format!("restart of node {id} failed: {e}"));
        }
    }));
}

fn heal_later<S: StorageModel>(c: &Rc<Cluster<S>>, after: Duration) {
    let c2 = c.clone();
    drop(spawn_tagged(0, async move {
        SimRuntime::sleep(after).await;
        c2.net.heal();
        note("partition healed".to_string());
    }));
}

fn isolate<S: StorageModel>(c: &Rc<Cluster<S>>, id: Option<NodeId>, leader: bool) {
    let Some(id) = id else { return };
    c.faults.borrow_mut().isolations += 1;
    let others: Vec<NodeId> = c.voters.iter().copied().filter(|x| *x != id).collect();
    c.net.partition(&[id], &others);
    note(format!(
        "partition: node {id} isolated{}",
        if leader { " (leader)" } else { "" }
    ));
    heal_later(c, ms(100, 2000));
}

fn split<S: StorageModel>(c: &Rc<Cluster<S>>) {
    c.faults.borrow_mut().splits += 1;
    let order = shuffled(&c.voters);
    let minority = order.len() / 2;
    let (a, b) = order.split_at(minority);
    c.net.partition(a, b);
    note(format!("partition: split {a:?} | {b:?}"));
    heal_later(c, ms(100, 2000));
}

fn bridge<S: StorageModel>(c: &Rc<Cluster<S>>) {
    c.faults.borrow_mut().bridges += 1;
    // Two halves that cannot talk, and one node that talks to both.
    let order = shuffled(&c.voters);
    let (bridge, rest) = order.split_at(1);
    let (a, b) = rest.split_at(rest.len() / 2);
    c.net.partition(a, b);
    note(format!("partition: bridge {a:?} <-{bridge:?}-> {b:?}"));
    heal_later(c, ms(100, 2000));
}

fn faults() -> LinkFaults {
    LinkFaults {
        drop: below(Stream::Nemesis, 30) as f64 / 100.0,
        duplicate: below(Stream::Nemesis, 20) as f64 / 100.0,
        min_delay: Duration::from_micros(100),
        max_delay: Duration::from_micros(500 + below(Stream::Nemesis, 20_000)),
        spike: below(Stream::Nemesis, 10) as f64 / 100.0,
    }
}

fn lossy<S: StorageModel>(c: &Rc<Cluster<S>>) {
    c.faults.borrow_mut().lossy_periods += 1;
    let f = faults();
    c.net.set_default_faults(f);
    note(format!("network: all links {f:?}"));
    let (c2, after) = (c.clone(), ms(200, 2000));
    drop(spawn_tagged(0, async move {
        SimRuntime::sleep(after).await;
        c2.net.set_default_faults(LinkFaults::default());
        note("network: links restored".to_string());
    }));
}

fn bad_link<S: StorageModel>(c: &Rc<Cluster<S>>) {
    let (Some(from), Some(to)) = (pick(&c.voters), pick(&c.voters)) else {
        return;
    };
    if from == to {
        return;
    }
    c.faults.borrow_mut().bad_links += 1;
    let mut f = faults();
    f.drop += 0.5;
    c.net.set_link_faults(from, to, f);
    note(format!("network: link {from}->{to} {f:?}"));
    let (c2, after) = (c.clone(), ms(200, 2000));
    drop(spawn_tagged(0, async move {
        SimRuntime::sleep(after).await;
        c2.net.clear_link_faults();
        note("network: link faults cleared".to_string());
    }));
}
