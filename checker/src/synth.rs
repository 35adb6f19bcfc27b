//! Synthetic histories that are linearizable by construction, for property tests and
//! benchmarks of the checker.
//!
//! Owns `SynthConfig` and `synthesize`. Clients run concurrently, each one call at a time;
//! every call that takes effect gets a true linearization instant inside its window
//! (`[invoke, complete]`, or any time after `invoke` for an unknown outcome), the calls are
//! applied to a reference store in that order, and reads record what the store held.
//! A TTL'd value expires for a read at `L + ttl + d`, with `d` drawn per read in
//! `[-expiry_jitter_ns, +expiry_jitter_ns]` — within the checker's `eps` window when
//! `expiry_jitter_ns <= eps`, so the result must always be judged linearizable.
//!
//! Invariants: deterministic for a seed; every written value is unique
//! (`c<client>-<n>`), so a test can tell which write a read saw; `get_multi` reads each
//! key at its own instant (it is not atomic).

use std::collections::HashMap;

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use crate::history::{Blob, History, Op, Operation, Outcome, Time};

/// Shape of a synthetic run. Probabilities are in `[0, 1]`.
#[derive(Debug, Clone)]
pub struct SynthConfig {
    pub seed: u64,
    pub clients: usize,
    pub ops: usize,
    pub keys: usize,
    /// Upper bound of one call's latency.
    pub max_latency_ns: u64,
    /// Upper bound of a client's pause between two calls.
    pub max_gap_ns: u64,
    /// TTLs are drawn from `[ttl_min_ns, ttl_max_ns]`.
    pub ttl_min_ns: u64,
    pub ttl_max_ns: u64,
    /// How far a read's view of an expiry may stray from `L + ttl` (<= the checker's eps).
    pub expiry_jitter_ns: u64,
    pub p_put: f64,
    pub p_put_ttl: f64,
    pub p_delete: f64,
    pub p_get_multi: f64,
    /// Chance that a call ends `Unknown` (half of unknown writes take effect).
    pub p_unknown: f64,
    /// Chance that a call ends `Failed` (and has no effect).
    pub p_failed: f64,
    /// Keys per `get_multi`, at most.
    pub max_multi_keys: usize,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            seed: 1,
            clients: 8,
            ops: 1000,
            keys: 20,
            max_latency_ns: 2_000_000,
            max_gap_ns: 500_000,
            ttl_min_ns: 1_000_000,
            ttl_max_ns: 20_000_000,
            expiry_jitter_ns: 100_000,
            p_put: 0.3,
            p_put_ttl: 0.1,
            p_delete: 0.05,
            p_get_multi: 0.1,
            p_unknown: 0.03,
            p_failed: 0.02,
            max_multi_keys: 4,
        }
    }
}

/// A value in the reference store.
struct Stored {
    value: Blob,
    /// `(linearization instant, ttl)` of a TTL'd value.
    ttl: Option<(Time, u64)>,
}

/// One effect to apply at a true instant: (instant, tie-break, op index, key slot).
type Effect = (Time, usize, usize, usize);

