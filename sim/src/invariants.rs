//! The Raft safety invariants, checked at every storage event and after every executor step.
//!
//! Checked at the event itself (from the storage hooks):
//! - **Election safety**: a leader is established (its vote saved as committed) only after a
//!   quorum of voters durably saved that vote (granted it). Shoal's `TypeConfig` uses
//!   openraft's default `leader_id_adv`, where a leader id is (term, node id), totally
//!   ordered like a Paxos ballot, so two leaders may share a *term* legitimately (a later
//!   candidate of the same term with a higher node id); the checked property is per leader
//!   id: quorum-granted, and held by that node only. Also checked from metrics: a node seen
//!   `Leader` holds its own committed, quorum-granted vote.
//! - **Log matching**: an entry appended anywhere with log id L has the same payload and
//!   the same predecessor log id as every other entry ever appended with log id L
//!   (inductively: two logs that hold L agree on their whole prefix up to L).
//! - **No committed entry is ever truncated** on any node.
//! - **State machine safety**: every node applies, at each index, the same log id and the
//!   same payload; **monotonic apply**: within one incarnation a node applies index i+1
//!   right after i (or after the snapshot it installed).
//!
//! Checked after every poll of any task (the harness's step hook, from metrics and the
//! storage's durable image):
//! - **Committed ⇒ durable on a quorum** when first observed committed, and never lost
//!   (leader completeness): every node that becomes leader in a term above the one that
//!   committed the highest committed entry seen so far holds that entry.
//! - **Monotonic commit**: within one incarnation a node's committed id never goes back;
//!   after a restart it is never below what the node had durably saved before its crash.
//! - Two different log ids are never both observed committed at the same index.
//!
//! Any violation is recorded (with the virtual time) and ends the run.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::rc::Rc;

use bytes::Bytes;

use openraft::RaftMetrics;
use openraft::ServerState;
use shoal::raft::types::NodeId;

use crate::storage::StorageModel;
use crate::types::LogId;
use crate::types::SimConfig;
use crate::types::Vote;

#[derive(Debug, Default)]
struct NodeTrack {
    /// Last applied in this incarnation (None right after a restart).
    applied: Option<LogId>,
    /// Highest committed seen in this incarnation.
    committed: Option<LogId>,
    /// Committed id the node had saved durably before its last crash.
    committed_floor: Option<LogId>,
    /// Whether the floor was checked since the restart.
    floor_checked: bool,
    /// Whether the node was leader at the last tick (to check on becoming leader).
    was_leader: bool,
}

#[derive(Debug, Default)]
struct Inner {
    voters: usize,
    violations: Vec<String>,
    /// leader id (term, node) -> nodes that saved that vote (granted it, or are it).
    granted: BTreeMap<(u64, NodeId), BTreeSet<NodeId>>,
    /// log id -> (payload digest, predecessor log id) of every entry ever appended.
    entries: BTreeMap<LogId, (u64, Option<LogId>)>,
    /// index -> log id observed committed.
    committed: BTreeMap<u64, LogId>,
    /// Highest log id observed committed.
    max_committed: Option<LogId>,
    /// Highest term any node was seen in when `max_committed` was first observed: an upper
    /// bound on the term of the leader that committed it.
    max_committed_term_bound: u64,
    /// Highest term seen in any node's metrics so far.
    max_term_seen: u64,
    /// Highest committed log id already checked for quorum durability.
    durable_checked: Option<LogId>,
    /// index -> (log id, digest) applied anywhere.
    applied: BTreeMap<u64, (LogId, u64)>,
    /// index -> command bytes of every applied normal entry.
    commands: BTreeMap<u64, Bytes>,
    nodes: BTreeMap<NodeId, NodeTrack>,
    /// Counters.
    applies: u64,
    appends: u64,
}

/// The invariant checker of a run; clones share it.
#[derive(Debug, Clone, Default)]
pub struct Checker {
    inner: Rc<RefCell<Inner>>,
}

fn t() -> String {
    crate::runtime::context::try_with(|sim| {
        format!("{:.3} ms", sim.clock.now().as_nanos() as f64 / 1e6)
    })
    .unwrap_or_default()
}

impl Checker {
    /// A checker for a group of `voters` voters.
    pub fn new(voters: usize) -> Self {
        let c = Checker::default();
        c.inner.borrow_mut().voters = voters;
        c
    }

