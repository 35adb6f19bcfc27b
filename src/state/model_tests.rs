//! Property test of `State` against a `BTreeMap` model, with time advancing in random
//! steps and bounded ticks: visibility, values, expiries and memory figures.

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;
use shoal_proto::limits;

use super::*;

/// key -> (value, expire_at)
type Model = BTreeMap<Vec<u8>, (Vec<u8>, Option<u64>)>;

fn visible(model: &Model, key: &[u8], now: u64) -> Option<Vec<u8>> {
    model
        .get(key)
        .filter(|(_, at)| at.is_none_or(|at| now < at))
        .map(|(v, _)| v.clone())
}

#[derive(Debug, Clone)]
enum Op {
    Put {
        key: u8,
        value: Vec<u8>,
        /// Hold the old value (as a reader would) across the overwrite.
        hold: bool,
    },
    PutTtl {
        key: u8,
        value: Vec<u8>,
        ttl: u64,
        past: bool,
    },
    Delete {
        key: u8,
    },
    Advance {
        step: u64,
        max_work: usize,
    },
    SetIf {
        key: u8,
        value: Vec<u8>,
        condition: u8,
        /// 0 clear, 1 keep, 2 expire at now + ttl, 3 expire at now - ttl (past).
        ttl_kind: u8,
        ttl: u64,
        return_old: bool,
    },
    SetExpiry {
        key: u8,
        ttl: u64,
        past: bool,
        condition: u8,
    },
    Persist {
        key: u8,
    },
    DeleteLive {
        keys: Vec<u8>,
    },
}

fn key_bytes(k: u8) -> Vec<u8> {
    // Keys of varied lengths, including the empty key.
    let mut v = vec![b'k'; usize::from(k % 5) * 3];
    v.push(k);
    if k == 0 {
        v.clear();
    }
    v
}

fn arb_op() -> impl Strategy<Value = Op> {
    // Same-length overwrites are common (4-byte values), to exercise in-place rewrites.
    let value = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..40),
        proptest::collection::vec(any::<u8>(), 4..=4),
    ];
    let ttl = prop_oneof![
        0u64..5,
        1u64..100,
        1u64..10_000,
        1u64..10_000_000,
        1u64..(1 << 44)
    ];
    prop_oneof![
        3 => (0u8..48, value.clone(), any::<bool>())
            .prop_map(|(key, value, hold)| Op::Put { key, value, hold }),
        4 => (0u8..48, value, ttl, proptest::bool::weighted(0.1))
            .prop_map(|(key, value, ttl, past)| Op::PutTtl { key, value, ttl, past }),
        2 => (0u8..48).prop_map(|key| Op::Delete { key }),
        3 => (0u8..48, proptest::collection::vec(any::<u8>(), 0..8), 0u8..3, 0u8..4, 0u64..5_000, any::<bool>())
            .prop_map(|(key, value, condition, ttl_kind, ttl, return_old)| Op::SetIf {
                key, value, condition, ttl_kind, ttl, return_old,
            }),
        3 => (0u8..48, 0u64..5_000, proptest::bool::weighted(0.1), 0u8..16)
            .prop_map(|(key, ttl, past, condition)| Op::SetExpiry { key, ttl, past, condition }),
        1 => (0u8..48).prop_map(|key| Op::Persist { key }),
        1 => proptest::collection::vec(0u8..48, 1..6).prop_map(|keys| Op::DeleteLive { keys }),
        3 => (prop_oneof![0u64..3, 0u64..200, 0u64..50_000, 0u64..(1 << 40)], 1usize..20)
            .prop_map(|(step, max_work)| Op::Advance { step, max_work }),
    ]
}

