//! An in-test mock of a Shoal cluster, built on `shoal_proto`'s codec: N nodes, each with
//! one listener per shard on 127.0.0.1, one shared in-memory store honoring TTLs, and
//! switches for the failures the client must survive (wrong leader, stale shard count,
//! silence, dropped connections, backpressure, shutdown, out-of-order answers).
//!
//! Invariants: it speaks the real protocol (handshake, per-shard connections, request
//! ids, error frames) so the client is tested against bytes, not mocks of its internals;
//! every task it spawns is aborted when the `MockCluster` drops.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use shoal_proto::limits::{MAX_FRAME_LEN, MAX_TTL_SECS};
use shoal_proto::{
    ErrorDetail, ErrorResponse, Frame, FrameDecoder, GroupLeader, HelloOk, LimitKind, NodeInfo,
    ReadConsistency, Request, Response, Role, Topology, encode_error, encode_response,
    shard_for_key,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub const CLUSTER_ID: u64 = 0x0054_03A1;

/// Per-node counters.
#[derive(Debug, Default, Clone)]
pub struct NodeStats {
    pub connections: usize,
    pub data_requests: usize,
    pub topology_requests: usize,
    pub not_leader: usize,
    pub wrong_shard: usize,
    /// Data requests whose stated shard differs from the connection's shard.
    pub hops: usize,
    pub dropped: usize,
}

#[derive(Debug)]
pub struct State {
    pub shard_count: u32,
    /// Shard count the Topology answer announces (differs to simulate a stale client).
    pub advertised_shard_count: u32,
    /// After answering one WrongShard, announce the true shard count again.
    pub fix_topology_after_wrong_shard: bool,
    /// Node index leading each group.
    pub leaders: Vec<usize>,
    /// What the Topology answer says about leaders (`None`: the truth).
    pub advertised_leaders: Option<Vec<Option<usize>>>,
    pub term: u64,
    pub store: HashMap<Bytes, (Bytes, Option<Instant>)>,
    /// Read data requests but never answer them.
    pub silent: bool,
    /// Hold answers on a connection until this many are queued, then send them reversed.
    pub reverse_batch: usize,
    /// Close the connection instead of answering the next N data requests.
    pub drop_next: usize,
    /// Answer `Busy` to the next N data requests.
    pub busy_next: usize,
    /// Answer `TooLarge(Response)` to GetMulti requests with more keys than this.
    pub max_multi_answer: usize,
    /// Answer `ShuttingDown` to every data request, then close.
    pub shutting_down: bool,
    /// Answer the next N data requests with an undecodable frame (unknown opcode).
    pub garbage_next: usize,
    /// Refuse handshakes with `IncompatibleVersion`.
    pub refuse_version: bool,
    /// Read consistency of every Get/GetMulti received, in order.
    pub consistencies: Vec<ReadConsistency>,
    pub stats: Vec<NodeStats>,
    /// Per node: its listener and connection tasks (aborted by `kill`).
    pub node_tasks: Vec<Vec<tokio::task::AbortHandle>>,
}

pub struct MockCluster {
    pub state: Arc<Mutex<State>>,
    /// Per node, per listening shard, the address.
    pub addrs: Vec<Vec<String>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for MockCluster {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        if let Ok(mut s) = self.state.lock() {
            for node in s.node_tasks.iter_mut() {
                for t in node.drain(..) {
                    t.abort();
                }
            }
        }
    }
}

impl MockCluster {
    /// `nodes` nodes with `shards` shards each; group s is led by node `s % nodes`.
    pub async fn start(nodes: usize, shards: u32) -> MockCluster {
        Self::start_with(nodes, shards, shards).await
    }

    /// Like `start`, with `listen_shards >= shards` listeners per node (to announce a
    /// different shard count than the real one).
    pub async fn start_with(nodes: usize, shards: u32, listen_shards: u32) -> MockCluster {
        let state = Arc::new(Mutex::new(State {
            shard_count: shards,
            advertised_shard_count: shards,
            fix_topology_after_wrong_shard: false,
            leaders: (0..shards as usize).map(|s| s % nodes).collect(),
            advertised_leaders: None,
            term: 1,
            store: HashMap::new(),
            silent: false,
            reverse_batch: 1,
            drop_next: 0,
            busy_next: 0,
            max_multi_answer: usize::MAX,
            shutting_down: false,
            garbage_next: 0,
            refuse_version: false,
            consistencies: Vec::new(),
            stats: vec![NodeStats::default(); nodes],
            node_tasks: vec![Vec::new(); nodes],
        }));
        let mut addrs = Vec::new();
        let mut listeners = Vec::new();
        for n in 0..nodes {
            let mut node_addrs = Vec::new();
            for s in 0..listen_shards {
                let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
                node_addrs.push(l.local_addr().unwrap().to_string());
                listeners.push((n, s, l));
            }
            addrs.push(node_addrs);
        }
        let addrs_shared = Arc::new(addrs.clone());
        let mut tasks = Vec::new();
        for (n, s, l) in listeners {
            let st = state.clone();
            let addrs = addrs_shared.clone();
            let listener = tokio::spawn(async move {
                loop {
                    let Ok((sock, _)) = l.accept().await else {
                        return;
                    };
                    let _ = sock.set_nodelay(true);
                    let conn = tokio::spawn(serve(sock, n, s, st.clone(), addrs.clone()));
                    let mut g = st.lock().unwrap();
                    g.stats[n].connections += 1;
                    g.node_tasks[n].push(conn.abort_handle());
                }
            });
            state.lock().unwrap().node_tasks[n].push(listener.abort_handle());
            tasks.push(listener);
        }
        MockCluster {
            state,
            addrs,
            tasks,
        }
    }

    /// Every node's main address (its shard-0 listener).
    pub fn seeds(&self) -> Vec<String> {
        self.addrs.iter().map(|a| a[0].clone()).collect()
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }

    pub fn stats(&self, node: usize) -> NodeStats {
        self.with(|s| s.stats[node].clone())
    }

    /// Kills node `n`: its listeners stop and its connections close (like SIGKILL).
    pub fn kill(&self, n: usize) {
        self.with(|s| {
            for t in s.node_tasks[n].drain(..) {
                t.abort();
            }
        });
    }

    pub fn total_data_requests(&self) -> usize {
        self.with(|s| s.stats.iter().map(|n| n.data_requests).sum())
    }
}

fn node_info(addrs: &[Vec<String>], n: usize, shards: u32) -> NodeInfo {
    NodeInfo {
        node_id: n as u64 + 1,
        addr: addrs[n][0].clone(),
        shard_addrs: addrs[n][..shards as usize].to_vec(),
    }
}

enum Action {
    Answer(Response),
    Garbage,
    Close,
    Ignore,
}

fn err(detail: ErrorDetail) -> Action {
    Action::Answer(Response::Error(ErrorResponse::new(detail, "mock")))
}

fn handle(
    st: &mut State,
    n: usize,
    conn_shard: u32,
    req: Request,
    addrs: &[Vec<String>],
) -> Action {
    let s_count = st.shard_count;
    let (stated, keys, needs_leader) = match &req {
        Request::Ping => return Action::Answer(Response::Pong),
        Request::Topology => {
            st.stats[n].topology_requests += 1;
            let adv = st.advertised_shard_count;
            let leaders = (0..adv as usize)
                .map(|g| GroupLeader {
                    leader: match &st.advertised_leaders {
                        Some(l) => l.get(g).copied().flatten().map(|i| i as u64 + 1),
                        None => st.leaders.get(g).map(|&i| i as u64 + 1),
                    },
                    term: st.term,
                })
                .collect();
            return Action::Answer(Response::Topology(Topology {
                cluster_id: CLUSTER_ID,
                shard_count: adv,
                nodes: (0..addrs.len()).map(|i| node_info(addrs, i, adv)).collect(),
                leaders,
            }));
        }
        Request::Get(g) => (
            g.shard,
            vec![g.key.clone()],
            g.consistency != ReadConsistency::Stale,
        ),
        Request::GetMulti(g) => (
            g.shard,
            g.keys.clone(),
            g.consistency != ReadConsistency::Stale,
        ),
        Request::Put(p) => (p.shard, vec![p.key.clone()], true),
        Request::PutWithTtl(p) => (p.shard, vec![p.key.clone()], true),
        Request::Delete(d) => (d.shard, vec![d.key.clone()], true),
        _ => return err(ErrorDetail::InvalidRequest),
    };
    st.stats[n].data_requests += 1;
    match &req {
        Request::Get(g) => st.consistencies.push(g.consistency),
        Request::GetMulti(g) => st.consistencies.push(g.consistency),
        _ => {}
    }
    if st.shutting_down {
        return err(ErrorDetail::ShuttingDown);
    }
    if st.silent {
        return Action::Ignore;
    }
    if st.garbage_next > 0 {
        st.garbage_next -= 1;
        return Action::Garbage;
    }
    if st.drop_next > 0 {
        st.drop_next -= 1;
        st.stats[n].dropped += 1;
        return Action::Close;
    }
    if st.busy_next > 0 {
        st.busy_next -= 1;
        return err(ErrorDetail::Busy { retry_after_ms: 5 });
    }
    let Some(shard) = stated else {
        return err(ErrorDetail::InvalidRequest);
    };
    if shard != conn_shard {
        st.stats[n].hops += 1;
    }
    for k in &keys {
        let owner = shard_for_key(k, s_count);
        if owner != shard {
            st.stats[n].wrong_shard += 1;
            if st.fix_topology_after_wrong_shard {
                st.advertised_shard_count = s_count;
            }
            return err(ErrorDetail::WrongShard {
                owner_shard: owner,
                shard_count: s_count,
            });
        }
    }
    if needs_leader && st.leaders[shard as usize] != n {
        st.stats[n].not_leader += 1;
        let l = st.leaders[shard as usize];
        return err(ErrorDetail::NotLeader {
            leader: Some(node_info(addrs, l, s_count)),
        });
    }
    let now = Instant::now();
    let read = |st: &State, k: &Bytes| -> Option<Bytes> {
        match st.store.get(k) {
            Some((v, exp)) if exp.is_none_or(|e| now < e) => Some(v.clone()),
            _ => None,
        }
    };
    Action::Answer(match req {
        Request::Get(g) => Response::Get(read(st, &g.key)),
        Request::GetMulti(g) => {
            if g.keys.len() > st.max_multi_answer {
                return err(ErrorDetail::TooLarge {
                    limit: LimitKind::Response,
                    max: MAX_FRAME_LEN as u64,
                    actual: MAX_FRAME_LEN as u64 + 1,
                });
            }
            Response::GetMulti(g.keys.iter().map(|k| read(st, k)).collect())
        }
        Request::Put(p) => {
            st.store.insert(p.key, (p.value, None));
            Response::Put
        }
        Request::PutWithTtl(p) => {
            assert!(p.ttl_ms >= 1 && p.ttl_ms <= MAX_TTL_SECS * 1000);
            let exp = now.checked_add(Duration::from_millis(p.ttl_ms));
            st.store.insert(p.key, (p.value, exp));
            Response::PutWithTtl
        }
        Request::Delete(d) => {
            let existed = read(st, &d.key).is_some();
            st.store.remove(&d.key);
            Response::Delete { existed }
        }
        _ => unreachable!(),
    })
}

async fn serve(
    mut sock: TcpStream,
    n: usize,
    shard: u32,
    state: Arc<Mutex<State>>,
    addrs: Arc<Vec<Vec<String>>>,
) {
    let mut dec = FrameDecoder::new(Role::Server);
    let mut buf = BytesMut::new();
    let mut out = BytesMut::new();
    let mut held: Vec<(u64, Response)> = Vec::new();
    let mut hello_done = false;
    loop {
        loop {
            let frame = match dec.decode(&mut buf) {
                Ok(Some(Frame::Request(f))) => f,
                Ok(None) => break,
                Ok(Some(_)) | Err(_) => return,
            };
            if !hello_done {
                let Request::Hello(_) = &frame.request else {
                    return;
                };
                hello_done = true;
                let (s_count, refuse) = {
                    let st = state.lock().unwrap();
                    (st.shard_count, st.refuse_version)
                };
                if refuse {
                    let e = ErrorResponse::new(
                        ErrorDetail::IncompatibleVersion {
                            min_version: 7,
                            max_version: 9,
                        },
                        "mock speaks 7..=9",
                    );
                    encode_error(&mut out, frame.request_id, &e).unwrap();
                    let _ = sock.write_all(&out).await;
                    return;
                }
                let ok = HelloOk {
                    version: 1,
                    cluster_id: CLUSTER_ID,
                    node_id: n as u64 + 1,
                    shard_count: s_count,
                    connection_shard: (shard < s_count).then_some(shard),
                    max_frame_len: MAX_FRAME_LEN as u32,
                    max_in_flight: 1024,
                };
                encode_response(&mut out, frame.request_id, &Response::Hello(ok)).unwrap();
                continue;
            }
            let (action, reverse) = {
                let mut st = state.lock().unwrap();
                let a = handle(&mut st, n, shard, frame.request, &addrs);
                (a, st.reverse_batch)
            };
            match action {
                Action::Answer(r) => {
                    if reverse > 1 {
                        held.push((frame.request_id, r));
                        if held.len() >= reverse {
                            for (id, r) in held.drain(..).rev() {
                                encode(&mut out, id, &r);
                            }
                        }
                    } else {
                        encode(&mut out, frame.request_id, &r);
                    }
                }
                Action::Garbage => {
                    // A response header with an opcode no version defines.
                    let mut h = [0u8; 16];
                    h[0] = 1;
                    h[1] = 0x9F;
                    h[4..12].copy_from_slice(&frame.request_id.to_le_bytes());
                    out.extend_from_slice(&h);
                }
                Action::Close => return,
                Action::Ignore => {}
            }
        }
        if !out.is_empty() {
            if sock.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
            if state.lock().unwrap().shutting_down {
                return;
            }
        }
        buf.reserve(64 * 1024);
        match sock.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

fn encode(out: &mut BytesMut, id: u64, r: &Response) {
    match r {
        Response::Error(e) => encode_error(out, id, e).unwrap(),
        r => encode_response(out, id, r).unwrap(),
    }
}
