//! The history model: what a test run observed, as plain data.
//!
//! Owns `Operation` (one client call: who, when, what, how it ended), `Op`, `Outcome`,
//! `Blob` (keys and values) and `History` with its JSON-lines form.
//!
//! Invariants and conventions:
//! - All times and durations are **nanoseconds on one monotonic clock of the test
//!   harness** (the `Recorder` uses `Instant` relative to its start). `invoke_ns` is read
//!   before the request is sent, `complete_ns` after the answer arrived.
//! - A valid operation has `invoke_ns <= complete_ns` unless its outcome is `Unknown` (then
//!   `complete_ns` is only informative: the checker treats the completion as +infinity).
//! - The outcome fits the op: writes end `Ok`, `get` ends `Read`, `get_multi` ends
//!   `ReadMulti` with one result per key; any op may end `Failed` or `Unknown`.
//! - `PutWithTtl` records the TTL the client asked for, not an absolute expiry: the leader
//!   turns it into `leader_now + ttl` and the client never learns that instant. The model
//!   (`model.rs`) places the expiry at the put's linearization point + ttl, +- the clock
//!   uncertainty.
//! - The JSON-lines form holds one `Operation` per line, in any order.

use std::fmt;
use std::io::{BufRead, Write};

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{CheckerError, InvalidOp};
use crate::limits::MAX_HISTORY_OPS;

/// Nanoseconds on the harness's monotonic clock.
pub type Time = u64;
/// Identifies a test client (a logical process: one outstanding call at a time or not,
/// the checker does not rely on it).
pub type ClientId = u64;

/// A key or a value: arbitrary bytes. Serialized as a JSON string when it is UTF-8, else
/// as `{"hex": "..."}`, so saved histories stay readable.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Blob(pub Bytes);

impl Blob {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl From<&str> for Blob {
    fn from(s: &str) -> Self {
        Blob(Bytes::copy_from_slice(s.as_bytes()))
    }
}
impl From<String> for Blob {
    fn from(s: String) -> Self {
        Blob(Bytes::from(s))
    }
}
impl From<&[u8]> for Blob {
    fn from(b: &[u8]) -> Self {
        Blob(Bytes::copy_from_slice(b))
    }
}
impl From<Vec<u8>> for Blob {
    fn from(b: Vec<u8>) -> Self {
        Blob(Bytes::from(b))
    }
}
impl From<Bytes> for Blob {
    fn from(b: Bytes) -> Self {
        Blob(b)
    }
}

/// How many bytes of a blob `Display` shows before eliding the rest.
const DISPLAY_MAX_BYTES: usize = 48;

impl fmt::Display for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = &self.0[..self.0.len().min(DISPLAY_MAX_BYTES)];
        match std::str::from_utf8(shown) {
            Ok(s) if !s.chars().any(char::is_control) => write!(f, "{s:?}")?,
            _ => write!(f, "0x{}", hex::encode(shown))?,
        }
        if self.0.len() > DISPLAY_MAX_BYTES {
            write!(f, "..({} bytes)", self.0.len())?;
        }
        Ok(())
    }
}

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum BlobRepr {
    Text(String),
    Hex { hex: String },
}

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(text) => BlobRepr::Text(text.to_owned()).serialize(s),
            Err(_) => BlobRepr::Hex {
                hex: hex::encode(&self.0),
            }
            .serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match BlobRepr::deserialize(d)? {
            BlobRepr::Text(t) => Ok(Blob::from(t)),
            BlobRepr::Hex { hex } => hex::decode(hex)
                .map(Blob::from)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// The call a client made (the arguments of a `KvClient` method).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Put {
        key: Blob,
        value: Blob,
    },
    /// `ttl_ns` is the TTL the client asked for, in nanoseconds (the KvClient API takes
    /// seconds: multiply by 1e9).
    PutWithTtl {
        key: Blob,
        value: Blob,
        ttl_ns: u64,
    },
    Get {
        key: Blob,
    },
    GetMulti {
        keys: Vec<Blob>,
    },
    Delete {
        key: Blob,
    },
}

impl Op {
    /// `put(key, value)`.
    pub fn put(key: impl Into<Blob>, value: impl Into<Blob>) -> Op {
        Op::Put {
            key: key.into(),
            value: value.into(),
        }
    }
    /// `put_with_ttl(key, value, ttl)` with the TTL in nanoseconds.
    pub fn put_with_ttl(key: impl Into<Blob>, value: impl Into<Blob>, ttl_ns: u64) -> Op {
        Op::PutWithTtl {
            key: key.into(),
            value: value.into(),
            ttl_ns,
        }
    }
    /// `get(key)`.
    pub fn get(key: impl Into<Blob>) -> Op {
        Op::Get { key: key.into() }
    }
    /// `get_multi(keys)`.
    pub fn get_multi<K: Into<Blob>>(keys: impl IntoIterator<Item = K>) -> Op {
        Op::GetMulti {
            keys: keys.into_iter().map(Into::into).collect(),
        }
    }
    /// `delete(key)`.
    pub fn delete(key: impl Into<Blob>) -> Op {
        Op::Delete { key: key.into() }
    }

