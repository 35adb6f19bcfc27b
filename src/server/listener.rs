//! [`Server`]: binds the shard's client port, accepts connections under the connection
//! cap, runs the inbox task, and drains gracefully on shutdown.
//!
//! Invariants:
//! - The listener is bound without `SO_REUSEPORT` (glommio's own `bind` sets it, which
//!   would let a second node silently share the port): a port in use fails [`Server::bind`].
//! - At most `max_connections` connections are served; one more is refused with a `Busy`
//!   error frame (request id 0) and closed, lingering a bounded time so the client reads it.
//! - Shutdown: stop accepting (the listening socket is closed), tell every connection and
//!   the inbox to drain, wait until no connection and no request remains or the drain
//!   timeout passes, then abort what is left and return a [`DrainReport`].

use std::cell::Cell;
use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures::io::AsyncWriteExt;
use futures::{FutureExt, pin_mut, select_biased};
use glommio::net::{TcpListener, TcpStream};
use glommio::timer::Timer;
use shoal_proto::{HelloOk, PROTOCOL_VERSION};
use tokio::sync::{Notify, watch};

use super::admission::InFlight;
use super::connection::{self, ConnContext, Phase};
use super::dispatch::Dispatcher;
use super::forward::Forwarder;
use super::inbox::serve_inbox;
use super::resp_connection::{self, RespContext};
use super::resp_stats::RESP_STATS;
use super::{MAX_LINGERING_REFUSALS, ServerConfig, ServerError};
use crate::node::{Inbox, Mesh, ShardService};

/// One shard's client server, bound and ready to [`run`](Server::run).
#[derive(Debug)]
pub struct Server {
    cfg: ServerConfig,
    listener: TcpListener,
    local_addr: SocketAddr,
    dispatcher: Rc<Dispatcher>,
    inbox: Inbox,
    /// The Redis protocol listener, when `resp_listen` is set, and its bound address.
    resp: Option<(TcpListener, SocketAddr)>,
}

/// What was left when [`Server::run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DrainReport {
    /// Connections still open when the drain timeout passed (closed by force).
    pub connections_aborted: usize,
    /// Requests still executing when the drain timeout passed (their answers are lost).
    pub requests_abandoned: usize,
}

/// Open connections of one listener; the count is released when a slot drops.
#[derive(Debug)]
struct Slots {
    open: Cell<usize>,
    progress: Rc<Notify>,
}

#[derive(Debug)]
struct Slot(Rc<Slots>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.set(self.0.open.get() - 1);
        self.0.progress.notify_waiters();
    }
}

impl Server {
    /// Binds `cfg.listen` (port 0 picks a free port; see [`local_addr`](Server::local_addr)).
    /// Must run on the shard's executor.
    pub async fn bind(
        cfg: ServerConfig,
        service: Rc<dyn ShardService>,
        mesh: Mesh,
        inbox: Inbox,
    ) -> Result<Server, ServerError> {
        cfg.validate()?;
        if mesh.shard_count() != cfg.shard_count {
            return Err(ServerError::Config {
                what: "shard_count",
                why: format!(
                    "{} but the mesh links {} shards",
                    cfg.shard_count,
                    mesh.shard_count()
                ),
            });
        }
        if service.shard() != cfg.shard {
            return Err(ServerError::Config {
                what: "shard",
                why: format!(
                    "{} but the service runs shard {}",
                    cfg.shard,
                    service.shard()
                ),
            });
        }
        let bind_err = |source| ServerError::Bind {
            shard: cfg.shard,
            addr: cfg.listen,
            source,
        };
        let (listener, local_addr) = bind_listener(cfg.listen).map_err(bind_err)?;
        let resp = match cfg.resp_listen {
            Some(addr) => Some(bind_listener(addr).map_err(|source| ServerError::Bind {
                shard: cfg.shard,
                addr,
                source,
            })?),
            None => None,
        };
        let dispatcher = Rc::new(Dispatcher {
            shard: cfg.shard,
            shard_count: cfg.shard_count,
            node_id: cfg.node_id,
            cluster_id: cfg.cluster_id,
            nodes: cfg.nodes.clone(),
            max_key_len: cfg.max_key_len,
            max_value_len: cfg.max_value_len,
            service,
            mesh,
        });
        Ok(Server {
            cfg,
            listener,
            local_addr,
            dispatcher,
            inbox,
            resp,
        })
    }

