//! Tests of the timer wheel against a model (a `BTreeMap` of live timers).

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

/// Drives the wheel to completion at `now`, checking no timer fires early and at most
/// `max_work` units are spent per call.
fn advance_all(w: &mut TimerWheel<u64>, now: u64, max_work: usize, fired: &mut Vec<u64>) -> usize {
    let mut calls = 0;
    loop {
        calls += 1;
        assert!(calls < 10_000_000, "advance never completes");
        let r = w.advance(now, max_work, |p| {
            fired.push(p);
            0
        });
        assert!(
            r.work <= max_work.max(1),
            "work {} over bound {}",
            r.work,
            max_work
        );
        if r.complete {
            return calls;
        }
    }
}

#[test]
fn fires_at_every_level_exactly_on_time() {
    // One timer per level boundary and a few inside each level, plus years ahead.
    let mut whens = vec![1u64, 2, 63, 64, 65, 4095, 4096, 4097];
    for level in 0..LEVELS as u32 {
        let span = 1u64 << (SLOT_BITS * level);
        whens.extend([span - 1, span, span + 1, span * 37 + 5]);
    }
    whens.extend([
        365 * 24 * 3600 * 1000,
        100 * 365 * 24 * 3600 * 1000,
        WHEEL_SPAN + 12345,
    ]);
    whens.sort();
    whens.dedup();
    let whens: Vec<u64> = whens.into_iter().filter(|&w| w > 0).collect();
    let mut w = TimerWheel::new();
    for &when in &whens {
        w.insert(when, when);
    }
    // Step to each deadline: nothing fires one ms early, the timer fires at its ms.
    let mut fired = Vec::new();
    for &when in &whens {
        advance_all(&mut w, when - 1, 3, &mut fired);
        assert!(
            fired.iter().all(|&f| f < when),
            "fired early before {when}: {fired:?}"
        );
        advance_all(&mut w, when, 3, &mut fired);
        assert_eq!(
            fired.last(),
            Some(&when),
            "timer {when} did not fire at its time"
        );
    }
    assert_eq!(fired, whens);
    assert!(w.is_empty());
    assert_eq!(w.heap_bytes(), LEVELS * SLOTS * size_of::<List>());
}

#[test]
fn a_big_empty_slab_is_released_in_bounded_slices() {
    let mut w = TimerWheel::new();
    let n = SHRINK_STEP_NODES * 3 + 5;
    let ids: Vec<TimerId> = (0..n as u64).map(|i| w.insert(1_000 + i, i)).collect();
    for id in ids {
        w.cancel(id);
    }
    assert!(w.is_empty());
    assert!(w.slab_bytes() > 0, "a big slab waits for advance");
    let mut calls = 0;
    while !w.advance(0, 1, |_| 0).complete {
        calls += 1;
        assert!(calls < 100);
    }
    assert!(calls >= 3, "released over several calls ({calls})");
    assert_eq!(w.slab_bytes(), 0);
    // Still usable afterwards.
    w.insert(5, 1);
    let mut fired = 0;
    while !w
        .advance(10, 1, |_| {
            fired += 1;
            0
        })
        .complete
    {}
    assert_eq!(fired, 1);
}

#[test]
fn cancel_removes_and_reuses_ids() {
    let mut w = TimerWheel::new();
    let a = w.insert(10, 1u64);
    let b = w.insert(10, 2);
    let c = w.insert(5000, 3);
    assert_eq!(w.when(b), Some(10));
    assert_eq!(w.cancel(b), Some(2));
    assert_eq!(w.cancel(b), None, "double cancel");
    assert_eq!(w.when(b), None);
    assert_eq!(w.next_id(), b, "freed slab slot is reused");
    let mut fired = Vec::new();
    advance_all(&mut w, 10_000, 100, &mut fired);
    assert_eq!(fired, vec![1, 3]);
    assert_eq!(w.cancel(a), None);
    assert_eq!(w.cancel(c), None);
    assert!(w.is_empty());
}

#[test]
fn ties_are_bounded_and_carry_over() {
    let mut w = TimerWheel::new();
    for i in 0..10_000u64 {
        w.insert(70_000, i);
    }
    let mut fired = Vec::new();
    // Before the deadline nothing fires, however much work is allowed.
    advance_all(&mut w, 69_999, 1_000_000, &mut fired);
    assert!(fired.is_empty());
    let calls = advance_all(&mut w, 70_000, 100, &mut fired);
    assert_eq!(fired.len(), 10_000);
    assert!(calls >= 100, "work bound not applied: {calls} calls");
    let mut sorted = fired.clone();
    sorted.sort();
    assert_eq!(sorted, (0..10_000).collect::<Vec<_>>());
}

