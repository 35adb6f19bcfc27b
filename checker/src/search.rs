//! The Wing-Gong / Lowe linearizability search (WGL) over one sub-history, generic over a
//! sequential model.
//!
//! Owns the event list, the backtracking stack and the memo. Algorithm (Lowe, "Testing
//! for linearizability", 2017; the same shape as porcupine):
//! - every operation becomes a call event at `invoke` and a return event at `complete`
//!   (`Time::MAX` for an operation that may never have completed), in one doubly linked
//!   list sorted by time, calls before returns at equal times (equal instants overlap);
//! - walking the list from its head, a call event is a candidate to linearize next; the
//!   model either accepts it (then both its events are unlinked, "lifted", and the walk
//!   restarts at the head) or rejects it (try the next entry);
//! - reaching a return event means its operation had to be linearized before this
//!   instant and was not: backtrack (pop the last linearized op, unlift it, continue after
//!   it). An empty stack at that point means no linearization exists;
//! - memo: the set of (linearized-ops bitset, model state) pairs already visited. A
//!   configuration seen before is either on the current path or a proven dead end, so it
//!   is never explored twice (Lowe's cache). Bitsets are hashed incrementally and stored
//!   in a compact canonical form (`linset.rs`), so a step costs O(1) hashing and an entry
//!   a few words even for a key with 100k operations.
//!
//! Timed models: `Model::earliest` is the earliest instant the last linearized op can
//! have taken effect. A step whose `earliest` lies after the completion of a pending op is
//! pruned at once (that op could no longer be placed).
//!
//! Partial-order reduction: when the model says an op `commutes_early` (a read of the
//! current value, typically), it is placed first without trying the other candidates at
//! that level, and backtracking pops straight through it. Without this, `k` concurrent
//! reads of one value make `2^k` distinct configurations, which a failing history on a hot
//! key must all visit.
//!
//! Invariants: the search is pure (no clock reads, no I/O): time limits come in through
//! the `probe` callback. It never answers `Linearizable` unless every op was placed, and
//! `NotLinearizable` only after the whole space was exhausted; any budget stop yields
//! `Interrupted`.

use std::fmt::Debug;
use std::hash::{BuildHasher, Hash};

use hashbrown::HashTable;

use crate::events::{Events, HEAD};
use crate::history::Time;
use crate::limits::PROBE_EVERY_STEPS;
use crate::linset::LinSet;

/// A sequential specification with timed operations, indexed `0..len()`.
pub trait Model {
    /// The model's state; compared and hashed for the memo.
    type State: Clone + Eq + Hash + Debug;
    /// Why the model refuses an operation in a state.
    type Reject: Debug;
    /// Number of operations.
    fn len(&self) -> usize;
    /// True if there are no operations.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Invocation time of op `i`.
    fn invoke(&self, i: usize) -> Time;
    /// Completion time of op `i` (`Time::MAX` if it may never have completed).
    fn complete(&self, i: usize) -> Time;
    /// The state before any operation.
    fn init(&self) -> Self::State;
    /// Applies op `i` as the next operation after `state`, if the specification allows it.
    fn step(&self, state: &Self::State, i: usize) -> Result<Self::State, Self::Reject>;
    /// The earliest instant at which the last operation applied to reach `state` can have
    /// taken effect.
    fn earliest(&self, state: &Self::State) -> Time;
    /// True if, whenever `step(state, i)` succeeds and `i` may come next (its invocation
    /// precedes every pending completion), some linearization from `state` exists iff one
    /// exists with `i` next. The search then places `i` without trying alternatives
    /// (partial-order reduction: concurrent reads of one value commute).
    fn commutes_early(&self, _state: &Self::State, _i: usize) -> bool {
        false
    }
    /// True if op `i` never completes and, from any state reached after all other ops,
    /// `step` accepts it with no effect on anything observed. Then a configuration with
    /// `i` not yet linearized can do all that the same configuration (same state, same
    /// other ops) with `i` linearized can: the search tries such ops last at each level
    /// and prunes configurations dominated that way.
    fn may_go_last(&self, _i: usize) -> bool {
        false
    }
}

