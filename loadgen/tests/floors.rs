//! The floor targets end to end through the binary: each runs a short closed-loop load,
//! answers every operation, and reports it; floor-fsync leaves no file behind.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

fn loadgen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .output()
        .unwrap()
}

/// Runs `args` plus a JSON report and returns the report.
fn run_json(args: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json").to_string_lossy().into_owned();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--warmup", "0s", "--quiet", "--json", &json]);
    let o = loadgen(&all);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
}

fn all_kind(v: &serde_json::Value) -> &serde_json::Value {
    v["kinds"].as_array().unwrap().last().unwrap()
}

#[test]
fn channel_floor_answers_every_kind_of_operation() {
    let v = run_json(&[
        "--target",
        "floor-channel",
        "--shards",
        "2",
        "--read",
        "5",
        "--write",
        "2",
        "--delete",
        "1",
        "--ttl-write",
        "1",
        "--multi-get",
        "1",
        "-c",
        "8",
        "--ops",
        "4000",
    ]);
    let all = all_kind(&v);
    assert_eq!(all["ok"], 4000, "{v}");
    assert_eq!(all["errors"], 0, "{v}");
    assert_eq!(v["get_misses"], 0);
    assert!(v["target"].as_str().unwrap().contains("2 glommio shard(s)"));
}

#[test]
fn tcp_floor_pipelines_and_matches_every_answer() {
    let v = run_json(&[
        "--target",
        "floor-tcp",
        "--shards",
        "2",
        "--read",
        "5",
        "--write",
        "3",
        "--delete",
        "1",
        "--multi-get",
        "1",
        "--value-size",
        "100",
        "-c",
        "32",
        "--ops",
        "4000",
    ]);
    let all = all_kind(&v);
    assert_eq!(all["ok"], 4000, "{v}");
    assert_eq!(all["errors"], 0, "{v}");
    // The frames have the protocol's sizes: a 100-byte value makes the get answer larger
    // than the get request.
    let target = v["target"].as_str().unwrap();
    assert!(target.contains("Shoal frame sizes"), "{target}");
}

#[test]
fn fsync_floor_syncs_each_put_and_removes_its_file() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().to_string_lossy().into_owned();
    let v = run_json(&[
        "--target",
        "floor-fsync",
        "--workload",
        "write",
        "-c",
        "1",
        "--ops",
        "30",
        "--data-dir",
        &dir,
    ]);
    let all = all_kind(&v);
    assert_eq!(all["ok"], 30, "{v}");
    assert_eq!(all["errors"], 0, "{v}");
    // Its scratch directory was removed at exit.
    assert_eq!(std::fs::read_dir(parent.path()).unwrap().count(), 0);
}
