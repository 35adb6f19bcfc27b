//! The Redis protocol front door of a node process (`--resp-addr`), driven by the `redis`
//! crate and by the Debian `redis-tools` (`redis-cli`, `redis-benchmark`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod node_support;
mod resp_support;

use std::io::Write;
use std::process::{Command, Stdio};

use node_support::NodeProcess;
use redis::Value;
use resp_support::{cmd, connect, err, have};
use shoal_testkit::ports::free_port_block;

const SHARDS: u16 = 2;

fn start() -> (tempfile::TempDir, NodeProcess, u16) {
    start_with(&[])
}

fn start_with(extra: &[&str]) -> (tempfile::TempDir, NodeProcess, u16) {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port_block(SHARDS).expect("free RESP ports");
    let addr = format!("127.0.0.1:{port}");
    let mut args = vec!["--resp-addr", &addr];
    args.extend_from_slice(extra);
    let node = NodeProcess::start(&tmp.path().join("data"), SHARDS, &args);
    (tmp, node, port)
}

#[test]
fn every_command_of_the_redis_front_door() {
    let (_tmp, _node, port) = start();
    let mut c = connect(port);
    // Any shard's port serves any key (forwarded over the mesh).
    let mut c1 = connect(port + 1);

    assert_eq!(cmd::<String>(&mut c, &["PING"]), "PONG");
    assert_eq!(cmd::<String>(&mut c, &["PING", "hi"]), "hi");
    assert_eq!(cmd::<String>(&mut c, &["ECHO", "x y"]), "x y");
    assert_eq!(cmd::<String>(&mut c, &["SELECT", "0"]), "OK");
    assert!(err(&mut c, &["SELECT", "1"]).contains("DB index is out of range"));
    assert_eq!(cmd::<String>(&mut c, &["CLIENT", "SETNAME", "t1"]), "OK");
    assert_eq!(cmd::<String>(&mut c, &["CLIENT", "GETNAME"]), "t1");
    assert_eq!(
        cmd::<String>(&mut c, &["CLIENT", "SETINFO", "LIB-NAME", "x"]),
        "OK"
    );
    assert!(cmd::<i64>(&mut c, &["CLIENT", "ID"]) > 0);
    let _: Value = cmd(&mut c, &["COMMAND", "COUNT"]);
    let _: Value = cmd(&mut c, &["CONFIG", "GET", "save"]);

    // SET / GET and the SET options.
    assert_eq!(cmd::<String>(&mut c, &["SET", "k", "v1"]), "OK");
    assert_eq!(cmd::<String>(&mut c1, &["GET", "k"]), "v1");
    assert_eq!(cmd::<Option<String>>(&mut c, &["GET", "missing"]), None);
    assert_eq!(
        cmd::<Option<String>>(&mut c, &["SET", "k", "v2", "NX"]),
        None
    );
    assert_eq!(cmd::<String>(&mut c, &["GET", "k"]), "v1");
    assert_eq!(
        cmd::<Option<String>>(&mut c, &["SET", "new", "n", "XX"]),
        None
    );
    assert_eq!(cmd::<i64>(&mut c, &["EXISTS", "new"]), 0);
    assert_eq!(
        cmd::<Option<String>>(&mut c, &["SET", "new", "n", "NX"]),
        Some("OK".into())
    );
    assert_eq!(
        cmd::<Option<String>>(&mut c, &["SET", "k", "v3", "XX", "GET"]),
        Some("v1".into())
    );
    assert_eq!(
        cmd::<Option<String>>(&mut c, &["SET", "fresh", "f", "GET"]),
        None
    );
    assert_eq!(
        cmd::<String>(&mut c, &["SET", "ex", "1", "EX", "100"]),
        "OK"
    );
    let ttl: i64 = cmd(&mut c, &["TTL", "ex"]);
    assert!((99..=100).contains(&ttl), "{ttl}");
    assert_eq!(
        cmd::<String>(&mut c, &["SET", "px", "1", "PX", "100000"]),
        "OK"
    );
    let pttl: i64 = cmd(&mut c, &["PTTL", "px"]);
    assert!((90_000..=100_000).contains(&pttl), "{pttl}");
    // KEEPTTL keeps the expiry; a plain SET clears it.
    assert_eq!(cmd::<String>(&mut c, &["SET", "px", "2", "KEEPTTL"]), "OK");
    assert!(cmd::<i64>(&mut c, &["PTTL", "px"]) > 0);
    assert_eq!(cmd::<String>(&mut c, &["GET", "px"]), "2");
    assert_eq!(cmd::<String>(&mut c, &["SET", "px", "3"]), "OK");
    assert_eq!(cmd::<i64>(&mut c, &["TTL", "px"]), -1);
    assert_eq!(cmd::<i64>(&mut c, &["TTL", "nothing"]), -2);
    // Absolute expiries: in the future, and in the past (the key is gone at once).
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let at = (now_s + 1000).to_string();
    assert_eq!(
        cmd::<String>(&mut c, &["SET", "exat", "1", "EXAT", &at]),
        "OK"
    );
    assert!(cmd::<i64>(&mut c, &["TTL", "exat"]) > 900);
    let at_ms = ((now_s + 1000) * 1000).to_string();
    assert_eq!(
        cmd::<String>(&mut c, &["SET", "pxat", "1", "PXAT", &at_ms]),
        "OK"
    );
    assert!(cmd::<i64>(&mut c, &["PTTL", "pxat"]) > 900_000);
    assert_eq!(
        cmd::<String>(&mut c, &["SET", "gone", "1", "PXAT", "1"]),
        "OK"
    );
    assert_eq!(cmd::<Option<String>>(&mut c, &["GET", "gone"]), None);
    assert!(err(&mut c, &["SET", "k", "v", "NX", "XX"]).contains("syntax error"));
    assert!(err(&mut c, &["SET", "k", "v", "EX", "0"]).contains("invalid expire time"));
    assert_eq!(cmd::<String>(&mut c, &["SETEX", "se", "100", "v"]), "OK");
    assert!(cmd::<i64>(&mut c, &["TTL", "se"]) > 90);
    assert_eq!(
        cmd::<String>(&mut c, &["PSETEX", "pse", "100000", "v"]),
        "OK"
    );
    assert!(cmd::<i64>(&mut c, &["PTTL", "pse"]) > 90_000);

    // MGET / EXISTS / DEL across shards.
    for i in 0..20 {
        assert_eq!(
            cmd::<String>(&mut c, &["SET", &format!("m{i}"), &i.to_string()]),
            "OK"
        );
    }
    let keys: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
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
    del.extend(["m1", "absent"]);
    assert_eq!(cmd::<i64>(&mut c, &del), 20);
    assert_eq!(cmd::<i64>(&mut c, &["EXISTS", "m1"]), 0);

    // EXPIRE / PEXPIRE with NX/XX/GT/LT, and PERSIST.
    assert_eq!(cmd::<String>(&mut c, &["SET", "e", "v"]), "OK");
    assert_eq!(cmd::<i64>(&mut c, &["EXPIRE", "e", "100", "XX"]), 0);
    assert_eq!(cmd::<i64>(&mut c, &["EXPIRE", "e", "100", "GT"]), 0);
    assert_eq!(cmd::<i64>(&mut c, &["EXPIRE", "e", "100", "NX"]), 1);
    assert_eq!(cmd::<i64>(&mut c, &["EXPIRE", "e", "200", "NX"]), 0);
    assert_eq!(cmd::<i64>(&mut c, &["EXPIRE", "e", "50", "GT"]), 0);
    assert_eq!(cmd::<i64>(&mut c, &["EXPIRE", "e", "200", "GT"]), 1);
    assert_eq!(cmd::<i64>(&mut c, &["PEXPIRE", "e", "300000", "LT"]), 0);
    assert_eq!(cmd::<i64>(&mut c, &["PEXPIRE", "e", "150000", "LT"]), 1);
    let pttl: i64 = cmd(&mut c, &["PTTL", "e"]);
    assert!((100_000..=150_000).contains(&pttl), "{pttl}");
    assert_eq!(cmd::<i64>(&mut c, &["PERSIST", "e"]), 1);
    assert_eq!(cmd::<i64>(&mut c, &["PERSIST", "e"]), 0);
    assert_eq!(cmd::<i64>(&mut c, &["TTL", "e"]), -1);
    assert_eq!(cmd::<i64>(&mut c, &["EXPIRE", "missing", "10"]), 0);
    assert!(err(&mut c, &["EXPIRE", "e", "10", "NX", "XX"]).contains("NX and XX, GT or LT"));
    assert_eq!(cmd::<i64>(&mut c, &["EXPIRE", "e", "-1"]), 1);
    assert_eq!(cmd::<i64>(&mut c, &["EXISTS", "e"]), 0);

    // DBSIZE and INFO come from every shard.
    let n: i64 = cmd(&mut c, &["DBSIZE"]);
    assert_eq!(n, cmd::<i64>(&mut c1, &["DBSIZE"]));
    assert!(n >= 8, "{n}");
    let info: String = cmd(&mut c, &["INFO"]);
    for needle in [
        "# Server",
        "# Clients",
        "# Stats",
        "# Keyspace",
        "redis_version:",
    ] {
        assert!(info.contains(needle), "{needle} missing from {info}");
    }
    assert!(info.contains(&format!("db0:keys={n},")), "{info}");
    let keyspace: String = cmd(&mut c, &["INFO", "keyspace"]);
    assert!(!keyspace.contains("# Server"));

    // Errors keep the connection open.
    assert!(err(&mut c, &["NOSUCH", "a"]).contains("unknown command"));
    assert!(err(&mut c, &["GET"]).contains("wrong number of arguments"));
    assert_eq!(cmd::<String>(&mut c, &["PING"]), "PONG");

    // HELLO 3 switches to RESP3; a RESP3 client works end to end.
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/?protocol=resp3")).unwrap();
    let mut c3 = client.get_connection().unwrap();
    assert_eq!(cmd::<String>(&mut c3, &["SET", "r3", "v"]), "OK");
    assert_eq!(cmd::<String>(&mut c3, &["GET", "r3"]), "v");
    assert_eq!(cmd::<i64>(&mut c3, &["TTL", "r3"]), -1);

    // Pipelining: replies come back in order.
    let mut pipe = redis::pipe();
    for i in 0..200 {
        pipe.cmd("SET").arg(format!("p{i}")).arg(i).ignore();
        pipe.cmd("GET").arg(format!("p{i}"));
    }
    let got: Vec<i64> = pipe.query(&mut c).unwrap();
    assert_eq!(got, (0..200).collect::<Vec<i64>>());
    // Pipelined overwrites of one key (absorbed into the last): each SET answers OK,
    // the last one wins, and a SET of another key in between is not lost.
    let mut pipe = redis::pipe();
    for i in 0..16 {
        pipe.cmd("SET").arg("same").arg(i);
        if i == 7 {
            pipe.cmd("SET").arg("other").arg("o");
        }
    }
    pipe.cmd("GET").arg("same").cmd("GET").arg("other");
    let got: Vec<String> = pipe.query(&mut c).unwrap();
    assert_eq!(got.len(), 19);
    assert!(got[..17].iter().all(|r| r == "OK"), "{got:?}");
    assert_eq!(got[17..], ["15", "o"]);
    // Pipelined GETs form one wave, served as one batch read per group: keys of both
    // shards, a missing key and a repeated one each get their own reply, in order.
    let mut pipe = redis::pipe();
    for i in (0..200).rev() {
        pipe.cmd("GET").arg(format!("p{i}"));
    }
    pipe.cmd("GET").arg("missing");
    pipe.cmd("GET").arg("p7").cmd("GET").arg("p7");
    let got: Vec<Option<i64>> = pipe.query(&mut c).unwrap();
    let mut want: Vec<Option<i64>> = (0..200).rev().map(Some).collect();
    want.extend([None, Some(7), Some(7)]);
    assert_eq!(got, want);

    // QUIT closes the connection after +OK.
    assert_eq!(cmd::<String>(&mut c1, &["QUIT"]), "OK");
}

