//! The final report: figures per operation kind, errors, the exact configuration; as text
//! for people and as JSON for scripts.
//!
//! Owns [`Report`] (built once from the configuration and the run's outcome, then rendered)
//! and the latency formatting used everywhere.
//!
//! Invariants: latencies in JSON are integer nanoseconds (`*_ns`); throughput is measured
//! operations (failed ones included) divided by the measured time; percentiles come from
//! the merged HDR histograms (3 significant digits); warm-up is never included.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::config::{KeyDist, LoadModel, RunConfig};
use crate::driver::{PreloadStats, RunOutcome};
use crate::recorder::{Hist, merge_hist, new_hist};
use crate::targets::ErrorKind;
use crate::workload::OpKind;

/// Formats nanoseconds with a unit that keeps 3-4 significant digits.
pub fn fmt_ns(ns: u64) -> String {
    let v = ns as f64;
    if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 1_000_000 {
        format!("{:.1}us", v / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.2}ms", v / 1e6)
    } else {
        format!("{:.2}s", v / 1e9)
    }
}

/// Latency summary of one histogram, nanoseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Latency {
    /// Smallest.
    pub min_ns: u64,
    /// Mean.
    pub mean_ns: f64,
    /// Median.
    pub p50_ns: u64,
    /// 90th percentile.
    pub p90_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
    /// Largest.
    pub max_ns: u64,
}

impl Latency {
    /// Summarizes `h`, or `None` when it is empty.
    pub fn of(h: &Hist) -> Option<Self> {
        (!h.is_empty()).then(|| Self {
            min_ns: h.min(),
            mean_ns: h.mean(),
            p50_ns: h.value_at_quantile(0.5),
            p90_ns: h.value_at_quantile(0.9),
            p99_ns: h.value_at_quantile(0.99),
            p999_ns: h.value_at_quantile(0.999),
            max_ns: h.max(),
        })
    }
}

/// Figures of one operation kind (or of all together).
#[derive(Debug, Clone, Serialize)]
pub struct KindReport {
    /// `get`, `put`, ..., or `all`.
    pub kind: String,
    /// Successful measured operations.
    pub ok: u64,
    /// Failed measured operations.
    pub errors: u64,
    /// Failures by class.
    pub errors_by_kind: BTreeMap<ErrorKind, u64>,
    /// (ok + errors) per measured second.
    pub throughput: f64,
    /// Latency of the successful operations.
    pub latency: Option<Latency>,
}

/// Keys asked and found by the run's multi-gets.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct MultiGetKeys {
    /// Keys asked, over all measured multi-gets.
    pub asked: u64,
    /// Of those, keys found.
    pub found: u64,
}

/// Open-loop figures.
#[derive(Debug, Clone, Serialize)]
pub struct OpenLoopReport {
    /// Scheduled operations per second.
    pub scheduled_rate: f64,
    /// Completed operations per measured second.
    pub achieved_rate: f64,
    /// Scheduled before the end but never sent: the target could not keep up.
    pub unsent: u64,
    /// How late requests were sent after their scheduled time (loadgen's own lateness plus
    /// queueing behind busy lanes).
    pub send_lag: Option<Latency>,
}

/// One measured second.
#[derive(Debug, Clone, Serialize)]
pub struct SecondReport {
    /// 0-based second after warm-up.
    pub second: i64,
    /// Length covered (the last one may be partial), seconds.
    pub length_secs: f64,
    /// Successful operations completed in it.
    pub ok: u64,
    /// Failed operations completed in it.
    pub errors: u64,
    /// Median latency over all kinds.
    pub p50_ns: Option<u64>,
    /// 99th percentile over all kinds.
    pub p99_ns: Option<u64>,
}

/// Everything a run produced, ready to print or serialize.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// loadgen's version.
    pub loadgen_version: &'static str,
    /// The target's description.
    pub target: String,
    /// The exact configuration.
    pub config: RunConfig,
    /// From the end of warm-up to the last measured completion, seconds.
    pub measured_secs: f64,
    /// Per kind in the mix, then `all`.
    pub kinds: Vec<KindReport>,
    /// Gets that found no value.
    pub get_misses: u64,
    /// Multi-gets: keys asked and found.
    pub multi_get_keys: Option<MultiGetKeys>,
    /// Open-loop figures, for open-loop runs.
    pub open_loop: Option<OpenLoopReport>,
    /// First messages of distinct failures.
    pub error_samples: Vec<String>,
    /// Preload figures.
    pub preload: Option<PreloadStats>,
    /// Measured seconds, in order.
    pub per_second: Vec<SecondReport>,
    /// Stopped early by an interrupt (Ctrl-C): the figures cover less than asked.
    pub interrupted: bool,
}

