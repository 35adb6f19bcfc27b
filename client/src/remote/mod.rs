//! `RemoteKvClient`: the TCP client. Learns the topology from any node, sends each
//! request straight to the leader of its key's group on the owning shard's port, keeps
//! many requests in flight per connection, and retries transient failures.
//!
//! Invariants:
//! - Arguments are checked against `shoal_proto::limits` before any network activity.
//! - Every call is bounded by `RemoteOptions::request_timeout`, every retry, reconnect
//!   and topology refresh included, and by `RetryPolicy::max_attempts` attempts; it
//!   ends with the answer or with an error saying why (`Timeout` carries the last
//!   transient failure).
//! - Only retryable errors are retried; a write whose outcome is unknown is resent only
//!   when `RetryPolicy::retry_uncertain_writes` allows it.
//! - Topology refreshes are single-flight: concurrent failures trigger one fetch.
//! - No lock is held across an await except the pool slot's and the refresh lock, which
//!   are async locks guarding exactly the work they serialize.
//!
//! Submodules: `options` (knobs), `connection` (one pipelined connection), `pool`
//! (connections per (node, shard) address), `topology` (the pure routing table),
//! `discovery` (fetching/refreshing it, leader hints, suspects), `retry` (the retry
//! loop and backoff), `multi` (`get_multi` fan-out), `admin` (operator calls: node status).

mod admin;
mod connection;
mod discovery;
mod multi;
pub(crate) mod options;
mod pool;
pub(crate) mod retry;
mod topology;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use shoal_proto::{
    EncodeError, ReadConsistency, Request, Response, Topology, encode_delete, encode_get,
    encode_put, encode_request,
};
use tokio::sync::Mutex as AsyncMutex;
use tokio::time::Instant;

use self::connection::Connection;
pub use self::options::{AddressRewrite, RemoteOptions, RetryPolicy};
use self::pool::Pool;
use self::topology::Routing;
use crate::args::{check_key, check_value, ttl_ms};
use crate::error::KvClientError;
use crate::kv_client::KvClient;

/// A Shoal client over TCP. Cheap to clone (clones share connections and topology).
///
/// Build it with [`RemoteKvClient::connect`]; use it through [`KvClient`] or the extra
/// methods here ([`get_with`](Self::get_with), [`ping`](Self::ping),
/// [`topology`](Self::topology)...). Connection tasks run on the tokio runtime where
/// each connection is first used; calls work from any tokio runtime.
///
/// ```no_run
/// use std::time::Duration;
/// use shoal_client::{KvClient, ReadConsistency, RemoteKvClient, RemoteOptions};
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), shoal_client::KvClientError> {
/// let opts = RemoteOptions {
///     request_timeout: Duration::from_secs(2),
///     ..RemoteOptions::default()
/// };
/// let client = RemoteKvClient::connect(["10.0.0.1:7400", "10.0.0.2:7400"], opts).await?;
/// client.put(b"k", b"v").await?;
/// let fast = client.get_with(b"k", ReadConsistency::Lease).await?;
/// assert_eq!(fast.as_deref(), Some(&b"v"[..]));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct RemoteKvClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    opts: RemoteOptions,
    seeds: Vec<String>,
    routing: RwLock<Option<Arc<Routing>>>,
    /// Bumped by every successful topology fetch (single-flight bookkeeping).
    refresh_gen: AtomicU64,
    refresh_lock: AsyncMutex<()>,
    /// Rotates the node asked first for the topology.
    refresh_rr: AtomicUsize,
    topology_fetches: AtomicU64,
    pool: Pool,
    /// Nodes that recently failed to connect or dropped a connection, until when.
    suspects: Mutex<HashMap<u64, Instant>>,
}

/// How long a node that failed is avoided when another node can answer instead.
const SUSPECT_FOR: Duration = Duration::from_secs(1);

/// One failed attempt and what the retry loop needs to react to it.
#[derive(Debug)]
struct Failure {
    err: KvClientError,
    /// The shard the attempt targeted.
    shard: Option<u32>,
    /// The node that answered (its handshake id), if any.
    node: Option<u64>,
    /// The connection the failure came through, to evict it.
    conn: Option<Arc<Connection>>,
    /// Whether the request may have reached a node (its outcome is unknown).
    sent: bool,
    /// The topology generation the attempt routed with.
    gen_seen: u64,
    /// The shard count changed under a `get_multi` part: stop, the caller re-splits.
    resplit: bool,
}

