//! Self-test of the checker on hand-made histories whose verdict is known, each asserting
//! the exact verdict (and, for violations, the key and the op that could not be placed).

// Test helpers outside #[test] fns may unwrap too (clippy.toml allows it only inside them).
#![allow(clippy::unwrap_used)]

use shoal_checker::{
    Blob, CheckOptions, History, Op, Operation, Outcome, UndecidedReason, Verdict, check,
};

const MS: u64 = 1_000_000;

/// A compact way to write histories: (client, invoke, complete, op, outcome), times in ms.
fn history(ops: Vec<(u64, u64, u64, Op, Outcome)>) -> History {
    let mut h = History::new();
    for (c, i, r, op, out) in ops {
        let r = if r == u64::MAX { u64::MAX } else { r * MS };
        h.push(Operation::new(c, i * MS, r, op, out));
    }
    h
}

fn read(v: &str) -> Outcome {
    Outcome::Read(Some(v.into()))
}

fn opts(eps_ms: u64) -> CheckOptions {
    CheckOptions {
        clock_uncertainty_ns: eps_ms * MS,
        ..CheckOptions::default()
    }
}

fn verdict(h: &History, eps_ms: u64) -> Verdict {
    check(h, &opts(eps_ms)).unwrap().verdict
}

/// Asserts a violation on `key` whose explanation names history op `culprit` as the op
/// that could not be placed or as the reason another op could not be placed.
fn assert_violation(h: &History, eps_ms: u64, key: &str, culprit: usize) -> String {
    match verdict(h, eps_ms) {
        Verdict::NotLinearizable {
            key: k,
            explanation,
        } => {
            assert_eq!(k, Blob::from(key));
            assert_eq!(explanation.key, Blob::from(key));
            let named = format!("#{culprit} client");
            assert!(
                explanation.blocked.index == culprit
                    || explanation
                        .candidates
                        .iter()
                        .any(|(_, why)| why.contains(&named)),
                "op #{culprit} not named: {explanation}"
            );
            explanation.to_string()
        }
        other => panic!("expected a violation on {key}, got {other}"),
    }
}

// ---------------------------------------------------------------- linearizable

#[test]
fn empty_history_is_linearizable() {
    assert_eq!(verdict(&History::new(), 0), Verdict::Linearizable);
}

#[test]
fn overlapping_writes_and_reads_with_several_valid_orders() {
    // w1 and w2 overlap; reads during the overlap see either; the later reads agree on
    // the order chosen (w1 then w2 for "b"; the first read's "a" forces a then b).
    let h = history(vec![
        (1, 0, 10, Op::put("k", "a"), Outcome::Ok),
        (2, 2, 12, Op::put("k", "b"), Outcome::Ok),
        (3, 1, 11, Op::get("k"), read("a")),
        (4, 3, 13, Op::get("k"), read("b")),
        (3, 14, 15, Op::get("k"), read("b")),
        (5, 5, 9, Op::get("k"), Outcome::Read(None)),
    ]);
    assert_eq!(verdict(&h, 0), Verdict::Linearizable);
    // Same writes, reads that pick the other order.
    let h = history(vec![
        (1, 0, 10, Op::put("k", "a"), Outcome::Ok),
        (2, 2, 12, Op::put("k", "b"), Outcome::Ok),
        (3, 3, 11, Op::get("k"), read("b")),
        (3, 14, 15, Op::get("k"), read("a")),
    ]);
    assert_eq!(verdict(&h, 0), Verdict::Linearizable);
}

#[test]
fn unknown_write_may_be_seen_or_not() {
    let base = vec![
        (1, 0, 1, Op::put("k", "a"), Outcome::Ok),
        (2, 2, 3, Op::put("k", "b"), Outcome::Unknown),
    ];
    // Never seen.
    let mut ops = base.clone();
    ops.push((3, 100, 101, Op::get("k"), read("a")));
    assert_eq!(verdict(&history(ops), 0), Verdict::Linearizable);
    // Seen long after the client gave up (it took effect late).
    let mut ops = base.clone();
    ops.push((3, 50, 51, Op::get("k"), read("a")));
    ops.push((3, 100, 101, Op::get("k"), read("b")));
    assert_eq!(verdict(&history(ops), 0), Verdict::Linearizable);
    // But once seen, the older value cannot come back.
    let mut ops = base;
    ops.push((3, 50, 51, Op::get("k"), read("b")));
    ops.push((3, 100, 101, Op::get("k"), read("a")));
    assert_violation(&history(ops), 0, "k", 3);
}