impl Report {
    /// Builds the report of a finished run.
    pub fn new(config: &RunConfig, outcome: &RunOutcome) -> Self {
        let t = &outcome.totals;
        let secs = outcome.measured.as_secs_f64();
        let rate = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
        let mut kinds = Vec::new();
        let mut all = new_hist();
        let mut all_errors: BTreeMap<ErrorKind, u64> = BTreeMap::new();
        for kind in OpKind::ALL {
            let Some(h) = &t.hists[kind.index()] else {
                continue;
            };
            merge_hist(&mut all, h);
            let mut by_kind = BTreeMap::new();
            for ek in ErrorKind::ALL {
                let n = t.errors[kind.index()][ek.index()];
                if n > 0 {
                    by_kind.insert(ek, n);
                    *all_errors.entry(ek).or_default() += n;
                }
            }
            let (ok, errors) = (t.ok_count(kind), t.error_count(kind));
            kinds.push(KindReport {
                kind: kind.name().to_string(),
                ok,
                errors,
                errors_by_kind: by_kind,
                throughput: rate(ok + errors),
                latency: Latency::of(h),
            });
        }
        let (ok, errors) = kinds
            .iter()
            .fold((0, 0), |a, k| (a.0 + k.ok, a.1 + k.errors));
        kinds.push(KindReport {
            kind: "all".to_string(),
            ok,
            errors,
            errors_by_kind: all_errors,
            throughput: rate(ok + errors),
            latency: Latency::of(&all),
        });
        let open_loop = match config.load {
            LoadModel::Open { rate: scheduled } => Some(OpenLoopReport {
                scheduled_rate: scheduled,
                achieved_rate: rate(ok + errors),
                unsent: outcome.unsent,
                send_lag: t.send_lag.as_ref().and_then(Latency::of),
            }),
            LoadModel::Closed => None,
        };
        let per_second = outcome
            .windows
            .iter()
            .filter(|w| w.idx >= 0)
            .map(|w| SecondReport {
                second: w.idx,
                length_secs: w.length.as_secs_f64(),
                ok: w.ok,
                errors: w.errors,
                p50_ns: w.p50_ns,
                p99_ns: w.p99_ns,
            })
            .collect();
        Self {
            loadgen_version: env!("CARGO_PKG_VERSION"),
            target: outcome.target.clone(),
            config: config.clone(),
            measured_secs: secs,
            kinds,
            get_misses: t.get_misses,
            multi_get_keys: (t.multi_keys_requested > 0).then_some(MultiGetKeys {
                asked: t.multi_keys_requested,
                found: t.multi_keys_found,
            }),
            open_loop,
            error_samples: t.error_samples.clone(),
            preload: outcome.preload.clone(),
            per_second,
            interrupted: outcome.interrupted,
        }
    }

    /// The `all` row.
    pub fn all(&self) -> &KindReport {
        self.kinds.last().expect("the all row is always present")
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serializes")
    }

