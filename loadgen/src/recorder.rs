//! Recording results: per-group histograms for the whole run and for each one-second window.
//!
//! Owns [`Recorder`] (one per group of lanes; the lanes of a group are polled by one task, so
//! its lock is never contended), [`Totals`] (a run's merged results) and [`Window`] (one
//! second of one group, sent to the progress collector).
//!
//! Invariants:
//! - Latencies are nanoseconds in auto-resizing 3-significant-digit HDR histograms.
//! - Only *measured* operations (started, or scheduled in open loop, at or after the end of
//!   warm-up) enter [`Totals`] and the non-negative windows; warm-up operations enter only
//!   warm-up windows (negative index), which reports never include.
//! - Window `i` covers `[measure_start + i s, measure_start + (i+1) s)` by completion time.
//! - Recording allocates nothing on the hot path: a window's histograms are replaced (one
//!   allocation per kind) only when a second ends.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::mpsc::UnboundedSender;

use crate::targets::OpError;
use crate::workload::{KINDS, OpKind};

/// Latency histogram, nanoseconds.
pub type Hist = Histogram<u64>;

/// Most error messages kept as samples for the report.
pub const MAX_ERROR_SAMPLES: usize = 16;

/// Largest latency recorded: one hour (larger values are recorded as one hour). Bounds
/// how far an auto-resizing histogram can grow.
pub const MAX_RECORDED_NS: u64 = 3_600_000_000_000;

/// Records `ns` into `h`, capped at [`MAX_RECORDED_NS`]. (`saturating_record` would clamp
/// to the histogram's *current* range instead of growing it.)
#[inline]
pub fn record_ns(h: &mut Hist, ns: u64) {
    h.record(ns.min(MAX_RECORDED_NS))
        .expect("an auto-resizing histogram holds any value up to an hour");
}

/// An empty auto-resizing histogram.
pub fn new_hist() -> Hist {
    Histogram::new(3).expect("3 significant digits is a valid precision")
}

/// Adds `src` into `dst` (auto-resizing histograms always merge).
pub fn merge_hist(dst: &mut Hist, src: &Hist) {
    dst.add(src)
        .expect("auto-resizing histograms accept any range");
}

fn hists_for(enabled: &[bool; KINDS]) -> [Option<Hist>; KINDS] {
    std::array::from_fn(|i| enabled[i].then(new_hist))
}

/// One second of one group's results.
#[derive(Debug)]
pub struct Window {
    /// Second index relative to the end of warm-up (negative: warm-up).
    pub idx: i64,
    /// Latencies per kind (`None` for kinds not in the mix).
    pub hists: [Option<Hist>; KINDS],
    /// Failed operations.
    pub errors: u64,
}

/// Results of a whole run (or of one group before merging).
#[derive(Debug)]
pub struct Totals {
    /// Latencies of successful measured operations, per kind.
    pub hists: [Option<Hist>; KINDS],
    /// Failed measured operations, per kind and error class.
    pub errors: [[u64; 4]; KINDS],
    /// First messages of distinct (kind, class) failures.
    pub error_samples: Vec<String>,
    /// Gets that found no value.
    pub get_misses: u64,
    /// Keys asked by multi-gets.
    pub multi_keys_requested: u64,
    /// Keys found by multi-gets.
    pub multi_keys_found: u64,
    /// Open loop: how late requests were sent after their scheduled time.
    pub send_lag: Option<Hist>,
    /// Completion time of the last measured operation.
    pub last_done: Option<Instant>,
}

impl Totals {
    /// Empty totals for the kinds in `enabled`.
    pub fn new(enabled: &[bool; KINDS], open_loop: bool) -> Self {
        Self {
            hists: hists_for(enabled),
            errors: [[0; 4]; KINDS],
            error_samples: Vec::new(),
            get_misses: 0,
            multi_keys_requested: 0,
            multi_keys_found: 0,
            send_lag: open_loop.then(new_hist),
            last_done: None,
        }
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: Totals) {
        for (dst, src) in self.hists.iter_mut().zip(other.hists.iter()) {
            match (dst, src) {
                (Some(d), Some(s)) => merge_hist(d, s),
                (d @ None, Some(s)) => *d = Some(s.clone()),
                _ => {}
            }
        }
        for (d, s) in self.errors.iter_mut().zip(other.errors.iter()) {
            for (a, b) in d.iter_mut().zip(s.iter()) {
                *a += b;
            }
        }
        for s in other.error_samples {
            if self.error_samples.len() < MAX_ERROR_SAMPLES && !self.error_samples.contains(&s) {
                self.error_samples.push(s);
            }
        }
        self.get_misses += other.get_misses;
        self.multi_keys_requested += other.multi_keys_requested;
        self.multi_keys_found += other.multi_keys_found;
        if let (Some(d), Some(s)) = (&mut self.send_lag, &other.send_lag) {
            merge_hist(d, s);
        }
        self.last_done = self.last_done.max(other.last_done);
    }

