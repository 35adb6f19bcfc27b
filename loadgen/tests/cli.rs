//! The binary's contract: clear usage errors (exit 2), fail-fast on unusable targets
//! (exit 3) with the reason, and a full run writing every output (exit 0).
#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::process::{Command, Output};

fn loadgen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn bad_flags_are_usage_errors_naming_the_flag() {
    for (args, needle) in [
        (
            vec!["--target", "null", "--concurrency", "0"],
            "--concurrency",
        ),
        (vec!["--target", "null", "--theta", "-1"], "--theta"),
        (
            vec!["--target", "null", "--keys", "100000", "--key-size", "3"],
            "--key-size",
        ),
        (vec!["--target", "null", "--rate", "0"], "--rate"),
        (
            vec!["--target", "null", "--workload", "a", "--read", "5"],
            "either --workload",
        ),
        (vec!["--target", "null", "--read", "-1"], "get ratio"),
        (vec!["--target", "null", "--duration", "ten"], "--duration"),
        (vec!["--target", "mongo"], "mongo"),
        (
            vec!["--target", "redis", "--endpoint", "a:1,b:2"],
            "exactly one --endpoint",
        ),
        (vec!["--target", "null", "--no-such-flag"], "--no-such-flag"),
        (
            vec!["--target", "floor-fsync", "--workload", "a"],
            "floor-fsync measures durable writes only",
        ),
        (
            vec!["--target", "shoal-remote", "--connections", "65"],
            "--connections",
        ),
        (
            vec!["--target", "null", "--endpoint", "x:1"],
            "takes no --endpoint",
        ),
        (
            vec!["--target", "floor-channel", "--shards", "1000"],
            "--shards",
        ),
        (vec![], "--target"),
    ] {
        let o = loadgen(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn shoal_remote_refused_connection_fails_fast_with_the_reason() {
    // A port that was just free: no node listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ep = format!("127.0.0.1:{port}");
    let o = loadgen(&[
        "--target",
        "shoal-remote",
        "--endpoint",
        &ep,
        "--connect-timeout",
        "1s",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("cannot use the target") && e.contains(&ep),
        "{e}"
    );
    assert!(e.to_lowercase().contains("refused"), "{e}");
}

#[test]
fn etcd_without_its_feature_explains_how_to_build_it() {
    if cfg!(feature = "etcd") {
        eprintln!("built with the etcd feature: nothing to check");
        return;
    }
    let o = loadgen(&["--target", "etcd"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("--features etcd"), "{}", stderr(&o));
}

#[test]
fn refused_connection_fails_fast_with_the_reason() {
    // A port that was just free: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ep = format!("127.0.0.1:{port}");
    let o = loadgen(&[
        "--target",
        "redis",
        "--endpoint",
        &ep,
        "--connect-timeout",
        "2s",
    ]);
    assert_eq!(o.status.code(), Some(3));
    let e = stderr(&o);
    assert!(
        e.contains("cannot use the target") && e.contains(&ep),
        "{e}"
    );
    assert!(e.to_lowercase().contains("refused"), "{e}");
}

#[test]
fn silent_endpoint_fails_after_the_connect_timeout() {
    // Listening but never accepting or answering: the TCP handshake completes through the
    // backlog, the PING preflight never gets an answer.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let ep = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
    let o = loadgen(&[
        "--target",
        "redis",
        "--endpoint",
        &ep,
        "--connect-timeout",
        "300ms",
    ]);
    assert_eq!(o.status.code(), Some(3));
    let e = stderr(&o);
    assert!(
        e.contains("no answer within 300 ms") || e.contains("timed out"),
        "{e}"
    );
    drop(listener);
}

#[test]
fn a_full_run_writes_report_json_hdr_and_plot() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    let (json, hdr, svg) = (p("r.json"), p("r.hlog"), p("r.svg"));
    let o = loadgen(&[
        "--target",
        "null",
        "--workload",
        "b",
        "--ops",
        "20000",
        "--warmup",
        "100ms",
        "--label",
        "cli test",
        "--json",
        &json,
        "--hdr",
        &hdr,
        "--plot",
        &svg,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("label: cli test") && out.contains("preset b"),
        "{out}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["kinds"].as_array().unwrap().last().unwrap()["ok"], 20000);
    assert_eq!(v["config"]["ops"], 20000);
    assert_eq!(v["config"]["target"], "null");
    assert!(std::fs::read_to_string(&hdr).unwrap().contains("Tag=get,"));
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
}

#[test]
fn quiet_suppresses_progress_lines() {
    let o = loadgen(&[
        "--target",
        "null",
        "--duration",
        "1200ms",
        "--warmup",
        "0s",
        "-q",
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert!(!stderr(&o).contains("ops/s"), "{}", stderr(&o));
    let o = loadgen(&["--target", "null", "--duration", "1200ms", "--warmup", "0s"]);
    assert!(
        stderr(&o).contains("ops/s"),
        "progress expected: {}",
        stderr(&o)
    );
}

#[test]
fn ctrl_c_stops_the_run_and_still_reports() {
    use shoal_testkit::process::ChildProcess;
    use shoal_testkit::wait::wait_for;
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("loadgen.log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_loadgen"));
    cmd.args(["--target", "null", "--duration", "10m", "--warmup", "0s"]);
    let mut child = ChildProcess::spawn("loadgen", cmd, &log).unwrap();
    wait_for(
        "first progress line",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || child.log().contains("ops/s").then_some(()),
    )
    .unwrap();
    let status = child.interrupt(Duration::from_secs(30)).unwrap();
    assert_eq!(status.code(), Some(0), "{}", child.log());
    let out = child.log();
    assert!(
        out.contains("INTERRUPTED") && out.contains("p99.9"),
        "{out}"
    );
}
