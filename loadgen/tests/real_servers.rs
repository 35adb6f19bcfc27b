//! End-to-end runs of the binary against real servers, when they are installed: a
//! redis-server (Debian `redis-server`) and, with the `etcd` feature, an etcd member
//! (Debian `etcd-server`). Each test SKIPS, saying why, when its server is not on PATH.
#![allow(clippy::unwrap_used)]

use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use shoal_testkit::ports::{free_port_block, localhost};
use shoal_testkit::process::ChildProcess;
use shoal_testkit::wait::wait_for;

fn on_path(bin: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
        .unwrap_or(false)
}

fn run_loadgen(args: &[&str], json: &Path) -> serde_json::Value {
    let o = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .args(["--quiet", "--json", json.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap()
}

fn all_row(v: &serde_json::Value) -> &serde_json::Value {
    v["kinds"].as_array().unwrap().last().unwrap()
}

fn start_and_wait(name: &str, cmd: Command, dir: &Path, port: u16) -> ChildProcess {
    let mut child = ChildProcess::spawn(name, cmd, &dir.join(format!("{name}.log"))).unwrap();
    let up = wait_for(
        name,
        Duration::from_secs(20),
        Duration::from_millis(20),
        || TcpStream::connect(localhost(port)).ok(),
    );
    if up.is_err() {
        let log = child.log();
        let _ = child.kill();
        panic!("{name} did not start: {log}");
    }
    child
}

#[test]
fn ycsb_a_and_every_kind_against_a_real_redis_server() {
    if !on_path("redis-server") {
        eprintln!("SKIPPED: redis-server is not on PATH (Debian: apt-get install redis-server)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port_block(1).unwrap();
    let mut cmd = Command::new("redis-server");
    cmd.args([
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
    ])
    .args(["--appendonly", "no", "--dir", dir.path().to_str().unwrap()]);
    let mut server = start_and_wait("redis", cmd, dir.path(), port);
    let ep = format!("redis://127.0.0.1:{port}");

    let v = run_loadgen(
        &[
            "--target",
            "redis",
            "--endpoint",
            &ep,
            "--workload",
            "a",
            "--preload",
        ]
        .into_iter()
        .chain([
            "--keys",
            "2000",
            "--ops",
            "5000",
            "-c",
            "16",
            "--connections",
            "2",
        ])
        .collect::<Vec<_>>(),
        &dir.path().join("a.json"),
    );
    assert_eq!(all_row(&v)["ok"], 5000);
    assert_eq!(all_row(&v)["errors"], 0);
    assert_eq!(v["get_misses"], 0, "preloaded: every get finds its key");
    assert_eq!(v["preload"]["keys"], 2000);
    assert_eq!(v["config"]["endpoints"][0], ep.as_str());
    assert_eq!(v["config"]["connections"], 2);

    let v = run_loadgen(
        &[
            "--target",
            "redis",
            "--endpoint",
            &ep,
            "--read",
            "4",
            "--write",
            "2",
        ]
        .into_iter()
        .chain([
            "--delete",
            "1",
            "--ttl-write",
            "1",
            "--multi-get",
            "1",
            "--ops",
            "3000",
        ])
        .collect::<Vec<_>>(),
        &dir.path().join("mix.json"),
    );
    assert_eq!(all_row(&v)["ok"], 3000);
    assert_eq!(all_row(&v)["errors"], 0);
    let kinds: Vec<&str> = v["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["get", "put", "put_ttl", "delete", "get_multi", "all"]
    );
    server.kill().unwrap();
}

#[cfg(feature = "etcd")]
#[test]
fn ycsb_b_and_every_kind_against_a_real_etcd_member() {
    if !on_path("etcd") {
        eprintln!("SKIPPED: etcd is not on PATH (Debian: apt-get install etcd-server)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port_block(2).unwrap();
    let client = format!("http://127.0.0.1:{port}");
    let peer = format!("http://127.0.0.1:{}", port + 1);
    let mut cmd = Command::new("etcd");
    cmd.args([
        "--name",
        "lg",
        "--data-dir",
        dir.path().join("data").to_str().unwrap(),
    ])
    .args([
        "--listen-client-urls",
        &client,
        "--advertise-client-urls",
        &client,
    ])
    .args([
        "--listen-peer-urls",
        &peer,
        "--initial-advertise-peer-urls",
        &peer,
    ])
    .args(["--initial-cluster", &format!("lg={peer}")]);
    let mut server = start_and_wait("etcd", cmd, dir.path(), port);

    let v = run_loadgen(
        &[
            "--target",
            "etcd",
            "--endpoint",
            &client,
            "--workload",
            "b",
            "--preload",
        ]
        .into_iter()
        .chain([
            "--keys",
            "300",
            "--ops",
            "600",
            "-c",
            "8",
            "--connect-timeout",
            "10s",
        ])
        .collect::<Vec<_>>(),
        &dir.path().join("b.json"),
    );
    assert_eq!(all_row(&v)["ok"], 600);
    assert_eq!(all_row(&v)["errors"], 0);
    assert_eq!(v["get_misses"], 0);

    let v = run_loadgen(
        &[
            "--target",
            "etcd",
            "--endpoint",
            &client,
            "--read",
            "4",
            "--write",
            "2",
        ]
        .into_iter()
        .chain([
            "--delete",
            "1",
            "--ttl-write",
            "1",
            "--multi-get",
            "1",
            "--ops",
            "400",
        ])
        .collect::<Vec<_>>(),
        &dir.path().join("mix.json"),
    );
    assert_eq!(all_row(&v)["ok"], 400);
    assert_eq!(all_row(&v)["errors"], 0);
    server.kill().unwrap();
}
