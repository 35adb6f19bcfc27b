//! The `floor-tcp` target: a loopback TCP round trip with Shoal's frame sizes, the floor
//! under `shoal-remote`.
//!
//! Each shard is a glommio executor (pinned as a node's shard is) serving one connection
//! on 127.0.0.1: it reads length-prefixed frames and answers each with a frame of the
//! length the request asked for, at once. The client side is shaped like
//! `RemoteKvClient`: one pipelined connection per shard, keys routed with
//! `shard_for_key`, a writer task that batches whatever is queued into one write, a reader
//! task that matches answers in order. Every request and answer has the byte length of
//! the Shoal protocol frame of the same operation (`shoal_proto` encoders, same key and
//! value sizes), so the difference between `shoal-remote` and this target is what the
//! node and the real client cost beyond moving the bytes.
//!
//! Wire format (this floor only): request `[u32 LE body_len][u32 LE reply_len][body]`,
//! answer `[u32 LE reply_len - 4][...]`, i.e. exactly `reply_len` bytes on the wire.
//!
//! Invariants: answers come back in request order on each connection; a caller whose
//! connection broke gets a connection error, never a hang (the reader closes the pending
//! queue when it stops, and the writer refuses to queue behind a closed one); frames
//! longer than `MAX_FRAME_LEN` close the connection; each server executor ends when its
//! one connection closes (dropping the target closes them).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::io::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpListener;
use glommio::{LocalExecutorBuilder, Placement};
use shoal_proto::limits::MAX_FRAME_LEN;
use shoal_proto::{ReadConsistency, Request, Response, encode_request, encode_response};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};

use super::{ConnectError, ErrorKind, OpError, Target};

/// Requests queued per connection before callers wait (the client's default
/// `max_in_flight_per_connection`).
const QUEUE: usize = 1024;
/// Bytes one batched write gathers at most.
const WRITE_BATCH: usize = 64 * 1024;
/// Bound on starting the server executors and connecting.
const START_TIMEOUT: Duration = Duration::from_secs(5);
/// Length of this floor's request header (body length, answer length).
const REQUEST_HEADER: usize = 8;
/// Length of this floor's answer header.
const ANSWER_HEADER: usize = 4;

/// Wire sizes of each operation's Shoal frames, for the run's key and value sizes.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    get: (u32, u32),
    put: (u32, u32),
    put_ttl: (u32, u32),
    delete: (u32, u32),
}

fn frame_len(encode: impl FnOnce(&mut BytesMut) -> Result<(), shoal_proto::EncodeError>) -> u32 {
    let mut buf = BytesMut::new();
    match encode(&mut buf) {
        Ok(()) => buf.len() as u32,
        // Sizes beyond the protocol's limits: the real client refuses them too; send
        // the largest frame instead of failing (the run's validation bounds sizes).
        Err(_) => MAX_FRAME_LEN as u32,
    }
}

fn request_len(req: &Request) -> u32 {
    frame_len(|b| encode_request(b, u64::MAX, req))
}

fn response_len(resp: &Response) -> u32 {
    frame_len(|b| encode_response(b, u64::MAX, resp))
}

impl Sizes {
    fn new(key_size: usize, value_size: usize) -> Sizes {
        let key = Bytes::from(vec![b'k'; key_size]);
        let value = Bytes::from(vec![0x5a; value_size]);
        let get = Request::Get(shoal_proto::Get {
            shard: Some(0),
            key: key.clone(),
            consistency: ReadConsistency::Linearizable,
        });
        let put = Request::Put(shoal_proto::Put {
            shard: Some(0),
            key: key.clone(),
            value: value.clone(),
        });
        let put_ttl = Request::PutWithTtl(shoal_proto::PutWithTtl {
            shard: Some(0),
            key: key.clone(),
            value: value.clone(),
            ttl_ms: 60_000,
        });
        let delete = Request::Delete(shoal_proto::Delete {
            shard: Some(0),
            key,
        });
        Sizes {
            get: (request_len(&get), response_len(&Response::Get(Some(value)))),
            put: (request_len(&put), response_len(&Response::Put)),
            put_ttl: (request_len(&put_ttl), response_len(&Response::PutWithTtl)),
            delete: (
                request_len(&delete),
                response_len(&Response::Delete { existed: true }),
            ),
        }
    }
}

struct Pending {
    request_len: u32,
    answer_len: u32,
    done: oneshot::Sender<()>,
}

/// Callers waiting for answers, in send order; `None` once the connection is gone.
type Waiters = Arc<Mutex<Option<VecDeque<oneshot::Sender<()>>>>>;

