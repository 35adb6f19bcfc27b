//! Pipelined append-entries over one peer connection: the body of
//! `PeerClient::stream_append` (openraft's `RaftNetworkV2::stream_append`).
//!
//! openraft 0.10 replicates a follower as a *stream* of `AppendEntries` requests (one
//! replication session = one request stream, `LogsSince` mode); its default
//! `stream_append` sends one request and waits for its answer before it even asks the
//! stream for the next one. Here up to [`PeerConfig::append_pipeline_depth`] requests are on
//! the wire at once, on the client's one connection, and the answers are matched to the
//! requests by order (each answer must carry the request id of the oldest request in
//! flight; anything else breaks the connection).
//!
//! Invariants:
//! - Answers are yielded in request order, one per request, and never guessed: a failure
//!   (connection error, protocol violation, deadline) ends the stream with an `Err` and
//!   drops the connection.
//! - Every request in flight has a deadline (`max(hard_ttl, append_timeout)` after it was
//!   sent; only the oldest can be the one waited on); sending is bounded the same way.
//! - When the stream is dropped with answers still due (openraft stops reading after a
//!   conflict, a higher vote or an error, or cancels the session), the connection is
//!   dropped too: those answers would otherwise be read by the next session as its own.
//! - A request that does not fit in one frame is sent as its longest fitting prefix, after
//!   which nothing more is pulled from the input; its answer is reported as a partial
//!   success (the last entry sent) and ends the stream. openraft then starts a new session
//!   from there, exactly as with its sequential default.
//! - Durability is untouched: an answer is the follower's, given after its own fdatasync
//!   (openraft answers a follower's append on `IOFlushed`).
//! - Commit-only requests are coalesced. openraft emits an entry-less request whenever the
//!   leader's commit index advances with no new entry to carry it: with one write in flight
//!   that is one extra round trip (and one more RaftCore round on both sides) per write.
//!   Such a request (not the first of a session, which is a probe) is held for up to
//!   [`PeerConfig::commit_linger`]; if the next request has the same `prev_log_id`
//!   (always, within a session: an entry-less request advances nothing) only the later one
//!   is sent: it carries a commit index at least as new, and its answer answers the held
//!   one too (a success proves the follower holds `prev_log_id`, a conflict or a higher
//!   vote applies to both). The held request's answer is yielded first, so answers stay in
//!   request order. When nothing comes within the linger, the held request goes out on its
//!   own. Only the commit index reaches followers later (by at most the linger; the
//!   heartbeat carries it too); what the leader counts as replicated is unchanged.

use std::collections::VecDeque;
use std::time::Duration;
use std::time::Instant;

use futures::FutureExt;
use futures::StreamExt;
use futures::future::LocalBoxFuture;
use openraft::AsyncRuntime;
use openraft::base::BoxFuture;
use openraft::base::BoxStream;
use openraft::errors::RPCError;
use openraft::network::RPCOption;
use openraft::network::RPCTypes;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::StreamAppendResult;
use shoal_proto::PeerMessage;

use super::client::Failure;
use super::client::PeerClient;
use super::client::entries_fitting_in_a_frame;
use super::conn::ConnError;
use super::convert;
use crate::raft::GlommioRuntime;
use crate::raft::TypeConfig;
use crate::raft::types::LogId;

/// One output item of `stream_append`.
type Item = Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>;

/// The `(prev, last)` log ids of a request, for its answer.
type Span = (Option<LogId>, Option<LogId>);

/// A request on the wire, waiting for its answer.
#[derive(Debug)]
struct InFlight {
    id: u64,
    prev: Option<LogId>,
    last: Option<LogId>,
    /// Commit-only requests that were not sent because this one carries them: their
    /// answers come from this one's, before it.
    absorbed: Vec<Span>,
    /// `Some(last entry sent)` when only a prefix of the request fitted in a frame.
    truncated_at: Option<LogId>,
    deadline: Instant,
}

/// A commit-only request held back in the hope that the next request carries it.
struct Held {
    req: AppendEntriesRequest<TypeConfig>,
    /// Earlier commit-only requests this one replaced.
    absorbed: Vec<Span>,
    /// When it goes out on its own.
    until: Instant,
}

