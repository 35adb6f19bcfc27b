//! Topology discovery for `RemoteKvClient`: fetching and installing the routing table,
//! single-flight refreshes, leader hints, and the short list of suspected-down nodes.
//!
//! Invariants: the routing table is replaced whole (copy-on-write `Arc`), never mutated in
//! place; a refresh is single-flight (one fetch per generation, however many callers saw
//! the same stale table); a node of another cluster is never installed; a suspicion
//! expires after `SUSPECT_FOR` and is cleared by the next successful connection.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use shoal_proto::{Request, Response, encode_request};
use tokio::time::Instant;

use super::topology::Routing;
use super::{RemoteKvClient, SUSPECT_FOR, no_nodes, unexpected};
use crate::error::KvClientError;

impl RemoteKvClient {
    pub(super) fn current(&self) -> Option<Arc<Routing>> {
        self.inner
            .routing
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(super) fn install(&self, r: Routing) {
        *self
            .inner
            .routing
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(r));
    }

    /// Applies `f` to the current routing (copy-on-write).
    pub(super) fn update(&self, f: impl FnOnce(&Routing) -> Routing) {
        let mut g = self
            .inner
            .routing
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(r) = g.as_ref() {
            *g = Some(Arc::new(f(r)));
        }
    }

    /// A node that is not the routed leader served a leader-only request: it leads now.
    pub(super) fn learned_leader(&self, shard: u32, node: u64) {
        self.update(|r| match r.nodes.get(&node) {
            Some(info) => r.with_leader_hint(shard, info.clone()),
            None => r.clone(),
        });
    }

    pub(super) fn suspects(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Instant>> {
        self.inner
            .suspects
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn is_suspect(&self, node: u64) -> bool {
        self.suspects()
            .get(&node)
            .is_some_and(|until| Instant::now() < *until)
    }

    pub(super) fn mark_suspect(&self, node: u64) {
        tracing::debug!(node, "node suspected down");
        self.suspects().insert(node, Instant::now() + SUSPECT_FOR);
    }

    pub(super) fn clear_suspect(&self, node: u64) {
        let mut s = self.suspects();
        if !s.is_empty() {
            s.remove(&node);
        }
    }

    pub(super) fn cluster_id(&self) -> Option<u64> {
        self.current().map(|r| r.cluster_id)
    }

    /// Addresses to ask for the topology: known nodes (rotated, so successive refreshes
    /// ask different nodes; suspected-down nodes last), then the seeds.
    pub(super) fn candidates(&self) -> Vec<String> {
        let mut known: Vec<(u64, String)> = self
            .current()
            .map(|r| {
                r.nodes
                    .values()
                    .map(|n| (n.node_id, n.addr.clone()))
                    .collect()
            })
            .unwrap_or_default();
        if !known.is_empty() {
            let k = self.inner.refresh_rr.fetch_add(1, Ordering::Relaxed) % known.len();
            known.rotate_left(k);
        }
        // Stable: keeps the rotation among healthy and among suspected nodes.
        known.sort_by_key(|(id, _)| self.is_suspect(*id));
        let mut out: Vec<String> = known.into_iter().map(|(_, a)| a).collect();
        for s in &self.inner.seeds {
            if !out.contains(s) {
                out.push(s.clone());
            }
        }
        out
    }

    /// The routing table, fetching it first if there is none yet.
    pub(super) async fn routing(&self) -> Result<(Arc<Routing>, u64), KvClientError> {
        let gen_seen = self.inner.refresh_gen.load(Ordering::Acquire);
        if let Some(r) = self.current() {
            return Ok((r, gen_seen));
        }
        self.refresh(gen_seen).await?;
        let gen_seen = self.inner.refresh_gen.load(Ordering::Acquire);
        self.current().map(|r| (r, gen_seen)).ok_or_else(no_nodes)
    }

    /// Fetches the topology from the first node that answers, unless another task did
    /// so since generation `gen_seen`.
    pub(super) async fn refresh(&self, gen_seen: u64) -> Result<(), KvClientError> {
        let _single_flight = self.inner.refresh_lock.lock().await;
        if self.inner.refresh_gen.load(Ordering::Acquire) != gen_seen && self.current().is_some() {
            return Ok(());
        }
        let mut last = None;
        for addr in self.candidates() {
            match self.fetch_topology(&addr).await {
                Ok(fresh) => {
                    let merged = match self.current() {
                        Some(old) => old.merged_with(fresh),
                        None => fresh,
                    };
                    let (shards, nodes) = (merged.shard_count, merged.nodes.len());
                    tracing::debug!(%addr, shards, nodes, "topology installed");
                    self.install(merged);
                    self.inner.refresh_gen.fetch_add(1, Ordering::AcqRel);
                    return Ok(());
                }
                Err(e) => {
                    tracing::debug!(%addr, %e, "topology fetch failed");
                    if !e.is_retryable() && matches!(e, KvClientError::IncompatibleVersion { .. }) {
                        return Err(e);
                    }
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(no_nodes))
    }

    pub(super) async fn fetch_topology(&self, addr: &str) -> Result<Routing, KvClientError> {
        self.inner.topology_fetches.fetch_add(1, Ordering::Relaxed);
        let expected = self.cluster_id();
        let conn = self.inner.pool.get(addr, expected).await?;
        let resp = conn
            .call(|b, id| encode_request(b, id, &Request::Topology))
            .await;
        let t = match resp {
            Ok(Response::Topology(t)) => t,
            Ok(Response::Error(e)) => return Err(KvClientError::from_error_response(e)),
            Ok(other) => return Err(unexpected(&conn, "Topology", &other)),
            Err(e) => {
                self.inner.pool.evict(&conn);
                return Err(e);
            }
        };
        if let Some(expected) = expected {
            if t.cluster_id != expected {
                return Err(KvClientError::WrongCluster {
                    addr: addr.to_string(),
                    expected,
                    found: t.cluster_id,
                });
            }
        }
        if t.nodes.is_empty() {
            return Err(KvClientError::Protocol {
                addr: addr.to_string(),
                reason: "topology lists no node".into(),
            });
        }
        Ok(Routing::from_topology(t))
    }
}
