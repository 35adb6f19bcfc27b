//! The sequential specification of one key: a register that holds a value or nothing,
//! where a value written by `put_with_ttl` disappears at its expiry time.
//!
//! Owns `KeyHistory` (one key's operations, values interned to small ids), `RegisterModel`
//! (implements `search::Model`) and the reasons it refuses an operation.
//!
//! Time model. Each operation takes effect at one instant `t` inside `[invoke, complete]`
//! (`complete` = +inf when the outcome is unknown), and instants are non-decreasing along
//! the linearization order. A value written by `put_with_ttl` at instant `L` has the
//! nominal expiry `X = L + ttl`; with the clock uncertainty `eps`, a read at `t` must see
//! it if `t < X - eps`, must not if `t >= X + eps`, and may do either in between (reads in
//! that window may disagree with each other: after a leader change the new leader's clock
//! decides).
//!
//! The state does not fix those instants; it keeps the set of instants still possible,
//! which is exact because every constraint is of the form `t >= c`, `t <= c` or
//! `t - L {<,>=} c`:
//! - `floor`: earliest instant of the last linearized op, ignoring the TTL part;
//! - for a TTL'd value, `L` ranges over `[put_lo, put_hi]` and the last op's earliest
//!   instant is `max(floor, L + shift)`, where `shift` becomes `ttl - eps` once a read saw
//!   the value expired (that read needs `t >= L + ttl - eps`).
//!
//! A read that sees the value constrains `L > t - ttl - eps` (raises `put_lo`); every op
//! constrains `L <= complete - shift` (lowers `put_hi`); the state is feasible iff
//! `put_lo <= put_hi`. When the value is overwritten, the next op starts from the
//! earliest instant (`L = put_lo`), which is the best choice for everything after it.
//!
//! Owed reads (a pruning that keeps exactly the same linearizations). When only one put
//! on the key writes value `v`, every read returning `v` must come after that put and
//! before the next write (nothing else can make `v` current again). So the state counts
//! the reads of the current value still `owed`, and a write is refused while any are.
//! Without it, DFS would happily stack up concurrent writes and explore every subset of
//! them (exponential in the number of unknown-outcome writes, which never complete).
//!
//! Invariant: `ttl.is_some()` implies `value.is_some()`; `owed > 0` implies the current
//! value has a single writer; states are small `Copy` values so the memo stays cheap.

use std::collections::HashMap;

use crate::history::{Blob, ClientId, Time};
use crate::search::Model;

/// A value's index in `KeyHistory::values`.
pub type ValueId = u32;

/// What one operation does to one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOpKind {
    /// `put` (`ttl_ns: None`) or `put_with_ttl`.
    Put {
        value: ValueId,
        ttl_ns: Option<u64>,
    },
    Delete,
    /// A `get`, or one key of a `get_multi`, that returned `value`.
    Read {
        value: Option<ValueId>,
    },
}

/// One operation on one key.
#[derive(Debug, Clone, Copy)]
pub struct KeyOp {
    /// Index of the operation in the full `History`.
    pub source: usize,
    pub client: ClientId,
    pub invoke: Time,
    /// `Time::MAX` when the outcome is unknown (`reduce.rs` may lower it).
    pub complete: Time,
    /// The outcome was unknown (kept for explanations once `complete` was lowered).
    pub unknown: bool,
    pub kind: KeyOpKind,
}

/// All operations on one key, with the key's distinct values.
#[derive(Debug, Clone, Default)]
pub struct KeyHistory {
    pub key: Blob,
    pub ops: Vec<KeyOp>,
    /// Distinct values, indexed by `ValueId`.
    pub values: Vec<Blob>,
    /// `values` reversed, for interning.
    index: HashMap<Blob, ValueId>,
}

impl KeyHistory {
    /// An empty history of `key`.
    pub fn new(key: Blob) -> KeyHistory {
        KeyHistory {
            key,
            ..KeyHistory::default()
        }
    }

    /// The value's id, interning it if new.
    pub fn intern(&mut self, value: &Blob) -> ValueId {
        if let Some(&id) = self.index.get(value) {
            return id;
        }
        let id = ValueId::try_from(self.values.len()).unwrap_or(ValueId::MAX);
        assert!(
            id < ValueId::MAX,
            "more distinct values on one key than ValueId holds"
        );
        self.values.push(value.clone());
        self.index.insert(value.clone(), id);
        id
    }
}

/// The possible instants of a TTL'd value's write and of the ops after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TtlWindow {
    pub ttl_ns: u64,
    /// Range of the put's linearization instant `L`.
    pub put_lo: Time,
    pub put_hi: Time,
    /// The last op's earliest instant is at least `L + shift`.
    pub shift: u64,
}

