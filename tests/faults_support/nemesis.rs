//! A 3-node cluster of real `shoal` processes wired for fault injection, and the nemeses
//! that break it.
//!
//! Every directed peer link X -> Y goes through its own proxy (`--peer-route`): node X
//! dials Y's groups through proxy (X, Y), one route per group. Cutting (X, Y) stops X's
//! RPCs to Y (and their replies) while Y's RPCs to X still flow: one-way partitions are
//! possible, symmetric ones cut both proxies. Each node can run with its own
//! `--clock-offset-ms`.
//!
//! Invariants: every nemesis heals what it broke before it returns (links pass, the paused
//! node runs, the killed nodes are restarted and ready), so the next one starts from a
//! whole cluster; every wait is bounded.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use rand::RngExt;
use rand::rngs::SmallRng;
use shoal_client::{RemoteKvClient, RemoteOptions};
use shoal_testkit::ports::{free_port_block, localhost};
use shoal_testkit::proxy::{Fault, Proxy};

use crate::cluster_support::Cluster;

/// The node count of the suite.
pub const NODES: u64 = 3;

/// The kinds of fault, in the order the figures print them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Nemesis {
    /// SIGKILL of a random node, restarted after the fault window.
    KillRandom,
    /// SIGKILL of the leader of group 0, restarted after the fault window.
    KillLeader,
    /// SIGKILL of two nodes at once (SIGSTOP both, then kill; the leader among them) after
    /// the third was cut off for 300 ms, so it lacks what they acknowledged: a majority
    /// crash.
    KillMajority,
    /// SIGSTOP of the leader of group 0, longer than the election timeout, then SIGCONT;
    /// while it is stopped a key is overwritten through the others and read through it.
    PauseLeader,
    /// All links of the leader of group 0 cut both ways; a key is overwritten through the
    /// majority and read through the old leader.
    IsolateLeader,
    /// A random node cut off both ways (majority / minority split).
    SplitRandom,
    /// Only the leader's outgoing links cut (it hears the others, they do not hear it).
    OneWayLeader,
    /// Every link drops a connection with probability 1/50 per chunk.
    LossyLinks,
    /// Every link delays each chunk by 5-60 ms, reordering messages across connections.
    JitterLinks,
    /// Every link delays each chunk by 40 ms.
    SlowLinks,
}

impl Nemesis {
    pub const ALL: [Nemesis; 10] = [
        Nemesis::KillRandom,
        Nemesis::KillLeader,
        Nemesis::KillMajority,
        Nemesis::PauseLeader,
        Nemesis::IsolateLeader,
        Nemesis::SplitRandom,
        Nemesis::OneWayLeader,
        Nemesis::LossyLinks,
        Nemesis::JitterLinks,
        Nemesis::SlowLinks,
    ];

    /// Whether it restarts nodes (the harness then re-reads every key at once).
    pub fn restarts(self) -> bool {
        matches!(
            self,
            Nemesis::KillRandom | Nemesis::KillLeader | Nemesis::KillMajority
        )
    }
}

/// The cluster plus its link proxies.
pub struct FaultyCluster {
    pub cluster: Cluster,
    /// (from, to) -> the proxy node `from` dials node `to` through.
    links: BTreeMap<(u64, u64), Proxy>,
}

