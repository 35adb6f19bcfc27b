//! `LocalKvClient`: the `KvClient` of an application that embeds a node in its own
//! process. Requests travel to the owning shard over the node's mesh (a bounded
//! `tokio::sync::mpsc` per shard, a `oneshot` for the answer): no serialization, no TCP.
//!
//! Invariants:
//! - Same promises as over the network: writes return after they are durable and applied,
//!   reads are linearizable by default (the shard runs the same code for both doors).
//! - Arguments are checked against the protocol limits before anything is sent, with the
//!   same errors as `RemoteKvClient`.
//! - Every call carries a deadline (`timeout`); the shard answers `Timeout` past it.
//! - In a cluster, the local shard may not lead its group: writes and linearizable reads
//!   then fail with `NotLeader` carrying the leader's client address (the node never
//!   forwards to another node). `RemoteKvClient` follows that hint by itself; an
//!   embedded application on a follower uses a `RemoteKvClient` for such keys, or reads
//!   with `ReadConsistency::Stale`.
//! - Futures are `Send` and need no particular runtime: they only await `tokio::sync`
//!   channels, so they run on any tokio runtime (or any executor).
//! - Reply spinning: a call that is the client's only one in flight busy-polls its reply
//!   for up to `reply_spin` ([`DEFAULT_REPLY_SPIN`]) before it sleeps, so a fast answer
//!   (a get: a few microseconds) costs no park/unpark of the calling thread. With other
//!   calls in flight the thread has other work and the call awaits normally. The spin
//!   blocks the calling thread (it does not yield): on a current-thread runtime other
//!   tasks wait up to `reply_spin`; `with_reply_spin(Duration::ZERO)` turns it off.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use shoal_client::args::{check_key, check_value, ttl_ms};
use shoal_client::{KvClient, KvClientError};
use shoal_proto::limits::MAX_BATCH_KEYS;
use shoal_proto::{
    Delete, Get, GetMulti, LimitKind, Put, PutWithTtl, ReadConsistency, Request, Response,
    group_by_shard, shard_for_key,
};

use crate::node::Mesh;

/// Default deadline of one call.
pub const DEFAULT_LOCAL_TIMEOUT: Duration = Duration::from_secs(5);

/// Default bound on busy-polling a reply before sleeping: covers a get served by a
/// spinning shard (single-digit microseconds) with room for scheduling noise, and costs a
/// durable put (which takes an fdatasync) at most this much CPU.
pub const DEFAULT_REPLY_SPIN: Duration = Duration::from_micros(50);

/// A client of the node running in this process. Cheap to clone (clones share the
/// in-flight count that decides reply spinning); `Send + Sync`.
#[derive(Debug, Clone)]
pub struct LocalKvClient {
    mesh: Mesh,
    timeout: Duration,
    consistency: ReadConsistency,
    reply_spin: Duration,
    in_flight: Arc<AtomicUsize>,
}

