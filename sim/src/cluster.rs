//! The cluster harness: N openraft nodes in one simulation, their lifecycle (start, crash,
//! restart), the monitor that checks invariants every tick, and one whole seeded run
//! ([`run`]): workload + nemesis, then heal, convergence and the history check.
//!
//! Invariants:
//! - A node's tasks all carry its tag; a crash drops them all at once (nothing of the old
//!   incarnation runs again), takes the node off the network and makes its storage lose
//!   what was not durable. A restart opens storage from the durable image only.
//! - Every up node is checked after every poll of any task (the executor's step hook) and
//!   every [`MONITOR_TICK`] of virtual time; storage events are checked as they happen (see
//!   `invariants`). The first violation ends the run.
//! - After the fault phase every fault is healed and every node restarted; the group must
//!   then converge (one leader, everything committed applied everywhere, identical state
//!   machines) within [`CONVERGE_WITHIN`]: otherwise it is a liveness violation.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use openraft::Config;
use openraft::SnapshotPolicy;
use openraft::async_runtime::WatchReceiver;
use openraft_rt::AsyncRuntime;
use shoal::raft::types::NodeId;
use shoal::raft::types::ShoalNode;

use crate::command::Command;
use crate::history;
use crate::invariants::Checker;
use crate::nemesis::FaultStats;
use crate::network::LinkFaults;
use crate::network::NetStats;
use crate::network::SimNet;
use crate::network::SimNetworkFactory;
use crate::runtime::SimRuntime;
use crate::runtime::kill_node;
use crate::runtime::note;
use crate::runtime::now;
use crate::runtime::spawn_tagged;
use crate::runtime::task_panics;
use crate::storage::MemStorage;
use crate::storage::StorageModel;
use crate::storage::wal_storage::WalStorage;
use crate::types::SimRaft;
use crate::workload::ClientEnv;
use crate::workload::History;

/// Virtual time between two monitor checks.
pub const MONITOR_TICK: Duration = Duration::from_millis(2);
/// How long the healed group has to converge.
pub const CONVERGE_WITHIN: Duration = Duration::from_secs(30);

/// What one run does.
#[derive(Debug, Clone)]
pub struct SimParams {
    /// The seed: everything random in the run derives from it.
    pub seed: u64,
    /// Group size (3 or 5).
    pub nodes: u64,
    /// Virtual duration of the workload + fault phase.
    pub duration: Duration,
    /// Concurrent clients.
    pub clients: u64,
    /// Keys the clients use.
    pub keys: u64,
    /// Inject faults (crashes, partitions, message faults).
    pub faults: bool,
    /// Randomize the order of ready tasks.
    pub shuffle: bool,
    /// NEGATIVE CONTROL: storage acknowledges appends before they are synced.
    pub ack_before_sync: bool,
    /// Check that every committed entry is durable on a quorum (switched off only to show
    /// that the other checks catch lost entries end to end).
    pub check_durable_quorum: bool,
    /// NEGATIVE CONTROL: clients read any node's state machine without ReadIndex.
    pub stale_reads: bool,
    /// Set openraft's `Config::enable_leader_restore` (default here: false; openraft's own
    /// default is true, which this simulation shows to be unsafe with a lossy log tail).
    pub leader_restore: bool,
    /// Print every trace event to stderr.
    pub echo: bool,
    /// Run Shoal's real log store (`WalLogStore` over the real WAL on a simulated disk,
    /// [`WalStorage`]) instead of the simulation's model ([`MemStorage`]).
    pub wal: bool,
}

impl SimParams {
    /// The default run of `seed`: group size, shuffling and length derived from the seed.
    pub fn for_seed(seed: u64) -> Self {
        SimParams {
            seed,
            nodes: if seed % 3 == 2 { 5 } else { 3 },
            duration: Duration::from_secs(4),
            clients: 3,
            keys: 3,
            faults: true,
            shuffle: seed % 2 == 1,
            ack_before_sync: false,
            check_durable_quorum: true,
            leader_restore: false,
            stale_reads: false,
            echo: false,
            wal: false,
        }
    }
}

