//! Live progress: gathers the groups' one-second windows, prints one line per second, and
//! keeps the per-second series for the report (and, when asked, the per-second histograms
//! for the HDR interval log).
//!
//! Invariants:
//! - A second's line is printed once, 250 ms after the second ends (the grace lets every
//!   group's window for it arrive). Nothing is printed with `quiet`.
//! - A second's percentiles are final once it is 5 s old; a group window arriving later
//!   (a group stuck behind a very slow operation) still adds its counts. Without
//!   `keep_histograms`, finalized seconds drop their histograms, so memory does not grow
//!   with the run's length.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedReceiver;

use crate::recorder::{Hist, Window, merge_hist, new_hist};
use crate::report::fmt_ns;
use crate::workload::KINDS;

/// One second, merged over all groups.
#[derive(Debug)]
pub struct WindowAgg {
    /// Second index relative to the end of warm-up (negative: warm-up).
    pub idx: i64,
    /// Latencies per kind; `None` once finalized unless histograms are kept.
    pub hists: Option<[Option<Hist>; KINDS]>,
    /// Successful operations completed in this second.
    pub ok: u64,
    /// Failed operations.
    pub errors: u64,
    /// Median over all kinds (set when finalized).
    pub p50_ns: Option<u64>,
    /// 99th percentile over all kinds (set when finalized).
    pub p99_ns: Option<u64>,
    /// Length of the window actually covered (the last one may be partial).
    pub length: Duration,
}

impl WindowAgg {
    fn new(idx: i64) -> Self {
        Self {
            idx,
            hists: Some(std::array::from_fn(|_| None)),
            ok: 0,
            errors: 0,
            p50_ns: None,
            p99_ns: None,
            length: Duration::from_secs(1),
        }
    }

    /// All kinds merged (empty once the histograms were dropped).
    pub fn combined(&self) -> Hist {
        let mut all = new_hist();
        for h in self.hists.iter().flatten().flatten() {
            merge_hist(&mut all, h);
        }
        all
    }

    fn absorb(&mut self, w: Window) {
        self.errors += w.errors;
        self.ok += w.hists.iter().flatten().map(|h| h.len()).sum::<u64>();
        if let Some(hists) = &mut self.hists {
            for (dst, src) in hists.iter_mut().zip(w.hists) {
                match (dst, src) {
                    (Some(d), Some(s)) => merge_hist(d, &s),
                    (d @ None, Some(s)) => *d = Some(s),
                    _ => {}
                }
            }
        }
    }

    fn finalize(&mut self, keep_histograms: bool) {
        if self.hists.is_some() {
            let all = self.combined();
            if !all.is_empty() {
                self.p50_ns = Some(all.value_at_quantile(0.5));
                self.p99_ns = Some(all.value_at_quantile(0.99));
            }
            if !keep_histograms {
                self.hists = None;
            }
        }
    }

    fn line(&self) -> String {
        let all = self.combined();
        let secs = self.length.as_secs_f64().max(1e-9);
        // Labelled by the window's end; a partial last window shows where it ended.
        let label = if self.idx < 0 {
            "warm-up".to_string()
        } else if self.length < Duration::from_secs(1) {
            format!("{:.2}s", self.idx as f64 + secs)
        } else {
            format!("{}s", self.idx + 1)
        };
        let (p50, p99) = if all.is_empty() {
            ("-".to_string(), "-".to_string())
        } else {
            (
                fmt_ns(all.value_at_quantile(0.5)),
                fmt_ns(all.value_at_quantile(0.99)),
            )
        };
        format!(
            "[{label:>7}] {:>10.0} ops/s  p50 {p50:>9}  p99 {p99:>9}  errors {}",
            self.ok as f64 / secs,
            self.errors
        )
    }
}

const GRACE: Duration = Duration::from_millis(250);
/// Seconds after which a window's percentiles are final.
const FINAL_AFTER: i64 = 5;

/// Collects windows until every sender is gone; returns them in time order.
pub async fn collect(
    mut rx: UnboundedReceiver<Window>,
    measure_start: Instant,
    quiet: bool,
    keep_histograms: bool,
) -> Vec<WindowAgg> {
    let mut windows: BTreeMap<i64, WindowAgg> = BTreeMap::new();
    let mut printed_through = i64::MIN;
    let mut finalized_before = i64::MIN;
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    let window_start = |idx: i64| {
        if idx >= 0 {
            measure_start + Duration::from_secs(idx as u64)
        } else {
            measure_start - Duration::from_secs(idx.unsigned_abs())
        }
    };
    let mut print_ready = |windows: &mut BTreeMap<i64, WindowAgg>, upto: Option<Instant>| {
        for (idx, w) in windows.range(printed_through.saturating_add(1)..) {
            if let Some(now) = upto {
                if window_start(*idx) + Duration::from_secs(1) + GRACE > now {
                    break;
                }
            }
            if !quiet {
                eprintln!("{}", w.line());
            }
            printed_through = *idx;
        }
        if upto.is_some() {
            // Each window is finalized once here (and once more at the very end).
            let old = printed_through.saturating_sub(FINAL_AFTER);
            if old > finalized_before {
                for w in windows.range_mut(finalized_before..old).map(|(_, w)| w) {
                    w.finalize(keep_histograms);
                }
                finalized_before = old;
            }
        }
    };
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(w) => windows.entry(w.idx).or_insert_with(|| WindowAgg::new(w.idx)).absorb(w),
                None => break,
            },
            _ = ticker.tick() => print_ready(&mut windows, Some(Instant::now())),
        }
    }
    // Every group has finished: the last window ends at the last completion it holds, which
    // is at most now.
    let end = Instant::now();
    if let Some(last) = windows.values_mut().next_back() {
        let start = window_start(last.idx);
        last.length = end
            .saturating_duration_since(start)
            .clamp(Duration::from_millis(1), Duration::from_secs(1));
    }
    print_ready(&mut windows, None);
    windows
        .into_values()
        .map(|mut w| {
            w.finalize(keep_histograms);
            w
        })
        .collect()
}