/// The register's state plus what is known of the current instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RegisterState {
    pub value: Option<ValueId>,
    /// Reads of `value` that must still be linearized before it may be overwritten.
    pub owed: u32,
    pub floor: Time,
    pub ttl: Option<TtlWindow>,
}

/// Why the register refuses an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// The op completed before the earliest instant it could take effect.
    TooLate { earliest: Time },
    /// A read returned something else than the (unexpired) contents.
    WrongValue {
        current: Option<ValueId>,
        read: Option<ValueId>,
    },
    /// A read saw nothing while the TTL'd value cannot have expired yet.
    NotYetExpired { value: ValueId, ttl_ns: u64 },
    /// A read saw the TTL'd value when it must have expired.
    AlreadyExpired { value: ValueId, ttl_ns: u64 },
    /// A write would overwrite `value` while `reads` reads of it are still to come.
    Owed { value: ValueId, reads: u32 },
}

/// `KeyHistory` as a `search::Model`, with the clock uncertainty `eps` (ns).
#[derive(Debug)]
pub struct RegisterModel<'a> {
    pub key: &'a KeyHistory,
    pub eps: u64,
    /// Per value: reads returning it if a single put writes it, else 0.
    reads_owed: Vec<u32>,
    /// Some put on this key has a TTL.
    has_ttl: bool,
}

impl<'a> RegisterModel<'a> {
    /// The model of `key` with clock uncertainty `eps_ns`.
    pub fn new(key: &'a KeyHistory, eps_ns: u64) -> RegisterModel<'a> {
        let mut writers = vec![0u32; key.values.len()];
        let mut reads = vec![0u32; key.values.len()];
        for op in &key.ops {
            match op.kind {
                KeyOpKind::Put { value, .. } => writers[value as usize] += 1,
                KeyOpKind::Read { value: Some(v) } => reads[v as usize] += 1,
                _ => {}
            }
        }
        let reads_owed = writers
            .iter()
            .zip(reads)
            .map(|(&w, r)| if w == 1 { r } else { 0 })
            .collect();
        let has_ttl = key.ops.iter().any(|o| {
            matches!(
                o.kind,
                KeyOpKind::Put {
                    ttl_ns: Some(_),
                    ..
                }
            )
        });
        RegisterModel {
            key,
            eps: eps_ns,
            reads_owed,
            has_ttl,
        }
    }

    fn earliest_of(s: &RegisterState) -> Time {
        match s.ttl {
            None => s.floor,
            Some(w) => s.floor.max(w.put_lo.saturating_add(w.shift)),
        }
    }

    fn read_ttl(
        &self,
        s: &RegisterState,
        w: TtlWindow,
        op: &KeyOp,
        sees: bool,
    ) -> Result<RegisterState, Reject> {
        let value = s.value.unwrap_or(ValueId::MAX);
        debug_assert!(s.value.is_some(), "a TTL window without a value");
        // The read's instant is max(a, L + shift) for the chosen L.
        let a = s.floor.max(op.invoke);
        if a > op.complete {
            return Err(Reject::TooLate { earliest: a });
        }
        let window = self.eps.saturating_add(w.ttl_ns);
        let (shift, put_lo) = if sees {
            // Needs t < L + ttl + eps, for t = max(a, L + shift).
            if w.shift >= window {
                return Err(Reject::AlreadyExpired {
                    value,
                    ttl_ns: w.ttl_ns,
                });
            }
            (
                w.shift,
                w.put_lo.max(a.saturating_add(1).saturating_sub(window)),
            )
        } else {
            // Needs t >= L + ttl - eps.
            (w.shift.max(w.ttl_ns.saturating_sub(self.eps)), w.put_lo)
        };
        let put_hi = match op.complete.checked_sub(shift) {
            Some(hi) => w.put_hi.min(hi),
            None => return Err(self.ttl_reject(value, w.ttl_ns, sees)),
        };
        if put_lo > put_hi {
            return Err(self.ttl_reject(value, w.ttl_ns, sees));
        }
        Ok(RegisterState {
            value: s.value,
            owed: if sees {
                s.owed.saturating_sub(1)
            } else {
                s.owed
            },
            floor: a,
            ttl: Some(TtlWindow {
                ttl_ns: w.ttl_ns,
                put_lo,
                put_hi,
                shift,
            }),
        })
    }

    fn ttl_reject(&self, value: ValueId, ttl_ns: u64, sees: bool) -> Reject {
        if sees {
            Reject::AlreadyExpired { value, ttl_ns }
        } else {
            Reject::NotYetExpired { value, ttl_ns }
        }
    }
}

impl Model for RegisterModel<'_> {
    type State = RegisterState;
    type Reject = Reject;