#[test]
fn failed_ops_and_unknown_reads_are_dropped() {
    let h = history(vec![
        (1, 0, 1, Op::put("k", "a"), Outcome::Ok),
        (2, 2, 3, Op::put("k", "b"), Outcome::Failed),
        (3, 4, 5, Op::get("k"), Outcome::Unknown),
        (3, 6, 7, Op::get("k"), read("a")),
    ]);
    assert_eq!(verdict(&h, 0), Verdict::Linearizable);
    // A failed write seen by a read: it was never written (as far as we know).
    let h = history(vec![
        (1, 0, 1, Op::put("k", "a"), Outcome::Ok),
        (2, 2, 3, Op::put("k", "b"), Outcome::Failed),
        (3, 6, 7, Op::get("k"), read("b")),
    ]);
    assert_violation(&h, 0, "k", 2);
}

#[test]
fn ttl_value_read_just_before_expiry() {
    // put_with_ttl acknowledged in [0, 1ms], ttl 100ms, eps 2ms: visible until at least
    // 98ms; a read ending at 97.9ms must see it, a read of nothing after 103ms is right.
    let mut h = History::new();
    h.push(Operation::new(
        1,
        0,
        MS,
        Op::put_with_ttl("s", "x", 100 * MS),
        Outcome::Ok,
    ));
    h.push(Operation::new(
        2,
        97 * MS,
        97 * MS + 900_000,
        Op::get("s"),
        read("x"),
    ));
    h.push(Operation::new(
        2,
        104 * MS,
        105 * MS,
        Op::get("s"),
        Outcome::Read(None),
    ));
    assert_eq!(verdict(&h, 2), Verdict::Linearizable);
    // Inside the uncertainty window a read may go either way.
    let mut h2 = h.clone();
    h2.push(Operation::new(
        3,
        99 * MS,
        99 * MS,
        Op::get("s"),
        Outcome::Read(None),
    ));
    h2.push(Operation::new(
        4,
        100 * MS,
        100 * MS,
        Op::get("s"),
        read("x"),
    ));
    assert_eq!(verdict(&h2, 2), Verdict::Linearizable);
    // ...but not outside it: nothing at 97.9ms is too early.
    let mut h3 = h;
    h3.push(Operation::new(
        3,
        97 * MS,
        97 * MS + 900_000,
        Op::get("s"),
        Outcome::Read(None),
    ));
    let text = assert_violation(&h3, 2, "s", 3);
    assert!(text.contains("cannot have expired"), "{text}");
}

#[test]
fn get_multi_is_split_per_key_and_not_atomic() {
    // get_multi(a, b) overlaps put(a) and put(b); it may see the new a and the old b,
    // even though b was written first: each key is read at its own instant.
    let h = history(vec![
        (1, 0, 1, Op::put("a", "a0"), Outcome::Ok),
        (1, 0, 1, Op::put("b", "b0"), Outcome::Ok),
        (2, 10, 12, Op::put("b", "b1"), Outcome::Ok),
        (2, 13, 15, Op::put("a", "a1"), Outcome::Ok),
        (
            3,
            9,
            16,
            Op::get_multi(["a", "b"]),
            Outcome::ReadMulti(vec![Some("a1".into()), Some("b0".into())]),
        ),
    ]);
    assert_eq!(verdict(&h, 0), Verdict::Linearizable);
    // After both writes completed, an old value on one key is a violation on that key.
    let h = history(vec![
        (1, 0, 1, Op::put("a", "a0"), Outcome::Ok),
        (1, 0, 1, Op::put("b", "b0"), Outcome::Ok),
        (2, 10, 12, Op::put("b", "b1"), Outcome::Ok),
        (
            3,
            20,
            21,
            Op::get_multi(["a", "b"]),
            Outcome::ReadMulti(vec![Some("a0".into()), Some("b0".into())]),
        ),
    ]);
    assert_violation(&h, 0, "b", 3);
}

