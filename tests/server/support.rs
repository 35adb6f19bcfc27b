//! TEST-ONLY harness for the server tests: a fake `ShardService` (a HashMap per shard with
//! a gate that holds chosen requests), a node of S shard threads with a mesh between them,
//! and a blocking test client built on the protocol codec.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use shoal::node::{Mesh, ShardService};
use shoal::server::{DrainReport, Server, ServerConfig};
use shoal_proto::{
    Frame, FrameDecoder, GroupStatus, Hello, HelloOk, NodeInfo, RaftRole, Request, Response, Role,
    StatusReport, encode_request, shard_for_key,
};
use tokio::sync::{oneshot, watch};

/// Bound on every blocking read of the test client: a hang fails the test.
pub const WAIT: Duration = Duration::from_secs(10);

/// Keys starting with this prefix wait in the fake service until the gate opens.
pub const GATED: &[u8] = b"gate:";

/// Test controls and observations shared with every fake shard.
#[derive(Debug)]
pub struct Knobs {
    gate: watch::Sender<bool>,
    /// Requests the fake services finished executing.
    pub executed: AtomicUsize,
    /// Requests currently inside a fake service.
    pub running: AtomicUsize,
    /// Requests a fake service received for a key it does not own (must stay 0).
    pub misrouted: AtomicUsize,
}

impl Knobs {
    pub fn open_gate(&self) {
        self.gate.send_replace(true);
    }

    /// Waits (bounded) until `n` requests are inside the services.
    pub fn wait_running(&self, n: usize) {
        wait_until(&format!("{n} requests running"), || {
            self.running.load(Ordering::SeqCst) == n
        });
    }
}

/// Polls `cond` until it holds, failing the test after [`WAIT`].
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let waited = shoal_testkit::wait::wait_for(what, WAIT, Duration::from_millis(2), || {
        cond().then_some(())
    });
    if let Err(e) = waited {
        panic!("{e}");
    }
}

/// The fake shard service: an in-memory map.
struct Fake {
    shard: u32,
    shard_count: u32,
    node_id: u64,
    map: RefCell<HashMap<Bytes, Bytes>>,
    gate: watch::Receiver<bool>,
    knobs: Arc<Knobs>,
}

#[async_trait(?Send)]
impl ShardService for Fake {
    fn shard(&self) -> u32 {
        self.shard
    }

    async fn execute(&self, request: Request, _deadline: Instant) -> Response {
        self.knobs.running.fetch_add(1, Ordering::SeqCst);
        let gated = match &request {
            Request::GetMulti(g) => g.keys.iter().any(|k| k.starts_with(GATED)),
            r => r.key().is_some_and(|k| k.starts_with(GATED)),
        };
        if gated {
            let mut gate = self.gate.clone();
            let _ = gate.wait_for(|open| *open).await;
        }
        let response = self.apply(request);
        self.knobs.running.fetch_sub(1, Ordering::SeqCst);
        self.knobs.executed.fetch_add(1, Ordering::SeqCst);
        response
    }
}

impl Fake {
    fn owns(&self, key: &[u8]) -> bool {
        let ok = shard_for_key(key, self.shard_count) == self.shard;
        if !ok {
            self.knobs.misrouted.fetch_add(1, Ordering::SeqCst);
        }
        ok
    }

    fn apply(&self, request: Request) -> Response {
        let mut map = self.map.borrow_mut();
        let misrouted = || {
            Response::Error(shoal_proto::ErrorResponse::new(
                shoal_proto::ErrorDetail::Internal,
                "misrouted",
            ))
        };
        match request {
            Request::Get(g) if self.owns(&g.key) => Response::Get(map.get(&g.key).cloned()),
            Request::GetMulti(g) if g.keys.iter().all(|k| self.owns(k)) => {
                Response::GetMulti(g.keys.iter().map(|k| map.get(k).cloned()).collect())
            }
            Request::Put(p) if self.owns(&p.key) => {
                map.insert(p.key, p.value);
                Response::Put
            }
            Request::PutWithTtl(p) if self.owns(&p.key) => {
                map.insert(p.key, p.value);
                Response::PutWithTtl
            }
            Request::Delete(d) if self.owns(&d.key) => Response::Delete {
                existed: map.remove(&d.key).is_some(),
            },
            Request::Status { group: Some(g) } if g == self.shard => {
                Response::Status(StatusReport {
                    node_id: self.node_id,
                    groups: vec![group_status(g, self.node_id)],
                })
            }
            Request::AddLearner(a) if a.group == self.shard => Response::AddLearner {
                log_index: 100 + u64::from(a.group),
            },
            Request::ChangeMembership(c) if c.group == self.shard => Response::ChangeMembership {
                log_index: 200 + u64::from(c.group),
            },
            _ => misrouted(),
        }
    }
}