impl Failure {
    fn before_send(err: KvClientError, gen_seen: u64) -> Failure {
        Failure {
            err,
            shard: None,
            node: None,
            conn: None,
            sent: false,
            gen_seen,
            resplit: false,
        }
    }
}

/// A single-key operation.
#[derive(Debug, Clone, Copy)]
enum KeyedOp<'a> {
    Get(ReadConsistency),
    Put {
        value: &'a [u8],
        ttl_ms: Option<u64>,
    },
    Delete,
}

impl KeyedOp<'_> {
    fn is_write(&self) -> bool {
        !matches!(self, KeyedOp::Get(_))
    }

    /// Whether only the group leader may serve it (so a success names the leader).
    fn needs_leader(&self) -> bool {
        !matches!(self, KeyedOp::Get(ReadConsistency::Stale))
    }

    fn encode(
        &self,
        buf: &mut BytesMut,
        id: u64,
        shard: u32,
        key: &[u8],
    ) -> Result<(), EncodeError> {
        match *self {
            KeyedOp::Get(c) => encode_get(buf, id, Some(shard), key, c),
            KeyedOp::Put { value, ttl_ms } => encode_put(buf, id, Some(shard), key, value, ttl_ms),
            KeyedOp::Delete => encode_delete(buf, id, Some(shard), key),
        }
    }
}

fn unexpected(conn: &Connection, what: &str, r: &Response) -> KvClientError {
    KvClientError::Protocol {
        addr: conn.addr().to_string(),
        reason: format!("expected a {what} answer, got {r:?}"),
    }
}

impl RemoteKvClient {
    /// Builds a client from node addresses (`"host:port"` strings or `SocketAddr`s, any
    /// node's client address; one reachable node is enough) and fetches the topology, retrying within
    /// `opts.request_timeout`.
    ///
    /// # Errors
    /// `InvalidArgument` for bad options or an empty address list; `Timeout` when no
    /// node answered in time (its `last_error` says why); `WrongCluster`,
    /// `IncompatibleVersion` as documented on [`KvClientError`].
    pub async fn connect<I, A>(
        addrs: I,
        opts: RemoteOptions,
    ) -> Result<RemoteKvClient, KvClientError>
    where
        I: IntoIterator<Item = A>,
        A: ToString,
    {
        opts.validate()?;
        let seeds: Vec<String> = addrs.into_iter().map(|a| a.to_string()).collect();
        if seeds.is_empty() {
            return Err(KvClientError::InvalidArgument {
                reason: "no node address given".into(),
            });
        }
        let pool = Pool::new(
            opts.connections_per_shard,
            opts.connect_timeout,
            opts.max_in_flight_per_connection,
            opts.address_rewrite.clone(),
        );
        let client = RemoteKvClient {
            inner: Arc::new(Inner {
                opts,
                seeds,
                routing: RwLock::new(None),
                refresh_gen: AtomicU64::new(0),
                refresh_lock: AsyncMutex::new(()),
                refresh_rr: AtomicUsize::new(0),
                topology_fetches: AtomicU64::new(0),
                pool,
                suspects: Mutex::new(HashMap::new()),
            }),
        };
        client.topology().await?;
        Ok(client)
    }

    /// The options this client was built with.
    pub fn options(&self) -> &RemoteOptions {
        &self.inner.opts
    }

    /// `get` with an explicit read consistency: `Linearizable` (the default of
    /// [`KvClient::get`]), `Lease` (no quorum round; linearizable unless clocks drift
    /// beyond the lease margin) or `Stale` (may miss recent writes). All are sent to the
    /// group leader.
    pub async fn get_with(
        &self,
        key: impl AsRef<[u8]>,
        consistency: ReadConsistency,
    ) -> Result<Option<Bytes>, KvClientError> {
        let key = key.as_ref();
        check_key(key)?;
        let op = KeyedOp::Get(consistency);
        self.keyed(key, op, |conn, r| match r {
            Response::Get(v) => Ok(v),
            other => Err(unexpected(conn, "Get", &other)),
        })
        .await
    }

