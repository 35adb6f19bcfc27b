//! One Redis protocol (RESP) connection: reads requests, plans them with the sans-IO
//! `shoal_resp::Session`, executes them through the shard's dispatcher, writes replies.
//!
//! Invariants:
//! - Pipelining: every complete request already buffered (at most
//!   `max_in_flight_per_connection` at a time) is executed concurrently; replies are
//!   written in request order, each encoded with the protocol version in force when its
//!   command was planned.
//! - Backpressure and bounded memory: no read while a batch executes or its replies are
//!   being written (TCP pushes back on the client); the read buffer holds at most one
//!   request under `RESP_MAX_REQUEST_LEN` plus one read (the decoder checks every
//!   announced length before allocating).
//! - Malformed RESP: the error reply is written, then only this connection closes.
//! - Timeouts: a request partly received for longer than `frame_read_timeout` closes the
//!   connection (slowloris); a write blocked longer than `write_timeout` closes it; each
//!   command has `request_timeout` from when its wave starts. An idle connection (nothing buffered) may stay open,
//!   as with Redis's default `timeout 0`.
//! - Drain: on shutdown the batch in flight finishes and is answered, then the connection
//!   closes; on abort it closes at once.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures::future::join_all;
use futures::io::{AsyncReadExt, AsyncWriteExt};
use futures::{FutureExt, pin_mut, select_biased};
use glommio::net::TcpStream;
use glommio::timer::Timer;
use shoal_resp::{Action, ErrorReply, Protocol, Read, ReadOp, Reply, Session, Step, encode_reply};
use tokio::sync::watch;

/// Largest single read of a RESP connection (requests arrive in several reads when
/// larger; the buffer then grows by at most this much per read).
const RESP_READ_LEN: usize = 16 * 1024;
use super::admission::InFlight;
use super::connection::Phase;
use super::dispatch::Dispatcher;
use super::forward::Forwarder;
use super::resp_batch::Batch;
use super::resp_exec;
use super::resp_stats::{self, RespStats};

use crate::shard::clock::now_ms;

/// What every RESP connection of one shard shares.
pub(crate) struct RespContext {
    pub(crate) dispatcher: Rc<Dispatcher>,
    /// Sends commands to their group's leader when it is another node.
    pub(crate) forwarder: Forwarder,
    /// The shard's in-flight cap, shared with the native protocol's connections.
    pub(crate) shard_in_flight: Rc<InFlight>,
    pub(crate) stats: &'static RespStats,
    pub(crate) max_in_flight: usize,
    pub(crate) request_timeout: Duration,
    pub(crate) frame_read_timeout: Duration,
    pub(crate) write_timeout: Duration,
    /// This listener's port (INFO `tcp_port`).
    pub(crate) port: u16,
    /// Connections this listener serves at once (INFO `maxclients`, per node).
    pub(crate) max_clients: u64,
    /// Shards of the node.
    pub(crate) started: Instant,
    /// Next connection id (`CLIENT ID`): shard-local counter, made node-unique by
    /// interleaving shards (id = counter * shard_count + shard).
    pub(crate) next_id: Cell<u64>,
}

impl RespContext {
    fn connection_id(&self) -> u64 {
        let n = self.next_id.get();
        self.next_id.set(n + 1);
        n * u64::from(self.dispatcher.shard_count) + u64::from(self.dispatcher.shard) + 1
    }
}

