//! One native-protocol connection from this shard to one shard of another node, used to
//! forward requests to the leader of their group (see `forward`).
//!
//! A `Link` is a pipelined client connection: callers encode their request into the
//! shared output buffer and wait on a `oneshot`; one writer task writes everything queued
//! in one write; one reader task decodes answers and completes the callers by request id.
//!
//! Invariants:
//! - The handshake (`Hello` → `HelloOk`) completes before the link is handed out, within
//!   the caller's deadline, and the answering node must belong to this cluster and be the
//!   node the caller meant (a stale address that now hosts another node is refused).
//! - At most `HelloOk::max_in_flight` requests are pending on a link (the remote's own
//!   per-connection cap): past it a call fails at once ([`CallError::Full`]), not queued.
//! - Every call ends by its deadline: on timeout its pending entry is removed (a late
//!   answer is dropped). A caller can tell whether its request may have reached the remote
//!   ([`CallError::Lost`]) or certainly did not ([`CallError::NotSent`]).
//! - When the connection fails, the link is marked dead, every pending caller is
//!   completed with `Lost`, and the owner drops it (the next call opens a new one).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use futures::{FutureExt, pin_mut, select_biased};
use glommio::net::TcpStream;
use glommio::timer::Timer;
use shoal_proto::{Frame, FrameDecoder, Hello, HelloOk, Request, Response, Role, encode_request};
use tokio::sync::{Notify, oneshot};

use super::{DEFAULT_WRITE_TIMEOUT, READ_CHUNK};

/// Bound on one write to the remote; a remote that does not read fails the link.
const WRITE_TIMEOUT: Duration = DEFAULT_WRITE_TIMEOUT;

/// Why a forwarded call failed without an answer.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub(crate) enum CallError {
    /// The request was certainly not sent (connect or handshake failed).
    #[error("{0}")]
    NotSent(String),
    /// Not sent: the link has the remote's per-connection limit of requests in flight.
    #[error("{0}")]
    Full(String),
    /// The request may have reached the remote: its outcome is unknown.
    #[error("{0}")]
    Lost(String),
    /// The deadline passed.
    #[error("the forwarded request did not complete before its deadline")]
    Timeout,
}

/// One open connection to `addr`.
pub(crate) struct Link {
    addr: SocketAddr,
    hello: HelloOk,
    next_id: Cell<u64>,
    pending: RefCell<HashMap<u64, oneshot::Sender<Response>>>,
    out: RefCell<BytesMut>,
    wake_writer: Notify,
    dead: Cell<bool>,
    why_dead: RefCell<String>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("addr", &self.addr)
            .field("node", &self.hello.node_id)
            .field("dead", &self.dead.get())
            .finish_non_exhaustive()
    }
}

/// Removes a pending entry when its caller stops waiting (timeout or cancellation).
struct PendingGuard<'a> {
    link: &'a Link,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.link.pending.borrow_mut().remove(&self.id);
    }
}

