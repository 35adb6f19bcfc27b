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
//! Invariants: the search is pure (no clock reads, no I/O): time limits come in through
//! the `probe` callback. It never answers `Linearizable` unless every op was placed, and
//! `NotLinearizable` only after the whole space was exhausted; any budget stop yields
//! `Interrupted`.

use std::fmt::Debug;
use std::hash::{BuildHasher, Hash};

use hashbrown::HashTable;

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

/// Sentinel nodes of the event list.
const HEAD: usize = 0;

struct MemoEntry<S> {
    hash: u64,
    lo: usize,
    bits: Box<[u64]>,
    state: S,
}

/// The doubly linked list of call/return events ("dancing links").
struct Events {
    next: Vec<usize>,
    prev: Vec<usize>,
    /// Per node: (op, is_call, time). Node 0 is the head, node `tail` the tail.
    op: Vec<usize>,
    is_call: Vec<bool>,
    time: Vec<Time>,
    call_node: Vec<usize>,
    ret_node: Vec<usize>,
    /// Per op: its position in invocation order (its bit in the `LinSet`).
    rank: Vec<usize>,
    tail: usize,
}

impl Events {
    fn new<M: Model>(model: &M) -> Events {
        let n = model.len();
        // (time, kind: 0 call / 1 return, op): calls sort before returns at equal times.
        let mut evs: Vec<(Time, u8, usize)> = Vec::with_capacity(2 * n);
        for i in 0..n {
            assert!(
                model.invoke(i) <= model.complete(i),
                "op {i} completes before it is invoked"
            );
            evs.push((model.invoke(i), 0, i));
            evs.push((model.complete(i), 1, i));
        }
        evs.sort_unstable();
        let tail = 2 * n + 1;
        let mut e = Events {
            next: (1..=tail + 1).collect(),
            prev: (0..=tail).map(|x| x.saturating_sub(1)).collect(),
            op: vec![usize::MAX; tail + 1],
            is_call: vec![false; tail + 1],
            time: vec![Time::MAX; tail + 1],
            call_node: vec![0; n],
            ret_node: vec![0; n],
            rank: vec![0; n],
            tail,
        };
        let mut calls = 0;
        e.next[tail] = tail;
        for (k, &(time, kind, op)) in evs.iter().enumerate() {
            let node = k + 1;
            e.op[node] = op;
            e.is_call[node] = kind == 0;
            e.time[node] = time;
            if kind == 0 {
                e.call_node[op] = node;
                e.rank[op] = calls;
                calls += 1;
            } else {
                e.ret_node[op] = node;
            }
        }
        e
    }

    fn unlink(&mut self, x: usize) {
        let (p, n) = (self.prev[x], self.next[x]);
        self.next[p] = n;
        self.prev[n] = p;
    }

    fn relink(&mut self, x: usize) {
        let (p, n) = (self.prev[x], self.next[x]);
        self.next[p] = x;
        self.prev[n] = x;
    }

    fn lift(&mut self, op: usize) {
        self.unlink(self.call_node[op]);
        self.unlink(self.ret_node[op]);
    }

    /// Undoes `lift(op)`; lifts and unlifts must nest like a stack.
    fn unlift(&mut self, op: usize) {
        self.relink(self.ret_node[op]);
        self.relink(self.call_node[op]);
    }

    fn is_empty(&self) -> bool {
        self.next[HEAD] == self.tail
    }

    /// The completion time of the first pending op to complete.
    fn first_return_time(&self) -> Time {
        let mut x = self.next[HEAD];
        while x != self.tail && self.is_call[x] {
            x = self.next[x];
        }
        self.time[x]
    }

    /// Ops whose call event precedes `ret` in the list.
    fn calls_before(&self, ret: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut x = self.next[HEAD];
        while x != ret && x != self.tail {
            if self.is_call[x] {
                out.push(self.op[x]);
            }
            x = self.next[x];
        }
        out
    }
}