#[test]
fn keys_are_independent() {
    let h = history(vec![
        (1, 0, 1, Op::put("x", "1"), Outcome::Ok),
        (1, 2, 3, Op::put("y", "1"), Outcome::Ok),
        (2, 4, 5, Op::get("x"), read("1")),
        (2, 4, 5, Op::get("z"), Outcome::Read(None)),
        (2, 6, 7, Op::delete("y"), Outcome::Ok),
        (2, 8, 9, Op::get("y"), Outcome::Read(None)),
    ]);
    assert_eq!(verdict(&h, 0), Verdict::Linearizable);
}

// ------------------------------------------------------------ not linearizable

#[test]
fn stale_read_after_a_completed_write() {
    let h = history(vec![
        (1, 0, 1, Op::put("k", "a"), Outcome::Ok),
        (1, 2, 3, Op::put("k", "b"), Outcome::Ok),
        (2, 4, 5, Op::get("k"), read("a")),
    ]);
    let text = assert_violation(&h, 0, "k", 2);
    assert!(
        text.contains("it would overwrite \"a\" before it was read by #2 client 2"),
        "{text}"
    );
}

#[test]
fn read_of_a_value_never_written() {
    let h = history(vec![
        (1, 0, 1, Op::put("k", "a"), Outcome::Ok),
        (2, 0, 5, Op::get("k"), read("zzz")),
    ]);
    let text = assert_violation(&h, 0, "k", 1);
    assert!(text.contains("never written"), "{text}");
}

#[test]
fn new_value_then_old_value_in_later_non_overlapping_read() {
    // The write of b overlaps both reads, but the first read saw b and the second,
    // which starts after the first ended, saw a again.
    let h = history(vec![
        (1, 0, 1, Op::put("k", "a"), Outcome::Ok),
        (1, 2, 20, Op::put("k", "b"), Outcome::Ok),
        (2, 3, 4, Op::get("k"), read("b")),
        (3, 5, 6, Op::get("k"), read("a")),
    ]);
    assert_violation(&h, 0, "k", 3);
}

#[test]
fn ttl_value_read_well_after_expiry() {
    let mut h = History::new();
    h.push(Operation::new(
        1,
        0,
        MS,
        Op::put_with_ttl("s", "x", 100 * MS),
        Outcome::Ok,
    ));
    h.push(Operation::new(
        2,
        150 * MS,
        151 * MS,
        Op::get("s"),
        read("x"),
    ));
    let text = assert_violation(&h, 10, "s", 1);
    assert!(text.contains("had expired"), "{text}");
    // With a clock uncertainty larger than the gap, the same read is allowed.
    assert_eq!(verdict(&h, 60), Verdict::Linearizable);
}

#[test]
fn deleted_key_resurrected() {
    let h = history(vec![
        (1, 0, 1, Op::put("k", "a"), Outcome::Ok),
        (1, 2, 3, Op::delete("k"), Outcome::Ok),
        (2, 4, 5, Op::get("k"), Outcome::Read(None)),
        (2, 6, 7, Op::get("k"), read("a")),
    ]);
    let text = assert_violation(&h, 0, "k", 3);
    assert!(
        text.contains("delete: it would overwrite \"a\" before it was read by #3"),
        "{text}"
    );
}

#[test]
fn lost_acknowledged_write() {
    // The put was acknowledged; a later read finds nothing.
    let h = history(vec![
        (1, 0, 1, Op::put("k", "a"), Outcome::Ok),
        (2, 2, 3, Op::get("k"), Outcome::Read(None)),
    ]);
    assert_violation(&h, 0, "k", 1);
    // Same with an acknowledged overwrite lost: b acknowledged, later reads see a.
    let h = history(vec![
        (1, 0, 1, Op::put("k", "a"), Outcome::Ok),
        (2, 2, 3, Op::put("k", "b"), Outcome::Ok),
        (3, 10, 11, Op::get("k"), read("a")),
        (3, 12, 13, Op::get("k"), read("a")),
    ]);
    assert_violation(&h, 0, "k", 2);
}