/// Echo shards on loopback and one pipelined connection to each.
pub struct TcpFloor {
    conns: Vec<mpsc::Sender<Pending>>,
    addrs: Vec<SocketAddr>,
    sizes: Sizes,
    value_size: usize,
}

impl std::fmt::Debug for TcpFloor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpFloor")
            .field("addrs", &self.addrs)
            .finish()
    }
}

impl TcpFloor {
    /// Starts `shards` echo executors on 127.0.0.1 and connects to each.
    /// `spin_before_park_us` is the echo executors' `spin_before_park` (a node's shards
    /// spin by default; 0: off).
    pub async fn start(
        shards: usize,
        key_size: usize,
        value_size: usize,
        spin_before_park_us: u64,
    ) -> Result<Self, ConnectError> {
        assert!(shards >= 1, "at least one shard");
        let failed = |endpoint: String, reason: String| ConnectError::Failed {
            target: "floor-tcp",
            endpoint,
            reason,
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut conns = Vec::with_capacity(shards);
        let mut addrs = Vec::with_capacity(shards);
        for shard in 0..shards {
            let (addr_tx, addr_rx) = oneshot::channel();
            let mut builder = LocalExecutorBuilder::new(Placement::Fixed(shard % cores))
                .name(&format!("floor-echo-{shard}"));
            if spin_before_park_us > 0 {
                builder = builder.spin_before_park(Duration::from_micros(spin_before_park_us));
            }
            builder.spawn(move || serve(addr_tx)).map_err(|e| {
                failed(
                    format!("shard {shard}"),
                    format!("cannot start the executor: {e}"),
                )
            })?;
            let addr = match tokio::time::timeout(START_TIMEOUT, addr_rx).await {
                Ok(Ok(Ok(addr))) => addr,
                Ok(Ok(Err(e))) => return Err(failed(format!("shard {shard}"), e)),
                Ok(Err(_)) | Err(_) => {
                    return Err(failed(
                        format!("shard {shard}"),
                        "the echo executor did not start".to_string(),
                    ));
                }
            };
            let stream = tokio::time::timeout(START_TIMEOUT, TcpStream::connect(addr))
                .await
                .map_err(|_| failed(addr.to_string(), "connect timed out".to_string()))?
                .map_err(|e| failed(addr.to_string(), e.to_string()))?;
            stream
                .set_nodelay(true)
                .map_err(|e| failed(addr.to_string(), e.to_string()))?;
            let (read, write) = stream.into_split();
            let waiters: Waiters = Arc::new(Mutex::new(Some(VecDeque::new())));
            let (tx, rx) = mpsc::channel(QUEUE);
            tokio::spawn(write_loop(rx, write, waiters.clone()));
            tokio::spawn(read_loop(read, waiters));
            conns.push(tx);
            addrs.push(addr);
        }
        Ok(TcpFloor {
            conns,
            addrs,
            sizes: Sizes::new(key_size, value_size),
            value_size,
        })
    }

    async fn round_trip(
        &self,
        key: &[u8],
        (request_len, answer_len): (u32, u32),
    ) -> Result<(), OpError> {
        let shard = shoal_proto::shard_for_key(key, self.conns.len() as u32) as usize;
        let (done, answered) = oneshot::channel();
        let pending = Pending {
            request_len,
            answer_len,
            done,
        };
        let gone = || {
            OpError::new(
                ErrorKind::Connection,
                format!("connection to {} closed", self.addrs[shard]),
            )
        };
        self.conns[shard].send(pending).await.map_err(|_| gone())?;
        answered.await.map_err(|_| gone())
    }
}

fn lock(w: &Waiters) -> std::sync::MutexGuard<'_, Option<VecDeque<oneshot::Sender<()>>>> {
    // A panic while holding this lock cannot leave the queue inconsistent (push/pop only).
    w.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn write_loop(mut rx: mpsc::Receiver<Pending>, mut write: OwnedWriteHalf, waiters: Waiters) {
    let mut buf: Vec<u8> = Vec::with_capacity(WRITE_BATCH);
    while let Some(first) = rx.recv().await {
        buf.clear();
        let mut next = Some(first);
        while let Some(p) = next.take() {
            {
                let mut q = lock(&waiters);
                let Some(q) = q.as_mut() else {
                    // The reader stopped: dropping `p.done` fails the caller.
                    return;
                };
                q.push_back(p.done);
            }
            let body = (p.request_len as usize).saturating_sub(REQUEST_HEADER);
            buf.extend_from_slice(&(body as u32).to_le_bytes());
            buf.extend_from_slice(&p.answer_len.to_le_bytes());
            buf.resize(buf.len() + body, 0);
            if buf.len() < WRITE_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if write.write_all(&buf).await.is_err() {
            break;
        }
    }
    // Dropping the write half sends FIN: the echo shard sees the end and stops.
}

async fn read_loop(read: OwnedReadHalf, waiters: Waiters) {
    let mut read = BufReader::with_capacity(WRITE_BATCH, read);
    let mut body = Vec::new();
    while let Ok(len) = read.read_u32_le().await {
        if len as usize > MAX_FRAME_LEN {
            break;
        }
        body.resize(len as usize, 0);
        if read.read_exact(&mut body).await.is_err() {
            break;
        }
        let waiter = lock(&waiters).as_mut().and_then(VecDeque::pop_front);
        match waiter {
            // The caller may have given up; nothing to do then.
            Some(w) => drop(w.send(())),
            // An answer nobody asked for: the stream is out of step.
            None => break,
        }
    }
    // Fail every waiting caller (dropping their senders) and refuse new ones.
    lock(&waiters).take();
}

/// One echo shard: binds 127.0.0.1:0, reports the address, serves one connection.
async fn serve(addr_tx: oneshot::Sender<Result<SocketAddr, String>>) {
    let listener = match TcpListener::bind("127.0.0.1:0") {
        Ok(l) => l,
        Err(e) => {
            let _ = addr_tx.send(Err(format!("bind: {e}")));
            return;
        }
    };
    match listener.local_addr() {
        Ok(a) => {
            if addr_tx.send(Ok(a)).is_err() {
                return;
            }
        }
        Err(e) => {
            let _ = addr_tx.send(Err(format!("local_addr: {e}")));
            return;
        }
    }
    let Ok(mut stream) = listener.accept().await else {
        return;
    };
    // Nagle would hold small answers back; the node's server disables it as well.
    let _ = stream.set_nodelay(true);
    let mut input = vec![0u8; 4 * WRITE_BATCH];
    let mut filled = 0;
    let mut out: Vec<u8> = Vec::with_capacity(WRITE_BATCH);
    loop {
        let n = match stream.read(&mut input[filled..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        filled += n;
        let mut pos = 0;
        while filled - pos >= REQUEST_HEADER {
            let word = |at: usize| {
                u32::from_le_bytes([input[at], input[at + 1], input[at + 2], input[at + 3]])
                    as usize
            };
            let (body, answer) = (word(pos), word(pos + 4));
            if body > MAX_FRAME_LEN || !(ANSWER_HEADER..=MAX_FRAME_LEN).contains(&answer) {
                return;
            }
            let whole = REQUEST_HEADER + body;
            if filled - pos < whole {
                if whole > input.len() {
                    input.resize(whole, 0);
                }
                break;
            }
            out.extend_from_slice(&((answer - ANSWER_HEADER) as u32).to_le_bytes());
            out.resize(out.len() + answer - ANSWER_HEADER, 0);
            pos += whole;
        }
        input.copy_within(pos..filled, 0);
        filled -= pos;
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
    }
}

impl Target for TcpFloor {
    fn describe(&self) -> String {
        let addrs: Vec<String> = self.addrs.iter().map(ToString::to_string).collect();
        format!(
            "floor-tcp {} (loopback echo on glommio, one pipelined connection per shard, \
             Shoal frame sizes: get {}+{} B, put {}+{} B: the transport under shoal-remote)",
            addrs.join(","),
            self.sizes.get.0,
            self.sizes.get.1,
            self.sizes.put.0,
            self.sizes.put.1,
        )
    }

    async fn put(&self, key: &[u8], _value: &[u8]) -> Result<(), OpError> {
        self.round_trip(key, self.sizes.put).await
    }

    async fn put_with_ttl(&self, key: &[u8], _value: &[u8], _ttl: u64) -> Result<(), OpError> {
        self.round_trip(key, self.sizes.put_ttl).await
    }

    async fn get(&self, key: &[u8]) -> Result<bool, OpError> {
        self.round_trip(key, self.sizes.get).await.map(|()| true)
    }

    async fn get_multi(&self, keys: &[Bytes]) -> Result<usize, OpError> {
        let Some(first) = keys.first() else {
            return Ok(0);
        };
        let request = Request::GetMulti(shoal_proto::GetMulti {
            shard: Some(0),
            keys: keys.to_vec(),
            consistency: ReadConsistency::Linearizable,
        });
        let value = Bytes::from(vec![0x5a; self.value_size]);
        let answer = Response::GetMulti(vec![Some(value); keys.len()]);
        let sizes = (request_len(&request), response_len(&answer));
        self.round_trip(first, sizes).await.map(|()| keys.len())
    }

    async fn delete(&self, key: &[u8]) -> Result<(), OpError> {
        self.round_trip(key, self.sizes.delete).await
    }
}