#[test]
fn malformed_resp_closes_only_that_connection() {
    use std::io::Read;
    let (_tmp, _node, port) = start();
    let mut good = connect(port);
    assert_eq!(cmd::<String>(&mut good, &["SET", "a", "1"]), "OK");
    let mut bad = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    bad.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    bad.write_all(b"*1\r\n$x\r\n").unwrap();
    let mut answer = Vec::new();
    bad.read_to_end(&mut answer).unwrap();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("-ERR"), "{text}");
    // Inline commands work (telnet), and the other connection is untouched.
    let mut inline = std::net::TcpStream::connect(("127.0.0.1", port + 1)).unwrap();
    inline
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    inline.write_all(b"GET a\r\nQUIT\r\n").unwrap();
    let mut answer = Vec::new();
    inline.read_to_end(&mut answer).unwrap();
    assert_eq!(answer, b"$1\r\n1\r\n+OK\r\n");
    assert_eq!(cmd::<String>(&mut good, &["GET", "a"]), "1");
}

#[test]
fn redis_cli_scripted_session() {
    if !have("redis-cli") {
        return;
    }
    let (_tmp, _node, port) = start();
    let script = "SET a 1\nGET a\nSET a 2 NX\nSET a 3 XX GET\nEXPIRE a 100\nTTL a\n\
                  PERSIST a\nTTL a\nMGET a b\nEXISTS a b\nDEL a b\nDBSIZE\nPING\n";
    let mut child = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "OK", "1", "", "1", "1", "100", "1", "-1", "3", "", "1", "1", "0", "PONG"
        ],
        "{text}"
    );
}