fn check_all(state: &State, model: &Model, now: u64) -> Result<(), TestCaseError> {
    let keys: Vec<Vec<u8>> = (0u8..48).map(key_bytes).collect();
    let got = state.get_multi(&keys, now);
    for (key, got) in keys.iter().zip(got) {
        let want = visible(model, key, now);
        prop_assert_eq!(
            got.as_deref(),
            want.as_deref(),
            "value of {:?} at {}",
            key,
            now
        );
        let single = state.get(key, now);
        prop_assert_eq!(single.as_deref(), want.as_deref());
        let value = state.get_value(key, now);
        prop_assert_eq!(value.as_deref(), want.as_deref());
        let expiry = match model.get(key.as_slice()) {
            Some((_, at)) if want.is_some() => at.map_or(KeyExpiry::Persistent, KeyExpiry::At),
            _ => KeyExpiry::Missing,
        };
        prop_assert_eq!(state.expiry(key, now), expiry);
    }
    Ok(())
}

fn apply(state: &mut State, index: &mut u64, cmd: Command) -> ApplyResult {
    *index += 1;
    state
        .apply(
            LogId {
                term: 1,
                node_id: 1,
                index: *index,
            },
            &cmd,
        )
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn state_matches_model(ops in proptest::collection::vec(arb_op(), 1..250)) {
        let mut state = State::new();
        let mut model = Model::new();
        let mut now = 1_000u64;
        let mut index = 0u64;
        for op in ops {
            match op {
                Op::Put { key, value, hold } => {
                    let k = key_bytes(key);
                    let held = hold.then(|| (state.get(&k, now), state.get_value(&k, now)));
                    let old = visible(&model, &k, now);
                    let r = apply(&mut state, &mut index, Command::Put { key: Bytes::from(k.clone()), value: Bytes::from(value.clone()) });
                    prop_assert_eq!(r, ApplyResult::Written);
                    if let Some((bytes, value)) = held {
                        // What a reader holds never changes under it.
                        prop_assert_eq!(bytes.as_deref(), old.as_deref());
                        prop_assert_eq!(value.as_deref(), old.as_deref());
                    }
                    model.insert(k, (value, None));
                }
                Op::PutTtl { key, value, ttl, past } => {
                    let k = key_bytes(key);
                    let at = if past { now.saturating_sub(ttl) } else { now + ttl };
                    let r = apply(&mut state, &mut index, Command::PutWithTtl { key: Bytes::from(k.clone()), value: Bytes::from(value.clone()), expire_at_ms: at });
                    prop_assert_eq!(r, ApplyResult::Written);
                    model.insert(k, (value, Some(at)));
                }
                Op::Delete { key } => {
                    let k = key_bytes(key);
                    let r = apply(&mut state, &mut index, Command::Delete { key: Bytes::from(k.clone()) });
                    prop_assert_eq!(r, ApplyResult::Deleted);
                    model.remove(&k);
                }
                Op::SetIf { key, value, condition, ttl_kind, ttl, return_old } => {
                    let k = key_bytes(key);
                    let old = visible(&model, &k, now);
                    let cond = [SetCondition::Always, SetCondition::IfAbsent, SetCondition::IfPresent][usize::from(condition)];
                    let change = match ttl_kind {
                        0 => TtlChange::Clear,
                        1 => TtlChange::Keep,
                        2 => TtlChange::ExpireAt(now + ttl),
                        _ => TtlChange::ExpireAt(now.saturating_sub(ttl)),
                    };
                    let r = apply(&mut state, &mut index, Command::SetIf {
                        key: Bytes::from(k.clone()), value: Bytes::from(value.clone()), now_ms: now,
                        condition: cond, ttl: change, return_old,
                    });
                    let holds = match cond {
                        SetCondition::Always => true,
                        SetCondition::IfAbsent => old.is_none(),
                        SetCondition::IfPresent => old.is_some(),
                    };
                    prop_assert_eq!(r, ApplyResult::SetIf {
                        applied: holds,
                        old: if return_old { old.clone().map(Bytes::from) } else { None },
                    });
                    if holds {
                        let at = match change {
                            TtlChange::Clear => None,
                            TtlChange::Keep => old.as_ref().and_then(|_| model.get(&k).and_then(|(_, at)| *at)),
                            TtlChange::ExpireAt(at) => Some(at),
                        };
                        if at.is_some_and(|at| at <= now) {
                            model.remove(&k);
                        } else {
                            model.insert(k, (value, at));
                        }
                    }
                }
                Op::SetExpiry { key, ttl, past, condition } => {
                    let k = key_bytes(key);
                    let Some(condition) = ExpiryCondition::from_bits_for_tests(condition) else {
                        continue;
                    };
                    let at = if past { now.saturating_sub(ttl) } else { now + ttl };
                    let r = apply(&mut state, &mut index, Command::SetExpiry {
                        key: Bytes::from(k.clone()), now_ms: now, expire_at_ms: at, condition,
                    });
                    let live = visible(&model, &k, now);
                    let current = model.get(&k).and_then(|(_, at)| *at);
                    // The model's reading of Redis's rules, written out independently.
                    let allowed = live.is_some()
                        && !(condition.nx && current.is_some())
                        && !(condition.xx && current.is_none())
                        && !(condition.gt && current.is_none_or(|c| at <= c))
                        && !(condition.lt && current.is_some_and(|c| at >= c));
                    prop_assert_eq!(r, ApplyResult::Changed(allowed));
                    if allowed {
                        if at <= now {
                            model.remove(&k);
                        } else if let Some(entry) = model.get_mut(&k) {
                            entry.1 = Some(at);
                        }
                    }
                }
                Op::Persist { key } => {
                    let k = key_bytes(key);
                    let live = visible(&model, &k, now).is_some();
                    let has_ttl = model.get(&k).is_some_and(|(_, at)| at.is_some());
                    let r = apply(&mut state, &mut index, Command::Persist { key: Bytes::from(k.clone()), now_ms: now });
                    prop_assert_eq!(r, ApplyResult::Changed(live && has_ttl));
                    if live && has_ttl {
                        if let Some(entry) = model.get_mut(&k) {
                            entry.1 = None;
                        }
                    }
                }
                Op::DeleteLive { keys } => {
                    let keys: Vec<Vec<u8>> = keys.into_iter().map(key_bytes).collect();
                    let mut distinct = keys.clone();
                    distinct.sort();
                    distinct.dedup();
                    let live = distinct.iter().filter(|k| visible(&model, k, now).is_some()).count();
                    let r = apply(&mut state, &mut index, Command::DeleteLive {
                        keys: keys.iter().cloned().map(Bytes::from).collect(), now_ms: now,
                    });
                    prop_assert_eq!(r, ApplyResult::Removed(live as u32));
                    for k in &distinct {
                        model.remove(k);
                    }
                }
                Op::Advance { step, max_work } => {
                    now += step;
                    // One bounded tick; the rest carries over to later ticks.
                    let r = state.tick(now, max_work);
                    prop_assert!(r.reclaimed <= max_work);
                    if step % 2 == 0 {
                        let mut rounds = 0;
                        while !state.tick(now, max_work).complete {
                            rounds += 1;
                            prop_assert!(rounds < 100_000);
                        }
                        // After a complete tick exactly the visible keys are stored.
                        model.retain(|_, (_, at)| at.is_none_or(|at| now < at));
                        let m = state.memory();
                        prop_assert_eq!(m.keys, model.len());
                        prop_assert_eq!(m.key_bytes, model.keys().map(Vec::len).sum::<usize>());
                        prop_assert_eq!(m.value_bytes, model.values().map(|(v, _)| v.len()).sum::<usize>());
                    }
                }
            }
            check_all(&state, &model, now)?;
            prop_assert_eq!(state.last_applied().map(|l| l.index), (index > 0).then_some(index));
        }
        // Half the time delete everything, half the time let everything expire: either
        // way every figure returns to zero.
        if index % 2 == 0 {
            let keys: Vec<Vec<u8>> = model.keys().cloned().collect();
            for k in keys {
                apply(&mut state, &mut index, Command::Delete { key: Bytes::from(k) });
            }
            // Keys that expired without being reclaimed are still stored: delete them too.
            for k in 0u8..48 {
                apply(&mut state, &mut index, Command::Delete { key: Bytes::from(key_bytes(k)) });
            }
        } else {
            for k in 0u8..48 {
                apply(&mut state, &mut index, Command::PutWithTtl {
                    key: Bytes::from(key_bytes(k)), value: Bytes::from_static(b"x"), expire_at_ms: now + 5,
                });
            }
            prop_assert_eq!(state.len(), 48);
            let mut rounds = 0;
            while !state.tick(u64::MAX, 7).complete {
                rounds += 1;
                prop_assert!(rounds < 100_000);
            }
        }
        // The timer slab of a big wheel is given back by ticks, a slice at a time.
        let mut rounds = 0;
        while !state.tick(now, 1).complete {
            rounds += 1;
            prop_assert!(rounds < 100_000);
        }
        prop_assert_eq!(state.memory(), MemoryStats::default());
        prop_assert!(state.is_empty());
        check_all(&state, &Model::new(), now)?;
    }
}

