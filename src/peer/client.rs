//! The sending side of a group's peer transport: [`PeerNetwork`] (openraft's
//! `RaftNetworkFactory`) and [`PeerClient`] (`RaftNetworkV2`), over glommio TCP.
//!
//! Invariants:
//! - A `PeerClient` owns at most one connection. A unary RPC (vote, pre-vote, snapshot
//!   chunk, a lone append) has it to itself (openraft calls a client through `&mut self`);
//!   a replication session (`stream_append`) pipelines up to `append_pipeline_depth`
//!   appends on it, answers matched in order (`pipeline`). openraft asks for separate clients for
//!   replication, heartbeats and snapshots, so each gets its own connection and a
//!   heartbeat never queues behind a snapshot chunk or a large append.
//! - Connections are opened lazily by the first RPC and dropped on any error, timeout or
//!   cancellation (a half-sent or half-read frame cannot be resumed); the next RPC
//!   reconnects. Failed connects back off exponentially per target node, shared by all
//!   clients of that target, and an RPC during the backoff fails at once with
//!   `Unreachable` without touching the network: a down peer costs no busy loop.
//! - Every RPC is bounded by `RPCOption::hard_ttl()` (connect and handshake included),
//!   an `AppendEntries` with entries by at least `PeerConfig::append_timeout`; a
//!   snapshot's deadline applies per chunk.
//! - Error mapping (docs/RAFT.md): no connection / refused handshake / remote refusal →
//!   `Unreachable` (openraft backs off); a failure on an established connection →
//!   `Network` (openraft retries at once, which reconnects); deadline → `Timeout`. No
//!   reply is ever guessed.
//! - Addressing: the membership stores each node's shard-0 peer address; group `g` of
//!   that node listens at the same host, port + `g` (`config::NodeConfig::shard_peer_addr`).

use std::cell::Cell;
use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::rc::Rc;
use std::time::Duration;
use std::time::Instant;

use bytes::Bytes;
use futures::future::Either;
use glommio::net::TcpStream;
use openraft::AsyncRuntime;
use openraft::OptionalSend;
use openraft::RaftNetworkFactory;
use openraft::RaftNetworkV2;
use openraft::base::BoxFuture;
use openraft::base::BoxStream;
use openraft::errors::NetworkError;
use openraft::errors::RPCError;
use openraft::errors::ReplicationClosed;
use openraft::errors::StreamingError;
use openraft::errors::Timeout;
use openraft::errors::Unreachable;
use openraft::network::RPCOption;
use openraft::network::RPCTypes;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::SnapshotResponse;
use openraft::raft::StreamAppendResult;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use shoal_proto::MAX_PROTOCOL_VERSION;
use shoal_proto::MIN_PROTOCOL_VERSION;
use shoal_proto::PeerMessage;
use shoal_proto::peer::InstallSnapshotRequest;
use shoal_proto::peer::PeerHello;

use super::PeerConfig;
use super::backoff::Backoff;
use super::conn::ConnError;
use super::conn::PeerConn;
use super::convert;
use crate::raft::GlommioRuntime;
use crate::raft::TypeConfig;
use crate::raft::types::NodeId;
use crate::raft::types::ShoalNode;
use crate::raft::types::Snapshot;
use crate::raft::types::SnapshotData;
use crate::raft::types::Vote;

/// Connection counters of one target node (all clients of that target).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// TCP connects attempted.
    pub connect_attempts: u64,
    /// Connects or handshakes that failed (each one extends the backoff).
    pub connect_failures: u64,
    /// Handshakes that succeeded.
    pub connections: u64,
    /// RPCs refused without touching the network because of the backoff.
    pub backoff_refusals: u64,
}

/// Reachability of one target node, shared by its clients.
#[derive(Debug, Default)]
struct TargetState {
    backoff: Cell<Backoff>,
    stats: Cell<PeerStats>,
}

impl TargetState {
    fn update(&self, f: impl FnOnce(&mut PeerStats)) {
        let mut s = self.stats.get();
        f(&mut s);
        self.stats.set(s);
    }
}

