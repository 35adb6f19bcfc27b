//! Node configuration: every setting of a node, where it comes from, and its validation.
//!
//! Settings are layered: built-in defaults, then the TOML file given by `--config`, then
//! command-line flags (highest). [`NodeConfig::load`] resolves the layers and validates
//! the result; an invalid setting is refused at start with a message naming the setting,
//! the bad value and what is allowed. Nothing here touches the network or the data dir.
//!
//! Invariant: a `NodeConfig` returned by `load` or `validate` is valid (ports fit every
//! shard, timeouts are ordered, limits are within the hard maxima of [`crate::limits`]).

mod args;
mod executor;
mod file;
mod replication;
mod wal;

pub use args::NodeArgs;
pub use executor::{DEFAULT_SPIN_BEFORE_PARK_US, ExecutorConfig, MAX_SPIN_BEFORE_PARK_US};
pub use replication::{MAX_COMMIT_LINGER_US, ReplicationConfig};
pub use wal::{WalConfig, WalSyncMode};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shoal_proto::NodeInfo;

use crate::limits;

/// Default port of shard 0's client listener; shard `s` listens on `port + s`.
pub const DEFAULT_CLIENT_PORT: u16 = 7400;
/// Default port of shard 0's peer (Raft) listener; shard `s` listens on `port + s`.
pub const DEFAULT_PEER_PORT: u16 = 7600;
/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "./shoal-data";

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid setting `{setting}` = {value}: {reason}")]
    Invalid {
        setting: &'static str,
        value: String,
        reason: String,
    },
}

impl ConfigError {
    fn invalid(setting: &'static str, value: impl ToString, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            setting,
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (the default).
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// One member of the initial cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// Node id, unique in the cluster, at least 1.
    pub id: u64,
    /// Client address of the node's shard 0 (shard `s` at port + s).
    pub client_addr: SocketAddr,
    /// Peer address of the node's shard 0 (shard `s` at port + s).
    pub peer_addr: SocketAddr,
}

/// A local override of where this node dials another node's peers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerRoute {
    /// The node reached through `peer_addr` instead of its advertised peer address.
    pub id: u64,
    /// Shard 0's address to dial (group `g` at port + `g`): a proxy, a NAT mapping...
    pub peer_addr: SocketAddr,
}

/// Operator-tunable limits; each may be lowered below, never raised above, its hard maximum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    pub max_connections: usize,
    pub max_in_flight_per_connection: usize,
    pub max_in_flight_per_shard: usize,
    pub shard_queue_depth: usize,
    pub max_key_len: usize,
    pub max_value_len: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_connections: limits::DEFAULT_MAX_CONNECTIONS,
            max_in_flight_per_connection: limits::DEFAULT_MAX_IN_FLIGHT_PER_CONNECTION,
            max_in_flight_per_shard: limits::DEFAULT_MAX_IN_FLIGHT_PER_SHARD,
            shard_queue_depth: limits::DEFAULT_SHARD_QUEUE_DEPTH,
            max_key_len: limits::MAX_KEY_LEN,
            max_value_len: limits::MAX_VALUE_LEN,
        }
    }
}

/// Timeouts, in milliseconds in the file and flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimeoutsConfig {
    /// A client request not answered within this time is answered `Timeout`.
    pub request_ms: u64,
    /// Raft heartbeat interval.
    pub heartbeat_ms: u64,
    /// Raft election timeout range; a follower that hears no leader for a random time in
    /// `[min, max)` starts an election.
    pub election_min_ms: u64,
    pub election_max_ms: u64,
    /// Bound on one peer RPC (append entries, vote, snapshot chunk).
    pub peer_rpc_ms: u64,
}

impl Default for TimeoutsConfig {
    fn default() -> Self {
        TimeoutsConfig {
            request_ms: 5_000,
            heartbeat_ms: 50,
            election_min_ms: 300,
            election_max_ms: 600,
            peer_rpc_ms: 1_000,
        }
    }
}

impl TimeoutsConfig {
    pub fn request(&self) -> Duration {
        Duration::from_millis(self.request_ms)
    }
}

/// When to snapshot the state machine and purge the log behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SnapshotConfig {
    /// Build a snapshot once this many entries were applied since the last one.
    pub every_entries: u64,
    /// Entries kept in the log behind the latest snapshot, so slightly lagging followers
    /// catch up from the log instead of a snapshot.
    pub keep_entries: u64,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        SnapshotConfig {
            every_entries: 100_000,
            keep_entries: 10_000,
        }
    }
}