#[test]
fn overwrite_cancels_the_old_timer() {
    let mut state = State::new();
    let mut i = 0;
    let k = || Bytes::from_static(b"k");
    apply(
        &mut state,
        &mut i,
        Command::PutWithTtl {
            key: k(),
            value: Bytes::from_static(b"1"),
            expire_at_ms: 100,
        },
    );
    // Overwrite without TTL: the old timer must not delete the new value at 100.
    apply(
        &mut state,
        &mut i,
        Command::Put {
            key: k(),
            value: Bytes::from_static(b"2"),
        },
    );
    assert!(state.tick(1000, 100).complete);
    assert_eq!(state.get(b"k", 1000).as_deref(), Some(&b"2"[..]));
    assert_eq!(state.memory().timer_bytes, 0, "timer slab released");
    // Overwrite with a later TTL: the earlier one must not fire.
    apply(
        &mut state,
        &mut i,
        Command::PutWithTtl {
            key: k(),
            value: Bytes::from_static(b"3"),
            expire_at_ms: 2000,
        },
    );
    apply(
        &mut state,
        &mut i,
        Command::PutWithTtl {
            key: k(),
            value: Bytes::from_static(b"4"),
            expire_at_ms: 5000,
        },
    );
    state.tick(4999, 100);
    assert_eq!(state.get(b"k", 4999).as_deref(), Some(&b"4"[..]));
    assert_eq!(state.expiry(b"k", 4999), KeyExpiry::At(5000));
    assert_eq!(
        state.get(b"k", 5000),
        None,
        "invisible at its expiry even before a tick"
    );
    assert_eq!(state.len(), 1);
    state.tick(5000, 100);
    assert_eq!(state.len(), 0);
    // Delete cancels too.
    apply(
        &mut state,
        &mut i,
        Command::PutWithTtl {
            key: k(),
            value: Bytes::from_static(b"5"),
            expire_at_ms: 9000,
        },
    );
    apply(&mut state, &mut i, Command::Delete { key: k() });
    apply(
        &mut state,
        &mut i,
        Command::Put {
            key: k(),
            value: Bytes::from_static(b"6"),
        },
    );
    state.tick(10_000, 100);
    assert_eq!(state.get(b"k", 10_000).as_deref(), Some(&b"6"[..]));
}

