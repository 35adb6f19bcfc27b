//! Differential test: on small random single-key histories (linearizable or not, with
//! unknown writes, duplicate values and TTLs), the checker agrees with a brute-force
//! search written straight from the specification: try every order of the operations and
//! every integer instant for each inside its window, executing a register whose TTL'd
//! value is visible at `t` when `t < L + ttl - eps`, invisible when `t >= L + ttl + eps`,
//! either in between. This covers the search, the timed model, the owed-reads pruning and
//! the reductions at once.

// Test helpers outside #[test] fns may unwrap too (clippy.toml allows it only inside them).
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use proptest::prelude::*;
use shoal_checker::{Blob, CheckOptions, History, Op, Operation, Outcome, Verdict, check};

#[derive(Debug, Clone, Copy)]
enum Kind {
    Put(u8, Option<u64>),
    Delete,
    Read(Option<u8>),
}

#[derive(Debug, Clone, Copy)]
struct SmallOp {
    kind: Kind,
    invoke: u64,
    /// `None`: unknown outcome (writes only).
    complete: Option<u64>,
}

fn small_op() -> impl Strategy<Value = SmallOp> {
    let kind = prop_oneof![
        4 => (0u8..3, prop::option::weighted(0.4, 0u64..12)).prop_map(|(v, t)| Kind::Put(v, t)),
        1 => Just(Kind::Delete),
        5 => prop::option::of(0u8..3).prop_map(Kind::Read),
    ];
    (kind, 0u64..16, 0u64..8, prop::bool::weighted(0.2)).prop_map(|(kind, invoke, dur, unknown)| {
        let unknown = unknown && !matches!(kind, Kind::Read(_));
        SmallOp {
            kind,
            invoke,
            complete: (!unknown).then_some(invoke + dur),
        }
    })
}

/// The register during the brute-force search: value and, if TTL'd, its nominal expiry.
type Reg = Option<(u8, Option<u64>)>;

/// Is there an order and integer instants making the history legal?
fn brute_force(ops: &[SmallOp], eps: u64) -> bool {
    let horizon = ops
        .iter()
        .map(|o| o.complete.unwrap_or(o.invoke).max(o.invoke))
        .max()
        .unwrap_or(0);
    let mut dead = HashSet::new();
    dfs(ops, eps, horizon, 0, 0, None, &mut dead)
}

fn dfs(
    ops: &[SmallOp],
    eps: u64,
    horizon: u64,
    done: u32,
    now: u64,
    reg: Reg,
    dead: &mut HashSet<(u32, u64, Reg)>,
) -> bool {
    if done == (1u32 << ops.len()) - 1 {
        return true;
    }
    if dead.contains(&(done, now, reg)) {
        return false;
    }
    for (i, op) in ops.iter().enumerate() {
        if done & (1 << i) != 0 {
            continue;
        }
        let last = op.complete.unwrap_or(horizon);
        for t in now.max(op.invoke)..=last {
            let next = match op.kind {
                Kind::Put(v, ttl) => Some(Some((v, ttl.map(|d| t + d)))),
                Kind::Delete => Some(None),
                Kind::Read(r) => {
                    let ok = match reg {
                        None => r.is_none(),
                        Some((v, None)) => r == Some(v),
                        Some((v, Some(x))) => {
                            let (t, x, e) = (t as i64, x as i64, eps as i64);
                            match r {
                                Some(rv) => rv == v && t < x + e,
                                None => t >= x - e,
                            }
                        }
                    };
                    ok.then_some(reg)
                }
            };
            if let Some(next) = next {
                if dfs(ops, eps, horizon, done | (1 << i), t, next, dead) {
                    return true;
                }
            }
        }
    }
    dead.insert((done, now, reg));
    false
}

fn to_history(ops: &[SmallOp]) -> History {
    let value = |v: u8| Blob::from(format!("v{v}"));
    let mut h = History::new();
    for (i, o) in ops.iter().enumerate() {
        let (op, outcome) = match o.kind {
            Kind::Put(v, None) => (Op::put("k", value(v)), Outcome::Ok),
            Kind::Put(v, Some(ttl)) => (Op::put_with_ttl("k", value(v), ttl), Outcome::Ok),
            Kind::Delete => (Op::delete("k"), Outcome::Ok),
            Kind::Read(r) => (Op::get("k"), Outcome::Read(r.map(value))),
        };
        let (complete, outcome) = match o.complete {
            Some(c) => (c, outcome),
            None => (o.invoke, Outcome::Unknown),
        };
        h.push(Operation::new(i as u64, o.invoke, complete, op, outcome));
    }
    h
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn checker_agrees_with_brute_force(ops in prop::collection::vec(small_op(), 1..8), eps in 0u64..4) {
        let expected = brute_force(&ops, eps);
        let options = CheckOptions { clock_uncertainty_ns: eps, threads: 1, ..CheckOptions::default() };
        let verdict = check(&to_history(&ops), &options).unwrap().verdict;
        match verdict {
            Verdict::Linearizable => prop_assert!(expected, "checker: linearizable, brute force: not"),
            Verdict::NotLinearizable { explanation, .. } => {
                prop_assert!(!expected, "checker: {explanation}, brute force: linearizable")
            }
            Verdict::CouldNotDecide { .. } => prop_assert!(false, "undecided on a tiny history"),
        }
    }
}