/// Logging settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter: `info`, `shoal=debug,openraft=warn`, ...
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info,openraft=warn".into(),
            format: LogFormat::Text,
        }
    }
}

/// The whole, validated configuration of one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// This node's id; with no `members`, the node forms a one-node cluster under it.
    pub node_id: u64,
    pub data_dir: PathBuf,
    /// Client address of shard 0; shard `s` listens on port + s.
    pub client_addr: SocketAddr,
    /// Peer address of shard 0; shard `s` listens on port + s.
    pub peer_addr: SocketAddr,
    /// Number of shards; 0 means one per available core. Fixed when the data dir is
    /// created and the same on every node of a cluster.
    pub shards: usize,
    /// The initial members of the cluster (including this node); empty for a single node.
    pub members: Vec<Member>,
    /// Join an existing cluster instead of forming one: `members` are that cluster's
    /// initial members (this node not among them, they name the cluster), and this node's
    /// groups wait, uninitialized, to be added as learners (`shoal cluster add-learner`).
    pub join: bool,
    /// Dial these nodes' peers at these addresses instead of the addresses the group
    /// membership advertises (only this node's outgoing connections change). Lets a test
    /// put a fault proxy on each directed link between two nodes.
    pub peer_routes: Vec<PeerRoute>,
    pub limits: LimitsConfig,
    pub timeouts: TimeoutsConfig,
    pub snapshot: SnapshotConfig,
    pub wal: WalConfig,
    pub log: LogConfig,
    pub executor: ExecutorConfig,
    pub replication: ReplicationConfig,
    /// TEST-ONLY negative control of the crash-durability test: acknowledge writes as soon
    /// as they are appended in memory, before they are written and fdatasync'd. Loses
    /// acknowledged writes on a crash; never set it anywhere else.
    pub unsafe_ack_before_fsync: bool,
    /// TEST-ONLY: milliseconds added to this node's wall clock (`shard::clock::now_ms`, the
    /// only clock read for TTLs), to model clock skew between nodes. 0 everywhere else.
    pub clock_offset_ms: i64,
    /// TEST-ONLY negative control of the stale-read checks: a leader serves linearizable
    /// and lease reads from its local state without confirming leadership (no ReadIndex,
    /// no lease). A paused or isolated old leader then serves stale reads.
    pub unsafe_local_reads: bool,
    /// Redis protocol (RESP) address of shard 0; shard `s` listens on port + s. `None`
    /// (the default): no RESP listener.
    pub resp_addr: Option<SocketAddr>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            node_id: 1,
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            client_addr: SocketAddr::from(([127, 0, 0, 1], DEFAULT_CLIENT_PORT)),
            peer_addr: SocketAddr::from(([127, 0, 0, 1], DEFAULT_PEER_PORT)),
            shards: 0,
            members: Vec::new(),
            join: false,
            peer_routes: Vec::new(),
            limits: LimitsConfig::default(),
            timeouts: TimeoutsConfig::default(),
            snapshot: SnapshotConfig::default(),
            wal: WalConfig::default(),
            log: LogConfig::default(),
            executor: ExecutorConfig::default(),
            replication: ReplicationConfig::default(),
            unsafe_ack_before_fsync: false,
            clock_offset_ms: 0,
            unsafe_local_reads: false,
            resp_addr: None,
        }
    }
}

impl NodeConfig {
    /// Resolves defaults, the `--config` file and the flags (in that order of precedence,
    /// lowest first), fills in the shard count, and validates the result.
    pub fn load(args: &NodeArgs) -> Result<NodeConfig, ConfigError> {
        let mut config = match &args.config {
            Some(path) => file::read(path)?,
            None => NodeConfig::default(),
        };
        args.apply(&mut config);
        if config.shards == 0 {
            config.shards = std::thread::available_parallelism().map_or(1, |n| n.get());
        }
        config.validate()?;
        Ok(config)
    }

    /// The client address of shard `shard` of this node.
    pub fn shard_client_addr(&self, shard: usize) -> SocketAddr {
        offset_port(self.client_addr, shard)
    }

    /// The RESP address of shard `shard` of this node, if RESP is on.
    pub fn shard_resp_addr(&self, shard: usize) -> Option<SocketAddr> {
        self.resp_addr.map(|a| offset_port(a, shard))
    }

    /// The peer address of shard `shard` of this node.
    pub fn shard_peer_addr(&self, shard: usize) -> SocketAddr {
        offset_port(self.peer_addr, shard)
    }

