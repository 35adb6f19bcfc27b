//! The client protocol server of one shard: a listener on the shard's own port, one task
//! per connection, and the task that drains the shard's mesh inbox.
//!
//! Owns: [`ServerConfig`] (every knob of the server, derived from the node configuration
//! by [`ServerConfig::for_shard`]), [`Server`] (bind, serve, drain), the connection
//! protocol (`connection`: handshake, pipelined requests, batched writes, hardening),
//! routing and fan-out (`dispatch`), in-flight accounting (`admission`) and the inbox
//! (`inbox`). Behaviour seen by clients is specified in `docs/PROTOCOL.md`, "Server
//! behaviour".
//!
//! Wiring (on each shard's executor thread, with the shard's `Rc<dyn ShardService>`, a
//! clone of the node's `Mesh` and the shard's own `Inbox`):
//!
//! ```text
//! let server = Server::bind(ServerConfig::for_shard(&node, s, cluster_id), service, mesh, inbox).await?;
//! let report = server.run(async move { let _ = stop_rx.await; }).await; // any Future<Output = ()>
//! ```
//!
//! `run` also serves the inbox, so nothing else drains it. Signal every shard's shutdown
//! together (a shard that drains answers forwarded requests `ShuttingDown`), wait for every
//! `run` to return, then stop the Raft groups.
//!
//! Invariants:
//! - Every request read from a connection or the inbox is answered exactly once (unless
//!   the connection is gone or closed by a framing error): with its result, or `Busy`
//!   (not executed), `Timeout` (past the request deadline) or `ShuttingDown`.
//! - Memory per connection is bounded: the read buffer by the frame limit plus one read
//!   chunk (the announced length is never allocated before its bytes arrive), the
//!   requests in flight by `max_in_flight_per_connection`, and reading stops while more
//!   than [`OUT_HIGH_WATER`] bytes of answers wait to be written.
//! - A framing error or a slow client closes only its own connection; an abrupt
//!   disconnect cancels nothing else (its requests finish and their answers are dropped).
//! - Nothing here blocks the executor: every wait is a future, every spawned task is
//!   detached or awaited (glommio cancels a task whose handle drops).

mod admission;
mod connection;
mod dispatch;
mod forward;
mod forward_link;
mod inbox;
mod listener;
mod resp_batch;
mod resp_connection;
mod resp_exec;
mod resp_stats;

use std::net::SocketAddr;
use std::time::Duration;

use shoal_proto::NodeInfo;

use crate::config::{NodeConfig, client_node_info};
use crate::limits;

pub use listener::{DrainReport, Server};

/// Default bound on receiving one frame once its first byte arrived, and on receiving the
/// `Hello` after accept (slowloris defence).
pub const DEFAULT_FRAME_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default bound on one write of answers to a client that does not read them.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default bound on the graceful drain after shutdown is signalled.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of encoded answers waiting for the socket above which a connection stops reading
/// requests (so a client that does not read its answers is slowed by TCP backpressure).
pub const OUT_HIGH_WATER: usize = 1024 * 1024;
/// Largest single read from a socket. The read buffer grows by at most this much per read,
/// so a header announcing a large body costs memory only as its bytes arrive.
pub const READ_CHUNK: usize = 64 * 1024;
/// After sending a closing error frame, how long the server keeps reading (and discarding)
/// what the client still sends, so the kernel sends FIN and not RST and the client can read
/// the error. Bounded in bytes by [`LINGER_MAX_BYTES`].
pub const LINGER_TIME: Duration = Duration::from_millis(500);
/// Most bytes discarded while lingering before a close.
pub const LINGER_MAX_BYTES: usize = 256 * 1024;
/// Most refused connections (over `max_connections`) lingering at once; past it a refused
/// connection is closed at once, without its `Busy` frame.
pub const MAX_LINGERING_REFUSALS: usize = 64;