/// Runs the search. `probe` is called every `PROBE_EVERY_STEPS` steps; returning true
/// stops the search with `Interrupt::Probe`.
pub fn search<M: Model>(
    model: &M,
    limits: SearchLimits,
    probe: &mut dyn FnMut() -> bool,
) -> SearchResult<M::State> {
    let n = model.len();
    let mut events = Events::new(model);
    let mut set = LinSet::new(n);
    let state_hasher = std::hash::BuildHasherDefault::<std::hash::DefaultHasher>::default();
    // Table slot + allocation overhead of an entry, besides its words.
    let entry_bytes = std::mem::size_of::<MemoEntry<M::State>>() + 24;
    let mut memo: HashTable<MemoEntry<M::State>> = HashTable::new();
    let mut memo_bytes = 0usize;

    let mut state = model.init();
    // The linearized ops in order, each with the state before it.
    let mut calls: Vec<(usize, M::State)> = Vec::new();
    let mut best: Option<Failure<M::State>> = None;
    // Lowest stack depth since the last snapshot into `best`: `best.prefix[..low_water]`
    // still equals the stack's ops, so a new snapshot copies only what changed.
    let mut low_water = 0usize;
    let mut steps = 0u64;
    let result = |outcome, steps, memo: &HashTable<_>| SearchResult {
        outcome,
        steps,
        memo_entries: memo.len(),
    };

    if events.is_empty() {
        return result(SearchOutcome::Linearizable { order: vec![] }, 0, &memo);
    }
    let mut entry = events.next[HEAD];
    loop {
        steps += 1;
        if steps > limits.max_steps {
            return result(SearchOutcome::Interrupted(Interrupt::Steps), steps, &memo);
        }
        if steps % PROBE_EVERY_STEPS == 0 && probe() {
            return result(SearchOutcome::Interrupted(Interrupt::Probe), steps, &memo);
        }
        debug_assert!(entry != events.tail, "walked past the last return event");
        let op = events.op[entry];
        if events.is_call[entry] {
            if let Ok(next_state) = model.step(&state, op) {
                set.insert(events.rank[op]);
                let hash = set.hash() ^ state_hasher.hash_one(&next_state);
                let (lo, bits) = set.compact();
                let seen = memo
                    .find(hash, |e| {
                        e.hash == hash && e.lo == lo && *e.bits == *bits && e.state == next_state
                    })
                    .is_some();
                if !seen {
                    memo_bytes += entry_bytes + 8 * bits.len();
                    if memo_bytes > limits.max_memo_bytes {
                        return result(SearchOutcome::Interrupted(Interrupt::Memo), steps, &memo);
                    }
                    memo.insert_unique(
                        hash,
                        MemoEntry {
                            hash,
                            lo,
                            bits: bits.into(),
                            state: next_state.clone(),
                        },
                        |e| e.hash,
                    );
                    events.lift(op);
                    if events.is_empty() {
                        calls.push((op, state));
                        let order = calls.into_iter().map(|(o, _)| o).collect();
                        return result(SearchOutcome::Linearizable { order }, steps, &memo);
                    }
                    if model.earliest(&next_state) <= events.first_return_time() {
                        calls.push((op, std::mem::replace(&mut state, next_state)));
                        entry = events.next[HEAD];
                        continue;
                    }
                    // Placing `op` here pushes time past a pending op's completion.
                    events.unlift(op);
                }
                set.remove(events.rank[op]);
            }
            entry = events.next[entry];
        } else {
            // `op` is pending and its completion is reached: it had to come earlier.
            let depth = calls.len();
            if best.as_ref().is_none_or(|b| depth > b.prefix.len()) {
                let candidates = events.calls_before(entry);
                let failure = best.get_or_insert_with(|| Failure {
                    prefix: Vec::new(),
                    state: state.clone(),
                    blocked: op,
                    candidates: Vec::new(),
                });
                failure.prefix.truncate(low_water);
                failure
                    .prefix
                    .extend(calls[low_water..].iter().map(|(o, _)| *o));
                failure.state = state.clone();
                failure.blocked = op;
                failure.candidates = candidates;
                low_water = depth;
            }
            let Some((last, prev_state)) = calls.pop() else {
                let failure = best.take();
                assert!(failure.is_some(), "a failed search records where it failed");
                return match failure {
                    Some(f) => result(SearchOutcome::NotLinearizable(f), steps, &memo),
                    None => result(SearchOutcome::Interrupted(Interrupt::Steps), steps, &memo),
                };
            };
            low_water = low_water.min(calls.len());
            state = prev_state;
            set.remove(events.rank[last]);
            events.unlift(last);
            entry = events.next[events.call_node[last]];
        }
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