impl FaultyCluster {
    /// Plans 3 nodes with `shards` shards under `dir`, `extra` flags on every node and
    /// `offsets[i]` ms of clock offset on node i + 1, puts a proxy on every directed link,
    /// and starts them.
    pub fn start(dir: &Path, shards: u16, extra: &[&str], offsets: [i64; 3]) -> FaultyCluster {
        let mut cluster = Cluster::plan(dir, NODES, NODES, shards, extra);
        let mut links = BTreeMap::new();
        for x in 1..=NODES {
            let mut flags = Vec::new();
            for y in (1..=NODES).filter(|&y| y != x) {
                let base = free_port_block(shards).expect("free proxy ports");
                let target = cluster.node(y).peer_addr;
                let routes: Vec<_> = (0..shards)
                    .map(|s| (localhost(base + s), localhost(target.port() + s)))
                    .collect();
                let proxy = Proxy::start(&routes).expect("start link proxy");
                flags.push("--peer-route".to_string());
                flags.push(format!("{y}={}", proxy.addrs()[0]));
                links.insert((x, y), proxy);
            }
            let offset = offsets[(x - 1) as usize];
            if offset != 0 {
                flags.push(format!("--clock-offset-ms={offset}"));
            }
            cluster.set_flags(x, flags);
        }
        cluster.launch();
        FaultyCluster { cluster, links }
    }

    pub fn client_addrs(&self) -> Vec<std::net::SocketAddr> {
        self.cluster.client_addrs()
    }

    /// Sets `fault` on every link for which `pick(from, to)` holds.
    pub fn set_links(&self, fault: Fault, pick: impl Fn(u64, u64) -> bool) {
        for ((x, y), p) in &self.links {
            if pick(*x, *y) {
                p.set(fault);
            }
        }
    }

    pub fn heal_links(&self) {
        for p in self.links.values() {
            p.heal();
        }
    }

    /// The leader of `group` as the running nodes that answer within a short timeout
    /// report it, if they all agree and it is running; `None` otherwise (mid-election).
    pub async fn leader_of(&self, group: usize) -> Option<u64> {
        let mut seen = None;
        for n in &self.cluster.nodes {
            if n.process.is_none() {
                continue;
            }
            let opts =
                crate::faults_support::workload::one_shot_options(Duration::from_millis(500));
            let Ok(Ok(c)) = tokio::time::timeout(
                Duration::from_secs(1),
                RemoteKvClient::connect([n.client_addr], opts),
            )
            .await
            else {
                continue;
            };
            let Ok(Ok(t)) = tokio::time::timeout(Duration::from_secs(1), c.topology()).await else {
                continue;
            };
            let l = t.leaders.get(group).and_then(|l| l.leader)?;
            match seen {
                None => seen = Some(l),
                Some(s) if s == l => {}
                Some(_) => return None,
            }
        }
        let l = seen?;
        self.cluster.node(l).process.is_some().then_some(l)
    }

    /// Polls [`leader_of`](Self::leader_of) until it names a leader other than `not`
    /// (`None`: any), within `within`.
    pub async fn wait_leader(
        &self,
        group: usize,
        not: Option<u64>,
        within: Duration,
    ) -> Option<u64> {
        let began = Instant::now();
        while began.elapsed() < within {
            if let Some(l) = self.leader_of(group).await {
                if Some(l) != not {
                    return Some(l);
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        None
    }

    /// A client that knows only node `id` and makes one attempt: its calls go where that
    /// node's topology points when it connects.
    pub async fn pinned_client(&self, id: u64, opts: RemoteOptions) -> Option<RemoteKvClient> {
        let addr = self.cluster.node(id).client_addr;
        tokio::time::timeout(
            Duration::from_secs(2),
            RemoteKvClient::connect([addr], opts),
        )
        .await
        .ok()?
        .ok()
    }

    pub fn kill(&mut self, id: u64) {
        self.cluster.kill(id);
    }

    pub fn restart(&mut self, id: u64) {
        self.cluster.restart(id);
    }

    pub fn pause(&self, id: u64) {
        let p = self
            .cluster
            .node(id)
            .process
            .as_ref()
            .expect("node running");
        p.pause().expect("SIGSTOP");
    }

    pub fn resume(&self, id: u64) {
        let p = self
            .cluster
            .node(id)
            .process
            .as_ref()
            .expect("node running");
        p.resume().expect("SIGCONT");
    }

    /// A random running node.
    pub fn random_node(&self, rng: &mut SmallRng) -> u64 {
        rng.random_range(1..=NODES)
    }
}
