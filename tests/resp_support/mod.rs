//! What the RESP integration tests share: a `redis` crate connection, one command with
//! its expected success or error, and whether a Debian `redis-tools` binary is installed.
#![allow(dead_code)] // each test binary uses its own subset

use std::process::{Command, Stdio};
use std::time::Duration;

use redis::{Connection, Value};

/// A connection to the RESP port `port` on 127.0.0.1 (bounded connect).
pub fn connect(port: u16) -> Connection {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    client
        .get_connection_with_timeout(Duration::from_secs(10))
        .unwrap()
}

/// Runs `args` (command name first) and returns its reply as `T`; panics, naming the
/// command, on an error reply.
pub fn cmd<T: redis::FromRedisValue>(c: &mut Connection, args: &[&str]) -> T {
    command(args)
        .query(c)
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// Runs `args`, which must fail, and returns the error text.
pub fn err(c: &mut Connection, args: &[&str]) -> String {
    match command(args).query::<Value>(c) {
        Ok(v) => panic!("{args:?} answered {v:?}, expected an error"),
        Err(e) => e.to_string(),
    }
}

fn command(args: &[&str]) -> redis::Cmd {
    let mut command = redis::cmd(args[0]);
    for a in &args[1..] {
        command.arg(*a);
    }
    command
}

/// Whether `tool` runs; the Debian `redis-tools` are installed by `scripts/test`. Says
/// so when it does not (the caller then skips).
pub fn have(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIPPED: `{tool}` is not installed (Debian package redis-tools)");
    }
    ok
}