/// The state of one pipelined session.
struct Pipe<'s, S> {
    client: &'s mut PeerClient,
    input: S,
    inflight: VecDeque<InFlight>,
    held: Option<Held>,
    /// Answers ready to be yielded (those of absorbed requests come before their carrier's).
    ready: VecDeque<Item>,
    /// A request was sent in this session (so an entry-less one is no longer the probe).
    sent_any: bool,
    linger: Duration,
    ttl: Duration,
    depth: usize,
    /// The input ended.
    input_done: bool,
    /// A truncated request is in flight: pull nothing more.
    barrier: bool,
    /// The stream yielded its last item.
    ended: bool,
}

impl<S> Drop for Pipe<'_, S> {
    fn drop(&mut self) {
        if !self.inflight.is_empty() {
            // Answers still due on this connection would be read by the next session.
            self.client.conn = None;
        }
    }
}

/// `RaftNetworkV2::stream_append` for `client`: see the module documentation.
pub(super) fn stream_append<'s, S>(
    client: &'s mut PeerClient,
    input: S,
    option: RPCOption,
) -> BoxFuture<'s, Result<BoxStream<'s, Item>, RPCError<TypeConfig>>>
where
    S: futures::Stream<Item = AppendEntriesRequest<TypeConfig>> + Unpin + 'static,
{
    Box::pin(async move {
        // Appends carry the follower's fdatasync: never less than `append_timeout`.
        let ttl = option.hard_ttl().max(client.config.append_timeout);
        let mut input = input;
        // Without a connection, take the first request before connecting: openraft's
        // request stream waits out its replication backoff while producing it. Connecting
        // first fails at once during our connect backoff, openraft starts the next session
        // at once, and that loop spun the new leader's shard against a killed node
        // (~300k sessions in 20 s), so requests to the leader timed out.
        let first = if client.conn.is_none() {
            match input.next().await {
                Some(req) => Some(req),
                None => return Ok(Box::pin(futures::stream::empty()) as BoxStream<'s, Item>),
            }
        } else {
            None
        };
        client
            .ensure_connected(ttl)
            .await
            .map_err(|f| client.rpc_error(f, RPCTypes::AppendEntries))?;
        let depth = client.config.append_pipeline_depth.max(1);
        let linger = client.config.commit_linger;
        let mut pipe = Pipe {
            client,
            input,
            inflight: VecDeque::with_capacity(depth),
            held: None,
            ready: VecDeque::new(),
            sent_any: false,
            linger,
            ttl,
            depth,
            input_done: false,
            barrier: false,
            ended: false,
        };
        if let Some(req) = first
            && let Err(f) = pipe.send(req, Vec::new()).await
        {
            return Err(pipe.fail(f));
        }
        let out: BoxStream<'s, Item> = Box::pin(futures::stream::unfold(pipe, Pipe::next_item));
        Ok(out)
    })
}

/// What woke the session up.
enum Event {
    Input(Option<AppendEntriesRequest<TypeConfig>>),
    Answer(Result<shoal_proto::PeerFrame, Failure>),
    /// The held commit-only request's linger is over.
    LingerOver,
}

impl<'s, S> Pipe<'s, S>
where
    S: futures::Stream<Item = AppendEntriesRequest<TypeConfig>> + Unpin + 'static,
{
    async fn next_item(mut self) -> Option<(Item, Self)> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Some((item, self));
            }
            if self.ended {
                return None;
            }
            let free = self.inflight.len() < self.depth;
            // The input ended: nothing can absorb a held request any more.
            if self.input_done
                && free
                && !self.barrier
                && let Some(h) = self.held.take()
                && let Err(f) = self.send_held(h).await
            {
                return Some((Err(self.fail(f)), self));
            }
            let can_pull = !self.input_done && !self.barrier && free;
            let linger_until = self.held.as_ref().filter(|_| free).map(|h| h.until);
            if self.inflight.is_empty() && !can_pull && linger_until.is_none() {
                return None;
            }
            let event = {
                let (target, ttl) = (self.client.target, self.ttl);
                let mut waits: Vec<LocalBoxFuture<'_, Event>> = Vec::with_capacity(3);
                if let Some(front) = self.inflight.front() {
                    let deadline = front.deadline;
                    let Some(conn) = self.client.conn.as_mut() else {
                        unreachable!("requests in flight imply an open connection");
                    };
                    let wait = deadline.saturating_duration_since(Instant::now());
                    // `PeerConn::recv` is cancel-safe (it keeps partial frames), so it may
                    // lose the race against the input and be polled again later.
                    waits.push(Box::pin(async move {
                        Event::Answer(match GlommioRuntime::timeout(wait, conn.recv()).await {
                            Ok(Ok(frame)) => Ok(frame),
                            Ok(Err(e)) => Err(Failure::Network(format!("node {target}: {e}"))),
                            Err(_) => Err(Failure::Timeout(ttl)),
                        })
                    }));
                }
                if can_pull {
                    // openraft's request stream is an `unfold`: a dropped `next()` keeps
                    // its progress in the stream.
                    waits.push(Box::pin(self.input.next().map(Event::Input)));
                }
                if let Some(until) = linger_until {
                    waits.push(Box::pin(async move {
                        GlommioRuntime::sleep(until.saturating_duration_since(Instant::now()))
                            .await;
                        Event::LingerOver
                    }));
                }
                futures::future::select_all(waits).await.0
            };
            let sent = match event {
                Event::Input(None) => {
                    self.input_done = true;
                    Ok(())
                }
                Event::Input(Some(req)) => self.take(req).await,
                Event::LingerOver => match self.held.take() {
                    Some(h) => self.send_held(h).await,
                    None => Ok(()),
                },
                Event::Answer(Err(f)) => Err(f),
                Event::Answer(Ok(frame)) => {
                    self.match_answer(frame);
                    Ok(())
                }
            };
            if let Err(f) = sent {
                return Some((Err(self.fail(f)), self));
            }
        }
    }

    /// Holds `req` if it is a commit-only request worth holding, else sends it (carrying
    /// a held request with the same `prev_log_id`, or after one with another).
    async fn take(&mut self, req: AppendEntriesRequest<TypeConfig>) -> Result<(), Failure> {
        let held = self.held.take();
        if req.entries.is_empty() && self.sent_any && !self.linger.is_zero() {
            let mut absorbed = Vec::new();
            let mut until = Instant::now() + self.linger;
            if let Some(h) = held {
                if h.req.prev_log_id == req.prev_log_id {
                    // Keep the first deadline: a stream of commits never starves them.
                    until = h.until;
                    absorbed = h.absorbed;
                    absorbed.push(span(&h.req));
                } else {
                    self.send_held(h).await?;
                }
            }
            self.held = Some(Held {
                req,
                absorbed,
                until,
            });
            return Ok(());
        }
        let absorbed = match held {
            Some(h) if h.req.prev_log_id == req.prev_log_id => {
                let mut absorbed = h.absorbed;
                absorbed.push(span(&h.req));
                absorbed
            }
            Some(h) => {
                self.send_held(h).await?;
                Vec::new()
            }
            None => Vec::new(),
        };
        self.send(req, absorbed).await
    }

    async fn send_held(&mut self, h: Held) -> Result<(), Failure> {
        self.send(h.req, h.absorbed).await
    }

    /// Sends `req` (or its longest prefix that fits in a frame) and records it.
    async fn send(
        &mut self,
        req: AppendEntriesRequest<TypeConfig>,
        absorbed: Vec<Span>,
    ) -> Result<(), Failure> {
        let fits = entries_fitting_in_a_frame(&req.entries);
        let truncated_at = (fits < req.entries.len()).then(|| req.entries[fits - 1].log_id);
        let prev = req.prev_log_id;
        let last = req.entries.last().map(|e| e.log_id).or(prev);
        let msg = PeerMessage::AppendEntries(convert::append_request_to_wire_prefix(&req, fits));
        let target = self.client.target;
        let id = self.client.next_request_id;
        self.client.next_request_id += 1;
        let Some(conn) = self.client.conn.as_mut() else {
            return Err(Failure::Network(format!(
                "node {target}: connection lost between requests"
            )));
        };
        match GlommioRuntime::timeout(self.ttl, conn.send(id, &msg)).await {
            Ok(Ok(())) => {}
            // Nothing was sent (the frame is encoded whole first): back off, as `call` does.
            Ok(Err(e @ ConnError::Encode(_))) => {
                return Err(Failure::Unreachable(format!("node {target}: {e}")));
            }
            Ok(Err(e)) => return Err(Failure::Network(format!("node {target}: {e}"))),
            Err(_) => return Err(Failure::Timeout(self.ttl)),
        }
        self.inflight.push_back(InFlight {
            id,
            prev,
            last,
            absorbed,
            truncated_at,
            deadline: Instant::now() + self.ttl,
        });
        self.sent_any = true;
        if truncated_at.is_some() {
            self.barrier = true;
        }
        Ok(())
    }

    /// Queues the output items of the answer to the oldest request: those of the requests
    /// it absorbed, then its own.
    fn match_answer(&mut self, frame: shoal_proto::PeerFrame) {
        let item = self.answer_items(frame);
        self.ready.push_back(item);
    }

    /// Turns the answer to the oldest request into its output item, after queueing the
    /// items of the commit-only requests it absorbed (ending the stream at the first
    /// failure among them, as openraft stops reading there).
    fn answer_items(&mut self, frame: shoal_proto::PeerFrame) -> Item {
        let target = self.client.target;
        let Some(front) = self.inflight.front() else {
            unreachable!("an answer is awaited only with a request in flight");
        };
        if frame.request_id != front.id {
            let f = Failure::Network(format!(
                "node {target}: answer to request {} while {} is the oldest in flight",
                frame.request_id, front.id
            ));
            return Err(self.fail(f));
        }
        let resp = match &frame.message {
            PeerMessage::AppendEntriesResponse(r) => match convert::append_response_from_wire(r) {
                Ok(resp) => resp,
                Err(e) => return Err(self.fail(Failure::Network(format!("node {target}: {e}")))),
            },
            PeerMessage::Error(e) => {
                let f = Failure::Unreachable(format!(
                    "node {target} refused the RPC: {:?}: {}",
                    e.kind, e.message
                ));
                return Err(self.fail(f));
            }
            other => {
                let f = Failure::Network(format!(
                    "node {target}: expected an append-entries answer, got {:?}",
                    other.opcode()
                ));
                return Err(self.fail(f));
            }
        };
        let Some(done) = self.inflight.pop_front() else {
            unreachable!("checked above");
        };
        for (prev, last) in &done.absorbed {
            // An absorbed request has the carrier's `prev_log_id` and no entries: it
            // succeeded if the follower matched that prev, it conflicts where the carrier
            // conflicts, a higher vote is a higher vote for both.
            let derived = match &resp {
                AppendEntriesResponse::Success | AppendEntriesResponse::PartialSuccess(_) => {
                    Ok(*last)
                }
                other => match (other.clone(), *prev) {
                    (AppendEntriesResponse::Conflict, None) => {
                        let f = Failure::Network(format!(
                            "node {target}: conflict reported for an append with no prev log id"
                        ));
                        return Err(self.fail(f));
                    }
                    (other, prev) => other.into_stream_result(prev, *last),
                },
            };
            let failed = derived.is_err();
            self.ready.push_back(Ok(derived));
            if failed {
                // openraft stops reading here; the carrier's answer is not its concern.
                self.ended = true;
                self.inflight.clear();
                self.client.conn = None;
                return match self.ready.pop_back() {
                    Some(item) => item,
                    None => unreachable!("just queued"),
                };
            }
        }
        let resp = match (resp, done.truncated_at) {
            (AppendEntriesResponse::Success, Some(last)) => {
                AppendEntriesResponse::PartialSuccess(Some(last))
            }
            (resp, _) => resp,
        };
        let result = match (&resp, done.prev) {
            // A conflict names the request's prev log id; a request with none cannot
            // conflict (everything matches the empty log), so the follower broke the
            // protocol.
            (AppendEntriesResponse::Conflict, None) => {
                let f = Failure::Network(format!(
                    "node {target}: conflict reported for an append with no prev log id"
                ));
                return Err(self.fail(f));
            }
            _ => resp.into_stream_result(done.prev, done.last),
        };
        // After anything but a full success openraft stops reading: end the stream here
        // (the Drop of a pipe with answers still due drops the connection).
        if result.is_err() || done.truncated_at.is_some() {
            self.ended = true;
        }
        Ok(result)
    }

    /// Ends the session on failure `f`: the connection cannot be trusted any more.
    fn fail(&mut self, f: Failure) -> RPCError<TypeConfig> {
        self.ended = true;
        self.client.conn = None;
        self.inflight.clear();
        self.held = None;
        self.client.rpc_error(f, RPCTypes::AppendEntries)
    }
}

/// The `(prev, last)` log ids a request's answer speaks for.
fn span(req: &AppendEntriesRequest<TypeConfig>) -> Span {
    let prev = req.prev_log_id;
    (prev, req.entries.last().map(|e| e.log_id).or(prev))
}