/// Everything one shard's server needs. Build it with [`ServerConfig::for_shard`] and adjust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// This shard (= Raft group).
    pub shard: u32,
    /// S, the node's shard count (the mesh has the same).
    pub shard_count: u32,
    /// Where this shard listens for clients (the node's client port + shard).
    pub listen: SocketAddr,
    /// This node's id (Hello, Status).
    pub node_id: u64,
    /// The cluster's id (Hello, Topology).
    pub cluster_id: u64,
    /// Every node of the cluster with its client addresses, this one included (Topology).
    pub nodes: Vec<NodeInfo>,
    /// Connections this listener serves at once; more are refused with `Busy`.
    pub max_connections: usize,
    /// Requests in flight on one connection; more are answered `Busy`.
    pub max_in_flight_per_connection: usize,
    /// Requests in flight on this shard (all connections plus the inbox); more: `Busy`.
    pub max_in_flight_per_shard: usize,
    /// Largest request body accepted (at most `MAX_FRAME_LEN`), announced in `HelloOk`.
    pub max_frame_len: usize,
    /// Largest key accepted (at most `MAX_KEY_LEN`).
    pub max_key_len: usize,
    /// Largest value accepted (at most `MAX_VALUE_LEN`).
    pub max_value_len: usize,
    /// A request not answered within this time (from when it was read) gets `Timeout`.
    pub request_timeout: Duration,
    /// See [`DEFAULT_FRAME_READ_TIMEOUT`].
    pub frame_read_timeout: Duration,
    /// See [`DEFAULT_WRITE_TIMEOUT`].
    pub write_timeout: Duration,
    /// See [`DEFAULT_DRAIN_TIMEOUT`].
    pub drain_timeout: Duration,
    /// Where this shard listens for Redis protocol clients (`None`: RESP off).
    pub resp_listen: Option<SocketAddr>,
}

impl ServerConfig {
    /// The configuration of shard `shard` of the node configured by `node`.
    ///
    /// `limits.max_connections` is a per-node cap: each of the S listeners gets
    /// `ceil(max_connections / S)`. The topology lists every member (or this node alone)
    /// with its per-shard client addresses.
    pub fn for_shard(node: &NodeConfig, shard: u32, cluster_id: u64) -> ServerConfig {
        let s = node.shards.max(1);
        let member_nodes: Vec<(u64, SocketAddr)> = if node.members.is_empty() {
            vec![(node.node_id, node.client_addr)]
        } else {
            node.members.iter().map(|m| (m.id, m.client_addr)).collect()
        };
        let nodes = member_nodes
            .into_iter()
            .map(|(node_id, addr)| client_node_info(node_id, &addr.to_string(), s as u32))
            .collect();
        ServerConfig {
            shard,
            shard_count: s as u32,
            listen: node.shard_client_addr(shard as usize),
            node_id: node.node_id,
            cluster_id,
            nodes,
            max_connections: node.limits.max_connections.div_ceil(s).max(1),
            max_in_flight_per_connection: node.limits.max_in_flight_per_connection,
            max_in_flight_per_shard: node.limits.max_in_flight_per_shard,
            max_frame_len: limits::MAX_FRAME_LEN,
            max_key_len: node.limits.max_key_len,
            max_value_len: node.limits.max_value_len,
            request_timeout: node.timeouts.request(),
            frame_read_timeout: DEFAULT_FRAME_READ_TIMEOUT,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            resp_listen: node.shard_resp_addr(shard as usize),
        }
    }

