//! The report's formats: text, JSON (parsed back), HDR interval log (decoded back), SVG plot.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::{MemTarget, test_config};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use loadgen::config::RunConfig;
use loadgen::driver::{self, RunOutcome};
use loadgen::report::{Report, fmt_ns};
use loadgen::workload::OpKind;

async fn small_run() -> (RunConfig, RunOutcome) {
    let mut cfg = test_config();
    cfg.ops = None;
    cfg.duration = Some(Duration::from_millis(2200));
    cfg.preload = true;
    let outcome = driver::run(&cfg, Arc::new(MemTarget::default()))
        .await
        .unwrap();
    (cfg, outcome)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_report_parses_back_with_every_field() {
    let (cfg, outcome) = small_run().await;
    let report = Report::new(&cfg, &outcome);
    let v: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();

    assert_eq!(v["loadgen_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["target"], "in-memory test store");
    let c = &v["config"];
    assert_eq!(c["keys"], 1000);
    assert_eq!(c["preset"], "a");
    assert_eq!(c["mix"]["read"], 50.0);
    assert_eq!(c["key_dist"]["kind"], "scrambled_zipfian");
    assert_eq!(c["key_dist"]["theta"], 0.99);
    assert_eq!(c["load"]["kind"], "closed");
    assert_eq!(c["duration"], 2.2);
    assert_eq!(c["ops"], serde_json::Value::Null);
    assert_eq!(c["label"], "in-test double");
    assert!(c.get("keep_window_histograms").is_none());

    let kinds = v["kinds"].as_array().unwrap();
    let names: Vec<&str> = kinds.iter().map(|k| k["kind"].as_str().unwrap()).collect();
    assert_eq!(names, ["get", "put", "all"]);
    let mut sum = 0;
    for k in &kinds[..2] {
        let l = &k["latency"];
        let q = |f: &str| l[f].as_u64().unwrap();
        assert!(q("min_ns") <= q("p50_ns"));
        assert!(q("p50_ns") <= q("p90_ns") && q("p90_ns") <= q("p99_ns"));
        assert!(q("p99_ns") <= q("p999_ns") && q("p999_ns") <= q("max_ns"));
        assert!(l["mean_ns"].as_f64().unwrap() > 0.0);
        assert_eq!(k["errors"], 0);
        sum += k["ok"].as_u64().unwrap();
    }
    let all = &kinds[2];
    assert_eq!(all["ok"].as_u64().unwrap(), sum);
    let secs = v["measured_secs"].as_f64().unwrap();
    assert!(secs >= 2.2);
    let tput = all["throughput"].as_f64().unwrap();
    assert!((tput - sum as f64 / secs).abs() < 1e-6 * tput);
    assert_eq!(v["get_misses"], 0);
    assert_eq!(v["preload"]["keys"], 1000);
    let per_second = v["per_second"].as_array().unwrap();
    assert!(
        per_second.len() >= 3,
        "2.2 s: seconds 0, 1 and the partial third"
    );
    let windowed: u64 = per_second.iter().map(|s| s["ok"].as_u64().unwrap()).sum();
    assert_eq!(windowed, sum);
    assert_eq!(per_second[0]["second"], 0);
    assert!(per_second[0]["p99_ns"].as_u64().unwrap() >= per_second[0]["p50_ns"].as_u64().unwrap());
    assert!(v["open_loop"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_report_states_configuration_and_a_row_per_kind() {
    let (cfg, outcome) = small_run().await;
    let report = Report::new(&cfg, &outcome);
    let text = report.to_text();
    for needle in [
        "in-memory test store",
        "label: in-test double",
        "preset a (get 50.0%, put 50.0%)",
        "1000 keys, scrambled zipfian theta 0.99",
        "closed loop, 8 in flight",
        "preload: 1000 keys",
        "p99.9",
        "get misses: 0",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    for kind in ["get", "put", "all"] {
        let row = text.lines().find(|l| l.starts_with(kind)).unwrap();
        let r = report.kinds.iter().find(|k| k.kind == kind).unwrap();
        assert!(row.contains(&r.ok.to_string()), "{row}");
        let p99 = fmt_ns(r.latency.as_ref().unwrap().p99_ns);
        assert!(row.contains(&p99), "{row} lacks {p99}");
    }
}

#[test]
fn latencies_are_formatted_with_units() {
    assert_eq!(fmt_ns(812), "812ns");
    assert_eq!(fmt_ns(45_120), "45.1us");
    assert_eq!(fmt_ns(3_204_000), "3.20ms");
    assert_eq!(fmt_ns(1_500_000_000), "1.50s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hdr_interval_log_decodes_to_the_run_totals() {
    let (_, outcome) = small_run().await;
    let mut log = Vec::new();
    loadgen::hdr_out::write_interval_log(&mut log, &outcome.windows, SystemTime::now(), "test run")
        .unwrap();
    let text = String::from_utf8(log.clone()).unwrap();
    assert!(text.starts_with("#test run"));
    let mut deserializer = Deserializer::new();
    let mut per_tag = std::collections::BTreeMap::<String, u64>::new();
    let mut intervals = 0;
    for entry in IntervalLogIterator::new(&log) {
        if let LogEntry::Interval(h) = entry.unwrap() {
            let bytes = base64_decode(h.encoded_histogram());
            let hist: hdrhistogram::Histogram<u64> =
                deserializer.deserialize(&mut bytes.as_slice()).unwrap();
            *per_tag
                .entry(h.tag().unwrap().as_str().to_string())
                .or_default() += hist.len();
            assert!(h.duration() <= Duration::from_secs(1));
            intervals += 1;
        }
    }
    assert!(intervals >= 6, "3 seconds x 2 kinds, got {intervals}");
    assert_eq!(per_tag.len(), 2);
    assert_eq!(per_tag["get"], outcome.totals.ok_count(OpKind::Get));
    assert_eq!(per_tag["put"], outcome.totals.ok_count(OpKind::Put));
}

/// Minimal standard base64 decoding for the test (the log's histograms are base64).
fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("bad base64 {c}"),
        }
    };
    let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::new();
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= val(c) << (18 - 6 * i);
        }
        let n = chunk.len() * 6 / 8;
        for i in 0..n {
            out.push((acc >> (16 - 8 * i)) as u8);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plot_draws_one_curve_per_kind() {
    let (_, outcome) = small_run().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.svg");
    let series: Vec<(&str, &loadgen::recorder::Hist)> = OpKind::ALL
        .iter()
        .filter_map(|k| {
            outcome.totals.hists[k.index()]
                .as_ref()
                .map(|h| (k.name(), h))
        })
        .collect();
    loadgen::plot::write_svg(&path, "test plot", &series).unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    assert!(svg.starts_with("<svg"));
    assert!(svg.contains("test plot"));
    assert!(
        svg.contains("\nget\n</text>") && svg.contains("\nput\n</text>"),
        "legend"
    );
    let curves = svg
        .lines()
        .filter(|l| l.starts_with("<polyline") && l.contains("stroke-width=\"2\""))
        .count();
    assert_eq!(curves, 2, "one curve per kind");
    let curve = loadgen::plot::percentile_curve(series[0].1);
    assert!(
        curve
            .windows(2)
            .all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1),
        "monotone"
    );
}
