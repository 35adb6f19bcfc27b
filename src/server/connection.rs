//! One client connection: the handshake, then pipelined requests read by one task and
//! answered by a writer task that batches every answer ready into one write.
//!
//! Invariants:
//! - The first frame must be `Hello`, within `frame_read_timeout` of accept; anything else,
//!   or no common version, is answered with an error frame and the connection is closed.
//! - Every request read after the handshake is answered exactly once unless the
//!   connection dies or is closed for a framing error: `Ping` inline, others by a detached
//!   task each (so they complete out of order), `Busy` when this connection's or the
//!   shard's in-flight cap is reached, `ShuttingDown` once the server drains.
//! - A recoverable decode error (the bad frame was consumed) is answered and the
//!   connection goes on; a framing error (bad version, oversized length) is answered and
//!   the connection closed. A frame that does not complete within `frame_read_timeout` of
//!   its first byte closes the connection (slowloris).
//! - The read buffer grows by at most [`READ_CHUNK`] per read and never past the frame
//!   limit plus one chunk; reading pauses while more than [`OUT_HIGH_WATER`] bytes of
//!   answers wait, so a client that does not read is slowed by TCP itself.
//! - When the peer vanishes, requests already running finish (their answers are dropped);
//!   nothing else is cancelled.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use futures::{FutureExt, pin_mut, select_biased};
use glommio::net::TcpStream;
use glommio::timer::Timer;
use shoal_proto::{
    Disposition, ErrorDetail, ErrorResponse, Frame, FrameDecoder, HelloOk, MAX_PROTOCOL_VERSION,
    MIN_PROTOCOL_VERSION, Request, RequestFrame, Response, Role, encode_error, encode_response,
    negotiate_version,
};
use tokio::sync::{Notify, watch};

use super::admission::{InFlight, Permit};
use super::dispatch::{Dispatcher, error};
use super::{LINGER_MAX_BYTES, LINGER_TIME, OUT_HIGH_WATER, READ_CHUNK};
use crate::node::mesh::BUSY_RETRY_AFTER_MS;

/// The server's lifecycle, broadcast to every connection and the inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Serving.
    Running,
    /// Shutdown signalled: read nothing new, finish what is in flight, then close.
    Draining,
    /// The drain timed out: close now.
    Abort,
}

/// What every connection of a shard shares.
#[derive(Debug)]
pub(crate) struct ConnContext {
    pub(crate) dispatcher: Rc<Dispatcher>,
    pub(crate) shard_in_flight: Rc<InFlight>,
    pub(crate) hello: HelloOk,
    pub(crate) max_in_flight: usize,
    pub(crate) max_frame_len: usize,
    pub(crate) request_timeout: Duration,
    pub(crate) frame_read_timeout: Duration,
    pub(crate) write_timeout: Duration,
}

/// State shared by a connection's reader, writer and request tasks.
#[derive(Debug)]
struct Conn {
    ctx: Rc<ConnContext>,
    /// Encoded answers waiting for the writer.
    out: RefCell<BytesMut>,
    /// Requests of this connection being executed.
    in_flight: Cell<usize>,
    /// The reader will read no more requests.
    reader_done: Cell<bool>,
    /// The socket failed or the writer gave up: answers are dropped.
    dead: Cell<bool>,
    /// Wakes the writer: an answer was queued, or the reader finished.
    wake_writer: Notify,
    /// The writer made progress (flushed, or died): wakes a reader paused by backpressure.
    flushed: Notify,
    /// The writer gave up (socket failed, write timeout, abort): wakes a reader blocked in
    /// a read, so the connection closes instead of idling half-dead.
    died: Notify,
}

impl Conn {
    fn push(&self, request_id: u64, response: &Response) {
        if self.dead.get() {
            return;
        }
        let mut out = self.out.borrow_mut();
        if let Err(e) = encode_response(&mut out, request_id, response) {
            // Too large for a frame (a huge get_multi) or unencodable: say so instead.
            if let Err(e2) = encode_error(&mut out, request_id, &e.to_error_response()) {
                tracing::error!(request_id, error = %e2, "cannot encode an error answer");
            }
        }
        drop(out);
        self.wake_writer.notify_one();
    }