    /// The operation's name, as in the JSON form.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Put { .. } => "put",
            Op::PutWithTtl { .. } => "put_with_ttl",
            Op::Get { .. } => "get",
            Op::GetMulti { .. } => "get_multi",
            Op::Delete { .. } => "delete",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Put { key, value } => write!(f, "put({key}, {value})"),
            Op::PutWithTtl { key, value, ttl_ns } => {
                write!(f, "put_with_ttl({key}, {value}, ttl {})", fmt_ns(*ttl_ns))
            }
            Op::Get { key } => write!(f, "get({key})"),
            Op::GetMulti { keys } => {
                write!(f, "get_multi(")?;
                for (i, k) in keys.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{k}")?;
                }
                write!(f, ")")
            }
            Op::Delete { key } => write!(f, "delete({key})"),
        }
    }
}

/// How a call ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A write (`put`, `put_with_ttl`, `delete`) was acknowledged: it took effect.
    Ok,
    /// A `get` answered this value (`None`: absent or expired).
    Read(Option<Blob>),
    /// A `get_multi` answered these values, one per key in order.
    ReadMulti(Vec<Option<Blob>>),
    /// The call definitely did not take effect (e.g. rejected before being proposed).
    Failed,
    /// The call may or may not have taken effect, at any time after its invocation
    /// (timeout, connection lost, node crashed). When in doubt, record this.
    Unknown,
}

impl Outcome {
    /// The outcome's name, as in the JSON form.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Read(_) => "read",
            Outcome::ReadMulti(_) => "read_multi",
            Outcome::Failed => "failed",
            Outcome::Unknown => "unknown",
        }
    }
}

/// One client call as observed by the harness.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    pub client: ClientId,
    /// When the call was issued (harness clock, ns).
    pub invoke_ns: Time,
    /// When the answer arrived (or, for `Unknown`, when the client gave up).
    pub complete_ns: Time,
    pub op: Op,
    pub outcome: Outcome,
}

impl Operation {
    /// Builds an operation; see the field docs.
    pub fn new(
        client: ClientId,
        invoke_ns: Time,
        complete_ns: Time,
        op: Op,
        outcome: Outcome,
    ) -> Self {
        Operation {
            client,
            invoke_ns,
            complete_ns,
            op,
            outcome,
        }
    }

    /// Checks the invariants stated in the module docs.
    pub fn validate(&self) -> Result<(), InvalidOp> {
        if self.outcome != Outcome::Unknown && self.complete_ns < self.invoke_ns {
            return Err(InvalidOp::CompleteBeforeInvoke {
                invoke_ns: self.invoke_ns,
                complete_ns: self.complete_ns,
            });
        }
        let fits = match (&self.op, &self.outcome) {
            (_, Outcome::Failed | Outcome::Unknown) => true,
            (Op::Put { .. } | Op::PutWithTtl { .. } | Op::Delete { .. }, Outcome::Ok) => true,
            (Op::Get { .. }, Outcome::Read(_)) => true,
            (Op::GetMulti { keys }, Outcome::ReadMulti(values)) => {
                if keys.len() != values.len() {
                    return Err(InvalidOp::ReadMultiLength {
                        keys: keys.len(),
                        results: values.len(),
                    });
                }
                true
            }
            _ => false,
        };
        if fits {
            Ok(())
        } else {
            Err(InvalidOp::OutcomeMismatch {
                op: self.op.name(),
                outcome: self.outcome.name(),
            })
        }
    }
}

/// A whole run: every operation every client made.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    pub ops: Vec<Operation>,
}

impl History {
    /// An empty history.
    pub fn new() -> Self {
        History::default()
    }

    /// Appends an operation.
    pub fn push(&mut self, op: Operation) {
        self.ops.push(op);
    }

    /// Checks every operation and the size limit.
    pub fn validate(&self) -> Result<(), CheckerError> {
        if self.ops.len() > MAX_HISTORY_OPS {
            return Err(CheckerError::TooManyOperations {
                ops: self.ops.len(),
                limit: MAX_HISTORY_OPS,
            });
        }
        for (index, op) in self.ops.iter().enumerate() {
            op.validate()
                .map_err(|problem| CheckerError::InvalidOperation { index, problem })?;
        }
        Ok(())
    }