    /// The bound RESP address, if RESP is on.
    pub fn resp_local_addr(&self) -> Option<SocketAddr> {
        self.resp.as_ref().map(|(_, a)| *a)
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves clients and the inbox until `shutdown` resolves, then drains: no new
    /// connection, no new request (requests already buffered are answered
    /// `ShuttingDown`), requests in flight finish and are answered, connections close.
    /// Returns once everything finished, or `drain_timeout` after `shutdown` with what was
    /// abandoned.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> DrainReport {
        let Server {
            cfg,
            listener,
            local_addr,
            dispatcher,
            inbox,
            resp,
        } = self;
        let progress = Rc::new(Notify::new());
        let in_flight = InFlight::new(cfg.max_in_flight_per_shard, Rc::clone(&progress));
        let slots = Rc::new(Slots {
            open: Cell::new(0),
            progress: Rc::clone(&progress),
        });
        let (phase_tx, phase_rx) = watch::channel(Phase::Running);
        let ctx = Rc::new(ConnContext {
            dispatcher: Rc::clone(&dispatcher),
            shard_in_flight: Rc::clone(&in_flight),
            hello: HelloOk {
                version: PROTOCOL_VERSION,
                cluster_id: cfg.cluster_id,
                node_id: cfg.node_id,
                shard_count: cfg.shard_count,
                connection_shard: Some(cfg.shard),
                max_frame_len: cfg.max_frame_len as u32,
                max_in_flight: cfg.max_in_flight_per_connection as u32,
            },
            max_in_flight: cfg.max_in_flight_per_connection,
            max_frame_len: cfg.max_frame_len,
            request_timeout: cfg.request_timeout,
            frame_read_timeout: cfg.frame_read_timeout,
            write_timeout: cfg.write_timeout,
        });
        let inbox_done = Rc::new(Cell::new(false));
        {
            let done = Rc::clone(&inbox_done);
            let progress = Rc::clone(&progress);
            let task = serve_inbox(
                inbox,
                Rc::clone(&dispatcher),
                Rc::clone(&in_flight),
                phase_rx.clone(),
            );
            glommio::spawn_local(async move {
                task.await;
                done.set(true);
                progress.notify_waiters();
            })
            .detach();
        }
        tracing::info!(shard = cfg.shard, addr = %local_addr, "serving clients");
        let (resp_listener, resp_ctx) = match resp {
            Some((l, addr)) => {
                tracing::info!(shard = cfg.shard, %addr, "serving Redis protocol clients");
                let ctx = Rc::new(RespContext {
                    dispatcher: Rc::clone(&dispatcher),
                    forwarder: Forwarder::new(Rc::clone(&dispatcher)),
                    shard_in_flight: Rc::clone(&in_flight),
                    stats: &RESP_STATS,
                    max_in_flight: cfg.max_in_flight_per_connection,
                    request_timeout: cfg.request_timeout,
                    frame_read_timeout: cfg.frame_read_timeout,
                    write_timeout: cfg.write_timeout,
                    port: addr.port(),
                    max_clients: (cfg.max_connections * cfg.shard_count as usize) as u64,
                    started: Instant::now(),
                    next_id: Cell::new(0),
                });
                (Some(l), Some(ctx))
            }
            None => (None, None),
        };
        let refusing = Rc::new(Cell::new(0usize));
        {
            let shutdown = shutdown.fuse();
            pin_mut!(shutdown);
            loop {
                let accepted = {
                    let accept = listener.accept().fuse();
                    let accept_resp = async {
                        match &resp_listener {
                            Some(l) => l.accept().await,
                            None => futures::future::pending().await,
                        }
                    }
                    .fuse();
                    pin_mut!(accept, accept_resp);
                    select_biased! {
                        _ = shutdown => break,
                        r = accept => r,
                        r = accept_resp => {
                            match (r, &resp_ctx) {
                                (Ok(stream), Some(ctx)) if slots.open.get() < cfg.max_connections => {
                                    slots.open.set(slots.open.get() + 1);
                                    let slot = Slot(Rc::clone(&slots));
                                    glommio::spawn_local(resp_connection::serve(
                                        stream,
                                        Rc::clone(ctx),
                                        phase_rx.clone(),
                                        slot,
                                    ))
                                    .detach();
                                }
                                (Ok(stream), _) => refuse_resp(stream, &refusing, &cfg),
                                (Err(e), _) => {
                                    tracing::warn!(shard = cfg.shard, error = %e, "RESP accept failed");
                                    Timer::new(Duration::from_millis(10)).await;
                                }
                            }
                            continue;
                        }
                    }
                };
                match accepted {
                    Ok(stream) if slots.open.get() < cfg.max_connections => {
                        slots.open.set(slots.open.get() + 1);
                        let slot = Slot(Rc::clone(&slots));
                        glommio::spawn_local(connection::serve(
                            stream,
                            Rc::clone(&ctx),
                            phase_rx.clone(),
                            slot,
                        ))
                        .detach();
                    }
                    Ok(stream) => refuse(stream, &refusing, &cfg),
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning on accept.
                        tracing::warn!(shard = cfg.shard, error = %e, "accept failed");
                        Timer::new(Duration::from_millis(10)).await;
                    }
                }
            }
        }
        drop(listener);
        drop(resp_listener);
        tracing::info!(shard = cfg.shard, "draining");
        let _ = phase_tx.send(Phase::Draining);
        let until = Instant::now() + cfg.drain_timeout;
        loop {
            let notified = progress.notified();
            pin_mut!(notified);
            notified.as_mut().enable();
            if slots.open.get() == 0 && in_flight.current() == 0 && inbox_done.get() {
                return DrainReport::default();
            }
            let now = Instant::now();
            if now >= until {
                break;
            }
            let timer = Timer::new(until - now).fuse();
            let notified = notified.fuse();
            pin_mut!(timer, notified);
            select_biased! {
                _ = notified => {},
                _ = timer => {},
            }
        }
        let report = DrainReport {
            connections_aborted: slots.open.get(),
            requests_abandoned: in_flight.current(),
        };
        tracing::warn!(
            shard = cfg.shard,
            ?report,
            "drain timed out; closing what is left"
        );
        let _ = phase_tx.send(Phase::Abort);
        report
    }
}