    fn len(&self) -> usize {
        self.key.ops.len()
    }
    fn invoke(&self, i: usize) -> Time {
        self.key.ops[i].invoke
    }
    fn complete(&self, i: usize) -> Time {
        self.key.ops[i].complete
    }
    fn init(&self) -> RegisterState {
        // Histories start from an empty store.
        RegisterState {
            value: None,
            owed: 0,
            floor: 0,
            ttl: None,
        }
    }
    fn earliest(&self, s: &RegisterState) -> Time {
        Self::earliest_of(s)
    }

    /// A write with an unknown outcome (completion +inf) may go last: after every other op
    /// no read remains (`owed` is 0), so it is accepted and changes nothing observed.
    fn may_go_last(&self, i: usize) -> bool {
        let op = &self.key.ops[i];
        op.complete == Time::MAX && !matches!(op.kind, KeyOpKind::Read { .. })
    }

    /// A read accepted in a state without TTL may go first among the candidates: in any
    /// linearization that places it later, moving it here keeps every read's result
    /// (values do not change under a read), and moving its instant to `max(floor,
    /// invoke)` can only push later ops' instants up to its invocation, which every
    /// candidate and later op allows (the search only offers ops invoked before every
    /// pending completion). Shifting instants matters for TTL expiry, so with TTL puts
    /// on the key the read must not raise the floor at all.
    fn commutes_early(&self, s: &RegisterState, i: usize) -> bool {
        let op = &self.key.ops[i];
        matches!(op.kind, KeyOpKind::Read { .. })
            && s.ttl.is_none()
            && (!self.has_ttl || op.invoke <= s.floor)
    }

