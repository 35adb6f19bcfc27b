//! The receiving side of a group's peer transport: [`PeerServer`] accepts the peer
//! connections of group `g` on this node and hands each decoded RPC to a [`PeerHandler`]
//! (the group's `Raft`, or a test double).
//!
//! Invariants:
//! - A connection is served only after a valid handshake: its first frame must be a
//!   `Hello` that `accept_peer_hello` accepts *and* that names this server's group; any
//!   refusal is logged here and answered with its reason before the close, so both ends
//!   log why.
//! - Each connection is one task. Pipelined `AppendEntries` go, in arrival order, into one
//!   stream per connection ([`PeerHandler::append_stream`]: openraft's `stream_append`,
//!   which submits each to the group without waiting for the previous one's fdatasync);
//!   their answers are sent in the same order. At most `MAX_PIPELINED_APPENDS` are in
//!   service; beyond that the connection is not read (backpressure). Any other RPC is
//!   handled after every earlier append was answered, one at a time, so answers always
//!   leave in request order. Connections are independent, so a snapshot being
//!   installed on one never delays the heartbeats arriving on another.
//! - Bounded: at most `max_connections` connections (more are closed at once), frames of
//!   at most `MAX_PEER_FRAME_LEN`, at most one snapshot of `max_snapshot_len` bytes in
//!   assembly per connection, a handshake within `handshake_timeout` and no connection
//!   idle longer than `idle_timeout`.
//! - Peer bytes never panic the server: undecodable frames, unconvertible messages and
//!   protocol violations close that connection and are logged; the group is untouched.

use std::cell::Cell;
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::channel::mpsc;
use futures::future::Either;
use futures::stream::LocalBoxStream;
use glommio::net::TcpListener;
use glommio::net::TcpStream;
use openraft::AsyncRuntime;
use openraft::errors::Fatal;
use openraft::errors::RaftError;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::SnapshotResponse;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use openraft::storage::RaftStateMachine;
use shoal_proto::PeerFrame;
use shoal_proto::PeerMessage;
use shoal_proto::accept_peer_hello;
use shoal_proto::peer::PeerError;
use shoal_proto::peer::PeerErrorKind;
use tokio::sync::watch;

use super::PeerConfig;
use super::assembly::ChunkOutcome;
use super::assembly::SnapshotAssembler;
use super::conn::PeerConn;
use super::convert;
use super::convert::ConvertError;
use crate::limits::MAX_PIPELINED_APPENDS;
use crate::raft::GlommioRuntime;
use crate::raft::TypeConfig;
use crate::raft::types::Snapshot;
use crate::raft::types::Vote;

/// What the server calls for each RPC. The group's `Raft` implements it; tests may use
/// a double. An `Err` is sent to the peer as a refusal of that RPC (the connection stays).
pub trait PeerHandler: 'static {
    /// Handle an append-entries (or heartbeat).
    fn append_entries(
        &self,
        rpc: AppendEntriesRequest<TypeConfig>,
    ) -> impl Future<Output = Result<AppendEntriesResponse<TypeConfig>, PeerError>>;

    /// Handle the pipelined appends of one connection: `input` yields them in arrival
    /// order; the result yields one answer per request, in the same order, and may end
    /// after an answer other than a success. The default runs them one after another
    /// through [`append_entries`](Self::append_entries); `Raft` hands the stream to
    /// openraft's `stream_append`, which keeps several in service at once.
    fn append_stream(
        self: Rc<Self>,
        input: LocalBoxStream<'static, AppendEntriesRequest<TypeConfig>>,
    ) -> LocalBoxStream<'static, Result<AppendEntriesResponse<TypeConfig>, PeerError>>
    where
        Self: Sized,
    {
        Box::pin(input.then(move |rpc| {
            let handler = self.clone();
            async move { handler.append_entries(rpc).await }
        }))
    }

    /// Handle a vote request.
    fn vote(
        &self,
        rpc: VoteRequest<TypeConfig>,
    ) -> impl Future<Output = Result<VoteResponse<TypeConfig>, PeerError>>;

    /// Handle a pre-vote (must not change the receiver's state).
    fn pre_vote(
        &self,
        rpc: VoteRequest<TypeConfig>,
    ) -> impl Future<Output = Result<VoteResponse<TypeConfig>, PeerError>>;

    /// Install a whole, reassembled snapshot.
    fn install_full_snapshot(
        &self,
        vote: Vote,
        snapshot: Snapshot<Bytes>,
    ) -> impl Future<Output = Result<SnapshotResponse<TypeConfig>, PeerError>>;
}