    /// Successful measured operations of `kind`.
    pub fn ok_count(&self, kind: OpKind) -> u64 {
        self.hists[kind.index()].as_ref().map_or(0, |h| h.len())
    }

    /// Failed measured operations of `kind`.
    pub fn error_count(&self, kind: OpKind) -> u64 {
        self.errors[kind.index()].iter().sum()
    }

    /// All measured operations, failed or not.
    pub fn total_ops(&self) -> u64 {
        OpKind::ALL
            .iter()
            .map(|&k| self.ok_count(k) + self.error_count(k))
            .sum()
    }
}

/// A group's recorder.
#[derive(Debug)]
pub struct Recorder {
    enabled: [bool; KINDS],
    measure_start: Instant,
    totals: Totals,
    window: [Option<Hist>; KINDS],
    window_errors: u64,
    window_idx: i64,
    window_end: Instant,
    tx: UnboundedSender<Window>,
}

const SECOND: Duration = Duration::from_secs(1);

/// The window holding instant `t`: its index and end.
pub fn window_of(measure_start: Instant, t: Instant) -> (i64, Instant) {
    if t >= measure_start {
        let k = (t - measure_start).as_secs();
        (k as i64, measure_start + Duration::from_secs(k + 1))
    } else {
        let back = (measure_start - t).as_nanos();
        let j = back.div_ceil(1_000_000_000) as u64;
        // Window -j covers [ms - j s, ms - (j-1) s).
        (-(j as i64), measure_start - Duration::from_secs(j - 1))
    }
}

impl Recorder {
    /// A recorder for the kinds in `enabled`, whose windows go to `tx`.
    pub fn new(
        enabled: [bool; KINDS],
        measure_start: Instant,
        open_loop: bool,
        tx: UnboundedSender<Window>,
    ) -> Self {
        let (window_idx, window_end) = window_of(measure_start, Instant::now());
        Self {
            enabled,
            measure_start,
            totals: Totals::new(&enabled, open_loop),
            window: hists_for(&enabled),
            window_errors: 0,
            window_idx,
            window_end,
            tx,
        }
    }

    /// Sends the current window (if it holds anything) and opens the one holding `t`.
    #[cold]
    fn roll(&mut self, t: Instant) {
        let empty = self.window_errors == 0 && self.window.iter().flatten().all(|h| h.is_empty());
        if !empty {
            let hists = std::mem::replace(&mut self.window, hists_for(&self.enabled));
            // The collector is gone only when the run is being torn down: nothing to tell.
            let _ = self.tx.send(Window {
                idx: self.window_idx,
                hists,
                errors: self.window_errors,
            });
        }
        self.window_errors = 0;
        (self.window_idx, self.window_end) = window_of(self.measure_start, t);
    }

    /// Whether a completion at `done` of an operation goes into the window at all: warm-up
    /// operations only count in warm-up windows.
    #[inline]
    fn in_window(&mut self, done: Instant, measured: bool) -> bool {
        if done >= self.window_end {
            self.roll(done);
        }
        measured || done < self.measure_start
    }

    /// A successful operation of `kind` that took `latency_ns`, completed at `done`.
    #[inline]
    pub fn record_ok(&mut self, kind: OpKind, latency_ns: u64, done: Instant, measured: bool) {
        let i = kind.index();
        debug_assert!(self.enabled[i], "kind outside the mix");
        if self.in_window(done, measured) {
            if let Some(h) = &mut self.window[i] {
                record_ns(h, latency_ns);
            }
        }
        if measured {
            if let Some(h) = &mut self.totals.hists[i] {
                record_ns(h, latency_ns);
            }
            self.totals.last_done = Some(done);
        }
    }

