//! Errors of the checker crate: reading a history and rejecting a malformed one.
//!
//! Invariant: every error names where it came from (a JSON line number or an operation
//! index), so a user can find the faulty record in a saved history. Verdicts are *not*
//! errors: "not linearizable" and "could not decide" are ordinary results (`checker.rs`).

use thiserror::Error;

/// Everything that can go wrong before the search runs.
#[derive(Debug, Error)]
pub enum CheckerError {
    /// The history file could not be read or written.
    #[error("history I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A JSON line could not be parsed as an operation (`line` is 1-based).
    #[error("history line {line}: {source}")]
    Json {
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    /// An operation could not be serialized (should not happen for well-formed values).
    #[error("serializing operation #{index}: {source}")]
    Serialize {
        index: usize,
        #[source]
        source: serde_json::Error,
    },
    /// An operation is malformed (`index` is its 0-based position in the history).
    #[error("operation #{index}: {problem}")]
    InvalidOperation { index: usize, problem: InvalidOp },
    /// The history is larger than the checker's limits (see `limits`).
    #[error("history has {ops} operations, more than the limit of {limit}")]
    TooManyOperations { ops: usize, limit: usize },
}

/// Why a single operation is malformed; callers (and tests) may branch on it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InvalidOp {
    /// A completed operation finished before it started.
    #[error("completes at {complete_ns} ns, before its invocation at {invoke_ns} ns")]
    CompleteBeforeInvoke { invoke_ns: u64, complete_ns: u64 },
    /// The outcome kind does not fit the operation (e.g. a `read` result for a `put`).
    #[error("outcome `{outcome}` does not fit operation `{op}`")]
    OutcomeMismatch {
        op: &'static str,
        outcome: &'static str,
    },
    /// A `get_multi` answered a different number of values than keys asked.
    #[error("get_multi asked {keys} keys but {results} results were recorded")]
    ReadMultiLength { keys: usize, results: usize },
}
