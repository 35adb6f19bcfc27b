//! The connection pool: `connections_per_shard` pipelined connections per address.
//!
//! Invariants: an address maps to a fixed number of slots; each slot holds at most one
//! live connection and is (re)connected lazily by the first caller that finds it empty
//! or closed, under the slot's async lock, so concurrent callers never open duplicate
//! connections for one slot. Since every (node, shard) has its own address, "per
//! address" is "per (node, shard)". A connection to a node of another cluster is refused.
//! With an [`AddressRewrite`] every address is rewritten before anything else: slots are
//! keyed by, and connections opened to, the dialled address (so `evict`, which goes by
//! `Connection::addr`, finds the slot again).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Mutex as AsyncMutex;

use crate::error::KvClientError;
use crate::remote::connection::Connection;
use crate::remote::options::AddressRewrite;

#[derive(Debug)]
struct Slots {
    slots: Vec<AsyncMutex<Option<Arc<Connection>>>>,
    next: AtomicUsize,
}

#[derive(Debug)]
pub(crate) struct Pool {
    per_addr: usize,
    connect_timeout: Duration,
    max_in_flight: usize,
    by_addr: Mutex<HashMap<String, Arc<Slots>>>,
    opened: AtomicUsize,
    rewrite: Option<AddressRewrite>,
}

impl Pool {
    pub(crate) fn new(
        per_addr: usize,
        connect_timeout: Duration,
        max_in_flight: usize,
        rewrite: Option<AddressRewrite>,
    ) -> Pool {
        assert!(per_addr >= 1);
        Pool {
            per_addr,
            connect_timeout,
            max_in_flight,
            by_addr: Mutex::new(HashMap::new()),
            opened: AtomicUsize::new(0),
            rewrite,
        }
    }

    fn slots(&self, addr: &str) -> Arc<Slots> {
        let mut map = self.by_addr.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(addr.to_string())
            .or_insert_with(|| {
                Arc::new(Slots {
                    slots: (0..self.per_addr).map(|_| AsyncMutex::new(None)).collect(),
                    next: AtomicUsize::new(0),
                })
            })
            .clone()
    }

    /// A live connection to `addr` (rewritten first, if the pool has a rewrite; round-robin
    /// over its slots), opening one if needed. `cluster_id`: the cluster the client
    /// joined, if known; a node of another cluster is refused with `WrongCluster`.
    pub(crate) async fn get(
        &self,
        addr: &str,
        cluster_id: Option<u64>,
    ) -> Result<Arc<Connection>, KvClientError> {
        let dialled;
        let addr = match &self.rewrite {
            Some(r) => {
                dialled = r.apply(addr);
                dialled.as_str()
            }
            None => addr,
        };
        let slots = self.slots(addr);
        let i = slots.next.fetch_add(1, Ordering::Relaxed) % slots.slots.len();
        let mut slot = slots.slots[i].lock().await;
        if let Some(c) = slot.as_ref() {
            if !c.is_closed() {
                return Ok(c.clone());
            }
            *slot = None;
        }
        let conn = Connection::open(addr, self.connect_timeout, self.max_in_flight).await?;
        if let Some(expected) = cluster_id {
            if conn.hello().cluster_id != expected {
                return Err(KvClientError::WrongCluster {
                    addr: addr.to_string(),
                    expected,
                    found: conn.hello().cluster_id,
                });
            }
        }
        self.opened.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(conn);
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Forgets `conn` if it is still pooled (after it failed), so the next caller
    /// reconnects. In-flight requests on it keep their own reference until answered.
    pub(crate) fn evict(&self, conn: &Arc<Connection>) {
        let slots = self.slots(conn.addr());
        for s in &slots.slots {
            if let Ok(mut g) = s.try_lock() {
                if g.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
                    *g = None;
                }
            }
        }
    }

    /// Connections opened so far (for tests and diagnostics).
    pub(crate) fn opened(&self) -> usize {
        self.opened.load(Ordering::Relaxed)
    }
}