    /// A failed operation of `kind`, completed at `done`.
    #[cold]
    pub fn record_err(&mut self, kind: OpKind, err: &OpError, done: Instant, measured: bool) {
        if self.in_window(done, measured) {
            self.window_errors += 1;
        }
        if measured {
            self.totals.errors[kind.index()][err.kind.index()] += 1;
            self.totals.last_done = Some(done);
            if self.totals.error_samples.len() < MAX_ERROR_SAMPLES {
                let prefix = format!("{} {}:", kind.name(), err.kind);
                if !self
                    .totals
                    .error_samples
                    .iter()
                    .any(|s| s.starts_with(&prefix))
                {
                    self.totals
                        .error_samples
                        .push(format!("{prefix} {}", err.detail));
                }
            }
        }
    }

    /// A measured get found nothing.
    #[inline]
    pub fn note_get_miss(&mut self) {
        self.totals.get_misses += 1;
    }

    /// A measured multi-get asked `requested` keys and found `found`.
    #[inline]
    pub fn note_multi(&mut self, requested: usize, found: usize) {
        self.totals.multi_keys_requested += requested as u64;
        self.totals.multi_keys_found += found as u64;
    }

    /// Open loop: a measured request was sent `lag_ns` after its scheduled time.
    #[inline]
    pub fn record_send_lag(&mut self, lag_ns: u64) {
        if let Some(h) = &mut self.totals.send_lag {
            record_ns(h, lag_ns);
        }
    }

    /// Flushes the last window and returns the group's totals.
    pub fn finish(mut self) -> Totals {
        let far = self.window_end + SECOND;
        self.roll(far);
        self.totals
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_grow_to_hold_large_latencies() {
        let mut h = new_hist();
        record_ns(&mut h, 150);
        record_ns(&mut h, 5_000_000_000);
        record_ns(&mut h, u64::MAX);
        assert_eq!(h.len(), 3);
        assert!(h.min() <= 150);
        let five_s = h.value_at_quantile(0.5);
        assert!(
            (4_995_000_000..=5_005_000_000).contains(&five_s),
            "{five_s}"
        );
        assert!(h.max() >= MAX_RECORDED_NS && h.max() <= MAX_RECORDED_NS / 1000 * 1001);
    }

    #[test]
    fn windows_tile_time_around_the_end_of_warmup() {
        let ms = Instant::now() + Duration::from_secs(10);
        assert_eq!(window_of(ms, ms), (0, ms + SECOND));
        let t = ms + Duration::from_millis(2500);
        assert_eq!(window_of(ms, t), (2, ms + Duration::from_secs(3)));
        let t = ms - Duration::from_millis(1);
        assert_eq!(window_of(ms, t), (-1, ms));
        let t = ms - Duration::from_millis(1000);
        assert_eq!(window_of(ms, t), (-1, ms));
        let t = ms - Duration::from_millis(1001);
        assert_eq!(window_of(ms, t), (-2, ms - SECOND));
    }

    #[test]
    fn warmup_operations_stay_out_of_totals_and_measured_windows() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let start = Instant::now();
        let ms = start + Duration::from_secs(5);
        let mut enabled = [false; KINDS];
        enabled[OpKind::Get.index()] = true;
        let mut r = Recorder::new(enabled, ms, false, tx);
        r.record_ok(OpKind::Get, 100, start, false);
        // Started in warm-up, finished after it: in neither totals nor window 0.
        r.record_ok(OpKind::Get, 200, ms + Duration::from_millis(10), false);
        r.record_ok(OpKind::Get, 300, ms + Duration::from_millis(20), true);
        let totals = r.finish();
        assert_eq!(totals.ok_count(OpKind::Get), 1);
        let mut seen = Vec::new();
        while let Ok(w) = rx.try_recv() {
            let h = w.hists[OpKind::Get.index()].as_ref().unwrap();
            seen.push((w.idx, h.len(), h.max()));
        }
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].0, -5);
        assert_eq!(seen[0].1, 1);
        assert_eq!(seen[1].0, 0);
        assert_eq!(seen[1].1, 1);
        assert!(seen[1].2 >= 300 && seen[1].2 < 301);
    }
}
