//! One pipelined client connection to one node address: handshake, a writer task, a
//! reader task, and a map of request id -> waiting caller.
//!
//! Invariants:
//! - Every request gets a fresh id (a per-connection counter; 0 is the `Hello`), so ids
//!   are unique among the requests in flight; responses are matched by id, in any order.
//! - At most `max_in_flight` requests are in flight (a semaphore permit per request,
//!   held until its answer or its cancellation), so the pending map, the writer queue and
//!   the node's per-connection budget all stay bounded.
//! - A pending entry is inserted under the same lock that records closure: once the
//!   connection is closed no entry can be added, and every entry present at closure is
//!   answered with the closing error. No caller can wait forever on a dead connection.
//! - A caller that gives up (timeout, cancellation) removes its entry on drop; a late
//!   answer for an unknown id is then ignored.
//! - A frame the client cannot decode closes the connection (`docs/PROTOCOL.md` §6).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use shoal_proto::{
    EncodeError, Frame, FrameDecoder, HEADER_LEN, Hello, HelloOk, Request, Response, Role,
    encode_request,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::KvClientError;

type Reply = Result<Response, KvClientError>;

/// A failed call, and whether its request may have reached the node.
#[derive(Debug)]
pub(crate) struct CallFailed {
    pub(crate) err: KvClientError,
    /// False when the request certainly never left this client.
    pub(crate) sent: bool,
}

/// Largest batch of queued frames the writer coalesces into one `write_all`.
const WRITE_COALESCE_BYTES: usize = 256 * 1024;
/// Read buffer growth step.
const READ_CHUNK: usize = 64 * 1024;

#[derive(Debug, Default)]
struct PendingState {
    waiters: HashMap<u64, oneshot::Sender<Reply>>,
    closed: Option<KvClientError>,
}

#[derive(Debug)]
struct Shared {
    addr: String,
    pending: Mutex<PendingState>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, PendingState> {
        // A panic while holding this lock cannot leave the map inconsistent (single
        // inserts and removes), so a poisoned lock is still usable.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks the connection closed with `err` and fails every waiter (first error wins).
    fn close(&self, err: KvClientError) {
        let waiters = {
            let mut st = self.lock();
            if st.closed.is_none() {
                st.closed = Some(err.clone());
            }
            std::mem::take(&mut st.waiters)
        };
        if !waiters.is_empty() {
            let n = waiters.len();
            tracing::debug!(addr = %self.addr, n, %err, "closed with requests in flight");
        }
        for (_, w) in waiters {
            let _ = w.send(Err(err.clone()));
        }
    }
}

/// Removes a caller's pending entry if it stops waiting before its answer.
struct PendingGuard<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.shared.lock().waiters.remove(&self.id);
    }
}

/// A live, handshaken connection; cheap to share behind an `Arc`.
#[derive(Debug)]
pub(crate) struct Connection {
    shared: Arc<Shared>,
    hello: HelloOk,
    next_id: AtomicU64,
    permits: Arc<Semaphore>,
    max_frame_len: usize,
    outbox: mpsc::UnboundedSender<Bytes>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        // Nobody can send on this connection any more: stop both tasks, which closes
        // the socket. Waiters (if any) are failed by `close`.
        self.reader.abort();
        self.writer.abort();
        self.shared.close(KvClientError::Connection {
            addr: self.shared.addr.clone(),
            reason: "connection dropped by the client".into(),
        });
    }
}

