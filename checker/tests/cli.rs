//! The `shoal-check` binary on saved histories: verdict printed, exit status per verdict.

// Test helpers outside #[test] fns may unwrap too (clippy.toml allows it only inside them).
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::process::Command;

use shoal_checker::{History, Op, Operation, Outcome};

const MS: u64 = 1_000_000;

fn run(history_text: &[u8], extra: &[&str]) -> (i32, String, String) {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(history_text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_shoal-check"))
        .arg(file.path())
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn jsonl(h: &History) -> Vec<u8> {
    let mut buf = Vec::new();
    h.write_jsonl(&mut buf).unwrap();
    buf
}

fn base() -> History {
    let mut h = History::new();
    h.push(Operation::new(1, 0, MS, Op::put("k", "a"), Outcome::Ok));
    h.push(Operation::new(
        1,
        2 * MS,
        3 * MS,
        Op::put("k", "b"),
        Outcome::Ok,
    ));
    h
}

#[test]
fn linearizable_history_exits_zero() {
    let mut h = base();
    h.push(Operation::new(
        2,
        4 * MS,
        5 * MS,
        Op::get("k"),
        Outcome::Read(Some("b".into())),
    ));
    let (code, out, _) = run(&jsonl(&h), &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("LINEARIZABLE"), "{out}");
    assert!(out.contains("3 ops"), "{out}");
}

#[test]
fn violation_exits_one_and_explains() {
    let mut h = base();
    h.push(Operation::new(
        2,
        4 * MS,
        5 * MS,
        Op::get("k"),
        Outcome::Read(Some("a".into())),
    ));
    let (code, out, _) = run(&jsonl(&h), &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("NOT LINEARIZABLE"), "{out}");
    assert!(out.contains("key \"k\" is not linearizable"), "{out}");
    assert!(out.contains("#2 client 2"), "{out}");
}

#[test]
fn clock_uncertainty_flag_is_applied() {
    let mut h = History::new();
    h.push(Operation::new(
        1,
        0,
        MS,
        Op::put_with_ttl("s", "x", 100 * MS),
        Outcome::Ok,
    ));
    h.push(Operation::new(
        2,
        120 * MS,
        121 * MS,
        Op::get("s"),
        Outcome::Read(Some("x".into())),
    ));
    let text = jsonl(&h);
    assert_eq!(run(&text, &["--clock-uncertainty-ms", "5"]).0, 1);
    assert_eq!(run(&text, &["--clock-uncertainty-ms", "30"]).0, 0);
}

#[test]
fn tiny_budget_exits_two() {
    // Duplicate values (no pruning) on concurrent writes, then impossible reads.
    let mut h = History::new();
    for i in 0..12u64 {
        h.push(Operation::new(
            i,
            0,
            10 * MS,
            Op::put("hot", format!("v{}", i % 6)),
            Outcome::Ok,
        ));
    }
    for i in 0..6u64 {
        let t = (20 + 2 * i) * MS;
        h.push(Operation::new(
            99,
            t,
            t + MS,
            Op::get("hot"),
            Outcome::Read(Some(format!("v{i}").into())),
        ));
    }
    let (code, out, _) = run(&jsonl(&h), &["--max-steps-per-key", "100"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.starts_with("COULD NOT DECIDE"), "{out}");
}

#[test]
fn malformed_input_exits_three_naming_the_line() {
    let (code, _, err) = run(b"{\"client\":1,\"invoke_ns\":0}\n", &[]);
    assert_eq!(code, 3);
    assert!(err.contains("line 1"), "{err}");
    let mut h = base();
    h.ops[1].complete_ns = 0; // completes before it started
    let (code, _, err) = run(&jsonl(&h), &[]);
    assert_eq!(code, 3);
    assert!(err.contains("operation #1"), "{err}");
}