/// Serves one accepted RESP connection until it closes; holds `_slot` until then.
pub(crate) async fn serve<S>(
    mut stream: TcpStream,
    ctx: Rc<RespContext>,
    mut phase: watch::Receiver<Phase>,
    _slot: S,
) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "set_nodelay failed");
    }
    let _open = ctx.stats.open_connection();
    let mut session = Session::new(ctx.connection_id());
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut out = BytesMut::new();
    // Reads land here and are appended to `buf`: copying the bytes read is cheaper than
    // zero-filling a read-sized tail of `buf` before every read.
    let mut scratch = vec![0u8; RESP_READ_LEN];
    let mut partial_since: Option<Instant> = None;
    loop {
        // Plan a batch from what is buffered.
        let mut steps: Vec<Step> = Vec::new();
        let mut close_after = false;
        let mut malformed = None;
        while steps.len() < ctx.max_in_flight {
            match session.next(&mut buf, now_ms()) {
                Ok(Some(step)) => {
                    close_after = matches!(step.action, Action::Close(_));
                    steps.push(step);
                    if close_after {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    malformed = Some(e);
                    break;
                }
            }
        }
        let full_batch = steps.len() == ctx.max_in_flight;
        if !steps.is_empty() {
            // A request completed: the slowloris clock restarts for the next one.
            partial_since = None;
            ctx.stats.commands(steps.len() as u64);
            if steps.len() == 1 {
                // The common unpipelined case: no wave planning, no join.
                if let Some(step) = steps.pop() {
                    let deadline = Instant::now() + ctx.request_timeout;
                    let (reply, protocol) = execute(&ctx, step, deadline).await;
                    encode_reply(&reply, protocol, &mut out);
                }
            } else {
                let batch = Batch::plan(
                    steps,
                    ctx.dispatcher.max_key_len,
                    ctx.dispatcher.max_value_len,
                );
                let mut replies: Vec<Option<Reply>> = vec![None; batch.len()];
                for wave in batch.waves {
                    // Each command's timeout runs from when its wave starts: a long
                    // pipeline of dependent commands is not one request.
                    let deadline = Instant::now() + ctx.request_timeout;
                    let c: &RespContext = &ctx;
                    let (gets, others) = split_gets(wave, ctx.dispatcher.max_key_len);
                    let others = join_all(
                        others
                            .into_iter()
                            .map(|(i, s)| async move { (i, execute(c, s, deadline).await.0) }),
                    );
                    let (gets, others) =
                        futures::future::join(execute_gets(c, gets, deadline), others).await;
                    for (i, reply) in gets.into_iter().chain(others) {
                        replies[i] = Some(reply);
                    }
                }
                for (i, protocol) in batch.protocols.iter().enumerate() {
                    let by = batch.absorbed_by[i].unwrap_or(i);
                    match &replies[by] {
                        Some(reply) => encode_reply(reply, *protocol, &mut out),
                        None => encode_reply(&lost_reply(), *protocol, &mut out),
                    }
                }
            }
        }
        if let Some(e) = &malformed {
            tracing::debug!(error = %e, "malformed RESP; closing the connection");
            encode_reply(&e.reply(), session.state().protocol, &mut out);
            close_after = true;
        }
        if !out.is_empty() {
            if !write_all(&mut stream, &out, ctx.write_timeout).await {
                return;
            }
            ctx.stats.net_out(out.len());
            out.clear();
        }
        if close_after {
            let _ = stream.close().await;
            return;
        }
        if *phase.borrow() != Phase::Running {
            return;
        }
        if full_batch {
            continue; // more may be buffered: serve it before reading
        }
        // Read more.
        if buf.is_empty() {
            partial_since = None;
        } else if partial_since.is_none() {
            partial_since = Some(Instant::now());
        }
        {
            let read = {
                let fut = stream.read(&mut scratch[..]).fuse();
                let changed = phase.wait_for(|p| *p != Phase::Running).fuse();
                // Idle (nothing buffered): no timer, only a phase change ends the wait
                // (as the native connection does).
                let timeout = partial_since.map(|since| {
                    ctx.frame_read_timeout
                        .saturating_sub(since.elapsed())
                        .max(Duration::from_millis(1))
                });
                let timer = async {
                    match timeout {
                        Some(t) => {
                            Timer::new(t).await;
                        }
                        None => futures::future::pending::<()>().await,
                    }
                }
                .fuse();
                pin_mut!(fut, changed, timer);
                select_biased! {
                    r = fut => Some(r),
                    _ = changed => None,
                    _ = timer => {
                        if partial_since.is_some() {
                            tracing::debug!("RESP request not completed in time; closing");
                            return;
                        }
                        None
                    }
                }
            };
            match read {
                Some(Ok(0)) | Some(Err(_)) => return, // peer closed, or the socket failed
                Some(Ok(n)) => {
                    buf.extend_from_slice(&scratch[..n]);
                    ctx.stats.net_in(n);
                }
                None => {}
            }
        };
    }
}

async fn execute(ctx: &RespContext, step: Step, deadline: Instant) -> (Reply, Protocol) {
    let d = &ctx.forwarder;
    // Commands that reach the store hold a slot of the shard's in-flight cap (the
    // native protocol's), released when they are answered.
    let _permit = match step.action {
        Action::Reply(_) | Action::Close(_) => None,
        _ => match ctx.shard_in_flight.try_acquire() {
            Some(permit) => Some(permit),
            None => return (busy(ctx.dispatcher.shard), step.protocol),
        },
    };
    let reply = match step.action {
        Action::Reply(r) | Action::Close(r) => r,
        Action::Read(read) => {
            let is_get = matches!(read.op, ReadOp::Get { .. });
            let reply = resp_exec::read(d, read, deadline).await;
            if is_get {
                ctx.stats
                    .count_get(!matches!(reply, Reply::Null | Reply::Error(_)));
            }
            reply
        }
        Action::Write(write) => resp_exec::write(d, write, deadline).await,
        Action::DbSize => resp_stats::dbsize(&ctx.dispatcher, deadline).await,
        Action::Info(sections) => resp_stats::info(ctx, sections, deadline).await,
    };
    (reply, step.protocol)
}