    fn step(&self, s: &RegisterState, i: usize) -> Result<RegisterState, Reject> {
        let op = &self.key.ops[i];
        match op.kind {
            KeyOpKind::Put { .. } | KeyOpKind::Delete => {
                if s.owed > 0 {
                    return Err(Reject::Owed {
                        value: s.value.unwrap_or(ValueId::MAX),
                        reads: s.owed,
                    });
                }
                // The old value is gone: take the earliest instant (best for all that follows).
                let t = Self::earliest_of(s).max(op.invoke);
                if t > op.complete {
                    return Err(Reject::TooLate { earliest: t });
                }
                Ok(match op.kind {
                    KeyOpKind::Put { value, ttl_ns } => RegisterState {
                        value: Some(value),
                        owed: self.reads_owed[value as usize],
                        floor: t,
                        ttl: ttl_ns.map(|ttl_ns| TtlWindow {
                            ttl_ns,
                            put_lo: t,
                            put_hi: op.complete,
                            shift: 0,
                        }),
                    },
                    _ => RegisterState {
                        value: None,
                        owed: 0,
                        floor: t,
                        ttl: None,
                    },
                })
            }
            KeyOpKind::Read { value: read } => match s.ttl {
                Some(w) if read.is_none() => self.read_ttl(s, w, op, false),
                Some(w) if read == s.value => self.read_ttl(s, w, op, true),
                _ if read != s.value => Err(Reject::WrongValue {
                    current: s.value,
                    read,
                }),
                _ => {
                    let t = s.floor.max(op.invoke);
                    if t > op.complete {
                        return Err(Reject::TooLate { earliest: t });
                    }
                    Ok(RegisterState {
                        floor: t,
                        owed: s.owed.saturating_sub(u32::from(read.is_some())),
                        ..*s
                    })
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn key(ops: Vec<(Time, Time, KeyOpKind)>) -> KeyHistory {
        KeyHistory {
            key: Blob::from("k"),
            ops: ops
                .into_iter()
                .enumerate()
                .map(|(i, (invoke, complete, kind))| KeyOp {
                    source: i,
                    client: 0,
                    invoke,
                    complete,
                    unknown: complete == Time::MAX,
                    kind,
                })
                .collect(),
            values: vec![Blob::from("v0"), Blob::from("v1")],
            ..KeyHistory::default()
        }
    }

    fn apply(m: &RegisterModel<'_>, order: &[usize]) -> Result<RegisterState, Reject> {
        let mut s = m.init();
        for &i in order {
            s = m.step(&s, i)?;
        }
        Ok(s)
    }

    fn ttl_put() -> KeyOpKind {
        KeyOpKind::Put {
            value: 0,
            ttl_ns: Some(100 * MS),
        }
    }

    fn read(v: Option<ValueId>) -> KeyOpKind {
        KeyOpKind::Read { value: v }
    }

    #[test]
    fn ttl_visibility_follows_the_eps_window() {
        let eps = 5 * MS;
        // put [0, 1ms] ttl 100ms: expiry X in [100ms, 101ms].
        let cases = [
            // (read at, sees, allowed)
            (90 * MS, true, true),
            (90 * MS, false, false), // cannot have expired: 90 < 100 - 5
            (94 * MS, false, false), // 94 < 95 = X_min - eps
            (96 * MS, false, true),  // inside the window
            (96 * MS, true, true),
            (105 * MS, true, true),  // L may be 1ms: 105 < 101 + 5 - 0
            (106 * MS, true, false), // 106 >= 101 + 5
            (106 * MS, false, true),
        ];
        for (at, sees, allowed) in cases {
            let k = key(vec![(0, MS, ttl_put()), (at, at, read(sees.then_some(0)))]);
            let m = RegisterModel::new(&k, eps);
            assert_eq!(
                apply(&m, &[0, 1]).is_ok(),
                allowed,
                "read at {at} sees {sees}"
            );
        }
    }

    #[test]
    fn seeing_a_value_late_pins_the_put_late_for_later_reads() {
        // put [0, 10ms] ttl 100ms, eps 0. A read at 105ms sees it, so L > 5ms; a read of
        // nothing at 108ms needs L <= 8ms: fine. A read of nothing at 104ms needs L <= 4ms,
        // after which the read at 105ms cannot see the value any more.
        let k = key(vec![
            (0, 10 * MS, ttl_put()),
            (105 * MS, 105 * MS, read(Some(0))),
            (108 * MS, 108 * MS, read(None)),
            (104 * MS, 104 * MS, read(None)),
        ]);
        let m = RegisterModel::new(&k, 0);
        assert!(apply(&m, &[0, 1, 2]).is_ok());
        assert_eq!(
            apply(&m, &[0, 3, 1]),
            Err(Reject::AlreadyExpired {
                value: 0,
                ttl_ns: 100 * MS
            })
        );
    }

    #[test]
    fn without_uncertainty_an_expired_value_never_comes_back() {
        let k = key(vec![
            (0, 10 * MS, ttl_put()),
            (100 * MS, 110 * MS, read(None)),
            (100 * MS, 110 * MS, read(Some(0))),
        ]);
        let strict = RegisterModel::new(&k, 0);
        assert_eq!(
            apply(&strict, &[0, 1, 2]),
            Err(Reject::AlreadyExpired {
                value: 0,
                ttl_ns: 100 * MS
            })
        );
        // With uncertainty, two reads in the window may disagree (leader change).
        let loose = RegisterModel::new(&k, MS);
        assert!(apply(&loose, &[0, 1, 2]).is_ok());
    }

    #[test]
    fn overwriting_a_ttl_value_starts_from_the_earliest_instant() {
        // The read of nothing at >= 95ms raises the floor to L + 95ms >= 95ms; the put
        // after it completing at 90ms cannot follow.
        let k = key(vec![
            (0, MS, ttl_put()),
            (50 * MS, 200 * MS, read(None)),
            (
                60 * MS,
                90 * MS,
                KeyOpKind::Put {
                    value: 1,
                    ttl_ns: None,
                },
            ),
            (60 * MS, 100 * MS, KeyOpKind::Delete),
        ]);
        let m = RegisterModel::new(&k, 5 * MS);
        assert_eq!(
            apply(&m, &[0, 1, 2]),
            Err(Reject::TooLate { earliest: 95 * MS })
        );
        let s = apply(&m, &[0, 1, 3]).unwrap();
        assert_eq!((s.value, s.floor, s.ttl), (None, 95 * MS, None));
    }

    #[test]
    fn plain_register_semantics() {
        let k = key(vec![
            (
                0,
                1,
                KeyOpKind::Put {
                    value: 1,
                    ttl_ns: None,
                },
            ),
            (2, 3, read(Some(1))),
            (2, 3, read(None)),
            (4, 5, KeyOpKind::Delete),
        ]);
        let m = RegisterModel::new(&k, 0);
        assert!(apply(&m, &[0, 1, 3]).is_ok());
        // Time only moves forward: the read ending at 3 cannot follow the delete at >= 4.
        assert_eq!(
            apply(&m, &[0, 1, 3, 2]),
            Err(Reject::TooLate { earliest: 4 })
        );
        assert_eq!(
            apply(&m, &[0, 2]),
            Err(Reject::WrongValue {
                current: Some(1),
                read: None
            })
        );
    }
}