fn fatal_to_peer_error(e: &Fatal<TypeConfig>) -> PeerError {
    let kind = match e {
        Fatal::Stopped => PeerErrorKind::ShuttingDown,
        _ => PeerErrorKind::Internal,
    };
    let mut message = e.to_string();
    truncate_message(&mut message);
    PeerError { kind, message }
}

fn raft_error_to_peer_error(e: &RaftError<TypeConfig>) -> PeerError {
    match e {
        RaftError::Fatal(f) => fatal_to_peer_error(f),
        other => {
            let mut message = other.to_string();
            truncate_message(&mut message);
            PeerError {
                kind: PeerErrorKind::Internal,
                message,
            }
        }
    }
}

fn truncate_message(message: &mut String) {
    let max = shoal_proto::limits::MAX_ERROR_MESSAGE_LEN;
    if message.len() > max {
        let mut cut = max;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
    }
}

impl<SM> PeerHandler for openraft::Raft<TypeConfig, SM>
where
    SM: RaftStateMachine<TypeConfig, SnapshotData = Bytes> + 'static,
{
    async fn append_entries(
        &self,
        rpc: AppendEntriesRequest<TypeConfig>,
    ) -> Result<AppendEntriesResponse<TypeConfig>, PeerError> {
        openraft::Raft::append_entries(self, rpc)
            .await
            .map_err(|e| raft_error_to_peer_error(&e))
    }

    fn append_stream(
        self: Rc<Self>,
        input: LocalBoxStream<'static, AppendEntriesRequest<TypeConfig>>,
    ) -> LocalBoxStream<'static, Result<AppendEntriesResponse<TypeConfig>, PeerError>> {
        Box::pin(
            openraft::Raft::stream_append(&*self, input).map(|r| match r {
                Ok(result) => Ok(AppendEntriesResponse::from(result)),
                Err(fatal) => Err(fatal_to_peer_error(&fatal)),
            }),
        )
    }

    async fn vote(
        &self,
        rpc: VoteRequest<TypeConfig>,
    ) -> Result<VoteResponse<TypeConfig>, PeerError> {
        openraft::Raft::vote(self, rpc)
            .await
            .map_err(|e| raft_error_to_peer_error(&e))
    }

    async fn pre_vote(
        &self,
        rpc: VoteRequest<TypeConfig>,
    ) -> Result<VoteResponse<TypeConfig>, PeerError> {
        openraft::Raft::pre_vote(self, rpc)
            .await
            .map_err(|e| raft_error_to_peer_error(&e))
    }

    async fn install_full_snapshot(
        &self,
        vote: Vote,
        snapshot: Snapshot<Bytes>,
    ) -> Result<SnapshotResponse<TypeConfig>, PeerError> {
        openraft::Raft::install_full_snapshot(self, vote, snapshot)
            .await
            .map_err(|e| fatal_to_peer_error(&e))
    }
}

/// The peer listener of one group of this node.
#[derive(Debug)]
pub struct PeerServer<H: PeerHandler> {
    listener: TcpListener,
    local_addr: SocketAddr,
    config: Rc<PeerConfig>,
    handler: Rc<H>,
}