impl Connection {
    /// Connects to `addr`, sends `Hello` and waits for the answer, all within `timeout`.
    pub(crate) async fn open(
        addr: &str,
        timeout: Duration,
        max_in_flight: usize,
    ) -> Result<Connection, KvClientError> {
        let conn_err = |reason: String| KvClientError::Connection {
            addr: addr.to_string(),
            reason,
        };
        let (stream, hello, leftover) = match tokio::time::timeout(timeout, handshake(addr)).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(conn_err(format!(
                    "connect and handshake timed out after {timeout:?}"
                )));
            }
        };
        let (rd, wr) = stream.into_split();
        let shared = Arc::new(Shared {
            addr: addr.to_string(),
            pending: Mutex::new(PendingState::default()),
        });
        let (outbox, rx) = mpsc::unbounded_channel();
        let reader = tokio::spawn(read_loop(shared.clone(), rd, leftover));
        let writer = tokio::spawn(write_loop(shared.clone(), wr, rx));
        let limit = max_in_flight.min(hello.max_in_flight.max(1) as usize);
        let (node, shard) = (hello.node_id, hello.connection_shard);
        tracing::debug!(%addr, node, ?shard, limit, "connected");
        Ok(Connection {
            shared,
            hello,
            next_id: AtomicU64::new(1),
            permits: Arc::new(Semaphore::new(limit)),
            max_frame_len: hello.max_frame_len as usize,
            outbox,
            reader,
            writer,
        })
    }

    /// The node's handshake answer.
    pub(crate) fn hello(&self) -> &HelloOk {
        &self.hello
    }

    /// The address this connection was opened to.
    pub(crate) fn addr(&self) -> &str {
        &self.shared.addr
    }

    /// True once the connection has failed or closed; it is then useless.
    pub(crate) fn is_closed(&self) -> bool {
        self.shared.lock().closed.is_some() || self.outbox.is_closed()
    }

    /// Sends one request built by `encode(buf, request_id)` and waits for its answer.
    /// An `Error` frame comes back as `Ok(Response::Error(..))`; connection failures as
    /// `Err`.
    pub(crate) async fn call(
        &self,
        encode: impl FnOnce(&mut BytesMut, u64) -> Result<(), EncodeError>,
    ) -> Result<Response, KvClientError> {
        self.call_tracked(encode).await.map_err(|f| f.err)
    }

    /// Like [`call`](Self::call), and on failure says whether the request was handed to
    /// the socket (then its outcome is unknown) or certainly never left this client.
    pub(crate) async fn call_tracked(
        &self,
        encode: impl FnOnce(&mut BytesMut, u64) -> Result<(), EncodeError>,
    ) -> Result<Response, CallFailed> {
        let unsent = |err| CallFailed { err, sent: false };
        let mut buf = BytesMut::new();
        encode(&mut buf, 0).map_err(|e| unsent(e.into()))?;
        let body_len = buf.len() - HEADER_LEN;
        if body_len > self.max_frame_len {
            return Err(unsent(KvClientError::too_large(
                shoal_proto::LimitKind::Frame,
                self.max_frame_len,
                body_len,
            )));
        }
        let _permit: OwnedSemaphorePermit = match self.permits.clone().acquire_owned().await {
            Ok(p) => p,
            Err(_) => return Err(unsent(self.closed_error())),
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        // The id sits at a fixed header offset: patch it instead of re-encoding.
        buf[4..12].copy_from_slice(&id.to_le_bytes());
        let (tx, rx) = oneshot::channel();
        {
            let mut st = self.shared.lock();
            if let Some(e) = &st.closed {
                return Err(unsent(e.clone()));
            }
            let prev = st.waiters.insert(id, tx);
            assert!(prev.is_none(), "request id {id} reused while in flight");
        }
        let guard = PendingGuard {
            shared: &self.shared,
            id,
        };
        if self.outbox.send(buf.freeze()).is_err() {
            return Err(unsent(self.closed_error()));
        }
        let reply = rx.await;
        drop(guard);
        let sent = |err| CallFailed { err, sent: true };
        match reply {
            Ok(r) => r.map_err(sent),
            Err(_) => Err(sent(self.closed_error())),
        }
    }

    fn closed_error(&self) -> KvClientError {
        self.shared
            .lock()
            .closed
            .clone()
            .unwrap_or_else(|| KvClientError::Connection {
                addr: self.shared.addr.clone(),
                reason: "connection closed".into(),
            })
    }
}

