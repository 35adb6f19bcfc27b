//! Command-line flags of `shoal` (the node), layered over the config file.
//!
//! Every flag is optional: an absent flag leaves the file's (or the default) value alone,
//! so `shoal` with no flags runs a single node on defaults.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::{LogFormat, Member, NodeConfig, PeerRoute, WalSyncMode};

/// Flags of the node. Each overrides the same setting of the `--config` file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct NodeArgs {
    /// TOML file with settings (flags given on the command line override it).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// This node's id (>= 1).
    #[arg(long)]
    pub node_id: Option<u64>,
    /// Data directory [default: ./shoal-data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Client address of shard 0; shard s listens on port + s [default: 127.0.0.1:7400].
    #[arg(long, value_name = "IP:PORT")]
    pub client_addr: Option<SocketAddr>,
    /// Peer (Raft) address of shard 0; shard s listens on port + s [default: 127.0.0.1:7600].
    #[arg(long, value_name = "IP:PORT")]
    pub peer_addr: Option<SocketAddr>,
    /// Redis protocol (RESP) address of shard 0; shard s listens on port + s. Off unless
    /// given.
    #[arg(long, value_name = "IP:PORT")]
    pub resp_addr: Option<SocketAddr>,
    /// Number of shards, one per core [default: number of cores].
    #[arg(long)]
    pub shards: Option<usize>,
    /// An initial cluster member as ID=CLIENT_ADDR/PEER_ADDR, e.g.
    /// 2=127.0.0.1:7410/127.0.0.1:7610; repeat for each member, this node included.
    #[arg(long = "member", value_name = "ID=CLIENT/PEER", value_parser = parse_member)]
    pub members: Vec<Member>,
    /// Join the cluster whose initial members the --member flags name, instead of forming
    /// one: the node waits to be added with `shoal cluster add-learner`.
    #[arg(long)]
    pub join: bool,
    /// Dial node ID's peers at ADDR (its shard 0; shard s at port + s) instead of its
    /// advertised peer address; repeat per node. For proxies in tests.
    #[arg(long = "peer-route", value_name = "ID=ADDR", value_parser = parse_peer_route)]
    pub peer_routes: Vec<PeerRoute>,
    /// Maximum concurrent client connections.
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Maximum requests in flight per connection (more are answered Busy).
    #[arg(long)]
    pub max_in_flight_per_connection: Option<usize>,
    /// Maximum requests in flight per shard (more are answered Busy).
    #[arg(long)]
    pub max_in_flight_per_shard: Option<usize>,
    /// Request timeout in milliseconds.
    #[arg(long, value_name = "MS")]
    pub request_timeout_ms: Option<u64>,
    /// Raft heartbeat interval in milliseconds.
    #[arg(long, value_name = "MS")]
    pub heartbeat_ms: Option<u64>,
    /// Raft election timeout, lower bound, in milliseconds.
    #[arg(long, value_name = "MS")]
    pub election_min_ms: Option<u64>,
    /// Raft election timeout, upper bound, in milliseconds.
    #[arg(long, value_name = "MS")]
    pub election_max_ms: Option<u64>,
    /// Snapshot after this many applied entries.
    #[arg(long, value_name = "N")]
    pub snapshot_every: Option<u64>,
    /// WAL segment size in MiB.
    #[arg(long, value_name = "MIB")]
    pub wal_segment_mib: Option<u64>,
    /// How the WAL makes a write durable: `uring` (default), `inline` (fdatasync on the
    /// shard's thread: lowest latency with a core per shard), `thread`. Every mode
    /// fdatasyncs before a write is acknowledged.
    #[arg(long, value_enum, value_name = "MODE")]
    pub wal_sync_mode: Option<WalSyncMode>,
    /// Log filter, e.g. `info` or `shoal=debug,openraft=warn`.
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,
    /// Log format.
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Microseconds a shard's executor spins for more work before it sleeps (0: never
    /// spin). Burns CPU while idle-but-recently-busy; saves a wake-up per request.
    #[arg(long, value_name = "US")]
    pub spin_before_park_us: Option<u64>,
    /// Core of shard 0; shard s is pinned to core (N + s) mod cores [default: 0]. Give
    /// each node of a cluster sharing one machine its own N, so their shards do not all
    /// land on core 0.
    #[arg(long, value_name = "N")]
    pub first_core: Option<usize>,
    /// Most append-entries requests a leader has on the wire to one follower at once.
    #[arg(long, value_name = "N")]
    pub append_pipeline_depth: Option<usize>,
    /// Microseconds a commit-only append is held for the next request to carry it (0: off).
    #[arg(long, value_name = "US")]
    pub commit_linger_us: Option<u64>,
    /// TEST-ONLY: acknowledge writes before they are durable (the negative control of the
    /// crash-durability test). Loses acknowledged writes on a crash.
    #[arg(long, hide = true)]
    pub unsafe_ack_before_fsync: bool,
    /// TEST-ONLY: shift this node's wall clock (TTLs) by MS milliseconds (may be negative).
    #[arg(long, hide = true, value_name = "MS", allow_negative_numbers = true)]
    pub clock_offset_ms: Option<i64>,
    /// TEST-ONLY: serve linearizable reads from the local state without ReadIndex or lease
    /// (the negative control of the stale-read checks). Serves stale reads.
    #[arg(long, hide = true)]
    pub unsafe_local_reads: bool,
}

