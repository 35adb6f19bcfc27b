//! The WAL's error type. Owns every way a WAL call can fail.
//!
//! Invariants: errors are `Clone` so one poisoning failure can be handed to every waiter
//! of a group commit; I/O errors are kept behind an `Arc` for that reason. A corruption
//! error always names the file and the byte offset where the scan stopped.

use std::sync::Arc;

/// Result alias of the crate.
pub type Result<T, E = WalError> = std::result::Result<T, E>;

/// Everything a WAL call can fail with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WalError {
    /// The operating system refused an operation. Writes, syncs and directory syncs that
    /// fail this way also poison the WAL.
    #[error("WAL I/O error during {op}: {source}")]
    Io {
        /// What the WAL was doing.
        op: &'static str,
        /// The underlying error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// An earlier write or sync failed; the WAL refuses every call from then on, because
    /// the state of the disk is unknown and retrying a failed fsync can lose data silently.
    #[error("WAL is poisoned by an earlier failure: {0}")]
    Poisoned(Arc<WalError>),
    /// The WAL was closed or dropped before the operation became durable.
    #[error("WAL is closed")]
    Closed,
    /// Damaged data before the last durable point: the WAL refuses to open (or to serve
    /// the read) rather than drop anything silently.
    #[error("WAL corruption in {file} at byte offset {offset}: {reason}")]
    Corruption {
        /// File name inside the WAL directory.
        file: String,
        /// Byte offset inside that file.
        offset: u64,
        /// What check failed.
        reason: String,
    },
    /// A record index that is not strictly above the last one (or below the purge floor).
    #[error("index {index} out of order: it must be at least {min}")]
    IndexOrder {
        /// The index given.
        index: u64,
        /// The least index acceptable at that point.
        min: u64,
    },
    /// A read outside the live range of the log.
    #[error("indices {lo}..{hi} are not in the log (live range {first}..{end})")]
    OutOfRange {
        /// Requested start (inclusive).
        lo: u64,
        /// Requested end (exclusive).
        hi: u64,
        /// First live index (or the floor when the log is empty).
        first: u64,
        /// One past the last live index.
        end: u64,
    },
    /// A payload or metadata record larger than its configured limit.
    #[error("{what} of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Which limit.
        what: &'static str,
        /// Size given.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The configuration breaks one of its rules.
    #[error("invalid WAL configuration: {0}")]
    Config(String),
}

impl WalError {
    /// Wraps an I/O error, naming the operation.
    pub fn io(op: &'static str, source: std::io::Error) -> Self {
        WalError::Io {
            op,
            source: Arc::new(source),
        }
    }

    /// Builds a corruption error.
    pub fn corruption(file: impl Into<String>, offset: u64, reason: impl Into<String>) -> Self {
        WalError::Corruption {
            file: file.into(),
            offset,
            reason: reason.into(),
        }
    }
}