/// openraft's network factory for one group of this node.
#[derive(Debug, Clone)]
pub struct PeerNetwork {
    config: Rc<PeerConfig>,
    targets: Rc<RefCell<HashMap<NodeId, Rc<TargetState>>>>,
}

impl PeerNetwork {
    /// A factory dialing group `config.group` of the other nodes as node
    /// `config.local.node_id`.
    pub fn new(config: PeerConfig) -> PeerNetwork {
        PeerNetwork {
            config: Rc::new(config),
            targets: Rc::default(),
        }
    }

    /// Connection counters towards `target` (zero if never dialed).
    pub fn stats(&self, target: NodeId) -> PeerStats {
        self.targets
            .borrow()
            .get(&target)
            .map(|t| t.stats.get())
            .unwrap_or_default()
    }

    /// A client for `target` (the same as openraft's `new_client`, usable without it).
    pub fn client(&self, target: NodeId, node: &ShoalNode, purpose: &'static str) -> PeerClient {
        let state = self.targets.borrow_mut().entry(target).or_default().clone();
        PeerClient {
            target,
            addr: match self.config.routes.get(&target) {
                Some(route) => group_addr(&route.to_string(), self.config.group),
                None => group_addr(&node.peer_addr, self.config.group),
            },
            config: self.config.clone(),
            state,
            conn: None,
            next_request_id: 1,
            purpose,
        }
    }
}

/// The address of group `group` of the node whose shard-0 peer address is `peer_addr`.
pub fn group_addr(peer_addr: &str, group: u32) -> Result<SocketAddr, String> {
    let base: SocketAddr = peer_addr
        .parse()
        .map_err(|e| format!("bad peer address `{peer_addr}`: {e}"))?;
    crate::config::shard_addr(base, group as usize)
        .ok_or_else(|| format!("peer address `{peer_addr}` + group {group} overflows the port"))
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &ShoalNode) -> PeerClient {
        self.client(target, node, "replication")
    }

    async fn new_heartbeat_client(&mut self, target: NodeId, node: &ShoalNode) -> PeerClient {
        self.client(target, node, "heartbeat")
    }

    async fn new_snapshot_client(&mut self, target: NodeId, node: &ShoalNode) -> PeerClient {
        self.client(target, node, "snapshot")
    }
}

/// Fixed per-entry allowance for the archive's own bytes (log id, enum tag, relative
/// pointers, alignment): generous, so the estimate never undercounts.
const ENTRY_OVERHEAD: usize = 128;

/// Room kept in a frame for the request's other fields.
const FRAME_MARGIN: usize = 64 * 1024;

/// How many leading `entries` fit in one peer frame (at least 1, so progress is always
/// possible: one entry is bounded by the client limits far below `MAX_PEER_FRAME_LEN`).
pub(super) fn entries_fitting_in_a_frame(entries: &[crate::raft::types::Entry]) -> usize {
    use crate::raft::types::EntryPayload;
    let budget = shoal_proto::limits::MAX_PEER_FRAME_LEN - FRAME_MARGIN;
    let mut used = 0usize;
    for (i, e) in entries.iter().enumerate() {
        let size = ENTRY_OVERHEAD
            + match &e.payload {
                EntryPayload::Blank => 0,
                EntryPayload::Normal(r) => r.command.len(),
                EntryPayload::Membership(m) => m
                    .nodes()
                    .map(|(_, n)| ENTRY_OVERHEAD + n.client_addr.len() + n.peer_addr.len())
                    .sum::<usize>(),
            };
        used = used.saturating_add(size);
        if used > budget {
            return i.max(1);
        }
    }
    entries.len()
}

/// Why an RPC produced no answer.
#[derive(Debug)]
pub(super) enum Failure {
    Unreachable(String),
    Network(String),
    Timeout(Duration),
}

/// One connection (lazily opened) to group `g` of a target node.
#[derive(Debug)]
pub struct PeerClient {
    pub(super) target: NodeId,
    addr: Result<SocketAddr, String>,
    pub(super) config: Rc<PeerConfig>,
    state: Rc<TargetState>,
    pub(super) conn: Option<PeerConn>,
    pub(super) next_request_id: u64,
    purpose: &'static str,
}