/// What a run did and found.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    /// The seed.
    pub seed: u64,
    /// Hash of every event of the run (equal for two runs of one seed).
    pub trace_hash: u64,
    /// Number of events hashed.
    pub events: u64,
    /// Virtual time at the end.
    pub virtual_time: Duration,
    /// Client operations by outcome: (ok, fail, unknown).
    pub ops: (u64, u64, u64),
    /// Faults injected.
    pub faults: FaultStats,
    /// Network counters.
    pub net: NetStats,
    /// Entries appended / applied (all nodes).
    pub appends: u64,
    /// Entries applied (all nodes).
    pub applies: u64,
    /// Invariant and history violations (empty = pass).
    pub violations: Vec<String>,
    /// The last trace events (for a failure report).
    pub recent: Vec<String>,
    /// Disk counters of the storage, if it has any: (durable writes completed, writes torn
    /// by a crash while in flight). The real WAL's `SimDisk` counts them.
    pub disk: (u64, u64),
    /// The production state machine's snapshot activity over all nodes.
    pub snapshots: crate::storage::SnapshotStats,
    /// Extra environment of the replay command (`SHOAL_SIM_WAL=1 ` in WAL mode).
    pub replay_env: String,
}

impl RunReport {
    /// The failure message for a failed seed, with the replay command.
    pub fn failure(&self) -> String {
        format!(
            "SIM FAILED seed={} trace_hash={:#018x}\n  violations:\n    {}\n  last events:\n    {}\n  \
             replay with: {}SHOAL_SIM_SEED={} cargo test -p shoal-sim --test sim_seeds replay_one_seed -- --nocapture",
            self.seed,
            self.trace_hash,
            self.violations.join("\n    "),
            self.recent.join("\n    "),
            self.replay_env,
            self.seed
        )
    }
}

/// The running group.
pub struct Cluster<S: StorageModel> {
    /// Storage of every node.
    pub storage: Rc<S>,
    /// Invariants.
    pub checker: Checker,
    /// The network.
    pub net: SimNet<S::Sm>,
    /// Voter ids (1..=N).
    pub voters: Vec<NodeId>,
    config: Arc<Config>,
    up: RefCell<BTreeSet<NodeId>>,
    check_durable_quorum: bool,
    /// Faults injected so far.
    pub faults: RefCell<FaultStats>,
}

impl<S: StorageModel> std::fmt::Debug for Cluster<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("voters", &self.voters)
            .field("up", &self.up.borrow())
            .finish()
    }
}

/// The address record of node `id` (nothing listens: the network is simulated).
pub fn node_addr(id: NodeId) -> ShoalNode {
    ShoalNode {
        client_addr: format!("sim:{id}:client"),
        peer_addr: format!("sim:{id}:peer"),
    }
}

fn raft_config(leader_restore: bool) -> Result<Arc<Config>, String> {
    let config = Config {
        cluster_name: "shoal-sim".to_string(),
        heartbeat_interval: 50,
        election_timeout_min: 150,
        election_timeout_max: 300,
        // Small numbers so snapshots, purges and snapshot installs happen in short runs.
        snapshot_policy: SnapshotPolicy::LogsSinceLast(40),
        max_in_snapshot_log_to_keep: 8,
        max_payload_entries: 16,
        replication_lag_threshold: 60,
        // openraft's default (None = true) restores a restarted leader in its old term; with a
        // log whose unsynced tail was lost at the crash it then reuses log ids that followers
        // already hold for other entries (log matching broken: found by this simulation).
        enable_leader_restore: Some(leader_restore),
        ..Default::default()
    };
    config.validate().map(Arc::new).map_err(|e| e.to_string())
}

impl<S: StorageModel> Cluster<S> {
    /// A group of `n` voters over `storage`; no node started yet.
    pub fn new(params: &SimParams, storage: S) -> Result<Rc<Self>, String> {
        let (n, check_durable_quorum) = (params.nodes, params.check_durable_quorum);
        let voters: Vec<NodeId> = (1..=n).collect();
        Ok(Rc::new(Cluster {
            storage: Rc::new(storage),
            checker: Checker::new(voters.len()),
            net: SimNet::default(),
            voters,
            config: raft_config(params.leader_restore)?,
            up: RefCell::new(BTreeSet::new()),
            check_durable_quorum,
            faults: RefCell::new(FaultStats::default()),
        }))
    }

    /// Ids of the nodes that are up.
    pub fn up_nodes(&self) -> Vec<NodeId> {
        self.up.borrow().iter().copied().collect()
    }

    /// The handle of node `id` if up.
    pub fn raft(&self, id: NodeId) -> Option<SimRaft<S::Sm>> {
        self.net.get(id)
    }

