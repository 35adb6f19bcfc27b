//! One shard's thread: a glommio `LocalExecutor` pinned to a core that opens the shard's
//! WAL and snapshots, starts its Raft group, serves clients and peers, ticks TTLs, and
//! stops gracefully.
//!
//! Start order (each step only after the previous one succeeded):
//! 1. WAL (recovery scan) → log store; snapshot dir → state machine (newest snapshot).
//! 2. `Raft::new`: openraft installs the snapshot and re-applies the log up to the saved
//!    committed index, so the state is back where it was before the stop or crash.
//! 3. A pristine group is initialized: alone on a single node, or with every configured
//!    member by the member with the lowest id; a joining node's groups stay uninitialized
//!    until a leader adds this node as a learner.
//! 4. Listeners bind; the TTL ticker starts; on a single node the group is awaited until
//!    it leads with a quorum-acked lease, so the first request is served at once.
//! 5. `ready` is reported.
//!
//! Stop order: the server stops accepting and drains in-flight requests; the ticker
//! stops; the group shuts down (its storage is dropped after openraft's last write, each
//! write already durable); `done` is reported.
//!
//! Invariant: nothing of this shard leaves its thread except through the mesh and the
//! `ready`/`done` reports.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use glommio::{LocalExecutorBuilder, Placement};
use shoal_proto::RaftRole;
use thiserror::Error;
use tokio::sync::{oneshot, watch};

use super::mesh::{Inbox, Mesh};
use super::raft_config::{peer_config, raft_config};
use crate::config::NodeConfig;
use crate::raft::log_store::{AckMode, WalLogStore};
use crate::raft::state_machine::ShardStateMachine;
use crate::raft::types::{Raft, ShoalNode};
use crate::server::{Server, ServerConfig};

use crate::node::ShardService;
use crate::peer::{PeerNetwork, PeerServer};
use crate::shard::ShardCore;
use crate::shard::clock::now_ms;
use crate::shard::ttl_ticker::run_ttl_ticker;
use crate::state::State;
use shoal_proto::LocalPeer;
use shoal_wal::GlommioDisk;

/// Under the test-only `unsafe_ack_before_fsync`, every WAL write waits this long before
/// it starts: acknowledged entries then stay in memory for at least this long, so a
/// `kill -9` of a majority loses some on a fast disk too, and the negative controls that
/// must report such losses (`tests/node_crash.rs`, `tests/faults_cluster.rs`) do not
/// depend on the disk being slow.
const UNSAFE_ACK_WRITE_DELAY: Duration = Duration::from_millis(20);