#[test]
fn redis_benchmark_completes_without_errors() {
    if !have("redis-benchmark") {
        return;
    }
    let (_tmp, _node, port) = start();
    let out = Command::new("redis-benchmark")
        .args([
            "-p",
            &port.to_string(),
            "-t",
            "set,get",
            "-n",
            "20000",
            "-c",
            "20",
            "-q",
        ])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(!text.to_lowercase().contains("error"), "{text}");
    // The figures are printed, not asserted (no timing assertions in tests).
    let summary: Vec<&str> = text
        .split(['\r', '\n'])
        .filter(|l| l.contains("requests per second"))
        .collect();
    println!("{summary:?}");
    assert_eq!(summary.len(), 2, "{text}");
    // Every SET landed.
    let mut c = connect(port);
    assert_eq!(cmd::<i64>(&mut c, &["EXISTS", "key:__rand_int__"]), 1);
}

/// The value of `field` in an INFO text.
fn info_field(info: &str, field: &str) -> Option<u64> {
    info.split("\r\n")
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':')?.parse().ok())
}

#[test]
fn info_counts_expired_keys_and_traffic() {
    let (_tmp, _node, port) = start();
    let mut c = connect(port);
    let info: String = cmd(&mut c, &["INFO", "stats"]);
    assert_eq!(info_field(&info, "expired_keys"), Some(0), "{info}");
    assert_eq!(info_field(&info, "evicted_keys"), Some(0), "{info}");
    assert!(
        info_field(&info, "total_net_input_bytes").unwrap() > 0,
        "{info}"
    );
    for i in 0..10 {
        let k = format!("short{i}");
        // Long enough to be applied before it expires even on a loaded machine (a key
        // applied already expired is never stored, so never reclaimed).
        assert_eq!(cmd::<String>(&mut c, &["SET", &k, "v", "PX", "2000"]), "OK");
    }
    assert_eq!(
        cmd::<String>(&mut c, &["SET", "long", "v", "EX", "1000"]),
        "OK"
    );
    // The TTL tickers reclaim the 10 short-lived keys (not the long one).
    shoal_testkit::wait::wait_for(
        "INFO expired_keys to count the reclaimed keys",
        std::time::Duration::from_secs(30),
        std::time::Duration::from_millis(20),
        || {
            let info: String = cmd(&mut c, &["INFO", "stats"]);
            (info_field(&info, "expired_keys") == Some(10)).then_some(())
        },
    )
    .unwrap();
    assert_eq!(cmd::<i64>(&mut c, &["DBSIZE"]), 1);
    let info: String = cmd(&mut c, &["INFO", "stats"]);
    assert!(
        info_field(&info, "total_net_output_bytes").unwrap() > 0,
        "{info}"
    );
}

