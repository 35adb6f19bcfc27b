//! `shoal-local` and `shoal-remote` end to end: short loadgen runs against a real node
//! (embedded in loadgen for `shoal-local`, embedded in this test for `shoal-remote`),
//! every operation answered, preloaded keys all found, the temporary data dir removed.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

use shoal::config::NodeConfig;
use shoal::node::Node;
use shoal_testkit::ports::{free_port_block, localhost};

fn loadgen(args: &[&str], tmpdir: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .env("TMPDIR", tmpdir)
        .output()
        .unwrap()
}

fn report(o: &Output, json: &std::path::Path) -> serde_json::Value {
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap()
}

fn all_kind(v: &serde_json::Value) -> &serde_json::Value {
    v["kinds"].as_array().unwrap().last().unwrap()
}

/// The common flags: every kind of operation, 500 preloaded keys, a bounded run.
const MIX: [&str; 20] = [
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
    "--keys",
    "500",
    "--preload",
    "-c",
    "8",
    "--ops",
    "1500",
    "--warmup",
    "0s",
    "--quiet",
];

#[test]
fn shoal_local_runs_against_an_embedded_node_and_cleans_up() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let json = out.path().join("local.json");
    let mut args = vec![
        "--target",
        "shoal-local",
        "--shards",
        "2",
        "--first-core",
        "1",
    ];
    args.extend(MIX);
    let j = json.to_string_lossy().into_owned();
    args.extend(["--json", &j]);
    let o = loadgen(&args, tmp.path());
    let v = report(&o, &json);
    let all = all_kind(&v);
    assert_eq!(all["ok"], 1500, "{v}");
    assert_eq!(all["errors"], 0, "{v}");
    assert_eq!(v["preload"]["keys"], 500, "{v}");
    let target = v["target"].as_str().unwrap();
    assert!(
        target.contains("embedded single node, 2 shard(s)"),
        "{target}"
    );
    // `--first-core` reaches the node's placement (shard 0 on core 1 of 2 or more).
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(
        target.contains(&format!("shard 0 on core {}", 1 % cores)),
        "{target}"
    );
    // The node's temporary data dir is gone.
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn shoal_remote_runs_against_a_node() {
    let tmp = tempfile::tempdir().unwrap();
    let base = free_port_block(4).unwrap();
    let mut config = NodeConfig {
        data_dir: tmp.path().join("node"),
        shards: 2,
        client_addr: localhost(base),
        peer_addr: localhost(base + 2),
        ..NodeConfig::default()
    };
    config.wal.segment_mib = 8;
    config.validate().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut node = Node::start(config).unwrap();
    rt.block_on(node.ready()).unwrap();
    let json = tmp.path().join("remote.json");
    let j = json.to_string_lossy().into_owned();
    let ep = format!("127.0.0.1:{base}");
    let mut args = vec!["--target", "shoal-remote", "--endpoint", &ep];
    args.extend(MIX);
    args.extend(["--json", &j]);
    let o = loadgen(&args, tmp.path());
    let v = report(&o, &json);
    rt.block_on(node.stop()).unwrap();
    let all = all_kind(&v);
    assert_eq!(all["ok"], 1500, "{v}");
    assert_eq!(all["errors"], 0, "{v}");
    let target = v["target"].as_str().unwrap();
    assert!(target.contains("1 node(s), 2 shard(s)"), "{target}");
}
