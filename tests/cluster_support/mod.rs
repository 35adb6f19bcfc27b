//! Test support for clusters of real `shoal` processes on 127.0.0.1: N nodes on free
//! ports, each started with `--node-id` and one `--member` flag per node, private data
//! directories, kill -9 / restart by node id, clients connected to one chosen node,
//! waits on the groups' leaders as the nodes' `Topology` reports them, and the state
//! digests of every group on every node (`digests`, `wait_converged`).
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use shoal_client::{KvClientError, RemoteKvClient, RemoteOptions};
use shoal_proto::GroupDigest;
use shoal_testkit::ports::{free_port_block, localhost};
use shoal_testkit::process::ChildProcess;
use shoal_testkit::wait::wait_for_async;

/// Bound on a node's start (recovery of a test-sized log included).
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Most launches of a fresh cluster when a picked port turns out to be taken.
pub const PORT_ATTEMPTS: usize = 5;
/// Bound on every group electing a leader all nodes agree on.
pub const LEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on the replicas of every group reaching the same applied index and digest.
pub const CONVERGE_TIMEOUT: Duration = Duration::from_secs(60);

/// One node of a test cluster; `process` is `None` while the node is down.
pub struct ClusterNode {
    pub id: u64,
    pub process: Option<ChildProcess>,
    pub client_addr: SocketAddr,
    pub peer_addr: SocketAddr,
    pub data_dir: PathBuf,
    starts: usize,
    flags: Vec<String>,
}

/// A cluster of `shoal` processes that forms its groups from `--member` flags.
pub struct Cluster {
    pub nodes: Vec<ClusterNode>,
    pub shards: u16,
    members: Vec<String>,
    initial: u64,
    extra: Vec<String>,
}

impl Cluster {
    /// Starts `n` nodes (ids 1..=n) with `shards` shards each under `dir`, all at once,
    /// and waits until every node reports ready (which does not wait for leaders).
    pub fn start(dir: &Path, n: u64, shards: u16, extra: &[&str]) -> Cluster {
        let cluster = Cluster::start_partial(dir, n, n, shards, extra);
        for id in 1..=n {
            assert!(cluster.node(id).process.is_some());
        }
        cluster
    }