    fn push_error(&self, request_id: u64, detail: ErrorDetail, message: impl Into<String>) {
        self.push(request_id, &error(detail, message));
    }
}

/// Serves one accepted connection until it closes. Holds its connection slot (`_slot`)
/// until both directions are finished.
pub(crate) async fn serve<S>(
    stream: TcpStream,
    ctx: Rc<ConnContext>,
    mut phase: watch::Receiver<Phase>,
    _slot: S,
) {
    let accepted_at = Instant::now();
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "set_nodelay failed");
    }
    let (mut rd, wr) = stream.split();
    let conn = Rc::new(Conn {
        ctx: Rc::clone(&ctx),
        out: RefCell::new(BytesMut::new()),
        in_flight: Cell::new(0),
        reader_done: Cell::new(false),
        dead: Cell::new(false),
        wake_writer: Notify::new(),
        flushed: Notify::new(),
        died: Notify::new(),
    });
    let writer = glommio::spawn_local(write_loop(Rc::clone(&conn), wr, phase.clone()));
    let linger = read_loop(&conn, &mut rd, &mut phase, accepted_at).await;
    conn.reader_done.set(true);
    conn.wake_writer.notify_one();
    writer.await;
    if linger && *phase.borrow() != Phase::Abort {
        discard_input(&mut rd).await;
    }
}

/// Reads and dispatches frames until the connection should stop reading. Returns whether
/// the close follows an error frame (then the caller lingers so the client can read it).
async fn read_loop(
    conn: &Rc<Conn>,
    rd: &mut ReadHalf<TcpStream>,
    phase: &mut watch::Receiver<Phase>,
    accepted_at: Instant,
) -> bool {
    let ctx = &conn.ctx;
    let mut decoder = FrameDecoder::with_max_body(Role::Server, ctx.max_frame_len);
    let mut buf = BytesMut::new();
    let mut handshaken = false;
    let mut frame_started: Option<Instant> = None;
    loop {
        // Decode every whole frame already buffered.
        let mut decoded_any = false;
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(Frame::Request(f))) => {
                    decoded_any = true;
                    if !handshaken {
                        match handshake(conn, f) {
                            true => handshaken = true,
                            false => return true,
                        }
                    } else {
                        on_request(conn, f, *phase.borrow());
                    }
                }
                // Role::Server only yields requests; anything else is a decoder bug.
                Ok(Some(other)) => {
                    tracing::error!(frame = ?other, "server decoder produced a non-request");
                    return false;
                }
                Ok(None) => break,
                Err(e) => match decoder.disposition(&e) {
                    Disposition::Answer {
                        request_id,
                        error,
                        close,
                    } => {
                        conn.push(request_id, &Response::Error(error));
                        if close || !handshaken {
                            return true;
                        }
                        decoded_any = true;
                    }
                    Disposition::Close => return false,
                },
            }
        }
        if *phase.borrow() != Phase::Running || conn.dead.get() {
            return false;
        }
        if buf.is_empty() {
            frame_started = None;
        } else if decoded_any || frame_started.is_none() {
            frame_started = Some(Instant::now());
        }
        // Backpressure: let the writer catch up before reading more requests.
        while conn.out.borrow().len() > OUT_HIGH_WATER && !conn.dead.get() {
            let flushed = conn.flushed.notified();
            pin_mut!(flushed);
            flushed.as_mut().enable();
            if conn.out.borrow().len() <= OUT_HIGH_WATER || conn.dead.get() {
                break;
            }
            select_biased! {
                _ = flushed.fuse() => {},
                _ = phase.wait_for(|p| *p != Phase::Running).fuse() => return false,
            }
        }
        if conn.dead.get() {
            return false;
        }
        let deadline = if !handshaken {
            Some(accepted_at + ctx.frame_read_timeout)
        } else {
            frame_started.map(|t| t + ctx.frame_read_timeout)
        };
        let want = decoder
            .bytes_needed(&buf)
            .saturating_sub(buf.len())
            .clamp(4096, READ_CHUNK);
        let start = buf.len();
        buf.resize(start + want, 0);
        let outcome = {
            let read = rd.read(&mut buf[start..]).fuse();
            let timer = async {
                match deadline {
                    Some(d) => {
                        Timer::new(d.saturating_duration_since(Instant::now())).await;
                    }
                    None => futures::future::pending::<()>().await,
                }
            }
            .fuse();
            let stop = phase.wait_for(|p| *p != Phase::Running).fuse();
            let died = conn.died.notified().fuse();
            pin_mut!(read, timer, stop, died);
            select_biased! {
                r = read => ReadOutcome::Read(r),
                _ = stop => ReadOutcome::Stop,
                _ = died => ReadOutcome::Stop,
                _ = timer => ReadOutcome::TimedOut,
            }
        };
        match outcome {
            ReadOutcome::Read(Ok(n)) if n > 0 => buf.truncate(start + n),
            ReadOutcome::Read(Ok(_)) | ReadOutcome::Stop => return false,
            ReadOutcome::TimedOut => {
                tracing::debug!("closing a connection whose frame did not arrive in time");
                return false;
            }
            ReadOutcome::Read(Err(e)) => {
                tracing::debug!(error = %e, "connection read failed");
                conn.dead.set(true);
                return false;
            }
        }
    }
}

