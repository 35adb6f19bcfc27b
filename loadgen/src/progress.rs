//! Live progress: gathers the groups' one-second windows, prints one line per second, and
//! keeps the merged windows for the HDR interval log and the JSON time series.
//!
//! Invariants: a second's line is printed once, 250 ms after the second ends (the grace lets
//! every group's window for it arrive; a window arriving later still enters the kept
//! series, only the already-printed line misses it). Nothing is printed with `quiet`.

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
    /// Latencies per kind.
    pub hists: [Option<Hist>; KINDS],
    /// Failed operations.
    pub errors: u64,
    /// Length of the window actually covered (the last one may be partial).
    pub length: Duration,
}

impl WindowAgg {
    /// All kinds merged.
    pub fn combined(&self) -> Hist {
        let mut all = new_hist();
        for h in self.hists.iter().flatten() {
            merge_hist(&mut all, h);
        }
        all
    }

    fn absorb(&mut self, w: Window) {
        self.errors += w.errors;
        for (dst, src) in self.hists.iter_mut().zip(w.hists) {
            match (dst, src) {
                (Some(d), Some(s)) => merge_hist(d, &s),
                (d @ None, Some(s)) => *d = Some(s),
                _ => {}
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
            all.len() as f64 / secs,
            self.errors
        )
    }
}

const GRACE: Duration = Duration::from_millis(250);

/// Collects windows until every sender is gone; returns them in time order.
pub async fn collect(
    mut rx: UnboundedReceiver<Window>,
    measure_start: Instant,
    quiet: bool,
) -> Vec<WindowAgg> {
    let mut windows: BTreeMap<i64, WindowAgg> = BTreeMap::new();
    let mut printed_through = i64::MIN;
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    let window_start = |idx: i64| {
        if idx >= 0 {
            measure_start + Duration::from_secs(idx as u64)
        } else {
            measure_start - Duration::from_secs(idx.unsigned_abs())
        }
    };
    let mut print_ready = |windows: &BTreeMap<i64, WindowAgg>, upto: Option<Instant>| {
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
    };
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(w) => windows
                    .entry(w.idx)
                    .or_insert_with(|| WindowAgg {
                        idx: w.idx,
                        hists: std::array::from_fn(|_| None),
                        errors: 0,
                        length: Duration::from_secs(1),
                    })
                    .absorb(w),
                None => break,
            },
            _ = ticker.tick() => print_ready(&windows, Some(Instant::now())),
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
    print_ready(&windows, None);
    windows.into_values().collect()
}