/// Generates a linearizable history.
pub fn synthesize(cfg: &SynthConfig) -> History {
    assert!(cfg.clients > 0 && cfg.keys > 0, "need clients and keys");
    let mut rng = SmallRng::seed_from_u64(cfg.seed);
    let key_name = |i: usize| Blob::from(format!("k{i}"));
    let mut clock: Vec<Time> = (0..cfg.clients)
        .map(|_| rng.random_range(0..=cfg.max_gap_ns))
        .collect();
    let mut written = vec![0usize; cfg.clients];
    let mut ops: Vec<Operation> = Vec::with_capacity(cfg.ops);
    let mut effects: Vec<Effect> = Vec::new();
    for n in 0..cfg.ops {
        // The client that is free first issues the next call.
        let (c, _) = clock
            .iter()
            .enumerate()
            .min_by_key(|&(_, t)| *t)
            .unwrap_or((0, &0));
        let invoke = clock[c] + rng.random_range(0..=cfg.max_gap_ns);
        let complete = invoke + rng.random_range(0..=cfg.max_latency_ns);
        clock[c] = complete;
        let r: f64 = rng.random();
        let mut value = || {
            written[c] += 1;
            Blob::from(format!("c{c}-{}", written[c]))
        };
        let key = key_name(rng.random_range(0..cfg.keys));
        let op = if r < cfg.p_put {
            Op::Put {
                key,
                value: value(),
            }
        } else if r < cfg.p_put + cfg.p_put_ttl {
            let ttl_ns = rng.random_range(cfg.ttl_min_ns..=cfg.ttl_max_ns);
            Op::PutWithTtl {
                key,
                value: value(),
                ttl_ns,
            }
        } else if r < cfg.p_put + cfg.p_put_ttl + cfg.p_delete {
            Op::Delete { key }
        } else if r < cfg.p_put + cfg.p_put_ttl + cfg.p_delete + cfg.p_get_multi {
            let want = rng.random_range(1..=cfg.max_multi_keys.clamp(1, cfg.keys));
            let mut keys: Vec<usize> = Vec::new();
            while keys.len() < want {
                let k = rng.random_range(0..cfg.keys);
                if !keys.contains(&k) {
                    keys.push(k);
                }
            }
            Op::GetMulti {
                keys: keys.into_iter().map(key_name).collect(),
            }
        } else {
            Op::Get { key }
        };
        let o: f64 = rng.random();
        let outcome = if o < cfg.p_unknown {
            Outcome::Unknown
        } else if o < cfg.p_unknown + cfg.p_failed {
            Outcome::Failed
        } else {
            Outcome::Ok
        };
        let is_read = matches!(op, Op::Get { .. } | Op::GetMulti { .. });
        let slots = match &op {
            Op::GetMulti { keys } => keys.len(),
            _ => 1,
        };
        let takes_effect = match outcome {
            Outcome::Failed => false,
            Outcome::Unknown => !is_read && rng.random_bool(0.5),
            _ => true,
        };
        if takes_effect {
            for slot in 0..slots {
                let at = if outcome == Outcome::Unknown {
                    // Possibly long after the client gave up.
                    invoke + rng.random_range(0..=4 * cfg.max_latency_ns.max(1))
                } else {
                    rng.random_range(invoke..=complete)
                };
                effects.push((at, effects.len(), n, slot));
            }
        }
        let outcome = match (&op, outcome) {
            (Op::Get { .. }, Outcome::Ok) => Outcome::Read(None),
            (Op::GetMulti { keys }, Outcome::Ok) => Outcome::ReadMulti(vec![None; keys.len()]),
            (_, other) => other,
        };
        ops.push(Operation::new(c as u64, invoke, complete, op, outcome));
    }
    effects.sort_unstable();
    let mut store: HashMap<Blob, Stored> = HashMap::new();
    let jitter = cfg.expiry_jitter_ns as i128;
    for (at, _, n, slot) in effects {
        let operation = &mut ops[n];
        match &operation.op {
            Op::Put { key, value } => {
                store.insert(
                    key.clone(),
                    Stored {
                        value: value.clone(),
                        ttl: None,
                    },
                );
            }
            Op::PutWithTtl { key, value, ttl_ns } => {
                store.insert(
                    key.clone(),
                    Stored {
                        value: value.clone(),
                        ttl: Some((at, *ttl_ns)),
                    },
                );
            }
            Op::Delete { key } => {
                store.remove(key);
            }
            Op::Get { .. } | Op::GetMulti { .. } => {
                let key = match &operation.op {
                    Op::GetMulti { keys } => keys[slot].clone(),
                    Op::Get { key } => key.clone(),
                    other => unreachable!("not a read: {other}"),
                };
                let seen = store.get(&key).and_then(|s| match s.ttl {
                    None => Some(s.value.clone()),
                    Some((put_at, ttl)) => {
                        let expiry =
                            put_at as i128 + ttl as i128 + rng.random_range(-jitter..=jitter);
                        ((at as i128) < expiry).then(|| s.value.clone())
                    }
                });
                match &mut operation.outcome {
                    Outcome::Read(v) => *v = seen,
                    Outcome::ReadMulti(vs) => vs[slot] = seen,
                    other => unreachable!("a read that took effect ended {other:?}"),
                }
            }
        }
    }
    History { ops }
}