#[test]
fn limits_are_enforced_deterministically() {
    let mut state = State::new();
    let mut i = 0;
    let big_key = Bytes::from(vec![0u8; limits::MAX_KEY_LEN + 1]);
    let r = apply(
        &mut state,
        &mut i,
        Command::Put {
            key: big_key,
            value: Bytes::new(),
        },
    );
    assert_eq!(
        r,
        ApplyResult::Rejected(CommandError::KeyTooLong {
            len: limits::MAX_KEY_LEN + 1
        })
    );
    let big_value = Bytes::from(vec![0u8; limits::MAX_VALUE_LEN + 1]);
    let r = apply(
        &mut state,
        &mut i,
        Command::Put {
            key: Bytes::new(),
            value: big_value,
        },
    );
    assert_eq!(
        r,
        ApplyResult::Rejected(CommandError::ValueTooLong {
            len: limits::MAX_VALUE_LEN + 1
        })
    );
    assert!(state.is_empty());
    assert_eq!(
        state.last_applied().map(|l| l.index),
        Some(2),
        "rejected entries still count as applied"
    );
    // Out-of-order indexes are refused without changing anything.
    let err = state.apply(
        LogId {
            term: 1,
            node_id: 1,
            index: 2,
        },
        &Command::Delete { key: Bytes::new() },
    );
    assert_eq!(err, Err(StateError::OutOfOrder { last: 2, got: 2 }));
}