    /// Start node `id` from its durable storage (no-op if it is up).
    pub async fn start(&self, id: NodeId) -> Result<(), String> {
        if self.up.borrow().contains(&id) {
            return Ok(());
        }
        let (storage, checker, config) = (
            self.storage.clone(),
            self.checker.clone(),
            self.config.clone(),
        );
        let net = self.net.clone();
        // Every task Raft::new spawns inherits the node's tag.
        let raft = spawn_tagged(id, async move {
            let (log, sm) = storage.open(id, checker).await?;
            let factory = SimNetworkFactory { from: id, net };
            SimRaft::<S::Sm>::new(id, config, factory, log, sm)
                .await
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| format!("starting node {id}: {e}"))?
        .map_err(|e| format!("starting node {id}: {e}"))?;
        self.net.up(id, raft);
        self.up.borrow_mut().insert(id);
        note(format!("node {id} up"));
        Ok(())
    }

    /// Crash node `id`: drop all its tasks, take it off the network, lose unsynced data.
    pub fn crash(&self, id: NodeId) {
        if !self.up.borrow_mut().remove(&id) {
            return;
        }
        let handle = self.net.down(id);
        let killed = kill_node(id);
        drop(handle);
        let lost = self.storage.crash(id);
        let saved = self.storage.durable_committed(id);
        self.checker.on_crash(id, saved);
        note(format!(
            "node {id} CRASHED ({killed} tasks killed, {lost} unsynced writes lost)"
        ));
    }

    /// Check every up node and the quorum durability of commits (after every poll, and at
    /// every monitor tick). Stops checking after the first violation.
    pub fn check(&self) {
        if self.checker.failed() {
            return;
        }
        for id in self.up_nodes() {
            let Some(raft) = self.net.get(id) else {
                continue;
            };
            let rx = raft.metrics();
            let m = rx.borrow_watched();
            if let Err(fatal) = &m.running_state {
                self.checker
                    .report(format!("node {id} stopped with a fatal error: {fatal}"));
            }
            let storage = &self.storage;
            self.checker
                .observe_metrics(id, &m, |lid| storage.log_has(id, lid));
        }
        if self.check_durable_quorum {
            self.checker
                .check_durable_quorum(&*self.storage, &self.voters);
        }
        let panics = task_panics();
        if let Some(first) = panics.first() {
            self.checker
                .report(format!("{} task(s) panicked, first: {first}", panics.len()));
        }
    }

    /// Heal everything: links, faults, crashed nodes.
    pub async fn heal_all(&self) -> Result<(), String> {
        self.net.heal();
        self.net.clear_link_faults();
        self.net.set_default_faults(LinkFaults::default());
        for id in self.voters.clone() {
            self.start(id).await?;
        }
        note("healed: all links restored, all nodes up".to_string());
        Ok(())
    }

    /// Wait (bounded) until one leader has committed and every node applied everything.
    pub async fn converge(&self) -> Result<NodeId, String> {
        let deadline = now() + CONVERGE_WITHIN;
        loop {
            if let Some(leader) = self.converged() {
                return Ok(leader);
            }
            if now() >= deadline {
                return Err(format!(
                    "liveness: the healed group did not converge within {CONVERGE_WITHIN:?}"
                ));
            }
            SimRuntime::sleep(Duration::from_millis(10)).await;
            self.check();
        }
    }

    fn converged(&self) -> Option<NodeId> {
        let metrics: BTreeMap<NodeId, _> = self
            .voters
            .iter()
            .map(|id| Some((*id, self.net.get(*id)?.metrics().borrow_watched().clone())))
            .collect::<Option<_>>()?;
        let leaders: Vec<NodeId> = metrics
            .values()
            .filter(|m| m.state == openraft::ServerState::Leader)
            .map(|m| m.id)
            .collect();
        let [leader] = leaders.as_slice() else {
            return None;
        };
        let lm = &metrics[leader];
        let committed = lm.local_committed?;
        if lm.last_log_index != Some(committed.index) || lm.last_quorum_acked.is_none() {
            return None;
        }
        let all_applied = metrics
            .values()
            .all(|m| m.last_applied == Some(committed) && m.current_leader == Some(*leader));
        all_applied.then_some(*leader)
    }
}

/// Run one seed with the storage `params.wal` selects: the real WAL log store, or the
/// simulation's own model.
pub fn run(params: &SimParams) -> RunReport {
    if params.wal {
        run_with(params, WalStorage::new(params.ack_before_sync))
    } else {
        run_with(params, MemStorage::new(params.ack_before_sync))
    }
}

/// Run one seed over `storage`.
pub fn run_with<S: StorageModel>(params: &SimParams, storage: S) -> RunReport {
    let mut rt = SimRuntime::with_seed(params.seed, params.shuffle);
    rt.sim().trace.set_echo(params.echo);
    let wal = params.wal;
    let params = params.clone();
    let mut report = rt.block_on(async move {
        let mut report = RunReport {
            seed: params.seed,
            ..Default::default()
        };
        match Cluster::new(&params, storage) {
            Ok(cluster) => drive(&params, &cluster, &mut report).await,
            Err(e) => report.violations.push(format!("setup: {e}")),
        }
        report
    });
    report.trace_hash = rt.sim().trace.hash();
    if wal {
        report.replay_env = "SHOAL_SIM_WAL=1 ".into();
    }
    report.events = rt.sim().trace.events();
    report.recent = rt.sim().trace.recent();
    report
}

async fn drive<S: StorageModel>(
    params: &SimParams,
    cluster: &Rc<Cluster<S>>,
    report: &mut RunReport,
) {
    let history: History = Rc::new(RefCell::new(Vec::new()));
    let result = phases(params, cluster, &history).await;
    crate::runtime::set_step_hook(None);
    if let Err(e) = result {
        cluster.checker.report(e);
    }
    let ops = history.borrow();
    for op in ops.iter() {
        match op.outcome {
            history::Outcome::Ok(_) => report.ops.0 += 1,
            history::Outcome::Fail => report.ops.1 += 1,
            history::Outcome::Unknown => report.ops.2 += 1,
        }
    }
    report.violations = cluster.checker.violations();
    report.faults = *cluster.faults.borrow();
    report.net = cluster.net.stats();
    (report.appends, report.applies) = cluster.checker.counts();
    report.disk = cluster.storage.disk_stats();
    report.snapshots = cluster.storage.snapshot_stats();
    report.virtual_time = now().since_start();
}

async fn phases<S: StorageModel>(
    params: &SimParams,
    cluster: &Rc<Cluster<S>>,
    history: &History,
) -> Result<(), String> {
    for id in cluster.voters.clone() {
        cluster.start(id).await?;
    }
    // Invariants after every step (every poll of any task).
    let weak = Rc::downgrade(cluster);
    crate::runtime::set_step_hook(Some(Rc::new(move || {
        if let Some(c) = weak.upgrade() {
            c.check();
        }
    })));
    let first = cluster.raft(1).ok_or("node 1 is not up")?;
    let members: BTreeMap<NodeId, ShoalNode> = cluster
        .voters
        .iter()
        .map(|id| (*id, node_addr(*id)))
        .collect();
    first
        .initialize(members)
        .await
        .map_err(|e| format!("initialize: {e}"))?;

    let env = ClientEnv {
        net: cluster.net.clone(),
        storage: cluster.storage.clone(),
        voters: cluster.voters.clone(),
        history: history.clone(),
        keys: params.keys,
        stale_reads: params.stale_reads,
    };
    let mut clients = Vec::new();
    for c in 0..params.clients {
        clients.push(spawn_tagged(0, env.clone().run_client(c, params.duration)));
    }
    if params.faults {
        drop(spawn_tagged(
            0,
            crate::nemesis::run(cluster.clone(), params.duration),
        ));
    }
    // Monitor until the fault phase ends (or the first violation).
    while now().since_start() < params.duration && !cluster.checker.failed() {
        SimRuntime::sleep(MONITOR_TICK).await;
        cluster.check();
    }
    if cluster.checker.failed() {
        return Ok(());
    }
    for c in clients {
        // Clients stop at `duration`; an op in flight ends within its timeout.
        let _ = c.await;
    }
    cluster.heal_all().await?;
    let leader = cluster.converge().await?;
    // Final reads of every key, then the history check.
    let mut env_final = env.clone();
    env_final.stale_reads = false;
    for k in 0..params.keys {
        env_final
            .read(u64::MAX, leader, crate::workload::key(k))
            .await;
    }
    cluster.check();
    let digests: BTreeSet<Option<u64>> = cluster
        .voters
        .iter()
        .map(|id| cluster.storage.state_digest(*id))
        .collect();
    if digests.len() != 1 {
        cluster.checker.report(format!(
            "replicas diverged after convergence: state digests {digests:?}"
        ));
    }
    let log: BTreeMap<u64, Command> = cluster
        .checker
        .commands()
        .into_iter()
        .filter_map(|(i, c)| {
            Command::decode(&shoal::raft::types::Request { command: c }).map(|c| (i, c))
        })
        .collect();
    for v in history::check(&history.borrow(), &log) {
        cluster.checker.report(format!("history: {v}"));
    }
    Ok(())
}