    /// Reads a history from JSON lines (one `Operation` per line; blank lines are
    /// skipped) and validates it.
    pub fn read_jsonl(reader: impl BufRead) -> Result<History, CheckerError> {
        let mut history = History::new();
        for (i, line) in reader.lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let op = serde_json::from_str(&line).map_err(|source| CheckerError::Json {
                line: i + 1,
                source,
            })?;
            history.push(op);
            if history.ops.len() > MAX_HISTORY_OPS {
                return Err(CheckerError::TooManyOperations {
                    ops: history.ops.len(),
                    limit: MAX_HISTORY_OPS,
                });
            }
        }
        history.validate()?;
        Ok(history)
    }

    /// Writes the history as JSON lines, one operation per line.
    pub fn write_jsonl(&self, mut writer: impl Write) -> Result<(), CheckerError> {
        for (index, op) in self.ops.iter().enumerate() {
            serde_json::to_writer(&mut writer, op)
                .map_err(|source| CheckerError::Serialize { index, source })?;
            writer.write_all(b"\n")?;
        }
        writer.flush()?;
        Ok(())
    }
}

/// Formats nanoseconds for humans (`1.500ms`, `3s`, `250ns`).
pub(crate) fn fmt_ns(ns: u64) -> String {
    if ns == u64::MAX {
        "inf".to_owned()
    } else if ns >= 1_000_000_000 {
        format!("{:.3}s", ns as f64 / 1e9)
    } else if ns >= 1_000_000 {
        format!("{:.3}ms", ns as f64 / 1e6)
    } else if ns >= 1_000 {
        format!("{:.3}us", ns as f64 / 1e3)
    } else {
        format!("{ns}ns")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_round_trip_keeps_every_field_and_binary_blobs() {
        let mut h = History::new();
        h.push(Operation::new(1, 10, 20, Op::put("k", "v"), Outcome::Ok));
        h.push(Operation::new(
            2,
            15,
            u64::MAX,
            Op::put_with_ttl(&b"\xff\x00k"[..], "v2", 5_000),
            Outcome::Unknown,
        ));
        h.push(Operation::new(
            3,
            30,
            40,
            Op::get("k"),
            Outcome::Read(Some("v".into())),
        ));
        h.push(Operation::new(
            3,
            50,
            60,
            Op::get_multi(["k", "j"]),
            Outcome::ReadMulti(vec![None, Some(Blob::from(&b"\x01"[..]))]),
        ));
        h.push(Operation::new(4, 70, 80, Op::delete("k"), Outcome::Failed));
        let mut buf = Vec::new();
        h.write_jsonl(&mut buf).unwrap();
        let text = String::from_utf8(buf.clone()).unwrap();
        assert!(text.contains(r#"{"hex":"ff006b"}"#), "{text}");
        assert_eq!(text.lines().count(), 5);
        let back = History::read_jsonl(&buf[..]).unwrap();
        assert_eq!(back, h);
    }

    #[test]
    fn malformed_operations_are_rejected_with_their_index() {
        let mut h = History::new();
        h.push(Operation::new(1, 10, 20, Op::put("k", "v"), Outcome::Ok));
        h.push(Operation::new(1, 30, 25, Op::get("k"), Outcome::Read(None)));
        match h.validate() {
            Err(CheckerError::InvalidOperation { index: 1, problem }) => assert_eq!(
                problem,
                InvalidOp::CompleteBeforeInvoke {
                    invoke_ns: 30,
                    complete_ns: 25
                }
            ),
            other => panic!("unexpected {other:?}"),
        }
        let bad = Operation::new(1, 1, 2, Op::put("k", "v"), Outcome::Read(None));
        assert!(matches!(
            bad.validate(),
            Err(InvalidOp::OutcomeMismatch { .. })
        ));
        let bad = Operation::new(
            1,
            1,
            2,
            Op::get_multi(["a", "b"]),
            Outcome::ReadMulti(vec![None]),
        );
        assert_eq!(
            bad.validate(),
            Err(InvalidOp::ReadMultiLength {
                keys: 2,
                results: 1
            })
        );
        // Unknown outcomes may carry any completion time.
        let ok = Operation::new(1, 5, 0, Op::put("k", "v"), Outcome::Unknown);
        assert_eq!(ok.validate(), Ok(()));
    }

    #[test]
    fn bad_json_names_its_line() {
        let text = "\n{\"client\":1}\n";
        match History::read_jsonl(text.as_bytes()) {
            Err(CheckerError::Json { line: 2, .. }) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}
