//! The Redis front door on a 3-node cluster of real `shoal` processes: a plain Redis
//! client connected to a node that leads no group gets every command served (each one
//! forwarded to its group's leader), sees its writes through the other nodes, keeps
//! working across a leader kill (the follower retries while the group elects), and
//! `redis-benchmark` against that follower completes with zero errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster_support;
mod resp_support;

use std::process::Command;
use std::time::Duration;

use cluster_support::Cluster;
use redis::Value;
use resp_support::{cmd, connect, err, have};
use shoal_proto::shard_for_key;
use shoal_testkit::ports::free_port_block;
use shoal_testkit::wait::wait_for;

const SHARDS: u16 = 2;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A 3-node cluster whose nodes all serve RESP; returns it with each node's RESP port
/// (of shard 0) and the leader of each group.
fn start(dir: &std::path::Path) -> (Cluster, Vec<u16>, Vec<u64>) {
    // A long request timeout: a command sent while a group elects must wait it out.
    // Election timeouts well above the defaults: on a loaded 2-core machine the default
    // ones let leadership change mid-test, and a write in flight then has an unknown
    // outcome (answered as such, never retried), which would fail the test.
    let flags = [
        "--request-timeout-ms",
        "20000",
        "--heartbeat-ms",
        "100",
        "--election-min-ms",
        "1000",
        "--election-max-ms",
        "2000",
    ];
    let mut cluster = Cluster::plan(dir, 3, 3, SHARDS, &flags);
    let mut ports = Vec::new();
    for id in 1..=3 {
        let port = free_port_block(SHARDS).expect("free RESP ports");
        cluster.set_flags(id, vec!["--resp-addr".into(), format!("127.0.0.1:{port}")]);
        ports.push(port);
    }
    cluster.launch();
    let leaders = rt().block_on(cluster.wait_leaders());
    (cluster, ports, leaders)
}

/// The id of a node that leads no group (2 groups, 3 nodes: there is always one).
fn pure_follower(leaders: &[u64]) -> u64 {
    (1..=3)
        .find(|id| !leaders.contains(id))
        .expect("a node that leads no group")
}

/// A key of group `group`, named after `prefix`.
fn key_in(group: u32, prefix: &str) -> String {
    (0..10_000)
        .map(|i| format!("{prefix}{i}"))
        .find(|k| shard_for_key(k.as_bytes(), u32::from(SHARDS)) == group)
        .expect("a key of the group")
}

