//! A cluster of real `shoal` processes (3 or 5 nodes) wired for fault injection, and the
//! kinds of nemesis that break it.
//!
//! Every directed peer link and every (client, node) pair goes through its own proxy
//! (`faults_support::links`). Each node can run with its own `--clock-offset-ms`.
//!
//! Invariants: every nemesis heals what it broke before it returns (links pass, the paused
//! node runs, the killed nodes are restarted and ready), so the next one starts from a
//! whole cluster; every wait is bounded.

use std::path::Path;
use std::time::{Duration, Instant};

use rand::RngExt;
use rand::rngs::SmallRng;
use shoal_client::{RemoteKvClient, RemoteOptions};
use shoal_testkit::proxy::Fault;

use crate::cluster_support::Cluster;
use crate::faults_support::links::Links;

/// The kinds of fault, in the order the figures print them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Nemesis {
    /// SIGKILL of a random node, restarted after the fault window.
    KillRandom,
    /// SIGKILL of the leader of group 0, restarted after the fault window.
    KillLeader,
    /// SIGKILL of a majority at once (SIGSTOP all, then kill; the leader among them) after
    /// the others were cut off for 300 ms, so they lack what it acknowledged: a majority
    /// crash.
    KillMajority,
    /// SIGSTOP of the leader of group 0, longer than the election timeout, then SIGCONT;
    /// while it is stopped a key is overwritten through the others and read through it.
    PauseLeader,
    /// All links of the leader of group 0 cut both ways; a key is overwritten through the
    /// majority and read through the old leader.
    IsolateLeader,
    /// A random minority (1 of 3, 2 of 5 nodes) cut off from the rest both ways.
    SplitRandom,
    /// Two halves that cannot reach each other, and a bridge node that reaches both (on 3
    /// nodes each half is one node). Both halves may elect through the bridge, each
    /// with a quorum only by counting it.
    Bridge,
    /// Only the leader's outgoing links cut (it hears the others, they do not hear it).
    OneWayLeader,
    /// Every link drops a connection with probability 1/50 per chunk.
    LossyLinks,
    /// Every link delays each chunk by 5-60 ms, reordering messages across connections.
    JitterLinks,
    /// Every link delays each chunk by 40 ms.
    SlowLinks,
    /// The links of some workload clients to the leader of group 0 cut: their calls there
    /// fail (unknown outcome for a write that was sent).
    ClientCutLeader,
    /// The links of some workload clients to the leader of group 0 hold every byte for
    /// longer than the request timeout: their calls end in `Timeout` (unknown outcome),
    /// and the held requests reach the leader when the link heals, after the call ended.
    ClientHoldLeader,
    /// Every client link drops a connection with probability 1/30 per chunk: requests and
    /// answers are lost mid-call.
    ClientLossyLinks,
}

impl Nemesis {
    pub const ALL: [Nemesis; 14] = [
        Nemesis::KillRandom,
        Nemesis::KillLeader,
        Nemesis::KillMajority,
        Nemesis::PauseLeader,
        Nemesis::IsolateLeader,
        Nemesis::SplitRandom,
        Nemesis::Bridge,
        Nemesis::OneWayLeader,
        Nemesis::LossyLinks,
        Nemesis::JitterLinks,
        Nemesis::SlowLinks,
        Nemesis::ClientCutLeader,
        Nemesis::ClientHoldLeader,
        Nemesis::ClientLossyLinks,
    ];

    /// The network partitions (the 5-node test's set).
    pub const PARTITIONS: [Nemesis; 4] = [
        Nemesis::IsolateLeader,
        Nemesis::SplitRandom,
        Nemesis::Bridge,
        Nemesis::OneWayLeader,
    ];

    /// Whether it breaks client links (the workload then must see unknown outcomes).
    pub fn on_clients(self) -> bool {
        matches!(
            self,
            Nemesis::ClientCutLeader | Nemesis::ClientHoldLeader | Nemesis::ClientLossyLinks
        )
    }

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
    pub links: Links,
    /// Node count (ids 1..=n).
    pub n: u64,
    /// Ids of the workload clients (each has its own client proxies).
    pub clients: Vec<u64>,
}

impl FaultyCluster {
    /// Plans `offsets.len()` nodes with `shards` shards under `dir`, `extra` flags on every
    /// node and `offsets[i]` ms of clock offset on node i + 1, puts a proxy on every
    /// directed peer link and on every (client, node) pair of `clients` (plus the
    /// harness's), and starts the nodes.
    pub fn start(
        dir: &Path,
        shards: u16,
        extra: &[&str],
        offsets: &[i64],
        clients: &[u64],
    ) -> FaultyCluster {
        let n = offsets.len() as u64;
        assert!(n >= 3, "a faulty cluster has at least 3 nodes");
        let mut cluster = Cluster::plan(dir, n, n, shards, extra);
        let (links, flags) = Links::start(&cluster, shards, clients);
        for (x, mut f) in (1..=n).zip(flags) {
            let offset = offsets[(x - 1) as usize];
            if offset != 0 {
                f.push(format!("--clock-offset-ms={offset}"));
            }
            cluster.set_flags(x, f);
        }
        cluster.launch();
        FaultyCluster {
            cluster,
            links,
            n,
            clients: clients.to_vec(),
        }
    }

    /// The options of client `id`: `base` with the rewrite through its proxies.
    pub fn options(&self, id: u64, base: RemoteOptions) -> RemoteOptions {
        self.links.client_options(id, base)
    }

    /// A client through the harness's proxies, seeded with every node.
    pub async fn harness_client(&self, base: RemoteOptions) -> Option<RemoteKvClient> {
        let opts = self.options(crate::faults_support::links::HARNESS, base);
        RemoteKvClient::connect(self.client_addrs(), opts)
            .await
            .ok()
    }

    pub fn client_addrs(&self) -> Vec<std::net::SocketAddr> {
        self.cluster.client_addrs()
    }

    /// Sets `fault` on every peer link for which `pick(from, to)` holds.
    pub fn set_links(&self, fault: Fault, pick: impl Fn(u64, u64) -> bool) {
        self.links.set_peers(fault, pick);
    }

    /// Lifts every fault, on peer and client links.
    pub fn heal_links(&self) {
        self.links.heal();
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

    /// A harness client that knows only node `id` (and, with one-shot options, makes one
    /// attempt: its calls go where that node's topology points when it connects).
    pub async fn pinned_client(&self, id: u64, opts: RemoteOptions) -> Option<RemoteKvClient> {
        let addr = self.cluster.node(id).client_addr;
        let opts = self.options(crate::faults_support::links::HARNESS, opts);
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

    /// A random node.
    pub fn random_node(&self, rng: &mut SmallRng) -> u64 {
        rng.random_range(1..=self.n)
    }

    /// `k` distinct random nodes, none of them in `not`.
    pub fn random_nodes(&self, rng: &mut SmallRng, k: usize, not: &[u64]) -> Vec<u64> {
        let mut pool: Vec<u64> = (1..=self.n).filter(|x| !not.contains(x)).collect();
        assert!(k <= pool.len(), "{k} of {pool:?}");
        let mut out = Vec::with_capacity(k);
        for _ in 0..k {
            out.push(pool.swap_remove(rng.random_range(0..pool.len())));
        }
        out
    }
}