#[test]
fn huge_jumps_and_far_future() {
    let mut w = TimerWheel::new();
    w.insert(u64::MAX, 1u64);
    w.insert(u64::MAX - 1, 2);
    w.insert(WHEEL_SPAN * 5 + 3, 3);
    w.insert(7, 4);
    let mut fired = Vec::new();
    advance_all(&mut w, u64::MAX / 2, 10, &mut fired);
    assert_eq!(fired, vec![4, 3]);
    advance_all(&mut w, u64::MAX - 2, 10, &mut fired);
    assert_eq!(fired, vec![4, 3]);
    advance_all(&mut w, u64::MAX - 1, 10, &mut fired);
    assert_eq!(fired, vec![4, 3, 2]);
    advance_all(&mut w, u64::MAX, 10, &mut fired);
    assert_eq!(fired, vec![4, 3, 2, 1]);
    // Time going backwards does nothing.
    w.insert(5, 9);
    let r = w.advance(3, 10, |_| -> usize { panic!("nothing is due") });
    assert!(r.complete);
}

#[test]
fn insert_in_the_past_fires_on_next_advance() {
    let mut w = TimerWheel::new();
    let mut fired = Vec::new();
    advance_all(&mut w, 1000, 10, &mut fired);
    w.insert(10, 1u64);
    w.insert(1000, 2);
    advance_all(&mut w, 1000, 10, &mut fired);
    assert_eq!(fired.len(), 2);
}

#[derive(Debug, Clone)]
enum Op {
    Insert { delta: u64 },
    Cancel { pick: usize },
    Advance { step: u64, max_work: usize },
}

fn arb_delta() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..70,
        0u64..5_000,
        0u64..300_000,
        0u64..20_000_000,
        0u64..(1u64 << 40),
        (WHEEL_SPAN - 100)..(WHEEL_SPAN + 100),
        0u64..(1u64 << 50),
    ]
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => arb_delta().prop_map(|delta| Op::Insert { delta }),
        1 => any::<usize>().prop_map(|pick| Op::Cancel { pick }),
        3 => (arb_delta(), 1usize..50).prop_map(|(step, max_work)| Op::Advance { step, max_work }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn matches_a_model(ops in proptest::collection::vec(arb_op(), 1..300)) {
        let mut w = TimerWheel::new();
        // payload -> (id, when)
        let mut model: BTreeMap<u64, (TimerId, u64)> = BTreeMap::new();
        let mut now = 0u64;
        let mut next_payload = 0u64;
        for op in ops {
            match op {
                Op::Insert { delta } => {
                    // Sometimes in the past of `now` (delta taken backwards).
                    let when = if next_payload % 7 == 3 { now.saturating_sub(delta) } else { now.saturating_add(delta) };
                    let id = w.insert(when, next_payload);
                    model.insert(next_payload, (id, when));
                    next_payload += 1;
                }
                Op::Cancel { pick } => {
                    if !model.is_empty() {
                        let key = *model.keys().nth(pick % model.len()).unwrap();
                        let (id, when) = model.remove(&key).unwrap();
                        prop_assert_eq!(w.when(id), Some(when));
                        prop_assert_eq!(w.cancel(id), Some(key));
                    }
                }
                Op::Advance { step, max_work } => {
                    now = now.saturating_add(step);
                    // A bounded call first: whatever fires must be due.
                    let mut fired = Vec::new();
                    let r = w.advance(now, max_work, |p| {
            fired.push(p);
            0
        });
                    prop_assert!(r.work <= max_work);
                    for p in &fired {
                        let (_, when) = model.remove(p).expect("fired timer is live");
                        prop_assert!(when <= now, "fired early");
                    }
                    if !r.complete {
                        fired.clear();
                        advance_all(&mut w, now, max_work, &mut fired);
                        for p in &fired {
                            let (_, when) = model.remove(p).expect("fired timer is live");
                            prop_assert!(when <= now, "fired early");
                        }
                    }
                    // After completion, nothing due is left.
                    prop_assert!(model.values().all(|&(_, when)| when > now), "due timer left");
                }
            }
            prop_assert_eq!(w.len(), model.len());
        }
        let mut fired = Vec::new();
        advance_all(&mut w, u64::MAX, 64, &mut fired);
        prop_assert_eq!(fired.len(), model.len());
        prop_assert!(w.is_empty());
    }
}