/// Bounds of one search.
#[derive(Debug, Clone, Copy)]
pub struct SearchLimits {
    /// Steps (candidates tried + backtracks) before giving up.
    pub max_steps: u64,
    /// Approximate memo size, in bytes, before giving up.
    pub max_memo_bytes: usize,
}

/// Why a search stopped before deciding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupt {
    /// `SearchLimits::max_steps` reached.
    Steps,
    /// `SearchLimits::max_memo_bytes` reached.
    Memo,
    /// The probe callback asked to stop (time budget or another key failed).
    Probe,
}

/// The deepest point a failed search reached.
#[derive(Debug, Clone)]
pub struct Failure<S> {
    /// The longest linearizable prefix found, in linearization order.
    pub prefix: Vec<usize>,
    /// The model state after `prefix`.
    pub state: S,
    /// The pending op whose completion was reached with no way to place it (or any
    /// candidate) next.
    pub blocked: usize,
    /// Every op that could have come next at that point (invoked before `blocked`
    /// completed), `blocked` included; none of them led to a linearization.
    pub candidates: Vec<usize>,
}

/// What a search concluded.
#[derive(Debug, Clone)]
pub enum SearchOutcome<S> {
    /// A witness: every op, in a valid linearization order.
    Linearizable { order: Vec<usize> },
    /// No linearization exists.
    NotLinearizable(Failure<S>),
    /// Stopped early; nothing is known.
    Interrupted(Interrupt),
}

/// A search's conclusion and its cost.
#[derive(Debug, Clone)]
pub struct SearchResult<S> {
    pub outcome: SearchOutcome<S>,
    pub steps: u64,
    pub memo_entries: usize,
}

/// How many of the most recently linearized `may_go_last` ops the dominance check tries.
const DOMINANCE_CHECKS: usize = 8;

/// The two passes over the candidates of one configuration: first the ops that must
/// complete, then those that `may_go_last` (so their "not yet" branch is explored first
/// and dominates the others).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    Firm,
    Deferrable,
}

struct MemoEntry<S> {
    hash: u64,
    lo: usize,
    bits: Box<[u64]>,
    state: S,
}

/// One linearized op on the search stack.
struct Frame<S> {
    op: usize,
    /// The state before `op`.
    before: S,
    /// Placed by `Model::commutes_early`: no alternative to try at its level.
    forced: bool,
    /// The pass in which `op` was chosen.
    pass: Pass,
}

/// What `Searcher::place` did.
enum Placed {
    /// The op was the last one: the stack is a full linearization.
    Complete,
    /// The op is linearized; continue from the new configuration.
    Pushed,
    /// The configuration is known (dead or on the path) or out of time.
    Refused,
}

/// The search's mutable context.
struct Searcher<'m, M: Model> {
    model: &'m M,
    limits: SearchLimits,
    events: Events,
    set: LinSet,
    hasher: std::hash::BuildHasherDefault<std::hash::DefaultHasher>,
    memo: HashTable<MemoEntry<M::State>>,
    memo_bytes: usize,
    state: M::State,
    calls: Vec<Frame<M::State>>,
    /// The linearized ops that `may_go_last`, in order.
    deferred: Vec<usize>,
    /// Per op: `Model::may_go_last`.
    deferrable: Vec<bool>,
    best: Option<Failure<M::State>>,
    /// Lowest stack depth since the last snapshot into `best`: `best.prefix[..low_water]`
    /// still equals the stack's ops, so a new snapshot copies only what changed.
    low_water: usize,
}