impl<H: PeerHandler> PeerServer<H> {
    /// Binds the listener (call on the group's executor thread).
    pub fn bind(addr: SocketAddr, config: PeerConfig, handler: H) -> io::Result<PeerServer<H>> {
        let listener = TcpListener::bind(addr).map_err(io::Error::from)?;
        let local_addr = listener.local_addr().map_err(io::Error::from)?;
        Ok(PeerServer {
            listener,
            local_addr,
            config: Rc::new(config),
            handler: Rc::new(handler),
        })
    }

    /// The bound address (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Accepts and serves connections until `shutdown` resolves; then closes the listener
    /// and every connection it opened, and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let live = Rc::new(Cell::new(0usize));
        let mut shutdown = pin!(shutdown);
        loop {
            let accepted = {
                let accept = pin!(self.listener.accept());
                match futures::future::select(shutdown.as_mut(), accept).await {
                    Either::Left(((), _)) => break,
                    Either::Right((accepted, _)) => accepted,
                }
            };
            let stream = match accepted {
                Ok(stream) => stream,
                Err(e) => {
                    // Typically EMFILE: pause instead of spinning on the error.
                    tracing::warn!(addr = %self.local_addr, "peer accept failed: {e}");
                    GlommioRuntime::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if live.get() >= self.config.max_connections {
                tracing::warn!(
                    addr = %self.local_addr,
                    max = self.config.max_connections,
                    "too many peer connections; closing a new one"
                );
                drop(stream);
                continue;
            }
            live.set(live.get() + 1);
            let live = live.clone();
            let mut stop = stop_rx.clone();
            let config = self.config.clone();
            let handler = self.handler.clone();
            glommio::spawn_local(async move {
                let serve = pin!(serve_connection(stream, &config, &handler));
                let stopped = pin!(stop.wait_for(|s| *s));
                // Either the connection ends or the server stops (dropping it mid-RPC is
                // what a crash looks like to the peer).
                let _ = futures::future::select(serve, stopped).await;
                live.set(live.get() - 1);
            })
            .detach();
        }
        // Receivers see it even if they are not polled right now.
        let _ = stop_tx.send(true);
        tracing::debug!(addr = %self.local_addr, "peer server stopped");
    }
}

/// Why a connection ended (logged once).
#[derive(Debug, thiserror::Error)]
enum ConnEnd {
    #[error("{0}")]
    Conn(#[from] super::conn::ConnError),
    #[error("idle for {0:?}")]
    Idle(Duration),
    #[error("protocol violation: {0}")]
    Protocol(String),
    #[error("unconvertible message: {0}")]
    Convert(#[from] ConvertError),
    #[error("handshake refused: {0:?}: {1}")]
    Refused(PeerErrorKind, String),
}

async fn serve_connection<H: PeerHandler>(stream: TcpStream, config: &PeerConfig, handler: &Rc<H>) {
    let mut conn = PeerConn::new(stream);
    let peer = conn.peer_addr();
    let end = match handshake(&mut conn, config).await {
        Ok(from_node) => serve_rpcs(&mut conn, config, handler)
            .await
            .map_err(|e| (Some(from_node), e)),
        Err(e) => Err((None, e)),
    };
    match end {
        Ok(()) => {}
        Err((_, ConnEnd::Conn(super::conn::ConnError::Closed))) => {
            tracing::debug!(?peer, group = config.group, "peer closed its connection");
        }
        Err((from, ConnEnd::Refused(kind, message))) => {
            tracing::error!(
                ?peer,
                group = config.group,
                ?from,
                ?kind,
                "refused a peer connection: {message}"
            );
        }
        Err((from, e)) => {
            tracing::warn!(
                ?peer,
                group = config.group,
                ?from,
                "peer connection closed: {e}"
            );
        }
    }
}

/// Reads and answers the `Hello`; returns the peer's node id.
async fn handshake(conn: &mut PeerConn, config: &PeerConfig) -> Result<u64, ConnEnd> {
    let frame = match GlommioRuntime::timeout(config.handshake_timeout, conn.recv()).await {
        Ok(frame) => frame?,
        Err(_) => return Err(ConnEnd::Idle(config.handshake_timeout)),
    };
    let PeerMessage::Hello(hello) = frame.message else {
        return Err(ConnEnd::Protocol(format!(
            "first frame is {:?}, not a Hello",
            frame.message.opcode()
        )));
    };
    let verdict = accept_peer_hello(&hello, &config.local).and_then(|ok| {
        if hello.group == config.group {
            Ok(ok)
        } else {
            Err(PeerError {
                kind: PeerErrorKind::WrongGroup,
                message: format!(
                    "peer dialed group {} at the listener of group {}",
                    hello.group, config.group
                ),
            })
        }
    });
    match verdict {
        Ok(ok) => {
            conn.send(frame.request_id, &PeerMessage::HelloOk(ok))
                .await?;
            Ok(hello.from_node)
        }
        Err(refusal) => {
            let (kind, message) = (refusal.kind, refusal.message.clone());
            // Best effort: the refusal is logged here whether or not it gets through.
            let _ = conn
                .send(frame.request_id, &PeerMessage::Error(refusal))
                .await;
            Err(ConnEnd::Refused(kind, message))
        }
    }
}

/// The pipelined appends of one connection: the handler's answer stream and the request
/// ids still waiting for an answer from it, oldest first.
struct Appends {
    input: mpsc::UnboundedSender<AppendEntriesRequest<TypeConfig>>,
    answers: LocalBoxStream<'static, Result<AppendEntriesResponse<TypeConfig>, PeerError>>,
    pending: VecDeque<u64>,
}

/// What woke the connection up.
enum Event {
    Frame(PeerFrame),
    Answer(Option<Result<AppendEntriesResponse<TypeConfig>, PeerError>>),
}

async fn serve_rpcs<H: PeerHandler>(
    conn: &mut PeerConn,
    config: &PeerConfig,
    handler: &Rc<H>,
) -> Result<(), ConnEnd> {
    let mut assembler = SnapshotAssembler::new(config.max_snapshot_len);
    let mut appends: Option<Appends> = None;
    loop {
        let busy = appends.as_ref().is_some_and(|a| !a.pending.is_empty());
        let event = match appends.as_mut() {
            Some(a) if busy && a.pending.len() >= MAX_PIPELINED_APPENDS => {
                // Backpressure: read nothing more until an answer left.
                Event::Answer(a.answers.next().await)
            }
            Some(a) if busy => {
                // `PeerConn::recv` is cancel-safe: racing it against the answers is fine.
                let recv = pin!(conn.recv());
                match futures::future::select(a.answers.next(), recv).await {
                    Either::Left((answer, _)) => Event::Answer(answer),
                    Either::Right((frame, _)) => Event::Frame(frame?),
                }
            }
            _ => match GlommioRuntime::timeout(config.idle_timeout, conn.recv()).await {
                Ok(frame) => Event::Frame(frame?),
                Err(_) => return Err(ConnEnd::Idle(config.idle_timeout)),
            },
        };
        let frame = match event {
            Event::Answer(answer) => {
                answer_one(conn, &mut appends, answer).await?;
                continue;
            }
            Event::Frame(frame) => frame,
        };
        if let PeerMessage::AppendEntries(rpc) = frame.message {
            let rpc = convert::append_request_from_wire(rpc)?;
            let a = appends.get_or_insert_with(|| {
                let (input, rx) = mpsc::unbounded();
                Appends {
                    input,
                    answers: handler.clone().append_stream(Box::pin(rx)),
                    pending: VecDeque::new(),
                }
            });
            if a.input.unbounded_send(rpc).is_err() {
                return Err(ConnEnd::Protocol(
                    "the group stopped taking appends on this connection".into(),
                ));
            }
            a.pending.push_back(frame.request_id);
            continue;
        }
        // Any other RPC is answered after every earlier append, so answers leave in
        // request order.
        while appends.as_ref().is_some_and(|a| !a.pending.is_empty()) {
            let answer = match appends.as_mut() {
                Some(a) => a.answers.next().await,
                None => None,
            };
            answer_one(conn, &mut appends, answer).await?;
        }
        let answer = match frame.message {
            PeerMessage::Vote(rpc) => {
                let rpc = convert::vote_request_from_wire(&rpc)?;
                match handler.vote(rpc).await {
                    Ok(r) => PeerMessage::VoteResponse(convert::vote_response_to_wire(&r)),
                    Err(e) => PeerMessage::Error(e),
                }
            }
            PeerMessage::PreVote(rpc) => {
                let rpc = convert::vote_request_from_wire(&rpc)?;
                match handler.pre_vote(rpc).await {
                    Ok(r) => PeerMessage::PreVoteResponse(convert::vote_response_to_wire(&r)),
                    Err(e) => PeerMessage::Error(e),
                }
            }
            PeerMessage::InstallSnapshot(chunk) => {
                let chunk_vote = chunk.vote;
                match assembler.push(chunk) {
                    // Intermediate chunks are acknowledged with the sender's own vote:
                    // the follower's vote is checked once, by the install.
                    Ok(ChunkOutcome::Partial) => PeerMessage::InstallSnapshotResponse(
                        shoal_proto::peer::InstallSnapshotResponse { vote: chunk_vote },
                    ),
                    Ok(ChunkOutcome::Complete { vote, meta, data }) => {
                        let vote = convert::vote_from_wire(&vote)?;
                        let meta = convert::snapshot_meta_from_wire(&meta)?;
                        let snapshot = Snapshot {
                            meta,
                            snapshot: data,
                        };
                        match handler.install_full_snapshot(vote, snapshot).await {
                            Ok(r) => PeerMessage::InstallSnapshotResponse(
                                convert::snapshot_response_to_wire(&r),
                            ),
                            Err(e) => PeerMessage::Error(e),
                        }
                    }
                    Err(e) => {
                        tracing::warn!(group = config.group, "snapshot chunk refused: {e}");
                        PeerMessage::Error(PeerError {
                            kind: PeerErrorKind::Internal,
                            message: e.to_string(),
                        })
                    }
                }
            }
            other => {
                return Err(ConnEnd::Protocol(format!(
                    "{:?} is not an RPC this server answers",
                    other.opcode()
                )));
            }
        };
        conn.send(frame.request_id, &answer).await?;
    }
}

/// Sends the answer to the oldest pipelined append. After anything but a success the
/// handler's stream has ended (openraft ends it on a conflict, a higher vote or a fatal
/// error): later appends start a new one, and appends already queued behind the failed
/// one cannot be answered, so the connection is closed (the sender drops it anyway, as it
/// stops reading at the first failure).
async fn answer_one(
    conn: &mut PeerConn,
    appends: &mut Option<Appends>,
    answer: Option<Result<AppendEntriesResponse<TypeConfig>, PeerError>>,
) -> Result<(), ConnEnd> {
    let Some(a) = appends.as_mut() else {
        unreachable!("answers are awaited only with appends pending");
    };
    let Some(request_id) = a.pending.pop_front() else {
        unreachable!("answers are awaited only with appends pending");
    };
    let (message, ended) = match answer {
        Some(Ok(r)) => {
            let ended = !matches!(
                r,
                AppendEntriesResponse::Success | AppendEntriesResponse::PartialSuccess(_)
            );
            (
                PeerMessage::AppendEntriesResponse(convert::append_response_to_wire(&r)),
                ended,
            )
        }
        Some(Err(e)) => (PeerMessage::Error(e), true),
        None => {
            return Err(ConnEnd::Protocol(format!(
                "the group's append stream ended with {} appends unanswered",
                a.pending.len() + 1
            )));
        }
    };
    conn.send(request_id, &message).await?;
    if ended {
        let unanswered = a.pending.len();
        *appends = None;
        if unanswered > 0 {
            return Err(ConnEnd::Protocol(format!(
                "{unanswered} pipelined appends follow a failed one"
            )));
        }
    }
    Ok(())
}