    /// `get_multi` with an explicit read consistency (see [`get_with`](Self::get_with)).
    pub async fn get_multi_with(
        &self,
        keys: &[Bytes],
        consistency: ReadConsistency,
    ) -> Result<Vec<Option<Bytes>>, KvClientError> {
        self.multi_get(keys, consistency).await
    }

    /// `delete` that also says whether the key existed (unexpired) when it applied.
    /// After a retried delete whose first attempt applied, this is `false`.
    pub async fn delete_existed(&self, key: impl AsRef<[u8]>) -> Result<bool, KvClientError> {
        let key = key.as_ref();
        check_key(key)?;
        self.keyed(key, KeyedOp::Delete, |conn, r| match r {
            Response::Delete { existed } => Ok(existed),
            other => Err(unexpected(conn, "Delete", &other)),
        })
        .await
    }

    /// One `Ping` round trip to a node (the first that answers, in topology order);
    /// returns the round-trip time. Does not touch Raft.
    pub async fn ping(&self) -> Result<Duration, KvClientError> {
        let deadline = self.deadline();
        self.with_retries(deadline, false, || async {
            let gen_seen = self.inner.refresh_gen.load(Ordering::Acquire);
            let addr = self
                .candidates()
                .into_iter()
                .next()
                .ok_or_else(|| Failure::before_send(no_nodes(), gen_seen))?;
            let conn = self
                .inner
                .pool
                .get(&addr, self.cluster_id())
                .await
                .map_err(|e| Failure::before_send(e, gen_seen))?;
            let start = Instant::now();
            match conn
                .call(|b, id| encode_request(b, id, &Request::Ping))
                .await
            {
                Ok(Response::Pong) => Ok(start.elapsed()),
                Ok(Response::Error(e)) => Err(Failure::before_send(
                    KvClientError::from_error_response(e),
                    gen_seen,
                )),
                Ok(other) => Err(Failure::before_send(
                    unexpected(&conn, "Pong", &other),
                    gen_seen,
                )),
                Err(e) => Err(Failure {
                    conn: Some(conn),
                    ..Failure::before_send(e, gen_seen)
                }),
            }
        })
        .await
    }

    /// Fetches the topology from a node now (retrying within the request timeout),
    /// installs it for routing, and returns it.
    pub async fn topology(&self) -> Result<Topology, KvClientError> {
        let deadline = self.deadline();
        self.with_retries(deadline, false, || async {
            let gen_seen = self.inner.refresh_gen.load(Ordering::Acquire);
            self.refresh(gen_seen)
                .await
                .map_err(|e| Failure::before_send(e, gen_seen))?;
            self.current()
                .map(|r| r.to_topology())
                .ok_or_else(|| Failure::before_send(no_nodes(), gen_seen))
        })
        .await
    }

    /// The topology this client currently routes with (leader hints included), without
    /// any network activity; `None` before the first successful fetch.
    pub fn cached_topology(&self) -> Option<Topology> {
        self.current().map(|r| r.to_topology())
    }

    /// Connections opened so far (all nodes and shards), for diagnostics.
    pub fn connections_opened(&self) -> usize {
        self.inner.pool.opened()
    }

    /// Topology fetches so far (the initial one included), for diagnostics.
    pub fn topology_fetches(&self) -> u64 {
        self.inner.topology_fetches.load(Ordering::Relaxed)
    }

    // --- internals ------------------------------------------------------------------

    fn deadline(&self) -> Instant {
        Instant::now() + self.inner.opts.request_timeout
    }