    /// Checks every setting; the message of the first violation names it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.node_id == 0 {
            return Err(ConfigError::invalid("node_id", 0, "node ids start at 1"));
        }
        if self.shards == 0 || self.shards > limits::MAX_SHARDS {
            return Err(ConfigError::invalid(
                "shards",
                self.shards,
                format!("must be between 1 and {}", limits::MAX_SHARDS),
            ));
        }
        check_port_range("client_addr", self.client_addr, self.shards)?;
        check_port_range("peer_addr", self.peer_addr, self.shards)?;
        if let Some(resp) = self.resp_addr {
            check_port_range("resp_addr", resp, self.shards)?;
            for (name, other) in [
                ("client_addr", self.client_addr),
                ("peer_addr", self.peer_addr),
            ] {
                if ranges_overlap(resp, other, self.shards) {
                    return Err(ConfigError::invalid(
                        "resp_addr",
                        resp,
                        format!(
                            "its {} ports overlap the {name} ports starting at {other}",
                            self.shards
                        ),
                    ));
                }
            }
        }
        if ranges_overlap(self.client_addr, self.peer_addr, self.shards) {
            return Err(ConfigError::invalid(
                "peer_addr",
                self.peer_addr,
                format!(
                    "its {} ports overlap the client ports starting at {}",
                    self.shards, self.client_addr
                ),
            ));
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::invalid(
                "data_dir",
                "\"\"",
                "must not be empty",
            ));
        }
        self.validate_members()?;
        self.validate_limits()?;
        self.validate_timeouts()?;
        check_between(
            "executor.spin_before_park_us",
            self.executor.spin_before_park_us,
            0,
            MAX_SPIN_BEFORE_PARK_US,
        )?;
        check_between(
            "replication.append_pipeline_depth",
            self.replication.append_pipeline_depth,
            1,
            limits::MAX_PIPELINED_APPENDS,
        )?;
        check_between(
            "replication.commit_linger_us",
            self.replication.commit_linger_us,
            0,
            MAX_COMMIT_LINGER_US,
        )?;
        if self.snapshot.every_entries == 0 {
            return Err(ConfigError::invalid(
                "snapshot.every_entries",
                0,
                "must be at least 1",
            ));
        }
        if !(8..=1024).contains(&self.wal.segment_mib) {
            return Err(ConfigError::invalid(
                "wal.segment_mib",
                self.wal.segment_mib,
                "must be between 8 and 1024 (a segment holds at least one largest write)",
            ));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return Err(ConfigError::invalid(
                "log.level",
                &self.log.level,
                e.to_string(),
            ));
        }
        Ok(())
    }

    fn validate_members(&self) -> Result<(), ConfigError> {
        if self.members.is_empty() {
            if self.join {
                return Err(ConfigError::invalid(
                    "join",
                    true,
                    "joining needs the cluster's initial members (--member flags)",
                ));
            }
            return Ok(());
        }
        if self.members.len() > limits::MAX_NODES {
            return Err(ConfigError::invalid(
                "members",
                format!("{} members", self.members.len()),
                format!("a cluster has at most {} nodes", limits::MAX_NODES),
            ));
        }
        let mut ids: Vec<u64> = self.members.iter().map(|m| m.id).collect();
        ids.sort_unstable();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(ConfigError::invalid(
                "members",
                w[0],
                "node id listed twice",
            ));
        }
        if ids.first() == Some(&0) {
            return Err(ConfigError::invalid("members.id", 0, "node ids start at 1"));
        }
        match self.members.iter().find(|m| m.id == self.node_id) {
            None if self.join => Ok(()),
            Some(_) if self.join => Err(ConfigError::invalid(
                "join",
                true,
                format!(
                    "node {} is an initial member: it forms the cluster, it does not join it",
                    self.node_id
                ),
            )),
            None => Err(ConfigError::invalid(
                "members",
                format!("ids {ids:?}"),
                format!("this node's id {} is not among the members", self.node_id),
            )),
            Some(me) if me.client_addr != self.client_addr || me.peer_addr != self.peer_addr => {
                Err(ConfigError::invalid(
                    "members",
                    format!("node {} at {} / {}", me.id, me.client_addr, me.peer_addr),
                    format!(
                        "this node listens at {} / {}; its member entry must match",
                        self.client_addr, self.peer_addr
                    ),
                ))
            }
            Some(_) => Ok(()),
        }
    }

    fn validate_limits(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        check_between("limits.max_connections", l.max_connections, 1, 1 << 20)?;
        check_between(
            "limits.max_in_flight_per_connection",
            l.max_in_flight_per_connection,
            1,
            1 << 20,
        )?;
        check_between(
            "limits.max_in_flight_per_shard",
            l.max_in_flight_per_shard,
            1,
            1 << 24,
        )?;
        check_between("limits.shard_queue_depth", l.shard_queue_depth, 1, 1 << 20)?;
        check_between("limits.max_key_len", l.max_key_len, 1, limits::MAX_KEY_LEN)?;
        check_between(
            "limits.max_value_len",
            l.max_value_len,
            1,
            limits::MAX_VALUE_LEN,
        )?;
        Ok(())
    }

    fn validate_timeouts(&self) -> Result<(), ConfigError> {
        let t = &self.timeouts;
        check_between("timeouts.request_ms", t.request_ms, 1, 3_600_000)?;
        check_between("timeouts.heartbeat_ms", t.heartbeat_ms, 1, 60_000)?;
        check_between("timeouts.peer_rpc_ms", t.peer_rpc_ms, 1, 600_000)?;
        if t.election_min_ms <= t.heartbeat_ms * 2 {
            return Err(ConfigError::invalid(
                "timeouts.election_min_ms",
                t.election_min_ms,
                format!(
                    "must exceed twice the heartbeat ({} ms), or followers start elections \
                     while the leader is healthy",
                    t.heartbeat_ms
                ),
            ));
        }
        if t.election_max_ms <= t.election_min_ms {
            return Err(ConfigError::invalid(
                "timeouts.election_max_ms",
                t.election_max_ms,
                format!("must exceed election_min_ms ({})", t.election_min_ms),
            ));
        }
        Ok(())
    }
}

