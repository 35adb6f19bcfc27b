//! The event list of the WGL search: every operation's call and return, sorted by
//! time, in a doubly linked list whose entries can be unlinked and relinked in O(1)
//! ("dancing links").
//!
//! Owns `Events`. Invariants: calls sort before returns at equal times (equal instants
//! overlap); node `HEAD` (0) and node `tail` (2n + 1) are sentinels; `lift`/`unlift` nest
//! like a stack, so relinking restores the exact previous list; an op's rank is its
//! position in invocation order.

use crate::history::Time;

/// The head sentinel of the list.
pub const HEAD: usize = 0;

/// The doubly linked list of call/return events ("dancing links").
#[derive(Debug)]
pub struct Events {
    pub next: Vec<usize>,
    pub prev: Vec<usize>,
    /// Per node: (op, is_call, time). Node 0 is the head, node `tail` the tail.
    pub op: Vec<usize>,
    pub is_call: Vec<bool>,
    pub time: Vec<Time>,
    pub call_node: Vec<usize>,
    pub ret_node: Vec<usize>,
    /// Per op: its position in invocation order (its bit in the `LinSet`).
    pub rank: Vec<usize>,
    pub tail: usize,
}

impl Events {
    /// The list of ops with these (invoke, complete) windows, all pending.
    pub fn new(windows: &[(Time, Time)]) -> Events {
        let n = windows.len();
        // (time, kind: 0 call / 1 return, op): calls sort before returns at equal times.
        let mut evs: Vec<(Time, u8, usize)> = Vec::with_capacity(2 * n);
        for (i, &(invoke, complete)) in windows.iter().enumerate() {
            assert!(invoke <= complete, "op {i} completes before it is invoked");
            evs.push((invoke, 0, i));
            evs.push((complete, 1, i));
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

    pub fn unlink(&mut self, x: usize) {
        let (p, n) = (self.prev[x], self.next[x]);
        self.next[p] = n;
        self.prev[n] = p;
    }

    pub fn relink(&mut self, x: usize) {
        let (p, n) = (self.prev[x], self.next[x]);
        self.next[p] = x;
        self.prev[n] = x;
    }

    pub fn lift(&mut self, op: usize) {
        self.unlink(self.call_node[op]);
        self.unlink(self.ret_node[op]);
    }

    /// Undoes `lift(op)`; lifts and unlifts must nest like a stack.
    pub fn unlift(&mut self, op: usize) {
        self.relink(self.ret_node[op]);
        self.relink(self.call_node[op]);
    }

    pub fn is_empty(&self) -> bool {
        self.next[HEAD] == self.tail
    }

    /// The completion time of the first pending op to complete.
    pub fn first_return_time(&self) -> Time {
        let mut x = self.next[HEAD];
        while x != self.tail && self.is_call[x] {
            x = self.next[x];
        }
        self.time[x]
    }

    /// Ops whose call event precedes `ret` in the list.
    pub fn calls_before(&self, ret: usize) -> Vec<usize> {
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