impl Link {
    /// Connects to `addr`, says `Hello`, and checks that the answer comes from node
    /// `node_id` of cluster `cluster_id`; spawns the link's reader and writer tasks.
    pub(crate) async fn open(
        addr: SocketAddr,
        cluster_id: u64,
        node_id: u64,
        deadline: Instant,
    ) -> Result<Rc<Link>, CallError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(CallError::Timeout);
        }
        let stream = TcpStream::connect_timeout(addr, left)
            .await
            .map_err(|e| CallError::NotSent(format!("connect to {addr} failed: {e}")))?;
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "set_nodelay failed on a forwarding link");
        }
        let (mut rd, mut wr) = stream.split();
        let mut out = BytesMut::new();
        encode_request(&mut out, 0, &Request::Hello(Hello::default()))
            .map_err(|e| CallError::NotSent(format!("cannot encode Hello: {e}")))?;
        let mut decoder = FrameDecoder::new(Role::Client);
        let mut buf = BytesMut::new();
        let greet = async {
            wr.write_all(&out).await.map_err(|e| e.to_string())?;
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(Frame::Response(f))) => return Ok(f.response),
                    Ok(Some(other)) => return Err(format!("unexpected frame {other:?}")),
                    Ok(None) => {}
                    Err(e) => return Err(format!("bad answer to Hello: {e}")),
                }
                let start = buf.len();
                buf.resize(start + 4096, 0);
                let n = rd
                    .read(&mut buf[start..])
                    .await
                    .map_err(|e| e.to_string())?;
                buf.truncate(start + n);
                if n == 0 {
                    return Err("closed during the handshake".to_string());
                }
            }
        };
        let answer = with_deadline(greet, deadline)
            .await
            .ok_or(CallError::Timeout)?
            .map_err(|e| CallError::NotSent(format!("handshake with {addr} failed: {e}")))?;
        let hello = match answer {
            Response::Hello(ok) if ok.cluster_id == cluster_id && ok.node_id == node_id => ok,
            Response::Hello(ok) => {
                return Err(CallError::NotSent(format!(
                    "{addr} is node {} of cluster {:x}, expected node {node_id} of cluster {cluster_id:x}",
                    ok.node_id, ok.cluster_id
                )));
            }
            other => {
                return Err(CallError::NotSent(format!(
                    "{addr} answered Hello with {other:?}"
                )));
            }
        };
        let link = Rc::new(Link {
            addr,
            hello,
            next_id: Cell::new(1),
            pending: RefCell::new(HashMap::new()),
            out: RefCell::new(BytesMut::new()),
            wake_writer: Notify::new(),
            dead: Cell::new(false),
            why_dead: RefCell::new(String::new()),
        });
        glommio::spawn_local(read_loop(Rc::clone(&link), rd, decoder, buf)).detach();
        glommio::spawn_local(write_loop(Rc::clone(&link), wr)).detach();
        Ok(link)
    }

    /// False once the connection failed: the owner must drop this link.
    pub(crate) fn is_alive(&self) -> bool {
        !self.dead.get()
    }

    /// Sends `request` and waits for its answer until `deadline`.
    pub(crate) async fn call(
        &self,
        request: &Request,
        deadline: Instant,
    ) -> Result<Response, CallError> {
        if self.dead.get() {
            return Err(CallError::NotSent(self.why_dead.borrow().clone()));
        }
        if self.pending.borrow().len() >= self.hello.max_in_flight as usize {
            return Err(CallError::Full(format!(
                "{} forwarded requests in flight to {} (its per-connection limit); not executed",
                self.hello.max_in_flight, self.addr
            )));
        }
        let id = self.next_id.get();
        self.next_id.set(id.wrapping_add(1).max(1));
        if let Err(e) = encode_request(&mut self.out.borrow_mut(), id, request) {
            return Err(CallError::NotSent(format!("cannot encode: {e}")));
        }
        let (tx, rx) = oneshot::channel();
        self.pending.borrow_mut().insert(id, tx);
        let _guard = PendingGuard { link: self, id };
        self.wake_writer.notify_one();
        match with_deadline(rx, deadline).await {
            Some(Ok(response)) => Ok(response),
            Some(Err(_closed)) => Err(CallError::Lost(format!(
                "the link to {} failed: {}; the outcome is unknown",
                self.addr,
                self.why_dead.borrow()
            ))),
            None => Err(CallError::Timeout),
        }
    }

    fn fail(&self, why: String) {
        if self.dead.replace(true) {
            return;
        }
        tracing::debug!(addr = %self.addr, %why, "forwarding link closed");
        *self.why_dead.borrow_mut() = why;
        // Dropping the senders completes every waiting caller with `Lost`.
        self.pending.borrow_mut().clear();
        self.out.borrow_mut().clear();
        self.wake_writer.notify_one();
    }
}

async fn read_loop(
    link: Rc<Link>,
    mut rd: ReadHalf<TcpStream>,
    mut decoder: FrameDecoder,
    mut buf: BytesMut,
) {
    loop {
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(Frame::Response(f))) => {
                    if let Some(tx) = link.pending.borrow_mut().remove(&f.request_id) {
                        let _ = tx.send(f.response);
                    }
                }
                Ok(Some(other)) => {
                    return link.fail(format!("unexpected frame {:?}", other));
                }
                Ok(None) => break,
                Err(e) => return link.fail(format!("undecodable answer: {e}")),
            }
        }
        if link.dead.get() {
            return;
        }
        let want = decoder
            .bytes_needed(&buf)
            .saturating_sub(buf.len())
            .clamp(4096, READ_CHUNK);
        let start = buf.len();
        buf.resize(start + want, 0);
        match rd.read(&mut buf[start..]).await {
            Ok(0) => return link.fail("the remote closed the connection".into()),
            Ok(n) => buf.truncate(start + n),
            Err(e) => return link.fail(format!("read failed: {e}")),
        }
    }
}

async fn write_loop(link: Rc<Link>, mut wr: WriteHalf<TcpStream>) {
    loop {
        if link.dead.get() {
            let _ = wr.close().await;
            return;
        }
        let chunk = {
            let mut out = link.out.borrow_mut();
            (!out.is_empty()).then(|| out.split())
        };
        match chunk {
            Some(chunk) => {
                let deadline = Instant::now() + WRITE_TIMEOUT;
                match with_deadline(wr.write_all(&chunk), deadline).await {
                    Some(Ok(())) => {}
                    Some(Err(e)) => link.fail(format!("write failed: {e}")),
                    None => link.fail("the remote does not read its requests".into()),
                }
            }
            None => link.wake_writer.notified().await,
        }
    }
}

/// `fut`'s output, or `None` when `deadline` passes first.
async fn with_deadline<F: std::future::Future>(fut: F, deadline: Instant) -> Option<F::Output> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return None;
    }
    let fut = fut.fuse();
    let timer = Timer::new(left).fuse();
    pin_mut!(fut, timer);
    select_biased! {
        r = fut => Some(r),
        _ = timer => None,
    }
}

/// Bounded wait used between retries while a group elects a leader.
pub(crate) async fn pause(d: Duration, deadline: Instant) {
    let left = deadline.saturating_duration_since(Instant::now());
    Timer::new(d.min(left)).await;
}