/// Counts one call in flight for as long as it lives.
struct InFlightGuard<'a>(&'a AtomicUsize);

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl LocalKvClient {
    /// A client over `mesh` (from [`crate::node::Node::mesh`]) with the default timeout and
    /// linearizable reads.
    pub fn new(mesh: Mesh) -> LocalKvClient {
        LocalKvClient {
            mesh,
            timeout: DEFAULT_LOCAL_TIMEOUT,
            consistency: ReadConsistency::Linearizable,
            reply_spin: DEFAULT_REPLY_SPIN,
            in_flight: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The same client busy-polling a lone call's reply for up to `spin` before it sleeps
    /// (`Duration::ZERO`: never spin). See the module documentation for the trade-off.
    pub fn with_reply_spin(mut self, spin: Duration) -> LocalKvClient {
        self.reply_spin = spin;
        self
    }

    /// The same client with another per-call deadline.
    pub fn with_timeout(mut self, timeout: Duration) -> LocalKvClient {
        self.timeout = timeout;
        self
    }

    /// The same client reading at `consistency` (lease or stale reads trade freshness for
    /// latency; see `ReadConsistency`).
    pub fn with_consistency(mut self, consistency: ReadConsistency) -> LocalKvClient {
        self.consistency = consistency;
        self
    }

    async fn call(&self, key: &[u8], request: Request) -> Result<Response, KvClientError> {
        let shard = shard_for_key(key, self.mesh.shard_count());
        let deadline = Instant::now() + self.timeout;
        match self.send(shard, request, deadline, true).await {
            Response::Error(e) => Err(KvClientError::from_error_response(e)),
            other => Ok(other),
        }
    }

    /// One request to `shard`, spinning on the reply when `may_spin` and it is the only
    /// call in flight.
    async fn send(
        &self,
        shard: u32,
        request: Request,
        deadline: Instant,
        may_spin: bool,
    ) -> Response {
        let alone = self.in_flight.fetch_add(1, Ordering::Relaxed) == 0;
        let _guard = InFlightGuard(&self.in_flight);
        let spin = if alone && may_spin {
            self.reply_spin
        } else {
            Duration::ZERO
        };
        self.mesh
            .call_spinning(shard, request, deadline, spin)
            .await
    }
}

fn unexpected(what: &str, r: &Response) -> KvClientError {
    KvClientError::ServerError {
        message: format!("unexpected answer to {what}: {:?}", r.opcode()),
    }
}

#[async_trait]
impl KvClient for LocalKvClient {
    async fn put(
        &self,
        key: impl AsRef<[u8]> + Send,
        value: impl AsRef<[u8]> + Send,
    ) -> Result<(), KvClientError> {
        let (key, value) = (key.as_ref(), value.as_ref());
        check_key(key)?;
        check_value(value)?;
        let request = Request::Put(Put {
            shard: None,
            key: Bytes::copy_from_slice(key),
            value: Bytes::copy_from_slice(value),
        });
        match self.call(key, request).await? {
            Response::Put => Ok(()),
            r => Err(unexpected("put", &r)),
        }
    }

    async fn put_with_ttl(
        &self,
        key: impl AsRef<[u8]> + Send,
        value: impl AsRef<[u8]> + Send,
        ttl_secs: u64,
    ) -> Result<(), KvClientError> {
        let (key, value) = (key.as_ref(), value.as_ref());
        check_key(key)?;
        check_value(value)?;
        let ttl_ms = ttl_ms(ttl_secs)?;
        let request = Request::PutWithTtl(PutWithTtl {
            shard: None,
            key: Bytes::copy_from_slice(key),
            value: Bytes::copy_from_slice(value),
            ttl_ms,
        });
        match self.call(key, request).await? {
            Response::PutWithTtl => Ok(()),
            r => Err(unexpected("put_with_ttl", &r)),
        }
    }

    async fn get(&self, key: impl AsRef<[u8]> + Send) -> Result<Option<Bytes>, KvClientError> {
        let key = key.as_ref();
        check_key(key)?;
        let request = Request::Get(Get {
            shard: None,
            key: Bytes::copy_from_slice(key),
            consistency: self.consistency,
        });
        match self.call(key, request).await? {
            Response::Get(v) => Ok(v),
            r => Err(unexpected("get", &r)),
        }
    }

    async fn get_multi(&self, keys: &[Bytes]) -> Result<Vec<Option<Bytes>>, KvClientError> {
        if keys.len() > MAX_BATCH_KEYS {
            return Err(KvClientError::too_large(
                LimitKind::Batch,
                MAX_BATCH_KEYS,
                keys.len(),
            ));
        }
        for k in keys {
            check_key(k)?;
        }
        // Ask every owning shard at once, put answers back in input order.
        let groups = group_by_shard(keys, self.mesh.shard_count());
        let deadline = Instant::now() + self.timeout;
        // A spinning part would hold the thread before the next part is even sent.
        let may_spin = groups.len() == 1;
        let calls = groups.iter().map(|(s, idx)| {
            let request = Request::GetMulti(GetMulti {
                shard: Some(*s),
                keys: idx.iter().map(|&i| keys[i].clone()).collect(),
                consistency: self.consistency,
            });
            self.send(*s, request, deadline, may_spin)
        });
        let answers = futures::future::join_all(calls).await;
        let mut out = vec![None; keys.len()];
        for ((_, idx), answer) in groups.iter().zip(answers) {
            match answer {
                Response::GetMulti(values) if values.len() == idx.len() => {
                    for (&i, v) in idx.iter().zip(values) {
                        out[i] = v;
                    }
                }
                Response::Error(e) => return Err(KvClientError::from_error_response(e)),
                r => return Err(unexpected("get_multi", &r)),
            }
        }
        Ok(out)
    }

    async fn delete(&self, key: impl AsRef<[u8]> + Send) -> Result<(), KvClientError> {
        let key = key.as_ref();
        check_key(key)?;
        let request = Request::Delete(Delete {
            shard: None,
            key: Bytes::copy_from_slice(key),
        });
        match self.call(key, request).await? {
            Response::Delete { .. } => Ok(()),
            r => Err(unexpected("delete", &r)),
        }
    }
}
