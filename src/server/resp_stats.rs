//! The RESP front door's figures (INFO clients/stats) and the node-wide answers of DBSIZE
//! and INFO keyspace, gathered from every shard with `KeyCount` requests.
//!
//! Invariants: the counters are process-wide atomics (a Shoal process runs one node; the
//! RESP listeners of all its shards add to the same counters), updated with relaxed
//! ordering: they are statistics, never used for decisions. DBSIZE counts every key each
//! local shard stores, expired ones not yet reclaimed included, as Redis does.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use futures::future::join_all;
use shoal_proto::{Request, Response};
use shoal_resp::{InfoFigures, InfoSections, Reply, info};

use super::dispatch::Dispatcher;
use super::resp_connection::RespContext;
use super::resp_exec::error_reply;
use crate::shard::ttl_ticker::EXPIRED_KEYS;

/// Counters of the RESP front door.
#[derive(Debug, Default)]
pub(crate) struct RespStats {
    connected: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
    commands: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    net_in: AtomicU64,
    net_out: AtomicU64,
}

/// The process's counters.
pub(crate) static RESP_STATS: RespStats = RespStats {
    connected: AtomicU64::new(0),
    accepted: AtomicU64::new(0),
    rejected: AtomicU64::new(0),
    commands: AtomicU64::new(0),
    hits: AtomicU64::new(0),
    misses: AtomicU64::new(0),
    net_in: AtomicU64::new(0),
    net_out: AtomicU64::new(0),
};

/// Counts an open connection until dropped.
pub(crate) struct OpenConnection(&'static RespStats);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connected.fetch_sub(1, Relaxed);
    }
}

impl RespStats {
    pub(crate) fn open_connection(&'static self) -> OpenConnection {
        self.accepted.fetch_add(1, Relaxed);
        self.connected.fetch_add(1, Relaxed);
        OpenConnection(self)
    }

    pub(crate) fn rejected(&self) {
        self.rejected.fetch_add(1, Relaxed);
    }

    pub(crate) fn commands(&self, n: u64) {
        self.commands.fetch_add(n, Relaxed);
    }

    pub(crate) fn net_in(&self, bytes: usize) {
        self.net_in.fetch_add(bytes as u64, Relaxed);
    }

    pub(crate) fn net_out(&self, bytes: usize) {
        self.net_out.fetch_add(bytes as u64, Relaxed);
    }

    pub(crate) fn count_get(&self, hit: bool) {
        if hit {
            self.hits.fetch_add(1, Relaxed);
        } else {
            self.misses.fetch_add(1, Relaxed);
        }
    }
}

/// (keys, keys with expiry) over every shard of this node.
async fn key_counts(d: &Dispatcher, deadline: Instant) -> Result<(u64, u64), Response> {
    let asks = (0..d.shard_count).map(|group| d.handle(Request::KeyCount { group }, deadline));
    let mut total = (0, 0);
    for response in join_all(asks).await {
        match response {
            Response::KeyCount { keys, expiring } => {
                total.0 += keys;
                total.1 += expiring;
            }
            other => return Err(other),
        }
    }
    Ok(total)
}

/// DBSIZE.
pub(crate) async fn dbsize(d: &Dispatcher, deadline: Instant) -> Reply {
    match key_counts(d, deadline).await {
        Ok((keys, _)) => Reply::Integer(i64::try_from(keys).unwrap_or(i64::MAX)),
        Err(response) => error_reply(response),
    }
}

/// INFO.
pub(crate) async fn info(ctx: &RespContext, sections: InfoSections, deadline: Instant) -> Reply {
    let (keys, keys_with_expiry) = if sections.keyspace {
        match key_counts(&ctx.dispatcher, deadline).await {
            Ok(counts) => counts,
            Err(response) => return error_reply(response),
        }
    } else {
        (0, 0)
    };
    let s = ctx.stats;
    let figures = InfoFigures {
        shoal_version: env!("CARGO_PKG_VERSION").to_string(),
        node_id: ctx.dispatcher.node_id,
        shards: u64::from(ctx.dispatcher.shard_count),
        cluster_nodes: ctx.dispatcher.nodes.len() as u64,
        process_id: std::process::id(),
        tcp_port: ctx.port,
        uptime_ms: ctx.started.elapsed().as_millis() as u64,
        connected_clients: s.connected.load(Relaxed),
        max_clients: ctx.max_clients,
        total_connections_received: s.accepted.load(Relaxed),
        rejected_connections: s.rejected.load(Relaxed),
        total_commands_processed: s.commands.load(Relaxed),
        keyspace_hits: s.hits.load(Relaxed),
        keyspace_misses: s.misses.load(Relaxed),
        // Keys the TTL tickers of this node reclaimed. An expired key overwritten or
        // deleted before its reclaim is not counted (Redis would count a lazy expiry).
        expired_keys: EXPIRED_KEYS.load(Relaxed),
        total_net_input_bytes: s.net_in.load(Relaxed),
        total_net_output_bytes: s.net_out.load(Relaxed),
        keys,
        keys_with_expiry,
    };
    Reply::Verbatim(info::render(sections, &figures).into())
}