#[test]
fn the_shard_in_flight_cap_answers_busy() {
    use std::io::{BufRead, BufReader};
    // A cap of 2 commands in flight per shard (shared with the native protocol).
    let (_tmp, _node, port) = start_with(&["--max-in-flight-per-shard", "2"]);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    // 200 independent SETs in one write: they run concurrently as one pipelined batch.
    let n = 200;
    let mut batch = String::new();
    for i in 0..n {
        let k = format!("cap{i}");
        batch.push_str(&format!(
            "*3\r\n$3\r\nSET\r\n${}\r\n{k}\r\n$1\r\nv\r\n",
            k.len()
        ));
    }
    s.write_all(batch.as_bytes()).unwrap();
    let mut lines = BufReader::new(s.try_clone().unwrap());
    let (mut ok, mut busy) = (0, 0);
    for _ in 0..n {
        let mut line = String::new();
        lines.read_line(&mut line).unwrap();
        match line.as_str() {
            "+OK\r\n" => ok += 1,
            l if l.starts_with("-BUSY ") && l.contains("in flight") => busy += 1,
            other => panic!("unexpected reply {other:?}"),
        }
    }
    assert!(ok >= 2 && busy >= 1, "ok {ok}, busy {busy}");
    // The connection goes on; what was refused was not executed.
    let mut c = connect(port);
    assert_eq!(cmd::<i64>(&mut c, &["DBSIZE"]), ok);
}