/// Binds `addr` for glommio: std binds with SO_REUSEADDR (restart over TIME_WAIT) and
/// without SO_REUSEPORT (glommio's own `bind` sets it, which would let a second node share
/// the port silently).
fn bind_listener(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let std_listener = std::net::TcpListener::bind(addr)?;
    let local_addr = std_listener.local_addr()?;
    let fd = std_listener.into_raw_fd();
    // SAFETY: `fd` is a bound, listening TCP socket whose ownership `into_raw_fd` just
    // released; glommio's listener takes it over and closes it on drop.
    #[allow(unsafe_code)]
    let listener = unsafe { TcpListener::from_raw_fd(fd) };
    Ok((listener, local_addr))
}

/// Refuses a RESP connection over the cap with Redis's error, then closes it.
fn refuse_resp(stream: TcpStream, refusing: &Rc<Cell<usize>>, cfg: &ServerConfig) {
    RESP_STATS.rejected();
    if refusing.get() >= MAX_LINGERING_REFUSALS {
        return; // dropped: closed at once
    }
    refusing.set(refusing.get() + 1);
    let refusing = Rc::clone(refusing);
    let write_timeout = cfg.write_timeout;
    glommio::spawn_local(async move {
        let mut stream = stream;
        let write = stream
            .write_all(b"-ERR max number of clients reached\r\n")
            .fuse();
        let timer = Timer::new(write_timeout).fuse();
        pin_mut!(write, timer);
        select_biased! {
            _ = write => {},
            _ = timer => {},
        }
        let _ = stream.close().await;
        refusing.set(refusing.get() - 1);
    })
    .detach();
}

/// Refuses a connection over the cap: `Busy` frame, half-close, bounded linger.
fn refuse(stream: TcpStream, refusing: &Rc<Cell<usize>>, cfg: &ServerConfig) {
    if refusing.get() >= MAX_LINGERING_REFUSALS {
        return; // dropped: closed at once
    }
    refusing.set(refusing.get() + 1);
    let refusing = Rc::clone(refusing);
    let frame = connection::refusal(cfg.max_connections);
    let write_timeout = cfg.write_timeout;
    glommio::spawn_local(async move {
        let mut stream = stream;
        let sent = {
            let write = stream.write_all(&frame).fuse();
            let timer = Timer::new(write_timeout).fuse();
            pin_mut!(write, timer);
            select_biased! {
                r = write => r.is_ok(),
                _ = timer => false,
            }
        };
        if sent && stream.close().await.is_ok() {
            connection::discard_input(&mut stream).await;
        }
        refusing.set(refusing.get() - 1);
    })
    .detach();
}
