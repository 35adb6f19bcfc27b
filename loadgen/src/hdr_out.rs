//! `--hdr FILE`: the run's latency histograms as an HdrHistogram interval log.
//!
//! One interval per measured second and operation kind, tagged with the kind's name
//! (`Tag=get`, `Tag=put`, ...), V2-deflate encoded: the format of HdrHistogram's
//! `HistogramLogProcessor` and of the HdrHistogram log plotters, so percentile plots and
//! per-second percentiles can be drawn from it. Values are nanoseconds; the max column is
//! divided by 10^6 (milliseconds), as the header says.
//!
//! Invariant: only measured windows are written (warm-up never is); summing a tag's
//! intervals gives that kind's histogram of the whole measured run.

use std::io::{self, Write};
use std::time::{Duration, SystemTime};

use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};

use crate::progress::WindowAgg;
use crate::workload::OpKind;

/// Writes the interval log of `windows` to `out`. `measured_from` is the wall-clock time
/// of the end of warm-up (the log's base time).
pub fn write_interval_log<W: Write>(
    out: &mut W,
    windows: &[WindowAgg],
    measured_from: SystemTime,
    comment: &str,
) -> io::Result<()> {
    let mut serializer = V2DeflateSerializer::new();
    let mut builder = IntervalLogWriterBuilder::new();
    builder
        .add_comment(comment)
        .add_comment("latencies in nanoseconds; one interval per second and kind, tagged by kind")
        .with_start_time(measured_from)
        .with_base_time(measured_from)
        .with_max_value_divisor(1e6);
    let mut log = builder.begin_log_with(out, &mut serializer)?;
    for w in windows.iter().filter(|w| w.idx >= 0) {
        let start = Duration::from_secs(w.idx as u64);
        for kind in OpKind::ALL {
            let Some(Some(h)) = w.hists.as_ref().map(|hs| &hs[kind.index()]) else {
                continue;
            };
            if h.is_empty() {
                continue;
            }
            let tag = Tag::new(kind.name()).expect("kind names are valid tags");
            log.write_histogram(h, start, w.length, Some(tag))
                .map_err(|e| io::Error::other(format!("{e:?}")))?;
        }
    }
    Ok(())
}