enum ReadOutcome {
    Read(std::io::Result<usize>),
    Stop,
    TimedOut,
}

/// Answers the first frame. Returns false when the connection must close.
fn handshake(conn: &Conn, f: RequestFrame) -> bool {
    let Request::Hello(hello) = f.request else {
        conn.push_error(
            f.request_id,
            ErrorDetail::InvalidRequest,
            "the first frame of a connection must be Hello",
        );
        return false;
    };
    match negotiate_version(&hello) {
        Some(version) => {
            let ok = HelloOk {
                version,
                ..conn.ctx.hello
            };
            conn.push(f.request_id, &Response::Hello(ok));
            true
        }
        None => {
            conn.push_error(
                f.request_id,
                ErrorDetail::IncompatibleVersion {
                    min_version: MIN_PROTOCOL_VERSION,
                    max_version: MAX_PROTOCOL_VERSION,
                },
                format!(
                    "client speaks {}..={}, this node {MIN_PROTOCOL_VERSION}..={MAX_PROTOCOL_VERSION}",
                    hello.min_version, hello.max_version
                ),
            );
            false
        }
    }
}

fn busy() -> ErrorDetail {
    ErrorDetail::Busy {
        retry_after_ms: BUSY_RETRY_AFTER_MS,
    }
}

/// Admits and starts one request, or answers it at once.
fn on_request(conn: &Rc<Conn>, f: RequestFrame, phase: Phase) {
    let id = f.request_id;
    if phase != Phase::Running {
        conn.push_error(id, ErrorDetail::ShuttingDown, "the node is shutting down");
        return;
    }
    match f.request {
        Request::Ping => return conn.push(id, &Response::Pong),
        Request::Hello(_) => {
            return conn.push_error(
                id,
                ErrorDetail::InvalidRequest,
                "Hello is only valid as the first frame of a connection",
            );
        }
        _ => {}
    }
    let ctx = &conn.ctx;
    if conn.in_flight.get() >= ctx.max_in_flight {
        return conn.push_error(
            id,
            busy(),
            format!(
                "{} requests in flight on this connection (the limit); not executed",
                ctx.max_in_flight
            ),
        );
    }
    let Some(permit) = ctx.shard_in_flight.try_acquire() else {
        return conn.push_error(
            id,
            busy(),
            format!(
                "shard {} has its limit of requests in flight; not executed",
                ctx.dispatcher.shard
            ),
        );
    };
    conn.in_flight.set(conn.in_flight.get() + 1);
    let deadline = Instant::now() + ctx.request_timeout;
    let conn = Rc::clone(conn);
    glommio::spawn_local(run_request(conn, id, f.request, deadline, permit)).detach();
}