/// What the fake reports for group `g`: led by `node_id` in term `10 + g`.
pub fn group_status(g: u32, node_id: u64) -> GroupStatus {
    GroupStatus {
        group: g,
        role: RaftRole::Leader,
        term: 10 + u64::from(g),
        leader: Some(node_id),
        last_log_index: Some(5),
        committed_index: Some(5),
        applied_index: Some(5),
        voters: vec![node_id],
        learners: vec![],
    }
}

pub const NODE_ID: u64 = 3;
pub const CLUSTER_ID: u64 = 0xC1;

/// A node of S shard threads, each a glommio executor running a `Server` over a `Fake`.
pub struct Node {
    pub addrs: Vec<SocketAddr>,
    pub knobs: Arc<Knobs>,
    pub mesh: Mesh,
    stops: Vec<Option<oneshot::Sender<()>>>,
    threads: Vec<Option<glommio::ExecutorJoinHandle<DrainReport>>>,
}

/// A test configuration: generous limits, short timeouts where a test waits for them.
pub fn config(shard: u32, shard_count: u32) -> ServerConfig {
    ServerConfig {
        shard,
        shard_count,
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        node_id: NODE_ID,
        cluster_id: CLUSTER_ID,
        nodes: vec![NodeInfo {
            node_id: NODE_ID,
            addr: "127.0.0.1:7400".into(),
            shard_addrs: (0..shard_count)
                .map(|s| format!("127.0.0.1:{}", 7400 + s))
                .collect(),
        }],
        max_connections: 64,
        max_in_flight_per_connection: 1024,
        max_in_flight_per_shard: 4096,
        max_frame_len: 64 * 1024,
        max_key_len: 1024,
        max_value_len: 32 * 1024,
        request_timeout: Duration::from_secs(20),
        frame_read_timeout: Duration::from_secs(20),
        write_timeout: Duration::from_secs(20),
        drain_timeout: Duration::from_secs(20),
        resp_listen: None,
    }
}

impl Node {
    /// Starts `shards` shards; `tune` adjusts each shard's configuration.
    pub fn start(shards: u32, tune: impl Fn(&mut ServerConfig)) -> Node {
        let (mesh, inboxes) = Mesh::new(shards as usize, 1024);
        let (gate, _) = watch::channel(false);
        let knobs = Arc::new(Knobs {
            gate,
            executed: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            misrouted: AtomicUsize::new(0),
        });
        let mut node = Node {
            addrs: Vec::new(),
            knobs: Arc::clone(&knobs),
            mesh: mesh.clone(),
            stops: Vec::new(),
            threads: Vec::new(),
        };
        for (shard, inbox) in inboxes.into_iter().enumerate() {
            let shard = shard as u32;
            let mut cfg = config(shard, shards);
            tune(&mut cfg);
            let (stop_tx, stop_rx) = oneshot::channel::<()>();
            let (addr_tx, addr_rx) = std::sync::mpsc::channel();
            let mesh = mesh.clone();
            let knobs = Arc::clone(&knobs);
            let gate = knobs.gate.subscribe();
            let handle = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
                .name(&format!("shard-{shard}"))
                .spawn(move || async move {
                    let service = Rc::new(Fake {
                        shard,
                        shard_count: shards,
                        node_id: NODE_ID,
                        map: RefCell::new(HashMap::new()),
                        gate,
                        knobs,
                    });
                    let server = match Server::bind(cfg, service, mesh, inbox).await {
                        Ok(s) => s,
                        Err(e) => panic!("bind failed: {e}"),
                    };
                    addr_tx.send(server.local_addr()).unwrap();
                    server
                        .run(async move {
                            let _ = stop_rx.await;
                        })
                        .await
                })
                .unwrap();
            node.addrs.push(addr_rx.recv_timeout(WAIT).unwrap());
            node.stops.push(Some(stop_tx));
            node.threads.push(Some(handle));
        }
        node
    }

