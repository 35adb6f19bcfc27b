//! `ReadBatcher`: one ReadIndex round serves every linearizable read of the shard that
//! was waiting when the round began, instead of one round per read.
//!
//! A read calls [`ReadBatcher::linearize`] and waits; one driver task (spawned when the
//! first read finds no round running) repeatedly takes *every* waiting read, runs one
//! round (`get_read_linearizer(ReadIndex)`, then wait until the state machine applied the
//! read index) and hands the round's outcome to each of them. Reads that arrive while a
//! round runs wait for the next round. Under load a round serves everything that arrived
//! during the previous one, so the consensus cost per read falls as load rises.
//!
//! Why this is exactly as linearizable as one round per read. Let read R join the waiting
//! list at time t (R's invocation happened before t). The round that serves R takes the
//! list after t and only then asks openraft for a read index, so:
//! 1. The read index is the leader's committed index at a moment after t, taken by a node
//!    that openraft confirms was still the leader after that moment: with more than one
//!    voter by a quorum acknowledging a heartbeat sent after the request (ReadIndex never
//!    reuses an older acknowledgement); with a single voter the node is a quorum by
//!    itself, and no other node can lead its group without a membership change, which
//!    this leader would have appended to its own log first (openraft then stops treating
//!    itself as a self-quorum). So every write acknowledged before t is at or below the
//!    read index.
//! 2. The round completes only once `applied >= read index`, and R reads the shard's state
//!    after that, so R sees every write acknowledged before its invocation. What R may
//!    also see (entries applied after the read index) is committed, hence proposed before
//!    R's response: those writes are concurrent with R, and the state only moves forward,
//!    so later reads never see older values.
//!
//! A round already running when R arrived is never used for R: its read index may have
//! been taken before R's invocation, and could miss a write acknowledged in between.
//!
//! Single-voter fast path. When, at R's arrival, this node's Raft metrics say it leads a
//! group whose effective membership (the latest config in its log, committed or not) has
//! this node as its only voter, the group is running, and the state machine has applied
//! every entry of the log, R reads at once without a round. Why that is linearizable:
//! - Every write acknowledged before R was applied on this node. A write is acknowledged
//!   only after it was applied on the leader that proposed it. While the configuration
//!   is `{self}`, that leader was this node: no other node can be elected without this
//!   node's vote and a configuration in which it is a voter, and such a configuration is
//!   appended to this node's log first (only the leader proposes membership changes), so
//!   the metrics would show the joint configuration. Writes of earlier leaders (before a
//!   restart, or before a shrink to `{self}`) are in this node's log, hence applied.
//! - The metrics lag the Raft core by at most one of its loop iterations, and everything
//!   that could break the claim (a new voter, a granted vote, a step-down) needs messages
//!   from other nodes that arrive after the configuration change was appended and flushed
//!   to the metrics in an earlier iteration.
//! - "Applied up to the last log entry" includes the leader's no-op of its term, so a
//!   fresh leader still catching up on its log after a restart takes the normal round.
//!
//! Any doubt (two voters, a joint config, an unapplied entry, a follower) takes the round.
//!
//! Invariants: at most one round runs at a time per shard; every waiting read gets the
//! outcome of exactly one round that started after it joined, or (if its caller gave up)
//! is dropped unanswered; the driver ends when nothing waits.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures::channel::oneshot;
use openraft::RaftMetrics;
use openraft::ReadPolicy;
use openraft::async_runtime::WatchReceiver;
use openraft::errors::{Fatal, LinearizableReadError, RaftError};

use crate::raft::state_machine::ShardStateMachine;
use crate::raft::sync::WatchRx;
use crate::raft::types::{Raft, TypeConfig};

/// Shortest wait a round gives the state machine to reach the read index (a round whose
/// readers' deadlines all passed still asks once, then reports a timeout).
const MIN_ROUND_BUDGET: Duration = Duration::from_millis(1);

/// What one ReadIndex round ended with, shared by every read it served.
#[derive(Debug)]
pub(crate) enum RoundOutcome {
    /// The state machine applied the read index: the readers may read now.
    Ready,
    /// The latest deadline of the round's readers passed before the state machine applied
    /// the read index.
    TimedOut,
    /// openraft refused the read (not the leader, quorum not reached, or stopped).
    Refused(RaftError<TypeConfig, LinearizableReadError<TypeConfig>>),
    /// The group stopped while the round waited.
    Stopped(Fatal<TypeConfig>),
}

type Waiter = oneshot::Sender<Rc<RoundOutcome>>;

#[derive(Default)]
struct Pending {
    /// Whether a driver task runs (it takes `waiting` until it finds it empty).
    driving: bool,
    /// Reads waiting for the next round.
    waiting: Vec<Waiter>,
    /// The latest deadline among `waiting`.
    deadline: Option<Instant>,
}

