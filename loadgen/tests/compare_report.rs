//! `compare-report`'s input and output: the manifest, the tables and floor ratios taken
//! from loadgen's reports, the `redis-benchmark` section, missing runs shown with their
//! reason.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use loadgen::compare::*;

#[test]
fn manifest_round_trip_and_errors() {
    let text = "# comment\nWORKLOAD\tget-1\tGets, 1 in flight\nSYSTEM\tredis-none\tRedis, no persistence\n\
                RUN\tget-1\tredis-none\ta.json\ta.hlog\tloadgen --target redis\n\
                NA\tget-1\tshoal-3\tcluster did not form\n";
    let r = parse_manifest(text).unwrap();
    assert_eq!(r.len(), 4);
    assert_eq!(
        r[3],
        Record::NotAvailable {
            workload: "get-1".into(),
            system: "shoal-3".into(),
            reason: "cluster did not form".into()
        }
    );
    let e = parse_manifest("RUN\tonly\ttwo\n").unwrap_err();
    assert!(e.contains("line 1"), "{e}");
}

fn fake_report(dir: &Path, name: &str, kind: &str, throughput: f64, p50: u64) -> PathBuf {
    let p = dir.join(name);
    let v = serde_json::json!({"kinds": [
        {"kind": kind, "ok": 10, "errors": 0, "throughput": throughput,
         "latency": {"p50_ns": p50, "p99_ns": p50 * 3, "p999_ns": p50 * 5}},
        {"kind": "all", "ok": 10, "errors": 1, "throughput": throughput,
         "latency": {"p50_ns": p50, "p99_ns": p50 * 3, "p999_ns": p50 * 5}},
    ]});
    std::fs::write(&p, v.to_string()).unwrap();
    p
}

#[test]
fn tables_and_floor_ratios_come_from_the_reports() {
    let dir = tempfile::tempdir().unwrap();
    let local = fake_report(dir.path(), "l.json", "get", 50_000.0, 8_000);
    let floor = fake_report(dir.path(), "f.json", "get", 90_000.0, 4_000);
    let m = format!(
        "WORKLOAD\tget-1\tGets\nSYSTEM\tfloor-channel\tF\nSYSTEM\tshoal-local\tL\n\
         RUN\tget-1\tshoal-local\t{}\tnone.hlog\tcmd l\n\
         RUN\tget-1\tfloor-channel\t{}\tnone.hlog\tcmd f\n",
        local.display(),
        floor.display()
    );
    let c = Comparison::load(&parse_manifest(&m).unwrap());
    let t = c.table("get-1");
    assert!(
        t.contains("| shoal-local | 50.0 k | 8.0us | 24.0us | 40.0us | 1 |"),
        "{t}"
    );
    // Floor first, as listed.
    assert!(t.find("floor-channel").unwrap() < t.find("shoal-local").unwrap());
    let f = floors_section(&c);
    assert!(
        f.contains(
            "| local get p50, 1 in flight | 8.0us | 4.0us (channel round trip) | 2.0x | <= 10 us |"
        ),
        "{f}"
    );
    // No HDR logs: no plot, and rendering says nothing about one.
    let out = dir.path().join("docs/BENCHMARKS.md");
    let md = render(&c, "# T\n", &out, &dir.path().join("docs/bench")).unwrap();
    assert!(md.starts_with("# T\n") && !md.contains("!["), "{md}");
    assert!(md.contains("cmd l") && md.contains("cmd f"));
}

#[test]
fn a_missing_report_is_shown_as_its_reason_not_as_figures() {
    let recs = parse_manifest(
        "WORKLOAD\tw\tW\nSYSTEM\ts\tS\nSYSTEM\tn\tN\n\
         RUN\tw\ts\t/nonexistent/x.json\t/nonexistent/x.hlog\tcmd\nNA\tw\tn\tnot installed\n",
    )
    .unwrap();
    let c = Comparison::load(&recs);
    let t = c.table("w");
    assert!(
        t.contains("| s | not available: reading /nonexistent/x.json"),
        "{t}"
    );
    assert!(t.contains("| n | not available: not installed"), "{t}");
}

#[test]
fn redis_benchmark_runs_get_their_table_targets_and_command_lines() {
    let dir = tempfile::tempdir().unwrap();
    let csv = |name: &str, set: &str, get: &str| {
        let p = dir.path().join(name);
        let text = format!(
            "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\
             \"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\
             \"SET\",\"{set}\",\"1.0\",\"0.1\",\"0.500\",\"1.0\",\"2.000\",\"9.000\"\n\
             \"GET\",\"{get}\",\"1.0\",\"0.1\",\"0.250\",\"1.0\",\"1.000\",\"8.000\"\n"
        );
        std::fs::write(&p, text).unwrap();
        p
    };
    let shoal = csv("s.csv", "60000.00", "70000.00");
    let always = csv("a.csv", "40000.00", "90000.00");
    let none = csv("n.csv", "90000.00", "100000.00");
    let m = format!(
        "WORKLOAD\tget-1\tGets nobody ran\nSYSTEM\tshoal-1\tShoal\n\
         RB\tshoal-1\t1\t{}\tredis-benchmark -p 1 -P 1\n\
         RB\tredis-always\t1\t{}\tredis-benchmark -p 2 -P 1\n\
         RB\tredis-none\t1\t{}\tredis-benchmark -p 3 -P 1\n\
         RBNA\tshoal-3-follower\t1\tthe follower answered TRYAGAIN\n\
         RB\tshoal-3-leader\t16\t/nonexistent/x.csv\tredis-benchmark -P 16\n",
        shoal.display(),
        always.display(),
        none.display()
    );
    let recs = parse_manifest(&m).unwrap();
    assert_eq!(
        recs[5],
        Record::RespNotAvailable {
            system: "shoal-3-follower".into(),
            pipeline: 1,
            reason: "the follower answered TRYAGAIN".into()
        }
    );
    assert!(parse_manifest("RB\ts\tone\tx.csv\tcmd\n").is_err());
    let c = Comparison::load(&recs);
    let out = dir.path().join("docs/BENCHMARKS.md");
    let md = render(&c, "# T\n", &out, &dir.path().join("docs/bench")).unwrap();
    assert!(
        md.contains("## redis-benchmark against Shoal's RESP port"),
        "{md}"
    );
    // A workload without any run gets no (empty) section.
    assert!(!md.contains("Gets nobody ran"), "{md}");
    assert!(
        md.contains("| shoal-1 | 1 | 60.0 k | 500.0us | 2.00ms | 9.00ms | 70.0 k | 250.0us |"),
        "{md}"
    );
    assert!(
        md.contains("| shoal-3-follower | 1 | not available: the follower answered TRYAGAIN |"),
        "{md}"
    );
    assert!(
        md.contains("| shoal-3-leader | 16 | not available: reading /nonexistent/x.csv"),
        "{md}"
    );
    assert!(md.contains("| 1.50x | yes |"), "SET target: {md}");
    assert!(md.contains("| 0.70x | yes |"), "GET target: {md}");
    assert!(md.contains("# redis-benchmark -P 1 / redis-none\nredis-benchmark -p 3 -P 1"));
}