    fn violation(&self, msg: String) {
        let msg = format!("[{}] {msg}", t());
        crate::runtime::context::try_with(|_| crate::runtime::note(format!("VIOLATION {msg}")));
        self.inner.borrow_mut().violations.push(msg);
    }

    /// Violations so far.
    pub fn violations(&self) -> Vec<String> {
        self.inner.borrow().violations.clone()
    }

    /// Whether any invariant was violated.
    pub fn failed(&self) -> bool {
        !self.inner.borrow().violations.is_empty()
    }

    /// Record a violation found outside the checker (history, liveness, panics).
    pub fn report(&self, msg: String) {
        self.violation(msg);
    }

    /// (entries appended, entries applied) so far.
    pub fn counts(&self) -> (u64, u64) {
        let i = self.inner.borrow();
        (i.appends, i.applies)
    }

    /// Highest log id observed committed.
    pub fn max_committed(&self) -> Option<LogId> {
        self.inner.borrow().max_committed
    }

    /// Every applied index with its log id and payload digest.
    pub fn applied(&self) -> BTreeMap<u64, (LogId, u64)> {
        self.inner.borrow().applied.clone()
    }

    /// Every applied normal entry's command, by index.
    pub fn commands(&self) -> BTreeMap<u64, Bytes> {
        self.inner.borrow().commands.clone()
    }

    /// Storage hook: `node` saved `vote` (durably: `save_vote` returns after the sync).
    pub fn on_vote_saved(&self, node: NodeId, vote: &Vote) {
        let lid = (vote.leader_id.term, vote.leader_id.node_id);
        let (granted, need) = {
            let mut i = self.inner.borrow_mut();
            let need = i.voters / 2 + 1;
            let set = i.granted.entry(lid).or_default();
            set.insert(node);
            (set.clone(), need)
        };
        if vote.committed && granted.len() < need {
            self.violation(format!(
                "election safety: node {node} saved committed vote T{}-N{} granted only by {granted:?} (quorum {need})",
                lid.0, lid.1
            ));
        }
    }

    fn quorum_granted(&self, lid: (u64, NodeId)) -> Result<(), BTreeSet<NodeId>> {
        let i = self.inner.borrow();
        let set = i.granted.get(&lid).cloned().unwrap_or_default();
        if set.len() > i.voters / 2 {
            Ok(())
        } else {
            Err(set)
        }
    }

    /// Storage hook: `node` appended `log_id` (payload `digest`) after `prev`.
    pub fn on_append(&self, node: NodeId, log_id: LogId, digest: u64, prev: Option<LogId>) {
        let seen = {
            let mut i = self.inner.borrow_mut();
            i.appends += 1;
            *i.entries.entry(log_id).or_insert((digest, prev))
        };
        if seen.0 != digest {
            self.violation(format!(
                "log matching: node {node} appended {log_id} with a different payload than another node"
            ));
        }
        if seen.1 != prev {
            self.violation(format!(
                "log matching: node {node} holds {log_id} after {prev:?}, another log holds it after {:?}",
                seen.1
            ));
        }
    }

    /// Storage hook: `node` removed `removed` from the tail of its log.
    pub fn on_truncate(&self, node: NodeId, removed: &[LogId]) {
        let hits: Vec<LogId> = {
            let i = self.inner.borrow();
            removed
                .iter()
                .filter(|id| i.committed.get(&id.index) == Some(*id))
                .copied()
                .collect()
        };
        for id in hits {
            self.violation(format!("node {node} truncated committed entry {id}"));
        }
    }

    /// State machine hook: `node` applied `log_id`.
    pub fn on_apply(&self, node: NodeId, log_id: LogId, digest: u64, command: Option<Bytes>) {
        let (prev_node, prev_global) = {
            let mut i = self.inner.borrow_mut();
            i.applies += 1;
            if let Some(c) = command {
                i.commands.entry(log_id.index).or_insert(c);
            }
            let track = i.nodes.entry(node).or_default();
            let prev = track.applied.replace(log_id);
            let global = *i.applied.entry(log_id.index).or_insert((log_id, digest));
            (prev, global)
        };
        if prev_global != (log_id, digest) {
            self.violation(format!(
                "state machine safety: node {node} applied {log_id} at index {}, another node applied {}",
                log_id.index, prev_global.0
            ));
        }
        let expected = prev_node.map(|p| p.index + 1);
        if expected.is_some_and(|e| e != log_id.index) {
            self.violation(format!(
                "monotonic apply: node {node} applied {log_id} right after {prev_node:?}"
            ));
        }
    }

