//! Sound and complete reductions of one key's history before the search.
//!
//! Owns `reduce`. Each rule keeps exactly the same set of linearizations (it never turns
//! a linearizable key into a violation or back); it only shrinks what WGL must explore.
//! Operations with an unknown outcome stay pending forever (completion +inf), so every one
//! of them is a candidate at every step and the search grows exponentially with their
//! number; these rules remove most of them.
//!
//! 1. A plain `put` (no TTL) with an unknown outcome whose value no read returned is
//!    dropped. Proof: in a linearization with it, the op right after it on this key is
//!    not a read (a read there would return its value, and no plain put expires), so
//!    taking it out changes no read's result and only lowers the earliest instants of the
//!    ops after it. Not applied to TTL puts (an expired TTL put explains a read of nothing)
//!    nor to deletes (they explain reads of nothing).
//! 2. A `put` whose value no other put on this key wrote must take effect before every read
//!    of that value, so its completion is lowered to the earliest completion of those reads
//!    (never below its invocation: if a read of the value completed before the only put of
//!    it started, the search reports that).

use std::collections::HashMap;

use crate::history::Time;
use crate::model::{KeyHistory, KeyOpKind, ValueId};

/// What `reduce` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reduction {
    /// Unknown plain puts dropped (rule 1).
    pub dropped_unread_unknown_puts: usize,
    /// Puts whose completion was lowered (rule 2).
    pub bounded_puts: usize,
}

/// Applies the rules of the module docs to `key` in place.
pub fn reduce(key: &mut KeyHistory) -> Reduction {
    let mut r = Reduction::default();
    let mut writers: HashMap<ValueId, usize> = HashMap::new();
    let mut first_read_done: HashMap<ValueId, Time> = HashMap::new();
    for op in &key.ops {
        match op.kind {
            KeyOpKind::Put { value, .. } => *writers.entry(value).or_default() += 1,
            KeyOpKind::Read { value: Some(v) } => {
                let t = first_read_done.entry(v).or_insert(op.complete);
                *t = (*t).min(op.complete);
            }
            _ => {}
        }
    }
    let before = key.ops.len();
    key.ops.retain(|op| match op.kind {
        KeyOpKind::Put {
            value,
            ttl_ns: None,
        } => !op.unknown || first_read_done.contains_key(&value),
        _ => true,
    });
    r.dropped_unread_unknown_puts = before - key.ops.len();
    for op in &mut key.ops {
        if let KeyOpKind::Put { value, .. } = op.kind {
            if writers.get(&value) == Some(&1) {
                if let Some(&done) = first_read_done.get(&value) {
                    let bound = done.max(op.invoke);
                    if bound < op.complete {
                        op.complete = bound;
                        r.bounded_puts += 1;
                    }
                }
            }
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Blob;
    use crate::model::KeyOp;

    fn op(invoke: Time, complete: Time, kind: KeyOpKind) -> KeyOp {
        KeyOp {
            source: 0,
            client: 0,
            invoke,
            complete,
            unknown: complete == Time::MAX,
            kind,
        }
    }

    #[test]
    fn drops_unread_unknown_plain_puts_and_bounds_read_ones() {
        let put = |v, ttl| KeyOpKind::Put {
            value: v,
            ttl_ns: ttl,
        };
        let mut k = KeyHistory::new(Blob::from("k"));
        for i in 0..5 {
            k.intern(&Blob::from(format!("v{i}")));
        }
        k.ops = vec![
            op(0, Time::MAX, put(0, None)),    // unread, unknown: dropped
            op(0, Time::MAX, put(1, Some(5))), // unread but TTL: kept
            op(0, Time::MAX, put(2, None)),    // read twice: bounded to 30
            op(10, 50, put(3, None)),          // read at 40: bounded to 40
            op(20, 30, KeyOpKind::Read { value: Some(2) }),
            op(25, 60, KeyOpKind::Read { value: Some(2) }),
            op(35, 40, KeyOpKind::Read { value: Some(3) }),
            op(0, Time::MAX, put(4, None)), // same value twice: not bounded
            op(0, 5, put(4, None)),
            op(6, 7, KeyOpKind::Read { value: Some(4) }),
        ];
        let r = reduce(&mut k);
        assert_eq!(
            r,
            Reduction {
                dropped_unread_unknown_puts: 1,
                bounded_puts: 2
            }
        );
        let completes: Vec<Time> = k.ops.iter().map(|o| o.complete).collect();
        assert_eq!(
            completes,
            vec![Time::MAX, 30, 40, 30, 60, 40, Time::MAX, 5, 7]
        );
    }
}