    /// The report as text.
    pub fn to_text(&self) -> String {
        let c = &self.config;
        let mut s = String::new();
        let _ = writeln!(s, "loadgen {}: {}", self.loadgen_version, self.target);
        if let Some(label) = &c.label {
            let _ = writeln!(s, "label: {label}");
        }
        let mix: Vec<String> = OpKind::ALL
            .iter()
            .filter(|k| c.mix.share(**k) > 0.0)
            .map(|k| format!("{} {:.1}%", k.name(), c.mix.share(*k) * 100.0))
            .collect();
        let preset = c.preset.map_or("custom".to_string(), |p| {
            format!("preset {p:?}").to_lowercase()
        });
        let dist = match c.key_dist {
            KeyDist::Uniform => "uniform".to_string(),
            KeyDist::Zipfian { theta } => format!("zipfian theta {theta}"),
            KeyDist::ScrambledZipfian { theta } => format!("scrambled zipfian theta {theta}"),
        };
        let _ = writeln!(
            s,
            "workload: {preset} ({}); {} keys, {dist}; key {} B, value {} B{}{}",
            mix.join(", "),
            c.keys,
            c.key_size,
            c.value_size,
            if c.mix.ttl_write > 0.0 {
                format!("; ttl {} s", c.ttl_secs)
            } else {
                String::new()
            },
            if c.mix.multi_get > 0.0 {
                format!("; {} keys per multi-get", c.multi_get_keys)
            } else {
                String::new()
            },
        );
        let load = match c.load {
            LoadModel::Closed => format!("closed loop, {} in flight", c.concurrency),
            LoadModel::Open { rate } => {
                format!(
                    "open loop at {rate} ops/s, at most {} in flight",
                    c.concurrency
                )
            }
        };
        let stop = match (c.duration, c.ops) {
            (Some(d), Some(n)) => format!("{:.1} s or {n} ops", d.as_secs_f64()),
            (Some(d), None) => format!("{:.1} s", d.as_secs_f64()),
            (None, Some(n)) => format!("{n} ops"),
            (None, None) => "?".to_string(),
        };
        let _ = writeln!(
            s,
            "load: {load}; {} threads; warm-up {:.1} s; stop after {stop}; seed {}",
            c.threads,
            c.warmup.as_secs_f64(),
            c.seed
        );
        if let Some(p) = &self.preload {
            let _ = writeln!(s, "preload: {} keys in {:.1} s", p.keys, p.secs);
        }
        if self.interrupted {
            let _ = writeln!(
                s,
                "INTERRUPTED: stopped early, figures cover less than asked"
            );
        }
        let all = self.all();
        let _ = writeln!(
            s,
            "measured: {:.2} s, {} ops, {:.1} ops/s, {} errors\n",
            self.measured_secs,
            all.ok + all.errors,
            all.throughput,
            all.errors
        );
        let _ = writeln!(
            s,
            "{:<10} {:>10} {:>11} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}",
            "kind", "ops", "ops/s", "p50", "p90", "p99", "p99.9", "max", "errors"
        );
        for k in &self.kinds {
            let cols = k.latency.as_ref().map_or(
                [
                    "-".to_string(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                ],
                |l| {
                    [
                        fmt_ns(l.p50_ns),
                        fmt_ns(l.p90_ns),
                        fmt_ns(l.p99_ns),
                        fmt_ns(l.p999_ns),
                        fmt_ns(l.max_ns),
                    ]
                },
            );
            let _ = writeln!(
                s,
                "{:<10} {:>10} {:>11.1} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}",
                k.kind, k.ok, k.throughput, cols[0], cols[1], cols[2], cols[3], cols[4], k.errors
            );
        }
        let gets = self
            .kinds
            .iter()
            .find(|k| k.kind == OpKind::Get.name())
            .map_or(0, |k| k.ok);
        if gets > 0 {
            let _ = writeln!(
                s,
                "\nget misses: {} ({:.2}% of gets)",
                self.get_misses,
                self.get_misses as f64 * 100.0 / gets as f64
            );
        }
        if let Some(MultiGetKeys { asked, found }) = self.multi_get_keys {
            let _ = writeln!(s, "multi-get keys: {found} found of {asked} asked");
        }
        if let Some(o) = &self.open_loop {
            let lag = o.send_lag.as_ref().map_or("-".to_string(), |l| {
                format!(
                    "p50 {} p99 {} max {}",
                    fmt_ns(l.p50_ns),
                    fmt_ns(l.p99_ns),
                    fmt_ns(l.max_ns)
                )
            });
            let _ = writeln!(
                s,
                "open loop: scheduled {:.1} ops/s, achieved {:.1} ops/s, unsent {}; send lag {lag}",
                o.scheduled_rate, o.achieved_rate, o.unsent
            );
            if o.unsent > 0 {
                let _ = writeln!(
                    s,
                    "WARNING: the target did not sustain the scheduled rate with {} in flight",
                    c.concurrency
                );
            }
        }
        if all.errors > 0 {
            let by: Vec<String> = all
                .errors_by_kind
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            let _ = writeln!(s, "\nerrors: {}", by.join(", "));
            for e in &self.error_samples {
                let _ = writeln!(s, "  e.g. {e}");
            }
        }
        s
    }
}