impl<M: Model> Searcher<'_, M> {
    /// Is (current set, `state`) in the memo (explored and dead, or on the path)?
    fn known(&self, state_hash: u64, state: &M::State) -> bool {
        let hash = self.set.hash() ^ state_hash;
        let (lo, bits) = self.set.compact();
        self.memo
            .find(hash, |e| {
                e.hash == hash && e.lo == lo && *e.bits == *bits && e.state == *state
            })
            .is_some()
    }

    /// Is (current set, `state`) dominated by a dead configuration: the same but with one
    /// op that `may_go_last` not yet linearized? `op` (just placed) is not tried: without
    /// it the configuration may be the parent, still on the path, whose own witness may
    /// be "place `op` now" (when `op` leaves the state unchanged). Any other candidate set
    /// differs from every set on the path, so if known it is dead.
    fn dominated(&mut self, op: usize, state_hash: u64, state: &M::State) -> bool {
        let older = self.deferred.iter().rev().filter(|&&u| u != op);
        let ranks: Vec<usize> = older
            .take(DOMINANCE_CHECKS)
            .map(|&u| self.events.rank[u])
            .collect();
        for rank in ranks {
            self.set.remove(rank);
            let known = self.known(state_hash, state);
            self.set.insert(rank);
            if known {
                return true;
            }
        }
        false
    }

    /// Tries `op` (which takes the state to `next`) as the next linearized op.
    fn place(
        &mut self,
        op: usize,
        next: M::State,
        forced: bool,
        pass: Pass,
    ) -> Result<Placed, Interrupt> {
        let rank = self.events.rank[op];
        self.set.insert(rank);
        let deferrable = self.deferrable[op];
        if deferrable {
            self.deferred.push(op);
        }
        let state_hash = self.hasher.hash_one(&next);
        if self.known(state_hash, &next) || self.dominated(op, state_hash, &next) {
            self.set.remove(rank);
            if deferrable {
                self.deferred.pop();
            }
            return Ok(Placed::Refused);
        }
        let hash = self.set.hash() ^ state_hash;
        let (lo, bits) = self.set.compact();
        // Table slot + allocation overhead of an entry, besides its words.
        self.memo_bytes += std::mem::size_of::<MemoEntry<M::State>>() + 24 + 8 * bits.len();
        if self.memo_bytes > self.limits.max_memo_bytes {
            return Err(Interrupt::Memo);
        }
        let entry = MemoEntry {
            hash,
            lo,
            bits: bits.into(),
            state: next.clone(),
        };
        self.memo.insert_unique(hash, entry, |e| e.hash);
        self.events.lift(op);
        if self.events.is_empty() || self.model.earliest(&next) <= self.events.first_return_time() {
            let before = std::mem::replace(&mut self.state, next);
            self.calls.push(Frame {
                op,
                before,
                forced,
                pass,
            });
            return Ok(if self.events.is_empty() {
                Placed::Complete
            } else {
                Placed::Pushed
            });
        }
        // Placing `op` here pushes time past a pending op's completion.
        self.events.unlift(op);
        self.set.remove(rank);
        if deferrable {
            self.deferred.pop();
        }
        Ok(Placed::Refused)
    }

    /// An op that may be linearized next without trying alternatives, if any.
    fn eager(&self) -> Option<(usize, M::State)> {
        let mut x = self.events.next[HEAD];
        while x != self.events.tail && self.events.is_call[x] {
            let op = self.events.op[x];
            if self.model.commutes_early(&self.state, op) {
                if let Ok(next) = self.model.step(&self.state, op) {
                    return Some((op, next));
                }
            }
            x = self.events.next[x];
        }
        None
    }

    /// The current configuration is dead, found at list node `at` (the return event of
    /// the pending op that could not be placed): records the deepest failure, then pops
    /// frames until one whose level has alternatives left. Returns the list node to
    /// continue the scan from and the pass, or `None` when the stack is exhausted.
    fn backtrack(&mut self, at: usize) -> Option<(usize, Pass)> {
        let depth = self.calls.len();
        if self.best.as_ref().is_none_or(|b| depth > b.prefix.len()) {
            let candidates = self.events.calls_before(at);
            let blocked = self.events.op[at];
            let failure = self.best.get_or_insert_with(|| Failure {
                prefix: Vec::new(),
                state: self.state.clone(),
                blocked,
                candidates: Vec::new(),
            });
            failure.prefix.truncate(self.low_water);
            failure
                .prefix
                .extend(self.calls[self.low_water..].iter().map(|f| f.op));
            failure.state = self.state.clone();
            failure.blocked = blocked;
            failure.candidates = candidates;
            self.low_water = depth;
        }
        loop {
            let frame = self.calls.pop()?;
            self.low_water = self.low_water.min(self.calls.len());
            self.state = frame.before;
            self.set.remove(self.events.rank[frame.op]);
            self.events.unlift(frame.op);
            if self.deferrable[frame.op] {
                let last = self.deferred.pop();
                debug_assert_eq!(last, Some(frame.op), "deferred ops nest like the stack");
            }
            if !frame.forced {
                let after = self.events.next[self.events.call_node[frame.op]];
                return Some((after, frame.pass));
            }
        }
    }

    /// The list node of the first pending return event.
    fn first_return_node(&self) -> usize {
        let mut x = self.events.next[HEAD];
        while x != self.events.tail && self.events.is_call[x] {
            x = self.events.next[x];
        }
        x
    }
}

