//! The checker proper: splits a history per key, searches each key within a budget, and
//! combines the per-key answers into one verdict.
//!
//! Owns `check`, `CheckOptions`, `Verdict`, `CheckReport` and the per-key split.
//!
//! Why per key is enough (P-compositionality, Herlihy & Wing's locality): every Shoal
//! operation touches one key, except `get_multi`, which is *not* atomic across keys or
//! shards (it fans out per shard), so it is split into one read per key with the
//! `get_multi`'s own invoke/complete window. A history is linearizable iff each key's
//! sub-history is.
//!
//! What is dropped before the search: `Failed` operations (they did not take effect) and
//! reads with an `Unknown` outcome (they observed nothing we know). `Unknown` writes stay,
//! with completion +inf: the search may place them anywhere after their invocation,
//! including after everything else (i.e. never visible). Then `reduce.rs` drops or bounds
//! most of them, keeping the same set of linearizations.
//!
//! Invariants: `Linearizable` only if every key's search finished with a witness;
//! `NotLinearizable` only from a finished search (or a read of a never-written value);
//! anything cut short by a budget is reported in `CouldNotDecide`. The only clock reads
//! are here (the time budget and `elapsed`), never inside the search.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::error::CheckerError;
use crate::explain::Explanation;
use crate::history::{Blob, History, Op, Outcome, Time};
use crate::limits::{
    DEFAULT_CLOCK_UNCERTAINTY_NS, DEFAULT_MAX_MEMO_BYTES_PER_KEY, DEFAULT_MAX_STEPS_PER_KEY,
    DEFAULT_TIME_BUDGET_SECS,
};
use crate::model::{KeyHistory, KeyOp, KeyOpKind, RegisterModel};
use crate::reduce::reduce;
use crate::search::{Interrupt, SearchLimits, SearchOutcome, search};

/// How to check.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// `eps`, the clock uncertainty around TTL expiry, in ns (README, "Clock uncertainty").
    pub clock_uncertainty_ns: u64,
    /// Wall-clock budget of the whole check; `None`: unlimited.
    pub time_budget: Option<Duration>,
    /// Search steps per key before that key is undecided.
    pub max_steps_per_key: u64,
    /// Memo bytes per key before that key is undecided.
    pub max_memo_bytes_per_key: usize,
    /// Worker threads; 0: one per available core.
    pub threads: usize,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            clock_uncertainty_ns: DEFAULT_CLOCK_UNCERTAINTY_NS,
            time_budget: Some(Duration::from_secs(DEFAULT_TIME_BUDGET_SECS)),
            max_steps_per_key: DEFAULT_MAX_STEPS_PER_KEY,
            max_memo_bytes_per_key: DEFAULT_MAX_MEMO_BYTES_PER_KEY,
            threads: 0,
        }
    }
}

/// Why some keys could not be decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UndecidedReason {
    /// A key's search used `max_steps` steps.
    StepBudget { max_steps: u64 },
    /// A key's memo grew past `max_bytes`.
    MemoBudget { max_bytes: usize },
    /// The whole check ran out of time.
    TimeBudget { budget: Duration },
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every key's sub-history has a linearization.
    Linearizable,
    /// This key's sub-history has none (other keys may be unchecked).
    NotLinearizable {
        key: Blob,
        explanation: Box<Explanation>,
    },
    /// No violation found, but these keys (sorted) were not fully searched.
    CouldNotDecide {
        keys: Vec<Blob>,
        reason: UndecidedReason,
    },
}

/// What the check did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckStats {
    /// Operations in the history.
    pub operations: usize,
    /// Distinct keys.
    pub keys: usize,
    /// Per-key operations searched (a `get_multi` counts once per key).
    pub key_ops: usize,
    /// The largest per-key sub-history.
    pub max_key_ops: usize,
    /// Operations dropped as `Failed`.
    pub dropped_failed: usize,
    /// Reads dropped for an `Unknown` outcome.
    pub dropped_unknown_reads: usize,
    /// Writes with an `Unknown` outcome.
    pub unknown_writes: usize,
    /// Unknown plain puts whose value nobody read, dropped (`reduce.rs`, rule 1).
    pub dropped_unread_unknown_puts: usize,
    /// Puts whose completion was bounded by the reads of their value (`reduce.rs`, rule 2).
    pub bounded_puts: usize,
    /// Search steps over all keys.
    pub steps: u64,
    /// Memo entries over all keys.
    pub memo_entries: usize,
    /// Wall-clock time of the check.
    pub elapsed: Duration,
}

/// A verdict and the statistics of the check that produced it.
#[derive(Debug, Clone)]
pub struct CheckReport {
    pub verdict: Verdict,
    pub stats: CheckStats,
}