/// How long a single-node group may take to lead after start before the shard reports
/// a failure (an election on one voter takes one election timeout).
const SINGLE_NODE_LEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a serving shard checks that its group is still running (a poisoned WAL
/// stops the group; the shard then stops serving).
const GROUP_HEALTH_POLL: Duration = Duration::from_millis(100);

/// Bound on stopping a group (a group that panicked may never answer).
const RAFT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a shard failed.
#[derive(Debug, Error)]
pub enum ShardError {
    /// The WAL or its log store failed (open, recovery, write or sync).
    #[error("WAL: {0}")]
    Wal(String),
    /// The snapshot store or state machine failed.
    #[error("state machine: {0}")]
    StateMachine(String),
    /// The Raft group failed or refused its configuration.
    #[error("raft: {0}")]
    Raft(String),
    /// A listener could not bind or the server failed.
    #[error("server: {0}")]
    Server(String),
}

/// What a shard reports once it serves.
#[derive(Debug, Clone)]
pub struct ShardReady {
    /// The shard.
    pub shard: usize,
    /// Where its client listener is bound.
    pub client_addr: SocketAddr,
    /// Its role in its group when it became ready.
    pub role: RaftRole,
    /// The group's term.
    pub term: u64,
    /// Index of the last applied entry (recovered state on a restart).
    pub applied_index: Option<u64>,
    /// Keys held.
    pub keys: usize,
}

/// Everything a shard thread is given.
#[derive(Debug)]
pub struct ShardContext {
    pub shard: usize,
    /// The CPU the executor is pinned to.
    pub core: usize,
    pub config: Arc<NodeConfig>,
    pub wal_dir: PathBuf,
    pub snapshot_dir: PathBuf,
    pub mesh: Mesh,
    pub inbox: Inbox,
    pub stop: watch::Receiver<bool>,
    pub ready: oneshot::Sender<Result<ShardReady, Arc<ShardError>>>,
    pub done: oneshot::Sender<Result<(), Arc<ShardError>>>,
}

/// Starts the shard's executor thread.
pub fn spawn_shard(ctx: ShardContext) -> Result<glommio::ExecutorJoinHandle<()>, String> {
    let name = format!("shard-{}", ctx.shard);
    let mut builder = LocalExecutorBuilder::new(Placement::Fixed(ctx.core)).name(&name);
    // Spinning before parking (`executor.spin_before_park_us`): a request from the mesh
    // or a socket that arrives within the window is seen by the executor's poll loop,
    // which also drains foreign wakes (tokio senders), so neither the sender's eventfd
    // write nor the kernel wake-up of a sleeping thread is paid. glommio only spins on a
    // pinned executor (`Placement::Fixed`), which shards always are.
    if let Some(spin) = ctx.config.executor.spin_before_park() {
        builder = builder.spin_before_park(spin);
    }
    builder
        .spawn(move || shard_main(ctx))
        .map_err(|e| e.to_string())
}

async fn shard_main(ctx: ShardContext) {
    let ShardContext {
        shard,
        core: _,
        config,
        wal_dir,
        snapshot_dir,
        mesh,
        inbox,
        stop,
        ready,
        done,
    } = ctx;
    let mut ready = Some(ready);
    let dirs = (wal_dir, snapshot_dir);
    let result = serve(shard, &config, dirs, mesh, inbox, stop, &mut ready)
        .await
        .map_err(Arc::new);
    if let Err(e) = &result {
        tracing::error!(shard, error = %e, "shard stopped with an error");
        if let Some(r) = ready.take() {
            let _ = r.send(Err(e.clone()));
        }
    } else {
        tracing::info!(shard, "shard stopped");
    }
    // The receiver may be gone when the application dropped its handle: nothing to do.
    let _ = done.send(result);
}

async fn serve(
    shard: usize,
    config: &NodeConfig,
    (wal_dir, snapshot_dir): (PathBuf, PathBuf),
    mesh: Mesh,
    inbox: Inbox,
    mut stop: watch::Receiver<bool>,
    ready: &mut Option<oneshot::Sender<Result<ShardReady, Arc<ShardError>>>>,
) -> Result<(), ShardError> {
    let node_id = config.node_id;
    let shard_count = config.shards as u32;

    // 1. Storage.
    let wal_err =
        |e: &dyn std::fmt::Display| ShardError::Wal(format!("{}: {e}", wal_dir.display()));
    let disk = GlommioDisk::open(&wal_dir, config.wal.sync_mode.disk_mode())
        .await
        .map_err(|e| wal_err(&e))?;
    let (disk, ack) = if config.unsafe_ack_before_fsync {
        tracing::warn!(
            shard,
            "UNSAFE: acknowledging writes before they are durable (test-only switch)"
        );
        (
            disk.with_write_delay(UNSAFE_ACK_WRITE_DELAY),
            AckMode::BeforeFsyncUnsafe,
        )
    } else {
        (disk, AckMode::AfterFsync)
    };
    let (log, report) = WalLogStore::open(disk, wal_config(config), ack)
        .await
        .map_err(|e| wal_err(&e))?;
    tracing::debug!(shard, ?report, "WAL recovered");
    // What recovery cut or skipped is never silent (docs/WAL.md, "Recovery rule").
    if let Some(t) = &report.torn_tail {
        tracing::warn!(
            shard,
            "WAL recovery cut a torn tail in {} at byte offset {} (discarded bytes up to {}: {}); \
             it held only a write that was never acknowledged",
            t.file,
            t.offset,
            t.garbage_end,
            t.reason
        );
    }
    if let Some(d) = &report.meta_damage {
        tracing::warn!(
            shard,
            "WAL metadata: {d}; using the other slot (a torn save, or damage that looks like one)"
        );
    }
    // Raft owns the store; this clone closes the log after the group stopped (final sync,
    // exact committed index saved), so a graceful restart re-applies nothing it need not.
    let log_closer = log.clone();
    let state = Rc::new(RefCell::new(State::new()));
    let sm = ShardStateMachine::open(snapshot_dir.clone(), state.clone(), Rc::new(now_ms))
        .await
        .map_err(|e| ShardError::StateMachine(format!("{}: {e}", snapshot_dir.display())))?;

    // 2. The group (recovers the state from the snapshot and the log).
    let raft_cfg = raft_config(config, shard).map_err(|e| ShardError::Raft(e.to_string()))?;
    let cluster = cluster_id(config);
    let local = LocalPeer {
        cluster_id: cluster,
        node_id,
        shard_count,
    };
    let peer_cfg = peer_config(config, local, shard);
    let network = PeerNetwork::new(peer_cfg.clone());
    let raft: Raft<ShardStateMachine> = Raft::new(node_id, raft_cfg, network, log, sm)
        .await
        .map_err(|e| ShardError::Raft(e.to_string()))?;

    // 3. A pristine group is initialized once.
    let initialized = raft
        .is_initialized()
        .await
        .map_err(|e| ShardError::Raft(e.to_string()))?;
    if !initialized && !config.join {
        let members = initial_members(config);
        let lowest = members.keys().next().copied();
        if lowest == Some(node_id) {
            raft.initialize(members)
                .await
                .map_err(|e| ShardError::Raft(format!("initialize: {e}")))?;
        }
    }

    // 4. Serve.
    let core = Rc::new(ShardCore::new(
        shard as u32,
        shard_count,
        node_id,
        raft.clone(),
        state.clone(),
    ));
    core.set_unsafe_local_reads(config.unsafe_local_reads);
    let peer_addr = config.shard_peer_addr(shard);
    let peers = PeerServer::bind(peer_addr, peer_cfg, raft.clone())
        .map_err(|e| ShardError::Server(format!("peer listener {peer_addr}: {e}")))?;
    let server_cfg = ServerConfig::for_shard(config, shard as u32, cluster);
    let service: Rc<dyn ShardService> = core.clone();
    let server = Server::bind(server_cfg, service, mesh, inbox)
        .await
        .map_err(|e| ShardError::Server(e.to_string()))?;
    let client_addr = server.local_addr();
    let (ticker_stop, ticker_stop_rx) = watch::channel(false);
    let ticker = glommio::spawn_local(run_ttl_ticker(state.clone(), ticker_stop_rx)).detach();

    if config.members.is_empty() {
        raft.wait(Some(SINGLE_NODE_LEAD_TIMEOUT))
            .leader_with_quorum_acked(None, "single-node group leads")
            .await
            .map_err(|e| ShardError::Raft(format!("the single-node group did not lead: {e}")))?;
    }

    // 5. Ready.
    let status = core.group_status();
    let report = ShardReady {
        shard,
        client_addr,
        role: status.role,
        term: status.term,
        applied_index: status.applied_index,
        keys: state.borrow().len(),
    };
    if let Some(r) = ready.take() {
        let _ = r.send(Ok(report));
    }

    // Serve until asked to stop, or until the group dies (a poisoned WAL: never retried).
    //
    // The watchdog runs in its own task and fires `shutdown` exactly once. The server's
    // task must not be woken for anything else: glommio keeps one waker copy per poll of
    // a pending accept and never deduplicates them, so a task that wakes often while its
    // accept is pending overflows the 16-bit waker count (a panic seen under load when
    // the shutdown future waited on the Raft metrics, which change on every write).
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let health = core.clone();
    let watchdog = glommio::spawn_local(async move {
        let stop_requested = async {
            while !*stop.borrow_and_update() {
                if stop.changed().await.is_err() {
                    return;
                }
            }
        };
        // Polled: the metrics watch changes on every write, and a panicked group still
        // reports `Ok` there (only a call sees it), which `failure` covers.
        let group_failed = async {
            loop {
                glommio::timer::sleep(GROUP_HEALTH_POLL).await;
                if health.failure().is_some() {
                    return;
                }
            }
        };
        futures::pin_mut!(stop_requested, group_failed);
        futures::future::select(stop_requested, group_failed).await;
        let _ = shutdown_tx.send(());
    })
    .detach();
    let shutdown = async move {
        // An error means the watchdog is gone, which only happens once it fired.
        let _ = shutdown_rx.await;
    };
    let (peers_stop, mut peers_stop_rx) = watch::channel(false);
    let peers = glommio::spawn_local(peers.run(async move {
        let _ = peers_stop_rx.wait_for(|stop| *stop).await;
    }))
    .detach();
    let drained = server.run(shutdown).await;
    tracing::info!(shard, ?drained, "client server drained");
    watchdog.cancel();
    peers_stop.send_replace(true);
    peers.await;

    ticker_stop.send_replace(true);
    ticker.await;
    let failure = core.failure();
    // A group that panicked may not answer a shutdown: bound it, the process must exit.
    match glommio::timer::timeout(RAFT_SHUTDOWN_TIMEOUT, async { Ok(raft.shutdown().await) }).await
    {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(ShardError::Raft(format!("shutdown: {e}"))),
        Err(_) => {
            return Err(ShardError::Raft(format!(
                "the group did not stop within {RAFT_SHUTDOWN_TIMEOUT:?}"
            )));
        }
    }
    if failure.is_none() {
        log_closer
            .close()
            .await
            .map_err(|e| ShardError::Wal(format!("{}: close: {e}", wal_dir.display())))?;
    }
    match failure {
        Some(f) => Err(ShardError::Raft(format!("the group stopped: {f}"))),
        None => Ok(()),
    }
}

/// The members a pristine group starts with: this node alone, or every configured member.
fn initial_members(config: &NodeConfig) -> BTreeMap<u64, ShoalNode> {
    if config.members.is_empty() {
        return BTreeMap::from([(
            config.node_id,
            ShoalNode {
                client_addr: config.client_addr.to_string(),
                peer_addr: config.peer_addr.to_string(),
            },
        )]);
    }
    config
        .members
        .iter()
        .map(|m| {
            (
                m.id,
                ShoalNode {
                    client_addr: m.client_addr.to_string(),
                    peer_addr: m.peer_addr.to_string(),
                },
            )
        })
        .collect()
}

/// The cluster's identity: a hash of its initial member ids (this node alone for a single
/// node), so every member computes the same value and a client or peer of another cluster
/// is refused at its handshake.
pub fn cluster_id(config: &NodeConfig) -> u64 {
    let mut ids: Vec<u64> = if config.members.is_empty() {
        vec![config.node_id]
    } else {
        config.members.iter().map(|m| m.id).collect()
    };
    ids.sort_unstable();
    let mut bytes = b"shoal-cluster".to_vec();
    for id in ids {
        bytes.extend_from_slice(&id.to_le_bytes());
    }
    xxhash_rust::xxh3::xxh3_64(&bytes)
}

fn wal_config(config: &NodeConfig) -> shoal_wal::WalConfig {
    let defaults = shoal_wal::WalConfig::default();
    let segment_size = config.wal.segment_mib << 20;
    // One write must fit in a segment with its start record: small segments get half a
    // segment per write (config validation keeps segments >= 8 MiB, so a write still holds
    // the largest entry; segment sizes are whole MiB, so this stays block-aligned).
    shoal_wal::WalConfig {
        segment_size,
        max_write: defaults.max_write.min(segment_size / 2),
        ..defaults
    }
}