/// Connects and runs the `Hello` exchange; returns any bytes read past the answer.
async fn handshake(addr: &str) -> Result<(TcpStream, HelloOk, BytesMut), KvClientError> {
    let io = |e: std::io::Error| KvClientError::Connection {
        addr: addr.to_string(),
        reason: e.to_string(),
    };
    let mut stream = TcpStream::connect(addr).await.map_err(io)?;
    stream.set_nodelay(true).map_err(io)?;
    let mut out = BytesMut::new();
    encode_request(&mut out, 0, &Request::Hello(Hello::default()))?;
    stream.write_all(&out).await.map_err(io)?;
    let mut decoder = FrameDecoder::new(Role::Client);
    let mut buf = BytesMut::with_capacity(1024);
    let protocol = |reason: String| KvClientError::Protocol {
        addr: addr.to_string(),
        reason,
    };
    loop {
        match decoder.decode(&mut buf) {
            Ok(Some(Frame::Response(f))) => {
                return match f.response {
                    Response::Hello(h) if f.request_id == 0 => Ok((stream, h, buf)),
                    Response::Error(e) => Err(KvClientError::from_error_response(e)),
                    other => Err(protocol(format!("unexpected handshake answer {other:?}"))),
                };
            }
            Ok(Some(other)) => return Err(protocol(format!("unexpected frame {other:?}"))),
            Ok(None) => {}
            Err(e) => return Err(protocol(e.to_string())),
        }
        buf.reserve(
            decoder
                .bytes_needed(&buf)
                .saturating_sub(buf.len())
                .max(512),
        );
        let n = stream.read_buf(&mut buf).await.map_err(io)?;
        if n == 0 {
            return Err(KvClientError::Connection {
                addr: addr.to_string(),
                reason: "closed during the handshake".into(),
            });
        }
    }
}

async fn read_loop(shared: Arc<Shared>, mut rd: OwnedReadHalf, mut buf: BytesMut) {
    let mut decoder = FrameDecoder::new(Role::Client);
    let err = loop {
        match decoder.decode(&mut buf) {
            Ok(Some(Frame::Response(f))) => {
                let waiter = shared.lock().waiters.remove(&f.request_id);
                match waiter {
                    Some(w) => {
                        let _ = w.send(Ok(f.response));
                    }
                    // The caller gave up (timeout or cancellation) before the answer.
                    None => tracing::trace!(id = f.request_id, "answer for no waiter"),
                }
                continue;
            }
            Ok(Some(other)) => {
                break KvClientError::Protocol {
                    addr: shared.addr.clone(),
                    reason: format!("unexpected frame {other:?}"),
                };
            }
            Ok(None) => {}
            Err(e) => {
                break KvClientError::Protocol {
                    addr: shared.addr.clone(),
                    reason: e.to_string(),
                };
            }
        }
        let need = decoder.bytes_needed(&buf).saturating_sub(buf.len());
        buf.reserve(need.max(READ_CHUNK));
        match rd.read_buf(&mut buf).await {
            Ok(0) => {
                break KvClientError::Connection {
                    addr: shared.addr.clone(),
                    reason: "closed by the node".into(),
                };
            }
            Ok(_) => {}
            Err(e) => {
                break KvClientError::Connection {
                    addr: shared.addr.clone(),
                    reason: e.to_string(),
                };
            }
        }
    };
    shared.close(err);
}

async fn write_loop(
    shared: Arc<Shared>,
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
) {
    let mut batch = BytesMut::new();
    while let Some(first) = rx.recv().await {
        // Coalesce whatever else is queued into one write: fewer syscalls under load.
        let res = if rx.is_empty() {
            wr.write_all(&first).await
        } else {
            batch.clear();
            batch.extend_from_slice(&first);
            while batch.len() < WRITE_COALESCE_BYTES {
                match rx.try_recv() {
                    Ok(f) => batch.extend_from_slice(&f),
                    Err(_) => break,
                }
            }
            wr.write_all(&batch).await
        };
        if let Err(e) = res {
            shared.close(KvClientError::Connection {
                addr: shared.addr.clone(),
                reason: format!("write failed: {e}"),
            });
            return;
        }
    }
    let _ = wr.shutdown().await;
}