/// Batches the linearizable reads of one shard (see the module documentation).
pub(crate) struct ReadBatcher {
    raft: Raft<ShardStateMachine>,
    /// The group's metrics, read by the fast path (kept, not re-cloned per read).
    metrics: WatchRx<RaftMetrics<TypeConfig>>,
    pending: RefCell<Pending>,
    /// Rounds started so far (what batching saves shows as reads per round).
    rounds: Cell<u64>,
    /// Reads served by the single-voter fast path (no round).
    fast_reads: Cell<u64>,
    /// The outcome the fast path hands out (shared, so serving allocates nothing).
    ready: Rc<RoundOutcome>,
    /// Whether the fast path may be used (on; tests turn it off to exercise rounds).
    fast_path: Cell<bool>,
}

impl std::fmt::Debug for ReadBatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = self.pending.borrow();
        f.debug_struct("ReadBatcher")
            .field("driving", &p.driving)
            .field("waiting", &p.waiting.len())
            .finish()
    }
}

impl ReadBatcher {
    /// A batcher of reads on `raft`'s group.
    pub(crate) fn new(raft: Raft<ShardStateMachine>) -> Rc<ReadBatcher> {
        Rc::new(ReadBatcher {
            metrics: raft.metrics(),
            raft,
            pending: RefCell::new(Pending::default()),
            rounds: Cell::new(0),
            fast_reads: Cell::new(0),
            ready: Rc::new(RoundOutcome::Ready),
            fast_path: Cell::new(true),
        })
    }

    /// ReadIndex rounds started since the batcher was made.
    pub(crate) fn rounds(&self) -> u64 {
        self.rounds.get()
    }

    /// Reads served without a round by the single-voter fast path.
    pub(crate) fn fast_reads(&self) -> u64 {
        self.fast_reads.get()
    }

    /// Turns the single-voter fast path on (the default) or off (every read runs a round).
    pub(crate) fn set_fast_path(&self, on: bool) {
        self.fast_path.set(on);
    }

    /// Whether a read arriving now may be served from the applied state without a round:
    /// the single-voter fast path of the module documentation.
    fn sole_voter_caught_up(&self) -> bool {
        if !self.fast_path.get() {
            return false;
        }
        let m = self.metrics.borrow_watched();
        if m.running_state.is_err()
            || m.state != openraft::ServerState::Leader
            || m.current_leader != Some(m.id)
        {
            return false;
        }
        let configs = m.membership_config.membership().get_joint_config();
        let sole_voter =
            configs.len() == 1 && configs[0].len() == 1 && configs[0].iter().next() == Some(&m.id);
        sole_voter && m.last_applied.as_ref().map(|l| l.index) >= m.last_log_index
    }

    /// Waits for a ReadIndex round that started after this call and returns its outcome
    /// (or serves at once on the single-voter fast path). Must run on the shard's executor
    /// (the driver is a local task).
    pub(crate) async fn linearize(self: &Rc<Self>, deadline: Instant) -> Rc<RoundOutcome> {
        if self.sole_voter_caught_up() {
            self.fast_reads.set(self.fast_reads.get() + 1);
            return Rc::clone(&self.ready);
        }
        let (tx, rx) = oneshot::channel();
        let start_driver = {
            let mut p = self.pending.borrow_mut();
            p.waiting.push(tx);
            p.deadline = Some(p.deadline.map_or(deadline, |d| d.max(deadline)));
            !std::mem::replace(&mut p.driving, true)
        };
        if start_driver {
            glommio::spawn_local(Rc::clone(self).drive()).detach();
        }
        // The driver answers every waiter it took; a dropped sender means the executor is
        // tearing its tasks down.
        rx.await
            .unwrap_or_else(|_| Rc::new(RoundOutcome::Stopped(Fatal::Stopped)))
    }

    /// Runs rounds until no read waits.
    async fn drive(self: Rc<Self>) {
        loop {
            let (batch, deadline) = {
                let mut p = self.pending.borrow_mut();
                if p.waiting.is_empty() {
                    p.driving = false;
                    return;
                }
                (std::mem::take(&mut p.waiting), p.deadline.take())
            };
            let outcome = Rc::new(self.round(deadline).await);
            for waiter in batch {
                // A reader that gave up (its own deadline) dropped its receiver.
                let _ = waiter.send(Rc::clone(&outcome));
            }
        }
    }

    /// One ReadIndex round, waiting for the apply until `deadline`.
    async fn round(&self, deadline: Option<Instant>) -> RoundOutcome {
        self.rounds.set(self.rounds.get() + 1);
        let linearizer = match self.raft.get_read_linearizer(ReadPolicy::ReadIndex).await {
            Ok(l) => l,
            Err(e) => return RoundOutcome::Refused(e),
        };
        let budget = deadline.map_or(MIN_ROUND_BUDGET, |d| {
            d.saturating_duration_since(Instant::now())
                .max(MIN_ROUND_BUDGET)
        });
        match linearizer.try_await_ready(&self.raft, Some(budget)).await {
            Ok(Ok(_)) => RoundOutcome::Ready,
            Ok(Err(_)) => RoundOutcome::TimedOut,
            Err(f) => RoundOutcome::Stopped(f),
        }
    }
}