fn offset_port(addr: SocketAddr, shard: usize) -> SocketAddr {
    shard_addr(addr, shard).expect("validate() keeps every shard port below 65536")
}

/// Where shard `shard` listens when shard 0 listens at `base`: the same host, port +
/// `shard` (the rule of every per-shard port: client, peer, RESP). `None` past port 65535.
pub fn shard_addr(base: SocketAddr, shard: usize) -> Option<SocketAddr> {
    let port = u16::try_from(usize::from(base.port()) + shard).ok()?;
    Some(SocketAddr::new(base.ip(), port))
}

/// How clients see a node whose shard 0 serves clients at `client_addr`: that address and
/// one per shard. A client address that is not a socket address (a hostname) or whose
/// shard ports would overflow gets no per-shard list: clients then go through shard 0.
pub fn client_node_info(node_id: u64, client_addr: &str, shard_count: u32) -> NodeInfo {
    let shard_addrs = client_addr
        .parse::<SocketAddr>()
        .ok()
        .and_then(|base| {
            (0..shard_count as usize)
                .map(|s| shard_addr(base, s).map(|a| a.to_string()))
                .collect::<Option<Vec<_>>>()
        })
        .unwrap_or_default();
    NodeInfo {
        node_id,
        addr: client_addr.to_string(),
        shard_addrs,
    }
}

fn check_port_range(
    setting: &'static str,
    addr: SocketAddr,
    shards: usize,
) -> Result<(), ConfigError> {
    if addr.port() == 0 {
        return Err(ConfigError::invalid(
            setting,
            addr,
            "port 0 is not allowed: clients and peers find shard s at port + s",
        ));
    }
    if usize::from(addr.port()) + shards > usize::from(u16::MAX) + 1 {
        return Err(ConfigError::invalid(
            setting,
            addr,
            format!(
                "{shards} shards need ports {}..{}",
                addr.port(),
                usize::from(addr.port()) + shards
            ),
        ));
    }
    Ok(())
}

fn ranges_overlap(a: SocketAddr, b: SocketAddr, shards: usize) -> bool {
    if a.ip() != b.ip() && !a.ip().is_unspecified() && !b.ip().is_unspecified() {
        return false;
    }
    let (a, b) = (usize::from(a.port()), usize::from(b.port()));
    a < b + shards && b < a + shards
}

fn check_between<T>(setting: &'static str, value: T, min: T, max: T) -> Result<(), ConfigError>
where
    T: PartialOrd + std::fmt::Display + Copy,
{
    if value < min || value > max {
        return Err(ConfigError::invalid(
            setting,
            value,
            format!("must be between {min} and {max}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