impl PeerClient {
    /// Whether a connection is open.
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    async fn connect(&mut self) -> Result<(), Failure> {
        let addr = self.addr.clone().map_err(Failure::Unreachable)?;
        let now = Instant::now();
        let mut backoff = self.state.backoff.get();
        if let Err(remaining) = backoff.check(now) {
            self.state.update(|s| s.backoff_refusals += 1);
            return Err(Failure::Unreachable(format!(
                "node {} ({addr}): backing off for {remaining:?} after {} failed connects",
                self.target,
                backoff.failures()
            )));
        }
        self.state.update(|s| s.connect_attempts += 1);
        let result = self.connect_and_greet(addr).await;
        match result {
            Ok(conn) => {
                backoff.on_success();
                self.state.backoff.set(backoff);
                self.state.update(|s| s.connections += 1);
                tracing::debug!(
                    target_node = self.target,
                    %addr,
                    purpose = self.purpose,
                    "peer connection established"
                );
                self.conn = Some(conn);
                Ok(())
            }
            Err(reason) => {
                self.record_connect_failure();
                Err(Failure::Unreachable(reason))
            }
        }
    }

    fn record_connect_failure(&self) {
        let mut backoff = self.state.backoff.get();
        backoff.on_failure(
            Instant::now(),
            self.config.backoff_min,
            self.config.backoff_max,
        );
        self.state.backoff.set(backoff);
        self.state.update(|s| s.connect_failures += 1);
    }

    async fn connect_and_greet(&mut self, addr: SocketAddr) -> Result<PeerConn, String> {
        let stream = TcpStream::connect_timeout(addr, self.config.connect_timeout)
            .await
            .map_err(|e| format!("node {} ({addr}): connect failed: {e}", self.target))?;
        let mut conn = PeerConn::new(stream);
        let local = &self.config.local;
        let hello = PeerMessage::Hello(PeerHello {
            min_version: MIN_PROTOCOL_VERSION,
            max_version: MAX_PROTOCOL_VERSION,
            cluster_id: local.cluster_id,
            from_node: local.node_id,
            to_node: self.target,
            group: self.config.group,
            shard_count: local.shard_count,
        });
        let fail = |e: &dyn std::fmt::Display| {
            format!("node {} ({addr}): handshake failed: {e}", self.target)
        };
        conn.send(0, &hello).await.map_err(|e| fail(&e))?;
        let frame = conn.recv().await.map_err(|e| fail(&e))?;
        match frame.message {
            PeerMessage::HelloOk(ok) if ok.node_id == self.target => Ok(conn),
            PeerMessage::HelloOk(ok) => {
                let msg = format!(
                    "node {} ({addr}): the peer there is node {}",
                    self.target, ok.node_id
                );
                tracing::error!("{msg}");
                Err(msg)
            }
            PeerMessage::Error(e) => {
                let msg = format!(
                    "node {} ({addr}) refused the peer handshake: {:?}: {}",
                    self.target, e.kind, e.message
                );
                // A refusal is a configuration error (wrong cluster, shard count...): loud.
                tracing::error!("{msg}");
                Err(msg)
            }
            other => Err(fail(&format!("unexpected answer {:?}", other.opcode()))),
        }
    }

    /// Opens the connection unless it is open, bounded by `ttl` (a deadline hit while
    /// connecting counts as a failed connect, as in `call`).
    pub(super) async fn ensure_connected(&mut self, ttl: Duration) -> Result<(), Failure> {
        if self.conn.is_some() {
            return Ok(());
        }
        match GlommioRuntime::timeout(ttl, self.connect()).await {
            Ok(r) => r,
            Err(_elapsed) => {
                self.record_connect_failure();
                self.conn = None;
                Err(Failure::Timeout(ttl))
            }
        }
    }