/// Commands of a batch that run together, with their index in the batch.
type Wave = Vec<(usize, Step)>;

/// Splits a wave into its GETs (within the node's key limit), served together by
/// [`execute_gets`], and everything else. Fewer than two GETs are left with the rest.
fn split_gets(wave: Wave, max_key_len: usize) -> (Vec<(usize, Read)>, Wave) {
    let batchable =
        |read: &Read| matches!(&read.op, ReadOp::Get { key } if key.len() <= max_key_len);
    let gets_in_wave = wave
        .iter()
        .filter(|(_, s)| matches!(&s.action, Action::Read(r) if batchable(r)))
        .count();
    if gets_in_wave < 2 {
        return (Vec::new(), wave);
    }
    let mut gets = Vec::new();
    let mut others = Vec::new();
    for (i, step) in wave {
        match step.action {
            Action::Read(read) if batchable(&read) => gets.push((i, read)),
            action => others.push((i, Step { action, ..step })),
        }
    }
    (gets, others)
}

/// Executes the GETs of one wave as one batch read (`resp_exec::get_wave`); each GET
/// still holds its own slot of the shard's in-flight cap, and one that finds the cap
/// full is answered `-BUSY` without being executed, as alone.
async fn execute_gets(
    ctx: &RespContext,
    gets: Vec<(usize, Read)>,
    deadline: Instant,
) -> Vec<(usize, Reply)> {
    let mut done = Vec::with_capacity(gets.len());
    let mut permits = Vec::with_capacity(gets.len());
    let mut positions = Vec::with_capacity(gets.len());
    let mut reads = Vec::with_capacity(gets.len());
    for (i, read) in gets {
        match ctx.shard_in_flight.try_acquire() {
            Some(permit) => {
                permits.push(permit);
                positions.push(i);
                reads.push(read);
            }
            None => done.push((i, busy(ctx.dispatcher.shard))),
        }
    }
    if !reads.is_empty() {
        let replies = resp_exec::get_wave(&ctx.forwarder, reads, deadline).await;
        for (i, reply) in positions.into_iter().zip(replies) {
            ctx.stats
                .count_get(!matches!(reply, Reply::Null | Reply::Error(_)));
            done.push((i, reply));
        }
    }
    drop(permits);
    done
}

/// A planned command left without a reply (a planning bug; never expected).
fn lost_reply() -> Reply {
    tracing::error!("a pipelined RESP command got no reply");
    Reply::Error(ErrorReply::new("internal error: the command got no reply"))
}

/// The reply to a command refused by the shard's in-flight cap (not executed).
fn busy(shard: u32) -> Reply {
    Reply::Error(ErrorReply::new(format!(
        "-BUSY shard {shard} has its limit of requests in flight; not executed, retry later"
    )))
}

async fn write_all(stream: &mut TcpStream, bytes: &[u8], timeout: Duration) -> bool {
    let write = stream.write_all(bytes).fuse();
    let timer = Timer::new(timeout).fuse();
    pin_mut!(write, timer);
    select_biased! {
        r = write => r.is_ok(),
        _ = timer => false,
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn wave(args: &[&[&str]]) -> Vec<(usize, Step)> {
        let mut session = Session::new(1);
        args.iter()
            .enumerate()
            .map(|(i, a)| {
                let a = a
                    .iter()
                    .map(|x| Bytes::copy_from_slice(x.as_bytes()))
                    .collect();
                (i, session.plan_args(a, 1_000))
            })
            .collect()
    }

    fn positions<T>(v: &[(usize, T)]) -> Vec<usize> {
        v.iter().map(|(i, _)| *i).collect()
    }

    #[test]
    fn gets_of_a_wave_are_split_out_only_when_two_or_more_fit_the_key_limit() {
        let (gets, others) = split_gets(
            wave(&[
                &["GET", "a"],
                &["SET", "b", "1"],
                &["GET", "toolongkey"],
                &["GET", "c"],
                &["MGET", "d", "e"],
                &["GET", "a"],
            ]),
            5,
        );
        assert_eq!(positions(&gets), vec![0, 3, 5]);
        assert_eq!(positions(&others), vec![1, 2, 4]);
        // The steps left over keep their actions.
        assert!(matches!(
            others[1].1.action,
            Action::Read(Read {
                op: ReadOp::Get { .. },
                ..
            })
        ));

        // One GET (or one that fits) is not worth a batch: everything stays.
        let (gets, others) = split_gets(wave(&[&["GET", "a"], &["SET", "b", "1"]]), 5);
        assert!(gets.is_empty());
        assert_eq!(positions(&others), vec![0, 1]);
        let (gets, others) = split_gets(wave(&[&["GET", "a"], &["GET", "toolongkey"]]), 5);
        assert!(gets.is_empty());
        assert_eq!(positions(&others), vec![0, 1]);
    }
}
