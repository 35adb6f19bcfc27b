//! `ShardCore`: one shard's consensus and state behind the [`ShardService`] seam: turns
//! protocol requests into Raft proposals and reads, and Raft's answers into responses.
//!
//! Invariants:
//! - A write is answered only after openraft applied it, which happens only after its entry
//!   is fdatasync'd on a quorum of the group (a write resolves after apply); the writes of
//!   one executor tick go to Raft as one batch (`write_batch`, which argues why that
//!   changes neither order nor durability).
//! - `put_with_ttl` fixes the absolute expiry from this (the leader's) wall clock when the
//!   entry is proposed; replicas apply that same instant. openraft refuses a proposal made
//!   on a follower, so only a leader's expiry ever reaches the log.
//! - Linearizable reads wait for a ReadIndex round (confirm leadership with a quorum, then
//!   wait until the state machine applied the read index) that started after the read
//!   arrived, before reading the shared state; concurrent reads share one round
//!   (`read_batch`, where the argument for linearizability is written out); lease reads skip the quorum round while the leader lease holds and
//!   fall back to ReadIndex otherwise; stale reads read whatever is applied.
//! - Every request ends by its deadline: past it the answer is `Timeout` (a write may still
//!   commit after that; the client is told the outcome is unknown). The caller enforces
//!   it (`Dispatcher::handle` races each request against one timer); reads also bound
//!   their own wait by it.
//! - Membership changes (`AddLearner`, `ChangeMembership`) are proposed only on the group's
//!   leader (openraft refuses them elsewhere: `NotLeader` with the leader's client address,
//!   never forwarded). `AddLearner` answers once the learner caught up (blocking add).

use std::collections::BTreeSet;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use openraft::ReadPolicy;
use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ClientWriteError, Fatal, ForwardReason, LinearizableReadError, RaftError};
use shoal_proto::{
    AddLearner, ErrorDetail, ErrorResponse, GroupDigest, GroupStatus, KeyTtl, NodeInfo, RaftRole,
    ReadConsistency, Request, Response, StatusReport,
};

use super::clock::now_ms;
use super::errors::{fatal, node_info, read_error, write_error};
use super::read_batch::{ReadBatcher, RoundOutcome};
use super::write_batch::WriteBatcher;
use crate::node::ShardService;
use crate::raft::apply_reply::ApplyReply;
use crate::raft::state_machine::{ShardStateMachine, SharedState};
use crate::raft::types::{NodeId, Raft, Request as RaftRequest, ShoalNode, TypeConfig};
use crate::state::{Command, KeyExpiry};

/// One shard's Raft group and state, serving requests on the shard's executor.
pub struct ShardCore {
    shard: u32,
    shard_count: u32,
    node_id: NodeId,
    raft: Raft<ShardStateMachine>,
    state: SharedState,
    /// One ReadIndex round at a time, shared by every read waiting when it starts.
    reads: std::rc::Rc<ReadBatcher>,
    /// Every write proposed in one executor tick goes to Raft in one message.
    writes: std::rc::Rc<WriteBatcher>,
    /// The first fatal error any call returned: the group is dead on this node (a panic
    /// leaves `metrics().running_state` reading `Ok`, so calls are the only witness).
    failure: std::cell::RefCell<Option<String>>,
    /// TEST-ONLY negative control (`NodeConfig::unsafe_local_reads`): see `confirm_read`.
    unsafe_local_reads: std::cell::Cell<bool>,
}