#[test]
fn the_violation_is_on_the_right_key_among_many() {
    let mut ops = Vec::new();
    for k in 0..50 {
        let key = format!("k{k:02}");
        ops.push((1, 0, 1, Op::put(key.as_str(), "v"), Outcome::Ok));
        let seen = if k == 37 {
            Outcome::Read(None)
        } else {
            read("v")
        };
        ops.push((2, 2, 3, Op::get(key.as_str()), seen));
    }
    let h = history(ops);
    assert_violation(&h, 0, "k37", 75);
}

// ----------------------------------------------------------------- budgets

/// A key with `2n` concurrent writes, each of the values `v0..v{n-1}` written twice (so
/// the owed-reads pruning does not apply), then `n` reads one after another, each seeing
/// another value: impossible, since the value is settled once the writes completed, but
/// only after trying every (subset of writes, last value) pair: about `4^n * n` steps.
fn pathological(n: usize) -> History {
    let mut h = History::new();
    for i in 0..2 * n {
        let value = format!("v{}", i % n);
        h.push(Operation::new(
            i as u64,
            0,
            10 * MS,
            Op::put("hot", value),
            Outcome::Ok,
        ));
    }
    for i in 0..n {
        let t = (20 + 2 * i as u64) * MS;
        let seen = Outcome::Read(Some(format!("v{i}").into()));
        h.push(Operation::new(99, t, t + MS, Op::get("hot"), seen));
    }
    h
}

#[test]
fn tiny_budget_gives_could_not_decide_not_a_verdict() {
    let h = pathological(7);
    let tiny = CheckOptions {
        max_steps_per_key: 500,
        ..opts(0)
    };
    match check(&h, &tiny).unwrap().verdict {
        Verdict::CouldNotDecide { keys, reason } => {
            assert_eq!(keys, vec![Blob::from("hot")]);
            assert_eq!(reason, UndecidedReason::StepBudget { max_steps: 500 });
        }
        other => panic!("expected CouldNotDecide, got {other}"),
    }
    let no_time = CheckOptions {
        time_budget: Some(std::time::Duration::ZERO),
        ..opts(0)
    };
    assert!(matches!(
        check(&h, &no_time).unwrap().verdict,
        Verdict::CouldNotDecide {
            reason: UndecidedReason::TimeBudget { .. },
            ..
        }
    ));
    let tiny_memo = CheckOptions {
        max_memo_bytes_per_key: 1000,
        ..opts(0)
    };
    assert!(matches!(
        check(&h, &tiny_memo).unwrap().verdict,
        Verdict::CouldNotDecide {
            reason: UndecidedReason::MemoBudget { .. },
            ..
        }
    ));
    // With the default budget the same history gets its real verdict.
    assert!(matches!(verdict(&h, 0), Verdict::NotLinearizable { .. }));
}

#[test]
fn budget_stop_on_a_linearizable_history_is_not_reported_linearizable() {
    // Many concurrent unknown writes make the search branch; with a tiny budget the
    // checker must not claim anything.
    let mut h = History::new();
    for i in 0..30u64 {
        h.push(Operation::new(
            i,
            i,
            10 * MS,
            Op::put("k", format!("v{i}")),
            Outcome::Unknown,
        ));
        h.push(Operation::new(
            100 + i,
            20 * MS + i * 2 * MS,
            21 * MS + i * 2 * MS,
            Op::get("k"),
            Outcome::Read(Some(format!("v{}", 29 - i).into())),
        ));
    }
    let tiny = CheckOptions {
        max_steps_per_key: 3,
        ..opts(0)
    };
    assert!(matches!(
        check(&h, &tiny).unwrap().verdict,
        Verdict::CouldNotDecide { .. }
    ));
    assert_eq!(verdict(&h, 0), Verdict::Linearizable);
}