/// What one operation does to one of its keys, before interning.
enum Effect<'a> {
    Put(&'a Blob, Option<u64>),
    Delete,
    Read(Option<&'a Blob>),
}

/// The per-key sub-histories of a validated history, sorted by key, reduced
/// (`reduce.rs`), and what was dropped.
pub(crate) fn split_by_key(history: &History) -> (Vec<KeyHistory>, CheckStats) {
    let mut by_key: HashMap<Blob, KeyHistory> = HashMap::new();
    let mut stats = CheckStats {
        operations: history.ops.len(),
        ..CheckStats::default()
    };
    for (source, o) in history.ops.iter().enumerate() {
        let unknown = o.outcome == Outcome::Unknown;
        let effects: Vec<(&Blob, Effect<'_>)> = match (&o.op, &o.outcome) {
            (_, Outcome::Failed) => {
                stats.dropped_failed += 1;
                continue;
            }
            (Op::Get { .. } | Op::GetMulti { .. }, Outcome::Unknown) => {
                stats.dropped_unknown_reads += 1;
                continue;
            }
            (Op::Put { key, value }, _) => vec![(key, Effect::Put(value, None))],
            (Op::PutWithTtl { key, value, ttl_ns }, _) => {
                vec![(key, Effect::Put(value, Some(*ttl_ns)))]
            }
            (Op::Delete { key }, _) => vec![(key, Effect::Delete)],
            (Op::Get { key }, Outcome::Read(v)) => vec![(key, Effect::Read(v.as_ref()))],
            // Not atomic: one read per key, each with the whole window.
            (Op::GetMulti { keys }, Outcome::ReadMulti(values)) => keys
                .iter()
                .zip(values)
                .map(|(k, v)| (k, Effect::Read(v.as_ref())))
                .collect(),
            // `History::validate` rejects every other pairing.
            (op, outcome) => {
                unreachable!("unvalidated pairing {} / {}", op.name(), outcome.name())
            }
        };
        if unknown {
            stats.unknown_writes += 1;
        }
        for (key, effect) in effects {
            let kh = by_key
                .entry(key.clone())
                .or_insert_with(|| KeyHistory::new(key.clone()));
            let kind = match effect {
                Effect::Put(value, ttl_ns) => KeyOpKind::Put {
                    value: kh.intern(value),
                    ttl_ns,
                },
                Effect::Delete => KeyOpKind::Delete,
                Effect::Read(value) => KeyOpKind::Read {
                    value: value.map(|v| kh.intern(v)),
                },
            };
            kh.ops.push(KeyOp {
                source,
                client: o.client,
                invoke: o.invoke_ns,
                complete: if unknown { Time::MAX } else { o.complete_ns },
                unknown,
                kind,
            });
        }
    }
    let mut keys: Vec<KeyHistory> = by_key.into_values().collect();
    keys.sort_by(|a, b| a.key.cmp(&b.key));
    for key in &mut keys {
        let r = reduce(key);
        stats.dropped_unread_unknown_puts += r.dropped_unread_unknown_puts;
        stats.bounded_puts += r.bounded_puts;
    }
    stats.keys = keys.len();
    stats.key_ops = keys.iter().map(|k| k.ops.len()).sum();
    stats.max_key_ops = keys.iter().map(|k| k.ops.len()).max().unwrap_or(0);
    (keys, stats)
}

/// One key's answer.
enum KeyResult {
    Linearizable,
    Violation(Box<Explanation>),
    Undecided(Interrupt),
}

/// A read of a value that no operation on the key wrote, if any.
fn read_of_unwritten(key: &KeyHistory) -> Option<usize> {
    let mut written = vec![false; key.values.len()];
    for op in &key.ops {
        if let KeyOpKind::Put { value, .. } = op.kind {
            written[value as usize] = true;
        }
    }
    key.ops.iter().position(
        |op| matches!(op.kind, KeyOpKind::Read { value: Some(v) } if !written[v as usize]),
    )
}

fn check_key(
    key: &KeyHistory,
    options: &CheckOptions,
    probe: &mut dyn FnMut() -> bool,
) -> (KeyResult, u64, usize) {
    if let Some(read) = read_of_unwritten(key) {
        let explanation = Explanation::never_written(key, read);
        return (KeyResult::Violation(Box::new(explanation)), 0, 0);
    }
    let model = RegisterModel::new(key, options.clock_uncertainty_ns);
    let limits = SearchLimits {
        max_steps: options.max_steps_per_key,
        max_memo_bytes: options.max_memo_bytes_per_key,
    };
    let r = search(&model, limits, probe);
    let result = match r.outcome {
        SearchOutcome::Linearizable { .. } => KeyResult::Linearizable,
        SearchOutcome::NotLinearizable(f) => {
            KeyResult::Violation(Box::new(Explanation::from_failure(&model, &f)))
        }
        SearchOutcome::Interrupted(why) => KeyResult::Undecided(why),
    };
    (result, r.steps, r.memo_entries)
}

/// Checks a history: validates it, splits it per key, searches every key (in parallel)
/// within the budgets of `options`.
pub fn check(history: &History, options: &CheckOptions) -> Result<CheckReport, CheckerError> {
    let started = Instant::now();
    history.validate()?;
    let (keys, mut stats) = split_by_key(history);
    let deadline = options.time_budget.map(|b| started + b);
    let out_of_time = || deadline.is_some_and(|d| Instant::now() >= d);
    // Largest keys first, so a hot key does not start last on one core.
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(keys[i].ops.len()));
    let threads = match options.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .clamp(1, keys.len().max(1));
    let next = AtomicUsize::new(0);
    let violated = AtomicBool::new(false);
    let results: Mutex<Vec<(usize, KeyResult, u64, usize)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut probe = || violated.load(Ordering::Relaxed) || out_of_time();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&k) = order.get(n) else { break };
                    let (result, steps, memo) = if probe() {
                        (KeyResult::Undecided(Interrupt::Probe), 0, 0)
                    } else {
                        check_key(&keys[k], options, &mut probe)
                    };
                    if matches!(result, KeyResult::Violation(_)) {
                        violated.store(true, Ordering::Relaxed);
                    }
                    results
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((k, result, steps, memo));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    assert_eq!(results.len(), keys.len(), "every key gets an answer");
    results.sort_by_key(|r| r.0);
    let mut violation = None;
    let mut undecided: Vec<(usize, UndecidedReason)> = Vec::new();
    for (k, result, steps, memo) in results {
        stats.steps += steps;
        stats.memo_entries += memo;
        match result {
            KeyResult::Linearizable => {}
            KeyResult::Violation(e) => {
                violation.get_or_insert((k, e));
            }
            KeyResult::Undecided(why) => {
                let reason = match why {
                    Interrupt::Steps => UndecidedReason::StepBudget {
                        max_steps: options.max_steps_per_key,
                    },
                    Interrupt::Memo => UndecidedReason::MemoBudget {
                        max_bytes: options.max_memo_bytes_per_key,
                    },
                    // A probe stops for time or because another key failed; the latter
                    // only matters if no violation is reported, which cannot happen.
                    Interrupt::Probe => UndecidedReason::TimeBudget {
                        budget: options.time_budget.unwrap_or(Duration::MAX),
                    },
                };
                undecided.push((k, reason));
            }
        }
    }
    let verdict = match (violation, undecided.first()) {
        (Some((k, explanation)), _) => Verdict::NotLinearizable {
            key: keys[k].key.clone(),
            explanation,
        },
        (None, Some(&(_, reason))) => Verdict::CouldNotDecide {
            keys: undecided
                .iter()
                .map(|&(k, _)| keys[k].key.clone())
                .collect(),
            reason,
        },
        (None, None) => Verdict::Linearizable,
    };
    stats.elapsed = started.elapsed();
    Ok(CheckReport { verdict, stats })
}