impl std::fmt::Debug for ShardCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardCore")
            .field("shard", &self.shard)
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl ShardCore {
    /// Wraps the group of shard `shard` (of `shard_count`) on node `node_id`.
    pub fn new(
        shard: u32,
        shard_count: u32,
        node_id: NodeId,
        raft: Raft<ShardStateMachine>,
        state: SharedState,
    ) -> ShardCore {
        assert!(shard < shard_count, "shard {shard} out of {shard_count}");
        ShardCore {
            shard,
            shard_count,
            node_id,
            reads: ReadBatcher::new(raft.clone()),
            writes: WriteBatcher::new(raft.clone()),
            raft,
            state,
            failure: std::cell::RefCell::new(None),
            unsafe_local_reads: std::cell::Cell::new(false),
        }
    }

    /// TEST-ONLY: a leader answers linearizable and lease reads from its local state
    /// without confirming its leadership (the negative control of the stale-read checks).
    pub fn set_unsafe_local_reads(&self, on: bool) {
        self.unsafe_local_reads.set(on);
    }

    /// Why the group stopped on this node, if a call saw it stop (storage failure, panic).
    /// The shard stops serving once this is set.
    pub fn failure(&self) -> Option<String> {
        if let Some(f) = self.failure.borrow().clone() {
            return Some(f);
        }
        self.raft
            .metrics()
            .borrow_watched()
            .running_state
            .as_ref()
            .err()
            .map(|f| f.to_string())
    }

    // Every Raft error reaches the client through one of these three, so a fatal one is
    // noted wherever it shows up (a panicked group is only visible through calls).

    fn write_failed(
        &self,
        e: &RaftError<TypeConfig, ClientWriteError<TypeConfig>>,
    ) -> ErrorResponse {
        self.note_fatal(e.fatal());
        write_error(self.shard, e, self.shard_count)
    }

    fn read_failed(
        &self,
        e: &RaftError<TypeConfig, LinearizableReadError<TypeConfig>>,
    ) -> ErrorResponse {
        self.note_fatal(e.fatal());
        read_error(self.shard, e, self.shard_count)
    }

    fn stopped(&self, f: &Fatal<TypeConfig>) -> ErrorResponse {
        self.note_fatal(Some(f));
        fatal(self.shard, f)
    }

    fn note_fatal(&self, fatal: Option<&Fatal<TypeConfig>>) {
        match fatal {
            // A stop we asked for is not a failure.
            None | Some(Fatal::Stopped) => {}
            Some(f) => {
                let mut failure = self.failure.borrow_mut();
                if failure.is_none() {
                    tracing::error!(shard = self.shard, error = %f, "the group stopped on this node");
                    *failure = Some(f.to_string());
                }
            }
        }
    }

    /// ReadIndex rounds this shard ran for linearizable (and lease fallback) reads; with
    /// concurrent reads it grows slower than the reads (they share rounds).
    pub fn read_rounds(&self) -> u64 {
        self.reads.rounds()
    }

    /// Linearizable reads served without a round because this node is the group's only
    /// voter and has applied its whole log (`read_batch`'s single-voter fast path).
    pub fn fast_reads(&self) -> u64 {
        self.reads.fast_reads()
    }

    /// Turns the single-voter read fast path off (every linearizable read runs a ReadIndex
    /// round) or back on (the default). For tests of the rounds themselves.
    #[doc(hidden)]
    pub fn set_read_fast_path(&self, on: bool) {
        self.reads.set_fast_path(on);
    }

    /// Batches of writes this shard handed to Raft; with concurrent writes it grows slower
    /// than the writes (one batch per executor tick).
    pub fn write_batches(&self) -> u64 {
        self.writes.batches()
    }

    /// The Raft handle (for status lines, shutdown and the peer server).
    pub fn raft(&self) -> &Raft<ShardStateMachine> {
        &self.raft
    }

    /// The Raft status of this group as this node sees it.
    pub fn group_status(&self) -> GroupStatus {
        let m = self.raft.metrics().borrow_watched().clone();
        let role = if m.running_state.is_err() {
            RaftRole::Shutdown
        } else {
            match m.state {
                ServerState::Leader => RaftRole::Leader,
                ServerState::Follower => RaftRole::Follower,
                ServerState::Candidate => RaftRole::Candidate,
                ServerState::Learner => RaftRole::Learner,
                ServerState::Shutdown => RaftRole::Shutdown,
            }
        };
        let membership = m.membership_config.membership();
        let voters: Vec<u64> = membership.voter_ids().collect();
        let learners: Vec<u64> = membership.learner_ids().collect();
        GroupStatus {
            group: self.shard,
            role,
            term: m.current_term,
            leader: m.current_leader,
            last_log_index: m.last_log_index,
            committed_index: m.cluster_committed.map(|l| l.index),
            applied_index: m.last_applied.map(|l| l.index),
            voters,
            learners,
        }
    }

    async fn run(&self, request: Request, deadline: Instant) -> Response {
        match request {
            Request::Put(p) => {
                self.write(Command::Put {
                    key: p.key,
                    value: p.value,
                })
                .await
            }
            Request::PutWithTtl(p) => self.put_with_ttl(p.key, p.value, p.ttl_ms).await,
            Request::Delete(d) => self.write(Command::Delete { key: d.key }).await,
            Request::Get(g) => match self.confirm_read(g.consistency, deadline).await {
                Ok(()) => Response::Get(self.state.borrow().get(&g.key, now_ms())),
                Err(e) => Response::Error(e),
            },
            Request::GetMulti(g) => match self.confirm_read(g.consistency, deadline).await {
                Ok(()) => Response::GetMulti(self.state.borrow().get_multi(&g.keys, now_ms())),
                Err(e) => Response::Error(e),
            },
            Request::Status { group } => {
                if group.is_some_and(|g| g != self.shard) {
                    return invalid(format!(
                        "shard {} was asked for group {group:?}",
                        self.shard
                    ));
                }
                Response::Status(StatusReport {
                    node_id: self.node_id,
                    groups: vec![self.group_status()],
                })
            }
            Request::AddLearner(a) => self.add_learner(a).await,
            Request::ChangeMembership(c) => {
                let voters: BTreeSet<NodeId> = c.voters.into_iter().collect();
                let changed = self.raft.change_membership(voters, c.retain).await;
                match changed {
                    Ok(r) => Response::ChangeMembership {
                        log_index: r.log_id.index,
                    },
                    Err(e) => Response::Error(self.write_failed(&e)),
                }
            }
            Request::SetIf(_)
            | Request::Expire(_)
            | Request::Persist(_)
            | Request::DeleteMulti(_)
            | Request::Ttl(_) => self.run_conditional(request, deadline).await,
            Request::StateDigest { group } if group == self.shard => {
                // One pass over the state in one borrow: the digest and the applied log
                // id it is stamped with describe the same state.
                let d = self.state.borrow().digest(now_ms());
                Response::StateDigest(GroupDigest {
                    group,
                    applied_term: d.applied.map_or(0, |l| l.term),
                    applied_index: d.applied.map(|l| l.index),
                    keys: d.keys,
                    digest: d.hash,
                })
            }
            Request::KeyCount { group } if group == self.shard => {
                let state = self.state.borrow();
                Response::KeyCount {
                    keys: state.len() as u64,
                    expiring: state.keys_with_expiry() as u64,
                }
            }
            Request::KeyCount { group } | Request::StateDigest { group } => invalid(format!(
                "shard {} was asked about group {group}",
                self.shard
            )),
            Request::Hello(_) | Request::Ping | Request::Topology => invalid(format!(
                "{:?} is answered by the server, not by a shard",
                request.opcode()
            )),
        }
    }

    async fn add_learner(&self, a: AddLearner) -> Response {
        // The peer transport dials `addr` + group, clients `client_addr` + shard: both must
        // be socket addresses, checked before anything reaches the log.
        for (what, addr) in [("peer", &a.addr), ("client", &a.client_addr)] {
            if let Err(e) = addr.parse::<std::net::SocketAddr>() {
                return invalid(format!("learner {what} address `{addr}`: {e}"));
            }
        }
        if a.node_id == 0 {
            return invalid("node ids start at 1".to_string());
        }
        let node = ShoalNode {
            client_addr: a.client_addr,
            peer_addr: a.addr,
        };
        match self.raft.add_learner(a.node_id, node, true).await {
            Ok(r) => Response::AddLearner {
                log_index: r.log_id.index,
            },
            Err(e) => Response::Error(self.write_failed(&e)),
        }
    }

    async fn put_with_ttl(&self, key: Bytes, value: Bytes, ttl_ms: u64) -> Response {
        // The expiry comes from the clock of the node that proposes: openraft appends the
        // entry only if this node leads the group at that moment, so an expiry computed on
        // a follower is never used (the proposal is refused with `NotLeader`).
        let expire_at_ms = now_ms().saturating_add(ttl_ms);
        self.write(Command::PutWithTtl {
            key,
            value,
            expire_at_ms,
        })
        .await
    }

    /// The conditional and TTL operations (see `shoal_proto::SetIf` and friends). Writes
    /// carry this (the proposing leader's) clock as the command's `now_ms`: the state
    /// machine judges liveness with it, never with its own clock, so every replica decides
    /// the same.
    async fn run_conditional(&self, request: Request, deadline: Instant) -> Response {
        let now = now_ms();
        let command = match request {
            Request::SetIf(s) => Command::SetIf {
                key: s.key,
                value: s.value,
                now_ms: now,
                condition: match s.condition {
                    shoal_proto::SetCondition::Always => crate::state::SetCondition::Always,
                    shoal_proto::SetCondition::IfAbsent => crate::state::SetCondition::IfAbsent,
                    shoal_proto::SetCondition::IfPresent => crate::state::SetCondition::IfPresent,
                },
                ttl: match s.ttl {
                    shoal_proto::TtlMode::Clear => crate::state::TtlChange::Clear,
                    shoal_proto::TtlMode::Keep => crate::state::TtlChange::Keep,
                    shoal_proto::TtlMode::ExpireAt(at) => crate::state::TtlChange::ExpireAt(at),
                },
                return_old: s.return_old,
            },
            Request::Expire(e) => Command::SetExpiry {
                key: e.key,
                now_ms: now,
                expire_at_ms: e.expire_at_ms,
                condition: crate::state::ExpiryCondition {
                    nx: e.condition.nx,
                    xx: e.condition.xx,
                    gt: e.condition.gt,
                    lt: e.condition.lt,
                },
            },
            Request::Persist(p) => Command::Persist {
                key: p.key,
                now_ms: now,
            },
            Request::DeleteMulti(d) => Command::DeleteLive {
                keys: d.keys,
                now_ms: now,
            },
            Request::Ttl(t) => {
                return match self.confirm_read(t.consistency, deadline).await {
                    Ok(()) => Response::Ttl(match self.state.borrow().expiry(&t.key, now_ms()) {
                        KeyExpiry::Missing => KeyTtl::Missing,
                        KeyExpiry::Persistent => KeyTtl::NoExpiry,
                        KeyExpiry::At(at) => KeyTtl::ExpiresAt(at),
                    }),
                    Err(e) => Response::Error(e),
                };
            }
            other => return internal(format!("{:?} is not conditional", other.opcode())),
        };
        let is_persist = matches!(command, Command::Persist { .. });
        match self.propose(command).await {
            Ok(ApplyReply::SetIf { applied, old }) => Response::SetIf { applied, old },
            Ok(ApplyReply::Changed(changed)) if is_persist => Response::Persist { changed },
            Ok(ApplyReply::Changed(changed)) => Response::Expire { changed },
            Ok(ApplyReply::Removed(removed)) => Response::DeleteMulti { removed },
            Ok(ApplyReply::Rejected { reason }) => invalid(reason),
            Ok(other) => internal(format!("unexpected apply reply {other:?}")),
            Err(response) => response,
        }
    }

    async fn write(&self, command: Command) -> Response {
        let is_put = !matches!(command, Command::Delete { .. });
        let is_ttl = matches!(command, Command::PutWithTtl { .. });
        match self.propose(command).await {
            Ok(ApplyReply::Written) if is_ttl => Response::PutWithTtl,
            Ok(ApplyReply::Written) if is_put => Response::Put,
            Ok(ApplyReply::Deleted { existed }) if !is_put => Response::Delete { existed },
            Ok(ApplyReply::Rejected { reason }) => invalid(reason),
            Ok(other) => internal(format!("unexpected apply reply {other:?}")),
            Err(response) => response,
        }
    }

    /// Proposes `command` and waits until it is applied: its apply reply, or the error
    /// response to answer.
    async fn propose(&self, command: Command) -> Result<ApplyReply, Response> {
        let encoded = match command.to_bytes() {
            Ok(b) => b,
            Err(e) => return Err(invalid(e.to_string())),
        };
        // A fresh leader has no quorum ack yet and refuses writes with `LeaseExpired`
        // (docs/RAFT.md pitfall 6): wait for the ack once, then propose again.
        let mut waited_for_lease = false;
        loop {
            let result = self
                .writes
                .propose(RaftRequest {
                    command: encoded.clone(),
                })
                .await;
            match result {
                Ok(resp) => {
                    return ApplyReply::decode(&resp.reply)
                        .map_err(|e| internal(format!("undecodable apply reply: {e}")));
                }
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))
                    if f.reason == ForwardReason::LeaseExpired && !waited_for_lease =>
                {
                    waited_for_lease = true;
                    let waited = self
                        .raft
                        .wait(None)
                        .leader_with_quorum_acked(None, "leader lease for a write")
                        .await;
                    if waited.is_err() {
                        return Err(Response::Error(ErrorResponse::new(
                            ErrorDetail::Unavailable,
                            format!("group {}: leadership lost", self.shard),
                        )));
                    }
                }
                Err(e) => return Err(Response::Error(self.write_failed(&e))),
            }
        }
    }

    async fn confirm_read(
        &self,
        consistency: ReadConsistency,
        deadline: Instant,
    ) -> Result<(), ErrorResponse> {
        // TEST-ONLY (`--unsafe-local-reads`): whoever believes it leads serves what it
        // applied, no ReadIndex, no lease. Deliberately wrong; the fault suite must see it.
        if self.unsafe_local_reads.get() && self.raft.is_leader() {
            return Ok(());
        }
        match consistency {
            ReadConsistency::Stale => {
                // Any replica serves what it applied, unless its group is stopped.
                let m = self.raft.metrics().borrow_watched().clone();
                match m.running_state {
                    Ok(()) => Ok(()),
                    Err(f) => Err(self.stopped(&f)),
                }
            }
            ReadConsistency::Lease => {
                match self.raft.ensure_linearizable(ReadPolicy::LeaseRead).await {
                    Ok(_) => Ok(()),
                    // Lease not valid now (fresh leader, slow acks): fall back to a quorum
                    // round rather than failing a read the leader can still serve.
                    Err(RaftError::APIError(_)) if self.raft.is_leader() => {
                        self.read_index(deadline).await
                    }
                    Err(e) => Err(self.read_failed(&e)),
                }
            }
            ReadConsistency::Linearizable => self.read_index(deadline).await,
        }
    }

    /// Waits for a ReadIndex round that started after this call (shared with every read
    /// waiting at that moment) and applied its read index.
    async fn read_index(&self, deadline: Instant) -> Result<(), ErrorResponse> {
        match &*self.reads.linearize(deadline).await {
            RoundOutcome::Ready => Ok(()),
            RoundOutcome::TimedOut => Err(timeout(self.shard)),
            RoundOutcome::Refused(e) => Err(self.read_failed(e)),
            RoundOutcome::Stopped(f) => Err(self.stopped(f)),
        }
    }
}

#[async_trait(?Send)]
impl ShardService for ShardCore {
    fn shard(&self) -> u32 {
        self.shard
    }

    fn members(&self) -> Vec<NodeInfo> {
        let m = self.raft.metrics().borrow_watched().clone();
        m.membership_config
            .membership()
            .nodes()
            .map(|(id, node)| node_info(*id, node, self.shard_count))
            .collect()
    }

    async fn execute(&self, request: Request, deadline: Instant) -> Response {
        // No timer here: the only caller, `Dispatcher::handle`, already races the whole
        // request against its deadline (one timer per request, not two); what runs below
        // uses the deadline itself where it waits (a read's round budget).
        if deadline <= Instant::now() {
            return Response::Error(timeout(self.shard));
        }
        self.run(request, deadline).await
    }
}

fn timeout(shard: u32) -> ErrorResponse {
    ErrorResponse::new(
        ErrorDetail::Timeout,
        format!("shard {shard}: request deadline passed; a write may still be applied"),
    )
}

fn invalid(message: String) -> Response {
    Response::Error(ErrorResponse::new(ErrorDetail::InvalidRequest, message))
}

fn internal(message: String) -> Response {
    Response::Error(ErrorResponse::new(ErrorDetail::Internal, message))
}