#[test]
fn every_command_through_a_follower_node() {
    let tmp = tempfile::tempdir().unwrap();
    let (cluster, ports, leaders) = start(tmp.path());
    let f = pure_follower(&leaders);
    let port = ports[(f - 1) as usize];
    let mut c = connect(port);
    // The other shard's port of the follower serves any key too.
    let mut c1 = connect(port + 1);
    // A connection to the leader of group 0, to see the follower's writes there.
    let mut l = connect(ports[(leaders[0] - 1) as usize]);

    assert_eq!(cmd::<String>(&mut c, &["PING"]), "PONG");
    assert_eq!(cmd::<String>(&mut c, &["ECHO", "e"]), "e");
    assert_eq!(cmd::<String>(&mut c, &["SELECT", "0"]), "OK");
    assert_eq!(cmd::<String>(&mut c, &["CLIENT", "SETNAME", "f"]), "OK");
    assert_eq!(cmd::<String>(&mut c, &["CLIENT", "GETNAME"]), "f");
    assert_eq!(
        cmd::<String>(&mut c, &["CLIENT", "SETINFO", "LIB-VER", "1"]),
        "OK"
    );
    assert!(cmd::<i64>(&mut c, &["CLIENT", "ID"]) > 0);
    let _: Value = cmd(&mut c, &["COMMAND", "COUNT"]);
    let _: Value = cmd(&mut c, &["CONFIG", "GET", "appendonly"]);

    // Per group (each led by another node): SET and its options, reads, TTLs.
    for group in 0..u32::from(SHARDS) {
        let k = key_in(group, "k");
        let k = k.as_str();
        assert_eq!(cmd::<String>(&mut c, &["SET", k, "v1"]), "OK", "{k}");
        assert_eq!(cmd::<String>(&mut c1, &["GET", k]), "v1");
        assert_eq!(cmd::<Option<String>>(&mut c, &["SET", k, "x", "NX"]), None);
        assert_eq!(
            cmd::<Option<String>>(&mut c, &["SET", k, "v2", "XX", "GET"]),
            Some("v1".into())
        );
        assert_eq!(cmd::<String>(&mut c, &["SET", k, "v3", "EX", "100"]), "OK");
        let ttl: i64 = cmd(&mut c, &["TTL", k]);
        assert!((99..=100).contains(&ttl), "{ttl}");
        assert_eq!(cmd::<String>(&mut c, &["SET", k, "v4", "KEEPTTL"]), "OK");
        assert!(cmd::<i64>(&mut c, &["PTTL", k]) > 90_000);
        assert_eq!(
            cmd::<String>(&mut c, &["SET", k, "v5", "PX", "200000"]),
            "OK"
        );
        assert!(cmd::<i64>(&mut c, &["PTTL", k]) > 190_000);
        let now_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let at = (now_s + 1000).to_string();
        assert_eq!(cmd::<String>(&mut c, &["SET", k, "v6", "EXAT", &at]), "OK");
        assert!(cmd::<i64>(&mut c, &["TTL", k]) > 900);
        let at_ms = ((now_s + 2000) * 1000).to_string();
        assert_eq!(
            cmd::<String>(&mut c, &["SET", k, "v7", "PXAT", &at_ms]),
            "OK"
        );
        assert!(cmd::<i64>(&mut c, &["TTL", k]) > 1900);
        assert_eq!(cmd::<i64>(&mut c, &["PERSIST", k]), 1);
        assert_eq!(cmd::<i64>(&mut c, &["TTL", k]), -1);
        assert_eq!(cmd::<i64>(&mut c, &["EXPIRE", k, "100", "NX"]), 1);
        assert_eq!(cmd::<i64>(&mut c, &["EXPIRE", k, "50", "GT"]), 0);
        assert_eq!(cmd::<i64>(&mut c, &["PEXPIRE", k, "50000", "LT"]), 1);
        let pttl: i64 = cmd(&mut c, &["PTTL", k]);
        assert!((40_000..=50_000).contains(&pttl), "{pttl}");
        let s = key_in(group, "se");
        assert_eq!(cmd::<String>(&mut c, &["SETEX", &s, "100", "v"]), "OK");
        assert!(cmd::<i64>(&mut c, &["TTL", &s]) > 90);
        let p = key_in(group, "pse");
        assert_eq!(cmd::<String>(&mut c, &["PSETEX", &p, "100000", "v"]), "OK");
        assert!(cmd::<i64>(&mut c, &["PTTL", &p]) > 90_000);
        // Seen through another node (linearizable read at the leader).
        assert_eq!(cmd::<String>(&mut l, &["GET", k]), "v7");
    }

    // Multi-key commands span both groups (two leaders, possibly two nodes).
    let keys: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(cmd::<String>(&mut c, &["SET", k, &i.to_string()]), "OK");
    }
    let mut mget = vec!["MGET"];
    mget.extend(keys.iter().map(String::as_str));
    mget.push("absent");
    let values: Vec<Option<String>> = cmd(&mut c1, &mget);
    assert_eq!(values.len(), 21);
    for (i, v) in values.iter().take(20).enumerate() {
        assert_eq!(v.as_deref(), Some(i.to_string().as_str()));
    }
    assert_eq!(values[20], None);
    assert_eq!(
        cmd::<i64>(&mut c, &["EXISTS", "m1", "m1", "m2", "absent"]),
        3
    );
    let mut del = vec!["DEL"];
    del.extend(keys.iter().map(String::as_str));
    del.push("absent");
    assert_eq!(cmd::<i64>(&mut c, &del), 20);
    assert_eq!(cmd::<i64>(&mut l, &["EXISTS", "m1", "m2"]), 0);

    // DBSIZE and INFO describe the follower's replica: they converge on the writes.
    let expected = cmd::<i64>(&mut l, &["DBSIZE"]);
    assert!(expected >= 6, "{expected}");
    wait_for(
        "the follower's DBSIZE to catch up",
        Duration::from_secs(20),
        Duration::from_millis(20),
        || (cmd::<i64>(&mut c, &["DBSIZE"]) == expected).then_some(()),
    )
    .unwrap();
    let info: String = cmd(&mut c, &["INFO"]);
    for needle in ["# Server", "# Stats", "expired_keys:", "db0:keys="] {
        assert!(info.contains(needle), "{needle} missing from {info}");
    }

    // Errors stay Redis errors; RESP3 works through the follower too.
    assert!(err(&mut c, &["NOSUCH"]).contains("unknown command"));
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/?protocol=resp3")).unwrap();
    let mut c3 = client.get_connection().unwrap();
    assert_eq!(cmd::<String>(&mut c3, &["SET", "r3", "v"]), "OK");
    assert_eq!(cmd::<String>(&mut c3, &["GET", "r3"]), "v");

    // Pipelining through the follower: replies in order.
    let mut pipe = redis::pipe();
    for i in 0..100 {
        pipe.cmd("SET").arg(format!("p{i}")).arg(i).ignore();
        pipe.cmd("GET").arg(format!("p{i}"));
    }
    let got: Vec<i64> = pipe.query(&mut c).unwrap();
    assert_eq!(got, (0..100).collect::<Vec<i64>>());

    assert_eq!(cmd::<String>(&mut c, &["QUIT"]), "OK");
    drop(cluster);
}

#[test]
fn a_follower_keeps_serving_across_a_leader_kill() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut cluster, ports, leaders) = start(tmp.path());
    let f = pure_follower(&leaders);
    let mut c = connect(ports[(f - 1) as usize]);
    let k = key_in(0, "fail");
    assert_eq!(cmd::<String>(&mut c, &["SET", &k, "before"]), "OK");
    cluster.kill(leaders[0]);
    // No client retry: the follower waits out the election within the request timeout.
    assert_eq!(cmd::<String>(&mut c, &["GET", &k]), "before");
    assert_eq!(cmd::<String>(&mut c, &["SET", &k, "after", "XX"]), "OK");
    assert_eq!(cmd::<String>(&mut c, &["GET", &k]), "after");
}

#[test]
fn redis_benchmark_against_a_follower_has_no_errors() {
    if !have("redis-benchmark") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (_cluster, ports, leaders) = start(tmp.path());
    let port = ports[(pure_follower(&leaders) - 1) as usize];
    let out = Command::new("redis-benchmark")
        .args(["-p", &port.to_string(), "-t", "set,get", "-n", "2000"])
        .args(["-c", "10", "-d", "100", "-r", "1000", "-q"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(!text.to_lowercase().contains("error"), "{text}");
    let summary: Vec<&str> = text
        .split(['\r', '\n'])
        .filter(|l| l.contains("requests per second"))
        .collect();
    println!("{summary:?}");
    assert_eq!(summary.len(), 2, "{text}");
}