    /// Reserves ports for `n` nodes but starts only the first `initial` (ids
    /// 1..=initial), which form the cluster; the others can [`join`](Self::join) later.
    ///
    /// A port picked free can be taken by another process before the node binds it: a
    /// launch that fails with "Address already in use" is retried from scratch (nodes
    /// killed, data directories removed, every port picked again), at most
    /// [`PORT_ATTEMPTS`] times. (Callers of [`plan`](Self::plan) that wire the planned
    /// ports into proxies or flags get no retry: the ports are theirs.)
    pub fn start_partial(dir: &Path, n: u64, initial: u64, shards: u16, extra: &[&str]) -> Cluster {
        let mut cluster = Cluster::plan(dir, n, initial, shards, extra);
        for attempt in 1..=PORT_ATTEMPTS {
            match cluster.try_launch() {
                Ok(()) => return cluster,
                Err((_, log))
                    if log.contains("Address already in use") && attempt < PORT_ATTEMPTS =>
                {
                    eprintln!("cluster launch {attempt}: a port was taken; retrying on others");
                    for node in &mut cluster.nodes {
                        if let Some(mut p) = node.process.take() {
                            let _ = p.kill();
                        }
                        node.starts = 0;
                        let _ = std::fs::remove_dir_all(&node.data_dir);
                    }
                    cluster.pick_ports();
                }
                Err((id, log)) => panic!("node {id} exited during start:\n{log}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// Reserves ports and directories for `n` nodes, the first `initial` of them the
    /// initial members, without starting any: set per-node flags, then [`launch`](Self::launch).
    pub fn plan(dir: &Path, n: u64, initial: u64, shards: u16, extra: &[&str]) -> Cluster {
        let nodes = (1..=n)
            .map(|id| ClusterNode {
                id,
                process: None,
                client_addr: localhost(0),
                peer_addr: localhost(0),
                data_dir: dir.join(format!("node{id}")),
                starts: 0,
                flags: Vec::new(),
            })
            .collect();
        let mut cluster = Cluster {
            nodes,
            shards,
            members: Vec::new(),
            initial,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        cluster.pick_ports();
        cluster
    }

    /// Gives every node fresh free ports and derives the initial members from them.
    fn pick_ports(&mut self) {
        for node in &mut self.nodes {
            node.client_addr = localhost(free_port_block(self.shards).expect("free client ports"));
            node.peer_addr = localhost(free_port_block(self.shards).expect("free peer ports"));
        }
        self.members = self
            .nodes
            .iter()
            .take(self.initial as usize)
            .map(|n| format!("{}={}/{}", n.id, n.client_addr, n.peer_addr))
            .collect();
    }

    /// Extra flags of node `id` only (on every start).
    pub fn set_flags(&mut self, id: u64, flags: Vec<String>) {
        self.node_mut(id).flags = flags;
    }

    /// Starts the initial members and waits until each is ready.
    pub fn launch(&mut self) {
        if let Err((id, log)) = self.try_launch() {
            panic!("node {id} exited during start:\n{log}");
        }
    }

    /// [`launch`](Self::launch), but a node that exits during start is reported (its id
    /// and log) instead of panicking; the nodes already started keep running.
    fn try_launch(&mut self) -> Result<(), (u64, String)> {
        for id in 1..=self.initial {
            self.spawn(id);
        }
        for id in 1..=self.initial {
            self.wait_ready_or_exit(id).map_err(|log| (id, log))?;
        }
        Ok(())
    }

    /// Starts node `id` (not an initial member) with `--join`: it serves once ready, and
    /// its groups wait to be added as learners.
    pub fn join(&mut self, id: u64) {
        self.spawn(id);
        self.wait_ready(id);
    }

    pub fn node(&self, id: u64) -> &ClusterNode {
        &self.nodes[(id - 1) as usize]
    }

    fn node_mut(&mut self, id: u64) -> &mut ClusterNode {
        &mut self.nodes[(id - 1) as usize]
    }

    /// The client addresses of every node.
    pub fn client_addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(|n| n.client_addr).collect()
    }

    fn spawn(&mut self, id: u64) {
        let shards = self.shards;
        let members = self.members.clone();
        let extra = self.extra.clone();
        let node = self.node_mut(id);
        assert!(node.process.is_none(), "node {id} is already running");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_shoal"));
        cmd.arg("--data-dir")
            .arg(&node.data_dir)
            .args(["--node-id", &id.to_string()])
            .args(["--shards", &shards.to_string()])
            // Spread the nodes' shards over the cores (all on core 0 otherwise).
            .args(["--first-core", &(id - 1).to_string()])
            .args(["--client-addr", &node.client_addr.to_string()])
            .args(["--peer-addr", &node.peer_addr.to_string()])
            // Small segments: zero-filling 64 MiB per shard per start would dominate.
            .args(["--wal-segment-mib", "8"])
            .args(["--log-level", "warn,shoal=info"]);
        for m in &members {
            cmd.args(["--member", m]);
        }
        // A node that is not an initial member joins (and keeps the flag on restarts).
        if !members.iter().any(|m| m.starts_with(&format!("{id}="))) {
            cmd.arg("--join");
        }
        cmd.args(&extra).args(&node.flags);
        let log = node.data_dir.with_extension(format!("log.{}", node.starts));
        node.starts += 1;
        node.process = Some(ChildProcess::spawn("shoal", cmd, &log).expect("spawn shoal"));
    }

    fn wait_ready(&mut self, id: u64) {
        if let Err(log) = self.wait_ready_or_exit(id) {
            panic!("node {id} exited during start:\n{log}");
        }
    }

    /// Waits until node `id` reports ready; `Err` with its status and log if it exited
    /// first. Panics if it does neither within [`START_TIMEOUT`].
    fn wait_ready_or_exit(&mut self, id: u64) -> Result<(), String> {
        let process = self.node_mut(id).process.as_mut().expect("node running");
        process.wait_ready("shoal: ready", START_TIMEOUT)
    }

    /// kill -9 of node `id` (a crash, as far as it can tell).
    pub fn kill(&mut self, id: u64) {
        let mut process = self.node_mut(id).process.take().expect("node running");
        process.kill().expect("kill node");
    }

    /// Starts node `id` again (same ports, data and flags) and waits until it is ready.
    pub fn restart(&mut self, id: u64) {
        self.spawn(id);
        self.wait_ready(id);
    }

    /// Starts node `id` again and expects it to refuse to start: it must exit with a
    /// failure status, never reporting ready, within `START_TIMEOUT`. Returns its log.
    pub fn restart_expecting_refusal(&mut self, id: u64) -> String {
        self.spawn(id);
        let mut process = self.node_mut(id).process.take().expect("node running");
        process.expect_refusal("shoal: ready", START_TIMEOUT)
    }

    /// Graceful stop (SIGINT) of node `id`.
    pub fn stop(&mut self, id: u64) {
        let mut process = self.node_mut(id).process.take().expect("node running");
        let status = process
            .interrupt(Duration::from_secs(30))
            .expect("graceful stop");
        assert!(status.success(), "node {id} stopped with {status}");
    }

    /// A remote client that knows only node `id`'s address (it learns the rest from the
    /// topology and from `NotLeader` hints).
    pub async fn client_on(&self, id: u64, opts: RemoteOptions) -> RemoteKvClient {
        let addr = self.node(id).client_addr;
        RemoteKvClient::connect([addr], opts)
            .await
            .unwrap_or_else(|e| panic!("connect to node {id} at {addr}: {e}"))
    }

    /// Waits until every running node reports, for every group, the same leader, and
    /// that leader is a running node. Returns the leader of each group.
    pub async fn wait_leaders(&self) -> Vec<u64> {
        let running: Vec<u64> = self
            .nodes
            .iter()
            .filter(|n| n.process.is_some())
            .map(|n| n.id)
            .collect();
        self.wait_leaders_among(&running).await
    }

    /// Like [`wait_leaders`](Self::wait_leaders), asking only nodes `ids` (the side of a
    /// partition), whose agreed leaders must be among them.
    pub async fn wait_leaders_among(&self, ids: &[u64]) -> Vec<u64> {
        let running: Vec<&ClusterNode> =
            self.nodes.iter().filter(|n| ids.contains(&n.id)).collect();
        let opts = RemoteOptions {
            request_timeout: Duration::from_secs(2),
            ..RemoteOptions::default()
        };
        let shards = self.shards as usize;
        let agreed = wait_for_async(
            "every group to have one agreed leader",
            LEADER_TIMEOUT,
            Duration::from_millis(50),
            || async {
                let mut seen: Option<Vec<u64>> = None;
                for n in &running {
                    let client = RemoteKvClient::connect([n.client_addr], opts.clone())
                        .await
                        .ok()?;
                    let topology = client.topology().await.ok()?;
                    let leaders: Vec<u64> = topology
                        .leaders
                        .iter()
                        .map(|l| l.leader)
                        .collect::<Option<Vec<u64>>>()?;
                    if leaders.len() != shards {
                        return None;
                    }
                    match &seen {
                        None => seen = Some(leaders),
                        Some(s) if *s == leaders => {}
                        Some(_) => return None,
                    }
                }
                let leaders = seen?;
                let all_running = leaders.iter().all(|l| running.iter().any(|n| n.id == *l));
                all_running.then_some(leaders)
            },
        )
        .await;
        match agreed {
            Ok(leaders) => leaders,
            Err(e) => panic!("{e}\n{}", self.logs()),
        }
    }

    /// The state digest of every group on node `id` (running), as that node computes it
    /// (no routing: each replica's own state), in group order.
    pub async fn digests(&self, id: u64) -> Result<Vec<GroupDigest>, KvClientError> {
        let addr = self.node(id).client_addr;
        let opts = RemoteOptions {
            request_timeout: Duration::from_secs(5),
            ..RemoteOptions::default()
        };
        let client = RemoteKvClient::connect([addr], opts).await?;
        let mut out = Vec::with_capacity(self.shards as usize);
        for group in 0..u32::from(self.shards) {
            out.push(client.state_digest(&addr.to_string(), group).await?);
        }
        Ok(out)
    }

    /// Waits until, for every group, nodes `ids` report the same applied index and the
    /// same digest (keys and hash) at it, and returns that per group. Stop writers first:
    /// under load the replicas rarely stand at one index together. Panics, with every
    /// node's digests, when two nodes differ at one applied index in two consecutive
    /// polls (a divergence; one poll could be a key's expiry falling between the two
    /// reads) or when `CONVERGE_TIMEOUT` passes.
    pub async fn wait_converged(&self, ids: &[u64]) -> Vec<GroupDigest> {
        assert!(!ids.is_empty());
        let last: RefCell<Vec<(u64, Vec<GroupDigest>)>> = RefCell::new(Vec::new());
        let differed_before = Cell::new(false);
        let converged = wait_for_async(
            "every replica of every group at the same applied index and digest",
            CONVERGE_TIMEOUT,
            Duration::from_millis(100),
            || async {
                let mut seen = Vec::with_capacity(ids.len());
                for &id in ids {
                    seen.push((id, self.digests(id).await.ok()?));
                }
                let first = seen[0].1.clone();
                let mut all_same = true;
                let mut differ = false;
                for (_, ds) in &seen[1..] {
                    for (a, b) in first.iter().zip(ds) {
                        if a.applied_index != b.applied_index {
                            all_same = false;
                        } else if (a.keys, a.digest) != (b.keys, b.digest) {
                            all_same = false;
                            differ = true;
                        }
                    }
                }
                *last.borrow_mut() = seen;
                if differ && differed_before.get() {
                    panic!(
                        "replicas differ at the same applied index: {:#?}\n{}",
                        last.borrow(),
                        self.logs()
                    );
                }
                differed_before.set(differ);
                all_same.then_some(first)
            },
        )
        .await;
        match converged {
            Ok(d) => d,
            Err(e) => panic!("{e}; last digests: {:#?}\n{}", last.borrow(), self.logs()),
        }
    }

    /// The logs of every node (for a failure message).
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .filter_map(|n| {
                n.process
                    .as_ref()
                    .map(|p| format!("--- node {} ---\n{}", n.id, p.log()))
            })
            .collect()
    }
}