    /// State machine hook: `node` installed a snapshot ending at `last`.
    pub fn on_snapshot_installed(&self, node: NodeId, last: Option<LogId>) {
        let mut i = self.inner.borrow_mut();
        let track = i.nodes.entry(node).or_default();
        if let (Some(a), Some(l)) = (track.applied, last) {
            if l.index < a.index {
                drop(i);
                self.violation(format!(
                    "monotonic apply: node {node} installed snapshot {l} below applied {a}"
                ));
                return;
            }
        }
        track.applied = last;
    }

    /// State machine hook: a new incarnation of `node` starts with an empty state machine.
    pub fn on_sm_restart(&self, node: NodeId) {
        self.inner
            .borrow_mut()
            .nodes
            .entry(node)
            .or_default()
            .applied = None;
    }

    /// Harness hook: `node` crashed; `durable_committed` is what it had saved.
    pub fn on_crash(&self, node: NodeId, durable_committed: Option<LogId>) {
        let mut i = self.inner.borrow_mut();
        let track = i.nodes.entry(node).or_default();
        track.committed = None;
        track.committed_floor = durable_committed;
        track.floor_checked = false;
        track.was_leader = false;
    }

    fn observe_committed(&self, node: NodeId, id: LogId) {
        let prev = {
            let mut i = self.inner.borrow_mut();
            if i.max_committed.is_none_or(|m| id > m) {
                i.max_committed = Some(id);
                i.max_committed_term_bound = i.max_term_seen;
            }
            *i.committed.entry(id.index).or_insert(id)
        };
        if prev != id {
            self.violation(format!(
                "two log ids committed at index {}: {prev} and {id} (seen on node {node})",
                id.index
            ));
        }
    }

    /// Monitor tick: check what node `node`'s metrics show. `log_has` answers whether the
    /// node's current log (or snapshot) holds a log id.
    pub fn observe_metrics(
        &self,
        node: NodeId,
        m: &RaftMetrics<SimConfig>,
        log_has: impl Fn(&LogId) -> bool,
    ) {
        {
            let mut i = self.inner.borrow_mut();
            i.max_term_seen = i.max_term_seen.max(m.vote.leader_id.term);
        }
        for id in [m.local_committed, m.cluster_committed]
            .into_iter()
            .flatten()
        {
            self.observe_committed(node, id);
        }
        let is_leader = m.state == ServerState::Leader;
        let (went_back, floor_broken, newly_leader, leader_clash) = {
            let mut i = self.inner.borrow_mut();
            let leader_clash = (is_leader
                && (!m.vote.committed || m.vote.leader_id.node_id != node))
                .then_some(m.vote);
            let track = i.nodes.entry(node).or_default();
            let went_back = match (track.committed, m.local_committed) {
                (Some(a), b) if b.is_none_or(|b| b < a) => Some((a, b)),
                _ => None,
            };
            if m.local_committed > track.committed {
                track.committed = m.local_committed;
            }
            let mut floor_broken = None;
            if !track.floor_checked && m.local_committed.is_some() {
                track.floor_checked = true;
                if m.local_committed < track.committed_floor {
                    floor_broken = Some((track.committed_floor, m.local_committed));
                }
            }
            let newly_leader = is_leader && !track.was_leader;
            track.was_leader = is_leader;
            (went_back, floor_broken, newly_leader, leader_clash)
        };
        if let Some(vote) = leader_clash {
            self.violation(format!(
                "election safety: node {node} is leader with vote {vote}, not its own committed vote"
            ));
        }
        if is_leader {
            let lid = (m.vote.leader_id.term, m.vote.leader_id.node_id);
            if let Err(set) = self.quorum_granted(lid) {
                self.violation(format!(
                    "election safety: node {node} is leader T{}-N{} but only {set:?} saved that vote",
                    lid.0, lid.1
                ));
            }
        }
        if let Some((a, b)) = went_back {
            self.violation(format!(
                "monotonic commit: node {node} went from {a} back to {b:?}"
            ));
        }
        if let Some((floor, now)) = floor_broken {
            self.violation(format!(
                "monotonic commit across restart: node {node} restarted with committed {now:?} below its saved {floor:?}"
            ));
        }
        if newly_leader {
            let (max, bound) = {
                let i = self.inner.borrow();
                (i.max_committed, i.max_committed_term_bound)
            };
            // Leader completeness: a leader of a term above the one that committed an entry
            // holds it. (A restarted leader restored in its old, lower term need not: openraft
            // restores leadership at startup by default, `Config::enable_leader_restore`.)
            let term = m.vote.leader_id.term;
            if let Some(c) = max.filter(|_| term > bound) {
                if !log_has(&c) {
                    self.violation(format!(
                        "committed entry lost: node {node} became leader (term {}) without committed {c}",
                        m.vote.leader_id.term
                    ));
                }
            }
        }
    }