    /// One request/response exchange, bounded by `ttl`.
    async fn call(&mut self, msg: &PeerMessage, ttl: Duration) -> Result<PeerMessage, Failure> {
        let result = GlommioRuntime::timeout(ttl, self.exchange(msg)).await;
        match result {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(failure)) => Err(failure),
            Err(_elapsed) => {
                if self.conn.is_none() {
                    // The deadline hit while connecting: count it as a failed connect.
                    self.record_connect_failure();
                }
                self.conn = None;
                Err(Failure::Timeout(ttl))
            }
        }
    }

    async fn exchange(&mut self, msg: &PeerMessage) -> Result<PeerMessage, Failure> {
        if self.conn.is_none() {
            self.connect().await?;
        }
        let target = self.target;
        let Some(conn) = self.conn.as_mut() else {
            unreachable!("connect() either sets the connection or fails");
        };
        let id = self.next_request_id;
        self.next_request_id += 1;
        let answer = async {
            conn.send(id, msg).await?;
            conn.recv().await
        }
        .await;
        let frame = match answer {
            Ok(frame) => frame,
            // Nothing was sent: retrying at once would fail the same way, so back off.
            Err(e @ ConnError::Encode(_)) => {
                return Err(Failure::Unreachable(format!("node {target}: {e}")));
            }
            Err(e) => {
                self.conn = None;
                return Err(Failure::Network(format!("node {target}: {e}")));
            }
        };
        if frame.request_id != id {
            self.conn = None;
            return Err(Failure::Network(format!(
                "node {target}: answer to request {} while {id} is in flight",
                frame.request_id
            )));
        }
        match frame.message {
            PeerMessage::Error(e) => Err(Failure::Unreachable(format!(
                "node {target} refused the RPC: {:?}: {}",
                e.kind, e.message
            ))),
            answer => Ok(answer),
        }
    }

    pub(super) fn rpc_error(&self, f: Failure, action: RPCTypes) -> RPCError<TypeConfig> {
        match f {
            Failure::Unreachable(m) => RPCError::Unreachable(Unreachable::from_string(m)),
            Failure::Network(m) => RPCError::Network(NetworkError::from_string(m)),
            Failure::Timeout(timeout) => RPCError::Timeout(self.timeout(action, timeout)),
        }
    }

    fn streaming_error(&self, f: Failure) -> StreamingError<TypeConfig> {
        match f {
            Failure::Unreachable(m) => StreamingError::Unreachable(Unreachable::from_string(m)),
            Failure::Network(m) => StreamingError::Network(NetworkError::from_string(m)),
            Failure::Timeout(timeout) => {
                StreamingError::Timeout(self.timeout(RPCTypes::InstallSnapshot, timeout))
            }
        }
    }

    fn timeout(&self, action: RPCTypes, timeout: Duration) -> Timeout<TypeConfig> {
        Timeout {
            action,
            id: self.config.local.node_id,
            target: self.target,
            timeout,
        }
    }

    fn unexpected(&mut self, what: &str, got: &PeerMessage) -> Failure {
        // The peer broke the protocol: do not reuse the connection.
        self.conn = None;
        Failure::Network(format!(
            "node {}: expected {what}, got {:?}",
            self.target,
            got.opcode()
        ))
    }
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let action = RPCTypes::AppendEntries;
        // openraft caps a batch by entry count, not bytes: send the prefix that fits in
        // one frame and report how far it got (`PartialSuccess`); openraft sends the rest.
        let fits = entries_fitting_in_a_frame(&rpc.entries);
        let truncated_at = (fits < rpc.entries.len()).then(|| rpc.entries[fits - 1].log_id);
        let msg = PeerMessage::AppendEntries(convert::append_request_to_wire_prefix(&rpc, fits));
        // A heartbeat (no entries) keeps openraft's deadline; entries get at least
        // `append_timeout` (see `PeerConfig::append_timeout`).
        let ttl = if rpc.entries.is_empty() {
            option.hard_ttl()
        } else {
            option.hard_ttl().max(self.config.append_timeout)
        };
        let answer = self
            .call(&msg, ttl)
            .await
            .map_err(|f| self.rpc_error(f, action))?;
        let result = match &answer {
            PeerMessage::AppendEntriesResponse(r) => convert::append_response_from_wire(r)
                .map_err(|e| Failure::Network(format!("node {}: {e}", self.target))),
            other => Err(self.unexpected("an append-entries answer", other)),
        };
        match (result.map_err(|f| self.rpc_error(f, action))?, truncated_at) {
            (AppendEntriesResponse::Success, Some(last)) => {
                Ok(AppendEntriesResponse::PartialSuccess(Some(last)))
            }
            (resp, _) => Ok(resp),
        }
    }

    /// Pipelined replication: up to `append_pipeline_depth` appends in flight on this
    /// client's connection, answers in order (see `pipeline`).
    fn stream_append<'s, S>(
        &'s mut self,
        input: S,
        option: RPCOption,
    ) -> BoxFuture<
        's,
        Result<
            BoxStream<'s, Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>>,
            RPCError<TypeConfig>,
        >,
    >
    where
        S: futures::Stream<Item = AppendEntriesRequest<TypeConfig>>
            + OptionalSend
            + Unpin
            + 'static,
    {
        super::pipeline::stream_append(self, input, option)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let action = RPCTypes::Vote;
        let msg = PeerMessage::Vote(convert::vote_request_to_wire(&rpc));
        let answer = self
            .call(&msg, option.hard_ttl())
            .await
            .map_err(|f| self.rpc_error(f, action))?;
        let result = match &answer {
            PeerMessage::VoteResponse(r) => convert::vote_response_from_wire(r)
                .map_err(|e| Failure::Network(format!("node {}: {e}", self.target))),
            other => Err(self.unexpected("a vote answer", other)),
        };
        result.map_err(|f| self.rpc_error(f, action))
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let action = RPCTypes::Vote;
        let msg = PeerMessage::PreVote(convert::vote_request_to_wire(&rpc));
        let answer = self
            .call(&msg, option.hard_ttl())
            .await
            .map_err(|f| self.rpc_error(f, action))?;
        let result = match &answer {
            PeerMessage::PreVoteResponse(r) => convert::vote_response_from_wire(r)
                .map_err(|e| Failure::Network(format!("node {}: {e}", self.target))),
            other => Err(self.unexpected("a pre-vote answer", other)),
        };
        result.map_err(|f| self.rpc_error(f, action))
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot<Bytes>,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let data = snapshot.snapshot;
        if data.len() > self.config.max_snapshot_len {
            return Err(StreamingError::Unreachable(Unreachable::from_string(
                format!(
                    "snapshot of {} bytes exceeds the {}-byte limit",
                    data.len(),
                    self.config.max_snapshot_len
                ),
            )));
        }
        let wire_vote = convert::vote_to_wire(&vote);
        let meta = convert::snapshot_meta_to_wire(&snapshot.meta);
        let chunk_len = self.config.snapshot_chunk_len;
        let ttl = option.hard_ttl();
        let mut cancel = pin!(cancel);
        let mut offset = 0usize;
        loop {
            let end = data.len().min(offset + chunk_len);
            let done = end == data.len();
            let msg = PeerMessage::InstallSnapshot(InstallSnapshotRequest {
                vote: wire_vote,
                meta: meta.clone(),
                offset: offset as u64,
                data: data[offset..end].to_vec(),
                done,
            });
            let step = {
                let call = pin!(self.call(&msg, ttl));
                match futures::future::select(cancel.as_mut(), call).await {
                    Either::Left((closed, _)) => Err(closed),
                    Either::Right((answer, _)) => Ok(answer),
                }
            };
            let answer = match step {
                Ok(answer) => answer.map_err(|f| self.streaming_error(f))?,
                Err(closed) => {
                    // Cancelled mid-RPC: the connection may hold half a frame.
                    self.conn = None;
                    return Err(StreamingError::Closed(closed));
                }
            };
            let response = match &answer {
                PeerMessage::InstallSnapshotResponse(r) => convert::snapshot_response_from_wire(r)
                    .map_err(|e| Failure::Network(format!("node {}: {e}", self.target))),
                other => Err(self.unexpected("a snapshot answer", other)),
            }
            .map_err(|f| self.streaming_error(f))?;
            // A higher vote ends the transfer early: the leader steps down on it.
            if done || response.vote > vote {
                return Ok(response);
            }
            offset = end;
        }
    }
}