#[test]
fn values_do_not_pin_input_buffers_and_outlive_overwrites() {
    let mut state = State::new();
    let mut i = 0;
    let big = Bytes::from(vec![7u8; 1 << 20]);
    let value = big.slice(10..20);
    apply(
        &mut state,
        &mut i,
        Command::Put {
            key: Bytes::from_static(b"a"),
            value,
        },
    );
    drop(big);
    let m = state.memory();
    assert_eq!(m.value_bytes, 10);
    assert!(
        m.total_bytes() < 64 * 1024,
        "the 1 MiB read buffer is not kept: {m:?}"
    );
    let held = state.get(b"a", 0).unwrap();
    apply(
        &mut state,
        &mut i,
        Command::Put {
            key: Bytes::from_static(b"a"),
            value: Bytes::from_static(b"new"),
        },
    );
    assert_eq!(
        &held[..],
        &[7u8; 10],
        "a value handed out stays valid after an overwrite"
    );
}

#[test]
fn same_length_overwrite_is_in_place_only_while_unobserved() {
    let mut state = State::new();
    let mut index = 0u64;
    let put = |state: &mut State, index: &mut u64, v: &'static [u8]| {
        let cmd = Command::Put {
            key: Bytes::from_static(b"k"),
            value: Bytes::from_static(v),
        };
        assert_eq!(apply(state, index, cmd), ApplyResult::Written);
    };
    let addr = |state: &State| state.get_value(b"k", 0).map(|v| v.as_ptr());
    put(&mut state, &mut index, b"aaaa");
    let first = addr(&state);
    // Nobody holds the entry: the same allocation takes the new value.
    put(&mut state, &mut index, b"bbbb");
    assert_eq!(addr(&state), first);
    assert_eq!(state.get(b"k", 0).as_deref(), Some(&b"bbbb"[..]));
    // A reader holds it: a new entry, the reader's bytes unchanged.
    let held = state.get(b"k", 0);
    put(&mut state, &mut index, b"cccc");
    assert_ne!(addr(&state), first);
    assert_eq!(held.as_deref(), Some(&b"bbbb"[..]));
    drop(held);
    // A snapshot in progress holds it: the snapshot keeps the value as of its start.
    let info = state.begin_snapshot(b"").unwrap();
    let before = addr(&state);
    put(&mut state, &mut index, b"dddd");
    assert_ne!(addr(&state), before);
    let mut out = Vec::new();
    while state.snapshot_step(&mut out).unwrap() == SnapshotProgress::More {}
    let restored = SnapshotReader::read_all(&out).unwrap();
    assert_eq!(restored.state.last_applied(), info.last_applied);
    assert_eq!(restored.state.get(b"k", 0).as_deref(), Some(&b"cccc"[..]));
    assert_eq!(state.get(b"k", 0).as_deref(), Some(&b"dddd"[..]));
    // Figures unchanged by in-place writes.
    let m = state.memory();
    assert_eq!((m.keys, m.key_bytes, m.value_bytes), (1, 1, 4));
}