    /// Runs a single-key operation with routing and retries; `parse` turns a success
    /// answer into the result.
    async fn keyed<T>(
        &self,
        key: &[u8],
        op: KeyedOp<'_>,
        parse: impl Fn(&Connection, Response) -> Result<T, KvClientError> + Sync,
    ) -> Result<T, KvClientError> {
        let deadline = self.deadline();
        let parse = &parse;
        self.with_retries(deadline, op.is_write(), || async move {
            let (routing, gen_seen) = self
                .routing()
                .await
                .map_err(|e| Failure::before_send(e, gen_seen_now(self)))?;
            let shard = routing.shard_of(key);
            let (conn, node, is_leader) = self.connect_shard(&routing, shard, gen_seen).await?;
            let fail = |err, sent| Failure {
                err,
                shard: Some(shard),
                node: Some(node),
                conn: Some(conn.clone()),
                sent,
                gen_seen,
                resplit: false,
            };
            match conn
                .call_tracked(|b, id| op.encode(b, id, shard, key))
                .await
            {
                Ok(Response::Error(e)) => Err(fail(KvClientError::from_error_response(e), true)),
                Ok(r) => {
                    let v = parse(&conn, r).map_err(|e| fail(e, true))?;
                    if !is_leader && op.needs_leader() {
                        self.learned_leader(shard, node);
                    }
                    Ok(v)
                }
                Err(f) => Err(fail(f.err, f.sent)),
            }
        })
        .await
    }

    /// A connection to the node believed to lead `shard`, on that shard's address.
    async fn connect_shard(
        &self,
        routing: &Routing,
        shard: u32,
        gen_seen: u64,
    ) -> Result<(Arc<Connection>, u64, bool), Failure> {
        let target = routing
            .target(shard, |n| self.is_suspect(n))
            .ok_or_else(|| Failure {
                shard: Some(shard),
                ..Failure::before_send(no_nodes(), gen_seen)
            })?;
        match self
            .inner
            .pool
            .get(&target.addr, Some(routing.cluster_id))
            .await
        {
            Ok(conn) => {
                self.clear_suspect(target.node);
                let node = conn.hello().node_id;
                Ok((conn, node, target.is_leader))
            }
            Err(err) => {
                if matches!(err, KvClientError::Connection { .. }) {
                    self.mark_suspect(target.node);
                }
                Err(Failure {
                    err,
                    shard: Some(shard),
                    node: Some(target.node),
                    ..Failure::before_send(no_nodes(), gen_seen)
                })
            }
        }
    }
}

fn gen_seen_now(c: &RemoteKvClient) -> u64 {
    c.inner.refresh_gen.load(Ordering::Acquire)
}

fn no_nodes() -> KvClientError {
    KvClientError::Unavailable {
        reason: "no node address known".into(),
    }
}

#[async_trait]
impl KvClient for RemoteKvClient {
    async fn put(
        &self,
        key: impl AsRef<[u8]> + Send,
        value: impl AsRef<[u8]> + Send,
    ) -> Result<(), KvClientError> {
        self.put_impl(key.as_ref(), value.as_ref(), None).await
    }

    async fn put_with_ttl(
        &self,
        key: impl AsRef<[u8]> + Send,
        value: impl AsRef<[u8]> + Send,
        ttl_secs: u64,
    ) -> Result<(), KvClientError> {
        let ttl = ttl_ms(ttl_secs)?;
        self.put_impl(key.as_ref(), value.as_ref(), Some(ttl)).await
    }

    async fn get(&self, key: impl AsRef<[u8]> + Send) -> Result<Option<Bytes>, KvClientError> {
        self.get_with(key, ReadConsistency::Linearizable).await
    }

    async fn get_multi(&self, keys: &[Bytes]) -> Result<Vec<Option<Bytes>>, KvClientError> {
        self.multi_get(keys, ReadConsistency::Linearizable).await
    }

    async fn delete(&self, key: impl AsRef<[u8]> + Send) -> Result<(), KvClientError> {
        self.delete_existed(key).await.map(|_| ())
    }
}

impl RemoteKvClient {
    async fn put_impl(
        &self,
        key: &[u8],
        value: &[u8],
        ttl_ms: Option<u64>,
    ) -> Result<(), KvClientError> {
        check_key(key)?;
        check_value(value)?;
        self.keyed(key, KeyedOp::Put { value, ttl_ms }, |conn, r| match r {
            Response::Put | Response::PutWithTtl => Ok(()),
            other => Err(unexpected(conn, "Put", &other)),
        })
        .await
    }
}

// The client is shared across tasks and threads.
const _: fn() = || {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<RemoteKvClient>();
};
