//! The command-line client against a running node: put (argument and stdin, with TTL),
//! get (one key raw, several keys, missing keys), del, ping, and the exit codes scripts
//! rely on (0 ok, 1 not found, 2 usage, 3 unreachable).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod node_support;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use node_support::NodeProcess;

fn shoal(node_addr: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shoal"));
    cmd.args(args)
        .args(["--addr", node_addr])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        input.write_all(bytes).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

#[test]
fn put_get_del_and_exit_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut node = NodeProcess::start(&tmp.path().join("data"), 2, &[]);
    let addr = node.client_addr.to_string();

    let out = shoal(&addr, &["put", "greeting", "hello world"], None);
    assert!(out.status.success(), "{out:?}");
    let out = shoal(&addr, &["get", "greeting"], None);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // Not a terminal: the value's exact bytes, no newline added.
    assert_eq!(out.stdout, b"hello world");

    // Binary value through stdin, read back raw.
    let binary: Vec<u8> = (0..=255u8).collect();
    let out = shoal(&addr, &["put", "blob", "-"], Some(&binary));
    assert!(out.status.success(), "{out:?}");
    let out = shoal(&addr, &["get", "--raw", "blob"], None);
    assert_eq!(out.stdout, binary);

    // Several keys, one missing: tab-separated lines, exit 1.
    let out = shoal(&addr, &["get", "greeting", "nope"], None);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "greeting\thello world\nnope\t(not found)\n"
    );

    let out = shoal(&addr, &["put", "short", "lived", "--ttl", "100"], None);
    assert!(out.status.success(), "{out:?}");
    let out = shoal(&addr, &["del", "greeting", "never-existed"], None);
    assert!(out.status.success(), "{out:?}");
    let out = shoal(&addr, &["get", "greeting"], None);
    assert_eq!(out.status.code(), Some(1), "{out:?}");

    let out = shoal(&addr, &["ping"], None);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("pong"));

    // Usage errors: exit 2. A TTL of 0 is refused before anything is sent.
    let out = shoal(&addr, &["put", "k", "v", "--ttl", "0"], None);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = shoal(&addr, &["get"], None);
    assert_eq!(out.status.code(), Some(2), "{out:?}");

    node.process.kill().unwrap();
    // Unreachable node: exit 3 within the timeout.
    let out = shoal(&addr, &["get", "k", "--timeout-ms", "500"], None);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
}
