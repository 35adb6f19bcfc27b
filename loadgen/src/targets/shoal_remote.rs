//! The `shoal-remote` target: a Shoal node or cluster through `RemoteKvClient` (TCP, the
//! binary protocol, pipelined connections routed to each key's group leader).
//!
//! Owns the mapping of loadgen's flags to `RemoteOptions` and the connect step: building the
//! client fetches the topology from one of the endpoints, bounded by the connect timeout,
//! so an unreachable node fails fast with the client's reason.

use std::time::Duration;

use shoal_client::{RemoteKvClient, RemoteOptions, RetryPolicy};

use super::ConnectError;
use super::shoal::ShoalTarget;

/// Default client address of a node (shard 0; shard s listens on port + s).
pub const DEFAULT_ENDPOINT: &str = "127.0.0.1:7400";

/// Most connections per (node, shard) address (`RemoteOptions` accepts 1..=64).
pub const MAX_CONNECTIONS_PER_SHARD: usize = 64;

/// `shoal-remote` settings.
#[derive(Debug, Clone)]
pub struct RemoteSettings {
    /// Client addresses of one or more nodes (`host:port`); one reachable node suffices.
    pub endpoints: Vec<String>,
    /// Connections per (node, shard) address.
    pub connections_per_shard: usize,
    /// Bound on connecting and fetching the topology.
    pub connect_timeout: Duration,
    /// Bound on each call, the client's retries included.
    pub request_timeout: Duration,
}

impl RemoteSettings {
    /// The client options these settings give (the client's defaults otherwise).
    pub fn options(&self) -> RemoteOptions {
        RemoteOptions {
            connect_timeout: self.connect_timeout,
            request_timeout: self.request_timeout,
            retry: RetryPolicy::default(),
            connections_per_shard: self.connections_per_shard,
            ..RemoteOptions::default()
        }
    }
}

/// Connects a `RemoteKvClient` (topology fetched) within the connect timeout.
///
/// The client retries refused connections until its request timeout, which is the run's
/// per-operation bound; so a probe client whose request timeout is the connect timeout
/// checks reachability first and fails with the client's last reason ("connection
/// refused", "wrong cluster", ...). The run's client is then built with the run's options.
pub async fn connect(
    settings: &RemoteSettings,
) -> Result<ShoalTarget<RemoteKvClient>, ConnectError> {
    let endpoint = settings.endpoints.join(",");
    let failed = |e: shoal_client::KvClientError| ConnectError::Failed {
        target: "shoal-remote",
        endpoint: endpoint.clone(),
        reason: e.to_string(),
    };
    let probe_opts = RemoteOptions {
        request_timeout: settings.connect_timeout,
        ..settings.options()
    };
    let probe = RemoteKvClient::connect(settings.endpoints.iter(), probe_opts)
        .await
        .map_err(failed)?;
    drop(probe);
    let client = RemoteKvClient::connect(settings.endpoints.iter(), settings.options())
        .await
        .map_err(failed)?;
    let shape = match client.cached_topology() {
        Some(t) => format!("{} node(s), {} shard(s)", t.nodes.len(), t.shard_count),
        None => "topology unknown".to_string(),
    };
    let description = format!(
        "shoal-remote {endpoint} ({shape}, {} connection(s) per shard, request timeout {} ms, \
         linearizable gets, puts durable on a quorum)",
        settings.connections_per_shard,
        settings.request_timeout.as_millis()
    );
    Ok(ShoalTarget::new(client, description))
}