impl std::fmt::Display for UndecidedReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UndecidedReason::StepBudget { max_steps } => {
                write!(f, "a key's search exceeded {max_steps} steps")
            }
            UndecidedReason::MemoBudget { max_bytes } => {
                write!(f, "a key's memo exceeded {max_bytes} bytes")
            }
            UndecidedReason::TimeBudget { budget } => {
                write!(f, "the check exceeded its time budget of {budget:?}")
            }
        }
    }
}

/// How many undecided keys `Verdict`'s `Display` names.
const DISPLAY_MAX_KEYS: usize = 20;

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Linearizable => writeln!(f, "LINEARIZABLE"),
            Verdict::NotLinearizable { explanation, .. } => {
                write!(f, "NOT LINEARIZABLE\n{explanation}")
            }
            Verdict::CouldNotDecide { keys, reason } => {
                writeln!(
                    f,
                    "COULD NOT DECIDE: {reason}; {} key(s) undecided, no violation found:",
                    keys.len()
                )?;
                for k in keys.iter().take(DISPLAY_MAX_KEYS) {
                    writeln!(f, "  {k}")?;
                }
                if keys.len() > DISPLAY_MAX_KEYS {
                    writeln!(f, "  ... and {} more", keys.len() - DISPLAY_MAX_KEYS)?;
                }
                Ok(())
            }
        }
    }
}