impl NodeArgs {
    /// Writes every given flag over `config`.
    pub(super) fn apply(&self, config: &mut NodeConfig) {
        fn set<T: Clone>(slot: &mut T, flag: &Option<T>) {
            if let Some(v) = flag {
                *slot = v.clone();
            }
        }
        set(&mut config.node_id, &self.node_id);
        set(&mut config.data_dir, &self.data_dir);
        set(&mut config.client_addr, &self.client_addr);
        set(&mut config.peer_addr, &self.peer_addr);
        set(&mut config.shards, &self.shards);
        if self.resp_addr.is_some() {
            config.resp_addr = self.resp_addr;
        }
        if !self.members.is_empty() {
            config.members = self.members.clone();
        }
        if self.join {
            config.join = true;
        }
        if !self.peer_routes.is_empty() {
            config.peer_routes = self.peer_routes.clone();
        }
        let l = &mut config.limits;
        set(&mut l.max_connections, &self.max_connections);
        set(
            &mut l.max_in_flight_per_connection,
            &self.max_in_flight_per_connection,
        );
        set(
            &mut l.max_in_flight_per_shard,
            &self.max_in_flight_per_shard,
        );
        let t = &mut config.timeouts;
        set(&mut t.request_ms, &self.request_timeout_ms);
        set(&mut t.heartbeat_ms, &self.heartbeat_ms);
        set(&mut t.election_min_ms, &self.election_min_ms);
        set(&mut t.election_max_ms, &self.election_max_ms);
        set(&mut config.snapshot.every_entries, &self.snapshot_every);
        set(&mut config.wal.segment_mib, &self.wal_segment_mib);
        set(&mut config.wal.sync_mode, &self.wal_sync_mode);
        set(&mut config.log.level, &self.log_level);
        set(&mut config.log.format, &self.log_format);
        set(
            &mut config.executor.spin_before_park_us,
            &self.spin_before_park_us,
        );
        set(&mut config.executor.first_core, &self.first_core);
        set(
            &mut config.replication.append_pipeline_depth,
            &self.append_pipeline_depth,
        );
        set(
            &mut config.replication.commit_linger_us,
            &self.commit_linger_us,
        );
        if self.unsafe_ack_before_fsync {
            config.unsafe_ack_before_fsync = true;
        }
        set(&mut config.clock_offset_ms, &self.clock_offset_ms);
        if self.unsafe_local_reads {
            config.unsafe_local_reads = true;
        }
    }
}

/// Parses `ID=ADDR`.
pub(super) fn parse_peer_route(s: &str) -> Result<PeerRoute, String> {
    let shape = "expected ID=PEER_ADDR, e.g. 2=127.0.0.1:9610";
    let (id, addr) = s.split_once('=').ok_or_else(|| format!("`{s}`: {shape}"))?;
    let id = id
        .trim()
        .parse::<u64>()
        .map_err(|e| format!("`{s}`: bad node id: {e}"))?;
    let peer_addr = addr
        .trim()
        .parse()
        .map_err(|e| format!("`{s}`: bad address: {e}"))?;
    Ok(PeerRoute { id, peer_addr })
}

/// Parses `ID=CLIENT_ADDR/PEER_ADDR`.
pub(super) fn parse_member(s: &str) -> Result<Member, String> {
    let shape = "expected ID=CLIENT_ADDR/PEER_ADDR, e.g. 2=127.0.0.1:7410/127.0.0.1:7610";
    let (id, addrs) = s.split_once('=').ok_or_else(|| format!("`{s}`: {shape}"))?;
    let (client, peer) = addrs
        .split_once('/')
        .ok_or_else(|| format!("`{s}`: {shape}"))?;
    let id = id
        .trim()
        .parse::<u64>()
        .map_err(|e| format!("`{s}`: bad node id: {e}"))?;
    let client_addr = client
        .trim()
        .parse()
        .map_err(|e| format!("`{s}`: bad client address: {e}"))?;
    let peer_addr = peer
        .trim()
        .parse()
        .map_err(|e| format!("`{s}`: bad peer address: {e}"))?;
    Ok(Member {
        id,
        client_addr,
        peer_addr,
    })
}