    /// Signals shutdown to shard `s` (without waiting).
    pub fn signal_shutdown(&mut self, s: usize) {
        if let Some(tx) = self.stops[s].take() {
            let _ = tx.send(());
        }
    }

    /// Waits for shard `s`'s server to return.
    pub fn join(&mut self, s: usize) -> DrainReport {
        self.threads[s].take().unwrap().join().unwrap()
    }

    /// Connects to shard `s` and completes the handshake.
    pub fn client(&self, s: usize) -> Client {
        Client::connect(self.addrs[s])
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.knobs.open_gate();
        for s in 0..self.stops.len() {
            self.signal_shutdown(s);
        }
        for t in self.threads.iter_mut() {
            if let Some(t) = t.take() {
                let _ = t.join();
            }
        }
    }
}

/// `n` distinct keys (with `prefix`) owned by `shard` of `shard_count`.
pub fn keys_on(shard: u32, shard_count: u32, prefix: &str, n: usize) -> Vec<Bytes> {
    (0u32..)
        .map(|i| Bytes::from(format!("{prefix}{i}")))
        .filter(|k| shard_for_key(k, shard_count) == shard)
        .take(n)
        .collect()
}

/// A blocking client speaking the protocol with the codec.
pub struct Client {
    pub stream: TcpStream,
    buf: BytesMut,
    decoder: FrameDecoder,
    next_id: u64,
    pub hello: Option<HelloOk>,
}

impl Client {
    /// A connection without handshake.
    pub fn raw(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: BytesMut::new(),
            decoder: FrameDecoder::new(Role::Client),
            next_id: 1,
            hello: None,
        }
    }

    /// A connection with a completed handshake.
    pub fn connect(addr: SocketAddr) -> Client {
        let mut c = Client::raw(addr);
        c.send(0, &Request::Hello(Hello::default()));
        match c.recv() {
            (0, Response::Hello(h)) => c.hello = Some(h),
            other => panic!("handshake answered {other:?}"),
        }
        c
    }

    pub fn send(&mut self, id: u64, request: &Request) {
        let mut out = BytesMut::new();
        encode_request(&mut out, id, request).unwrap();
        self.stream.write_all(&out).unwrap();
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// The next frame, or `None` at end of stream (or reset).
    pub fn recv_or_eof(&mut self) -> Option<(u64, Response)> {
        loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(Frame::Response(f))) => return Some((f.request_id, f.response)),
                Ok(Some(other)) => panic!("unexpected frame {other:?}"),
                Ok(None) => {}
                Err(e) => panic!("undecodable answer: {e}"),
            }
            let mut chunk = [0u8; 64 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("read failed (a hang?): {e}"),
            }
        }
    }

    pub fn recv(&mut self) -> (u64, Response) {
        self.recv_or_eof().expect("connection closed")
    }

    /// Sends `request` with a fresh id and returns its answer (nothing else in flight).
    pub fn call(&mut self, request: Request) -> Response {
        let id = self.next_id;
        self.next_id += 1;
        self.send(id, &request);
        let (got, response) = self.recv();
        assert_eq!(got, id, "answer to another request");
        response
    }

    /// Asserts that the server closes the connection without sending another frame.
    pub fn expect_closed(&mut self) {
        if let Some(f) = self.recv_or_eof() {
            panic!("expected the connection to close, got {f:?}");
        }
    }
}

/// Binds a server for `cfg` on a fresh executor and returns the bind result (the server is
/// dropped at once).
pub fn try_bind(cfg: ServerConfig) -> Result<SocketAddr, String> {
    let (mesh, mut inboxes) = Mesh::new(cfg.shard_count as usize, 4);
    let inbox = inboxes.remove(cfg.shard as usize);
    let (gate, _) = watch::channel(false);
    let knobs = Arc::new(Knobs {
        gate,
        executed: AtomicUsize::new(0),
        running: AtomicUsize::new(0),
        misrouted: AtomicUsize::new(0),
    });
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .spawn(move || async move {
            let service = Rc::new(Fake {
                shard: cfg.shard,
                shard_count: cfg.shard_count,
                node_id: NODE_ID,
                map: RefCell::new(HashMap::new()),
                gate: knobs.gate.subscribe(),
                knobs,
            });
            Server::bind(cfg, service, mesh, inbox)
                .await
                .map(|s| s.local_addr())
                .map_err(|e| e.to_string())
        })
        .unwrap()
        .join()
        .unwrap()
}