async fn run_request(conn: Rc<Conn>, id: u64, request: Request, deadline: Instant, permit: Permit) {
    let response = conn.ctx.dispatcher.handle(request, deadline).await;
    conn.push(id, &response);
    conn.in_flight.set(conn.in_flight.get() - 1);
    drop(permit);
    // The writer may be waiting for the last answer before closing.
    conn.wake_writer.notify_one();
}

/// Writes queued answers, all that are ready in one write, until the reader is done and no
/// request is in flight; then half-closes the socket.
async fn write_loop(
    conn: Rc<Conn>,
    mut wr: WriteHalf<TcpStream>,
    mut phase: watch::Receiver<Phase>,
) {
    loop {
        let chunk = {
            let mut out = conn.out.borrow_mut();
            (!out.is_empty()).then(|| out.split())
        };
        match chunk {
            Some(chunk) => {
                let ok = {
                    let write = wr.write_all(&chunk).fuse();
                    let timer = Timer::new(conn.ctx.write_timeout).fuse();
                    let abort = phase.wait_for(|p| *p == Phase::Abort).fuse();
                    pin_mut!(write, timer, abort);
                    select_biased! {
                        r = write => match r {
                            Ok(()) => true,
                            Err(e) => {
                                tracing::debug!(error = %e, "connection write failed");
                                false
                            }
                        },
                        _ = abort => false,
                        _ = timer => {
                            tracing::debug!("closing a connection that does not read its answers");
                            false
                        }
                    }
                };
                conn.flushed.notify_waiters();
                if !ok {
                    break;
                }
            }
            None => {
                if conn.reader_done.get() && conn.in_flight.get() == 0 {
                    let _ = wr.close().await;
                    return;
                }
                let woken = conn.wake_writer.notified().fuse();
                let abort = phase.wait_for(|p| *p == Phase::Abort).fuse();
                pin_mut!(woken, abort);
                select_biased! {
                    _ = woken => {},
                    _ = abort => break,
                }
            }
        }
    }
    conn.dead.set(true);
    conn.out.borrow_mut().clear();
    conn.flushed.notify_waiters();
    // `notify_one` keeps a permit if the reader is not waiting yet.
    conn.died.notify_one();
}

/// Reads and drops what the client still sends, for at most [`LINGER_TIME`] and
/// [`LINGER_MAX_BYTES`], so closing after an error frame does not reset the connection
/// before the client has read that frame.
pub(crate) async fn discard_input<R: futures::io::AsyncRead + Unpin>(rd: &mut R) {
    let until = Instant::now() + LINGER_TIME;
    let mut scratch = vec![0u8; 16 * 1024];
    let mut total = 0;
    while total < LINGER_MAX_BYTES {
        let read = rd.read(&mut scratch).fuse();
        let timer = Timer::new(until.saturating_duration_since(Instant::now())).fuse();
        pin_mut!(read, timer);
        select_biased! {
            r = read => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => total += n,
            },
            _ = timer => return,
        }
    }
}

/// The error frame sent to a connection refused for `max_connections`.
pub(crate) fn refusal(max_connections: usize) -> BytesMut {
    let mut out = BytesMut::new();
    let e = ErrorResponse::new(
        ErrorDetail::Busy {
            retry_after_ms: BUSY_RETRY_AFTER_MS,
        },
        format!("this shard serves {max_connections} connections already"),
    );
    if let Err(e) = encode_error(&mut out, 0, &e) {
        tracing::error!(error = %e, "cannot encode the refusal frame");
    }
    out
}