/// Runs the search. `probe` is called every `PROBE_EVERY_STEPS` steps; returning true
/// stops the search with `Interrupt::Probe`.
pub fn search<M: Model>(
    model: &M,
    limits: SearchLimits,
    probe: &mut dyn FnMut() -> bool,
) -> SearchResult<M::State> {
    let mut s = Searcher {
        model,
        limits,
        events: Events::new(
            &(0..model.len())
                .map(|i| (model.invoke(i), model.complete(i)))
                .collect::<Vec<_>>(),
        ),
        set: LinSet::new(model.len()),
        hasher: std::hash::BuildHasherDefault::default(),
        memo: HashTable::new(),
        memo_bytes: 0,
        state: model.init(),
        calls: Vec::new(),
        deferred: Vec::new(),
        deferrable: (0..model.len()).map(|i| model.may_go_last(i)).collect(),
        best: None,
        low_water: 0,
    };
    let mut steps = 0u64;
    let outcome = run(&mut s, &mut steps, probe);
    SearchResult {
        outcome,
        steps,
        memo_entries: s.memo.len(),
    }
}

fn run<M: Model>(
    s: &mut Searcher<'_, M>,
    steps: &mut u64,
    probe: &mut dyn FnMut() -> bool,
) -> SearchOutcome<M::State> {
    let interrupted = SearchOutcome::Interrupted;
    if s.events.is_empty() {
        return SearchOutcome::Linearizable { order: vec![] };
    }
    let mut entry = s.events.next[HEAD];
    let mut pass = Pass::Firm;
    // True when a configuration was just reached: look for an op to place eagerly.
    let mut fresh = true;
    loop {
        *steps += 1;
        if *steps > s.limits.max_steps {
            return interrupted(Interrupt::Steps);
        }
        if *steps % PROBE_EVERY_STEPS == 0 && probe() {
            return interrupted(Interrupt::Probe);
        }
        let mut dead_at = None;
        if std::mem::take(&mut fresh) {
            if let Some((op, next)) = s.eager() {
                match s.place(op, next, true, Pass::Firm) {
                    Err(why) => return interrupted(why),
                    Ok(Placed::Complete) => break,
                    Ok(Placed::Pushed) => {
                        entry = s.events.next[HEAD];
                        pass = Pass::Firm;
                        fresh = true;
                        continue;
                    }
                    // Placing `op` first loses nothing, so if that fails, all fails here.
                    Ok(Placed::Refused) => dead_at = Some(s.first_return_node()),
                }
            }
        }
        if dead_at.is_none() {
            debug_assert!(entry != s.events.tail, "walked past the last return event");
            let op = s.events.op[entry];
            if !s.events.is_call[entry] {
                if pass == Pass::Firm {
                    // Now try the ops that may go last.
                    pass = Pass::Deferrable;
                    entry = s.events.next[HEAD];
                    continue;
                }
                // `op` is pending and its completion is reached: it had to come earlier.
                dead_at = Some(entry);
            } else {
                let in_pass = s.deferrable[op] == (pass == Pass::Deferrable);
                if in_pass {
                    if let Ok(next) = s.model.step(&s.state, op) {
                        match s.place(op, next, false, pass) {
                            Err(why) => return interrupted(why),
                            Ok(Placed::Complete) => break,
                            Ok(Placed::Pushed) => {
                                entry = s.events.next[HEAD];
                                pass = Pass::Firm;
                                fresh = true;
                                continue;
                            }
                            Ok(Placed::Refused) => {}
                        }
                    }
                }
                entry = s.events.next[entry];
            }
        }
        if let Some(at) = dead_at {
            match s.backtrack(at) {
                Some((next, p)) => (entry, pass) = (next, p),
                None => {
                    let failure = s.best.take();
                    assert!(failure.is_some(), "a failed search records where it failed");
                    return match failure {
                        Some(f) => SearchOutcome::NotLinearizable(f),
                        None => interrupted(Interrupt::Steps),
                    };
                }
            }
        }
    }
    SearchOutcome::Linearizable {
        order: s.calls.iter().map(|f| f.op).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A register of small integers; ops are (invoke, complete, write?, value).
    struct Reg(Vec<(Time, Time, bool, u8)>);

    impl Model for Reg {
        type State = u8;
        type Reject = ();
        fn len(&self) -> usize {
            self.0.len()
        }
        fn invoke(&self, i: usize) -> Time {
            self.0[i].0
        }
        fn complete(&self, i: usize) -> Time {
            self.0[i].1
        }
        fn init(&self) -> u8 {
            0
        }
        fn step(&self, s: &u8, i: usize) -> Result<u8, ()> {
            let (_, _, write, v) = self.0[i];
            if write {
                Ok(v)
            } else if *s == v {
                Ok(*s)
            } else {
                Err(())
            }
        }
        fn earliest(&self, _: &u8) -> Time {
            0
        }
    }

    fn run(m: &Reg) -> SearchOutcome<u8> {
        let limits = SearchLimits {
            max_steps: 1_000_000,
            max_memo_bytes: 1 << 24,
        };
        search(m, limits, &mut || false).outcome
    }

    #[test]
    fn finds_the_order_concurrency_allows() {
        // w1 || w2 overlap; r=1 after both: w2 then w1 is the only order.
        let m = Reg(vec![(0, 10, true, 1), (0, 10, true, 2), (20, 30, false, 1)]);
        match run(&m) {
            SearchOutcome::Linearizable { order } => assert_eq!(order, vec![1, 0, 2]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reports_the_longest_prefix_and_blocked_op() {
        // w1 ; w2 ; r=1  (sequential): r cannot be placed after w2.
        let m = Reg(vec![(0, 1, true, 1), (2, 3, true, 2), (4, 5, false, 1)]);
        match run(&m) {
            SearchOutcome::NotLinearizable(f) => {
                assert_eq!(f.prefix, vec![0, 1]);
                assert_eq!(f.blocked, 2);
                assert_eq!(f.candidates, vec![2]);
                assert_eq!(f.state, 2);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_never_completing_op_may_go_last() {
        let m = Reg(vec![(0, Time::MAX, true, 7), (5, 6, false, 0)]);
        match run(&m) {
            SearchOutcome::Linearizable { order } => assert_eq!(order, vec![1, 0]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn budgets_interrupt() {
        let m = Reg((0..20)
            .map(|i| (0, 100, true, i))
            .chain([(200, 300, false, 99)])
            .collect());
        let tiny = SearchLimits {
            max_steps: 50,
            max_memo_bytes: 1 << 24,
        };
        let r = search(&m, tiny, &mut || false);
        assert!(matches!(
            r.outcome,
            SearchOutcome::Interrupted(Interrupt::Steps)
        ));
        let no_memo = SearchLimits {
            max_steps: u64::MAX,
            max_memo_bytes: 10,
        };
        let r = search(&m, no_memo, &mut || false);
        assert!(matches!(
            r.outcome,
            SearchOutcome::Interrupted(Interrupt::Memo)
        ));
        let r = search(
            &m,
            SearchLimits {
                max_steps: u64::MAX,
                max_memo_bytes: usize::MAX,
            },
            &mut || true,
        );
        assert!(matches!(
            r.outcome,
            SearchOutcome::Interrupted(Interrupt::Probe)
        ));
    }
}