    /// Monitor tick: the highest committed entry must be durable on a quorum of voters.
    pub fn check_durable_quorum<S: StorageModel>(&self, storage: &S, voters: &[NodeId]) {
        let (max, checked, need) = {
            let i = self.inner.borrow();
            (i.max_committed, i.durable_checked, i.voters / 2 + 1)
        };
        let Some(max) = max else { return };
        if checked == Some(max) {
            return;
        }
        let holders = voters
            .iter()
            .filter(|n| storage.durable_has(**n, &max))
            .count();
        if holders < need {
            self.violation(format!(
                "committed entry {max} is durable on {holders} nodes, fewer than a quorum of {need}"
            ));
        }
        self.inner.borrow_mut().durable_checked = Some(max);
    }
}

#[cfg(test)]
mod tests {
    use openraft::vote::leader_id_adv::LeaderId;

    use super::*;

    fn vote(term: u64, node_id: u64, committed: bool) -> Vote {
        Vote {
            leader_id: LeaderId { term, node_id },
            committed,
        }
    }

    #[test]
    fn a_leader_without_a_quorum_of_grants_is_reported() {
        let c = Checker::new(3);
        c.on_vote_saved(1, &vote(1, 1, false));
        c.on_vote_saved(1, &vote(1, 1, true));
        assert!(
            c.violations()[0].contains("election safety"),
            "{:?}",
            c.violations()
        );
    }

    #[test]
    fn two_leaders_of_one_term_with_quorum_grants_are_allowed() {
        // leader_id_adv: T2-N3 > T2-N2, node 1 may grant both.
        let c = Checker::new(3);
        for n in [2, 1] {
            c.on_vote_saved(n, &vote(2, 2, false));
        }
        c.on_vote_saved(2, &vote(2, 2, true));
        for n in [3, 1] {
            c.on_vote_saved(n, &vote(2, 3, false));
        }
        c.on_vote_saved(3, &vote(2, 3, true));
        assert!(!c.failed(), "{:?}", c.violations());
    }

    fn lid(t: u64, n: u64, i: u64) -> LogId {
        LogId {
            leader_id: LeaderId {
                term: t,
                node_id: n,
            },
            index: i,
        }
    }

    #[test]
    fn different_entries_applied_at_one_index_are_reported() {
        let c = Checker::new(3);
        c.on_apply(1, lid(1, 1, 1), 10, None);
        c.on_apply(2, lid(1, 1, 1), 10, None);
        assert!(!c.failed());
        c.on_apply(3, lid(2, 2, 1), 12, None);
        assert!(c.violations()[0].contains("state machine safety"));
    }

    #[test]
    fn an_apply_gap_is_reported() {
        let c = Checker::new(3);
        c.on_apply(1, lid(1, 1, 1), 10, None);
        c.on_apply(1, lid(1, 1, 3), 10, None);
        assert!(c.violations()[0].contains("monotonic apply"));
    }

    #[test]
    fn same_log_id_with_another_payload_or_predecessor_is_reported() {
        let c = Checker::new(3);
        let id = |t, n, i| LogId {
            leader_id: LeaderId {
                term: t,
                node_id: n,
            },
            index: i,
        };
        c.on_append(1, id(1, 1, 1), 10, None);
        c.on_append(2, id(1, 1, 1), 10, None);
        assert!(!c.failed());
        c.on_append(3, id(1, 1, 1), 11, None);
        assert!(c.violations()[0].contains("log matching"));
    }
}
