//! Errors of the shard state machine, one narrow enum per place a caller branches.
//!
//! - [`CommandError`]: a command is invalid (a limit exceeded) or its bytes do not decode.
//!   Raised by `Command::decode` and carried inside `ApplyResult::Rejected`.
//! - [`SnapshotError`]: building or restoring a snapshot failed; decoding never panics,
//!   every malformed input maps to one of these variants.
//! - [`StateError`]: the Raft layer broke an ordering rule (log ids must increase).

use shoal_proto::limits;
use thiserror::Error;

/// A command that is malformed or breaks a limit. Deterministic: the same bytes or the
/// same command give the same error on every replica.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CommandError {
    /// The key is longer than `limits::MAX_KEY_LEN`.
    #[error("key of {len} bytes exceeds MAX_KEY_LEN ({max})", max = limits::MAX_KEY_LEN)]
    KeyTooLong { len: usize },
    /// The value is longer than `limits::MAX_VALUE_LEN`.
    #[error("value of {len} bytes exceeds MAX_VALUE_LEN ({max})", max = limits::MAX_VALUE_LEN)]
    ValueTooLong { len: usize },
    /// The buffer ended before the command did.
    #[error("command truncated: needed {needed} more bytes at offset {offset}")]
    Truncated { offset: usize, needed: usize },
    /// The first byte names an encoding version this build does not know.
    #[error("unknown command encoding version {0}")]
    UnknownVersion(u8),
    /// The opcode byte names no command.
    #[error("unknown command opcode {0}")]
    UnknownOpcode(u8),
    /// A length varint is longer than 5 bytes or does not fit in 32 bits.
    #[error("malformed length varint at offset {offset}")]
    BadVarint { offset: usize },
    /// A flag byte has unknown bits or an invalid combination.
    #[error("invalid command flags {0:#04x}")]
    BadFlags(u8),
    /// A multi-key command names no key or more than `limits::MAX_BATCH_KEYS`.
    #[error("command with {count} keys (1 to {max} allowed)", max = limits::MAX_BATCH_KEYS)]
    BadBatch { count: usize },
    /// Bytes remain after a complete command.
    #[error("{extra} trailing bytes after the command")]
    TrailingBytes { extra: usize },
}

/// Building or decoding a snapshot failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SnapshotError {
    /// `begin_snapshot` while another snapshot is being built.
    #[error("a snapshot is already being built")]
    InProgress,
    /// `snapshot_step` with no snapshot being built.
    #[error("no snapshot is being built")]
    NotStarted,
    /// The opaque metadata given to `begin_snapshot` is too large.
    #[error("snapshot metadata of {len} bytes exceeds {max}")]
    MetaTooLarge { len: usize, max: usize },
    /// The stream does not start with the snapshot magic.
    #[error("not a shoal snapshot (bad magic)")]
    BadMagic,
    /// The stream's format version is not one this build reads.
    #[error("unsupported snapshot format version {0}")]
    UnsupportedVersion(u32),
    /// A frame announces a payload larger than the format allows.
    #[error("frame {frame} announces {len} bytes, more than the limit {max}")]
    FrameTooLarge { frame: u64, len: u64, max: u64 },
    /// A frame's CRC does not match its bytes (or it sits at the wrong position).
    #[error("checksum mismatch in frame {frame}")]
    Checksum { frame: u64 },
    /// A frame of an unexpected kind (e.g. data before the header, anything after the end).
    #[error("unexpected frame kind {kind} at frame {frame}")]
    UnexpectedFrame { frame: u64, kind: u8 },
    /// An rkyv payload failed validation.
    #[error("frame {frame}: invalid payload: {reason}")]
    InvalidPayload { frame: u64, reason: String },
    /// A decoded entry breaks a limit or the format's rules.
    #[error("frame {frame}: invalid entry: {reason}")]
    InvalidEntry { frame: u64, reason: &'static str },
    /// The same key appears twice.
    #[error("duplicate key in frame {frame}")]
    DuplicateKey { frame: u64 },
    /// The trailer's totals disagree with what was read.
    #[error("trailer mismatch: {reason}")]
    TrailerMismatch { reason: &'static str },
    /// The stream ended before the trailer.
    #[error("snapshot truncated (no trailer after {frames} frames)")]
    Truncated { frames: u64 },
    /// Bytes follow the trailer.
    #[error("{extra} bytes after the snapshot trailer")]
    TrailingBytes { extra: usize },
}

/// The Raft layer broke an ordering rule of the state machine.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StateError {
    /// Entries must be applied with strictly increasing log indexes.
    #[error("log index {got} applied after {last}: indexes must increase")]
    OutOfOrder { last: u64, got: u64 },
}