    /// Checks the settings that would make the server misbehave.
    pub fn validate(&self) -> Result<(), ServerError> {
        let bad = |what: &'static str, why: String| Err(ServerError::Config { what, why });
        if self.shard_count == 0 || self.shard_count as usize > limits::MAX_SHARDS {
            return bad(
                "shard_count",
                format!("{} is outside 1..=256", self.shard_count),
            );
        }
        if self.shard >= self.shard_count {
            return bad(
                "shard",
                format!("{} >= shard_count {}", self.shard, self.shard_count),
            );
        }
        if self.max_frame_len == 0 || self.max_frame_len > limits::MAX_FRAME_LEN {
            return bad(
                "max_frame_len",
                format!("{} is outside 1..=MAX_FRAME_LEN", self.max_frame_len),
            );
        }
        if self.max_key_len > limits::MAX_KEY_LEN || self.max_value_len > limits::MAX_VALUE_LEN {
            return bad(
                "max_key_len/max_value_len",
                "above the protocol's limits".into(),
            );
        }
        // The largest request (a put with TTL of the largest key and value) must fit.
        let largest_put = self.max_key_len + self.max_value_len + 32;
        if self.max_frame_len < largest_put {
            return bad(
                "max_frame_len",
                format!(
                    "{} cannot carry a put of the largest key and value ({largest_put} bytes)",
                    self.max_frame_len
                ),
            );
        }
        if self.max_connections == 0
            || self.max_in_flight_per_connection == 0
            || self.max_in_flight_per_shard == 0
        {
            return bad(
                "max_connections/max_in_flight_*",
                "must be at least 1".into(),
            );
        }
        if self.nodes.len() > limits::MAX_NODES {
            return bad(
                "nodes",
                format!("{} nodes, at most {}", self.nodes.len(), limits::MAX_NODES),
            );
        }
        for t in [
            self.request_timeout,
            self.frame_read_timeout,
            self.write_timeout,
            self.drain_timeout,
        ] {
            if t.is_zero() {
                return bad("timeouts", "every timeout must be above zero".into());
            }
        }
        Ok(())
    }
}

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listener could not be bound (most often: the port is in use).
    #[error("shard {shard} cannot listen for clients on {addr}: {source}")]
    Bind {
        shard: u32,
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// A setting is invalid.
    #[error("invalid server setting `{what}`: {why}")]
    Config { what: &'static str, why: String },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Member;

    #[test]
    fn for_shard_derives_ports_caps_and_topology_from_the_node_config() {
        let node = NodeConfig {
            shards: 3,
            node_id: 2,
            client_addr: "127.0.0.1:7400".parse().unwrap(),
            members: vec![
                Member {
                    id: 1,
                    client_addr: "10.0.0.1:9000".parse().unwrap(),
                    peer_addr: "10.0.0.1:9100".parse().unwrap(),
                },
                Member {
                    id: 2,
                    client_addr: "127.0.0.1:7400".parse().unwrap(),
                    peer_addr: "127.0.0.1:7600".parse().unwrap(),
                },
            ],
            ..NodeConfig::default()
        };
        let cfg = ServerConfig::for_shard(&node, 2, 77);
        assert_eq!(cfg.listen, "127.0.0.1:7402".parse::<SocketAddr>().unwrap());
        assert_eq!(cfg.shard_count, 3);
        assert_eq!(
            cfg.max_connections,
            limits::DEFAULT_MAX_CONNECTIONS.div_ceil(3)
        );
        assert_eq!(cfg.request_timeout, node.timeouts.request());
        assert_eq!(cfg.nodes.len(), 2);
        assert_eq!(cfg.nodes[0].node_id, 1);
        assert_eq!(
            cfg.nodes[0].shard_addrs,
            vec!["10.0.0.1:9000", "10.0.0.1:9001", "10.0.0.1:9002"]
        );
        cfg.validate().unwrap();
    }

    #[test]
    fn validate_refuses_settings_that_would_misbehave() {
        let node = NodeConfig {
            shards: 2,
            ..NodeConfig::default()
        };
        let ok = ServerConfig::for_shard(&node, 1, 1);
        ok.validate().unwrap();
        let broken: [fn(&mut ServerConfig); 6] = [
            |c| c.max_frame_len = c.max_value_len,
            |c| c.shard = 2,
            |c| c.max_frame_len = limits::MAX_FRAME_LEN + 1,
            |c| c.max_in_flight_per_shard = 0,
            |c| c.frame_read_timeout = Duration::ZERO,
            |c| c.max_key_len = limits::MAX_KEY_LEN + 1,
        ];
        for b in broken {
            let mut c = ok.clone();
            b(&mut c);
            assert!(
                matches!(c.validate(), Err(ServerError::Config { .. })),
                "{c:?}"
            );
        }
    }
}
