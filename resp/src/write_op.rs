//! What each data command needs from the store, as plain values the node executes.
//!
//! Reads (`ReadOp`) are served linearizably by the key's shard at time `now_ms`. Writes
//! (`WriteOp`) are proposed through Raft as ONE state-machine command each, so
//! conditional and TTL-changing commands stay atomic and linearizable: the condition is
//! checked and the change applied in the same apply step, on every replica alike.
//!
//! Time: a `Write` carries `now_ms`, the leader's clock (Unix milliseconds) when it
//! proposes. Relative TTLs are already turned into absolute `expire_at_ms` with it, and
//! the state machine uses it (never its own clock) to decide whether a key is live when
//! checking a condition, so every replica decides the same. An `expire_at_ms <= now_ms`
//! makes the key invisible at once, which is how Redis's "expire in the past deletes the
//! key" is expressed.
//!
//! Multi-key ops (`MGet`, `Exists`, `Delete`) may span shards: the node splits them by
//! shard, runs one op per shard, and combines the outcomes (counts add up; MGET values
//! are put back in request order). Each shard's part is atomic; the whole is not, unlike
//! Redis's single-threaded DEL.

use bytes::Bytes;

use crate::command::TimeUnit;
use crate::errors::ErrorReply;
use crate::reply::Reply;
use crate::set_options::{ExpireCondition, SetCondition};

/// A read the node serves from the key's shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOp {
    /// GET: the value or absent. Outcome: `ReadOutcome::Value`.
    Get {
        /// Key.
        key: Bytes,
    },
    /// MGET: each value or absent, in order. Outcome: `ReadOutcome::Values`.
    MGet {
        /// Keys (at most `MAX_BATCH_KEYS`).
        keys: Vec<Bytes>,
    },
    /// EXISTS: how many of the keys exist, counting repeats. Outcome: `ReadOutcome::Count`.
    Exists {
        /// Keys (at most `MAX_BATCH_KEYS`).
        keys: Vec<Bytes>,
    },
    /// TTL / PTTL: the key's expiry. Outcome: `ReadOutcome::Ttl`.
    Ttl {
        /// Key.
        key: Bytes,
        /// Reply unit.
        unit: TimeUnit,
    },
}

impl ReadOp {
    /// The key(s) the read touches, for routing to shards.
    pub fn keys(&self) -> &[Bytes] {
        match self {
            ReadOp::Get { key } | ReadOp::Ttl { key, .. } => std::slice::from_ref(key),
            ReadOp::MGet { keys } | ReadOp::Exists { keys } => keys,
        }
    }
}

/// A read and the time it is served at (keys whose expiry is `<= now_ms` are absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    /// Serving time, Unix milliseconds.
    pub now_ms: u64,
    /// What to read.
    pub op: ReadOp,
}

/// A key's expiry as the store reports it for TTL/PTTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtlLookup {
    /// No such (live) key.
    Missing,
    /// The key never expires.
    NoExpiry,
    /// The key expires at this Unix time in milliseconds.
    ExpiresAt(u64),
}

/// What the store answered to a `ReadOp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOutcome {
    /// For `Get`.
    Value(Option<Bytes>),
    /// For `MGet`, one per key in request order.
    Values(Vec<Option<Bytes>>),
    /// For `Exists`.
    Count(u64),
    /// For `Ttl`.
    Ttl(TtlLookup),
}

/// What a SET does to the TTL of the key it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtlUpdate {
    /// The key ends with no TTL.
    Clear,
    /// KEEPTTL: the key keeps its current TTL (none if it did not exist).
    Keep,
    /// The key expires at this Unix time in milliseconds.
    ExpireAt(u64),
}

/// One state-machine write, applied atomically through Raft.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// Plain `SET k v`: store the value, drop any TTL. Outcome: `Done`.
    Put {
        /// Key.
        key: Bytes,
        /// Value.
        value: Bytes,
    },
    /// `SET k v EX|PX|EXAT|PXAT`, `SETEX`, `PSETEX`: store the value with this absolute
    /// expiry. Outcome: `Done`.
    PutWithExpiry {
        /// Key.
        key: Bytes,
        /// Value.
        value: Bytes,
        /// Unix milliseconds.
        expire_at_ms: u64,
    },
    /// SET with NX, XX, GET or KEEPTTL. The state machine, in one step: reads the live
    /// old value (live at `now_ms`); checks `condition` (IfAbsent: no live key; IfPresent:
    /// a live key); if it holds, stores `value` and applies `ttl`; returns whether it
    /// stored and, when `return_old`, the old value. Outcome: `Set`.
    ConditionalSet {
        /// Key.
        key: Bytes,
        /// Value.
        value: Bytes,
        /// NX / XX / none.
        condition: SetCondition,
        /// TTL after the write.
        ttl: TtlUpdate,
        /// GET option: return the old value.
        return_old: bool,
    },
    /// DEL: remove the keys that are live; count each removed key once (a key named
    /// twice counts once). Outcome: `Deleted`.
    Delete {
        /// Keys (at most `MAX_BATCH_KEYS`).
        keys: Vec<Bytes>,
    },
    /// EXPIRE / PEXPIRE: if the key is live and `condition` holds, set its expiry to
    /// `expire_at_ms` (`<= now_ms` removes it at once). Condition, with `current` the
    /// key's expiry or none: NX needs none; XX needs one; GT needs one and
    /// `expire_at_ms > current`; LT needs none or `expire_at_ms < current`. Outcome:
    /// `Changed(applied)`.
    SetExpiry {
        /// Key.
        key: Bytes,
        /// Unix milliseconds; 0 stands for any time in the past.
        expire_at_ms: u64,
        /// NX/XX/GT/LT (XX may combine with GT or LT).
        condition: ExpireCondition,
    },
    /// PERSIST: if the key is live and has a TTL, remove the TTL. Outcome:
    /// `Changed(removed)`.
    Persist {
        /// Key.
        key: Bytes,
    },
}

impl WriteOp {
    /// The key(s) the op touches, for routing to shards.
    pub fn keys(&self) -> &[Bytes] {
        match self {
            WriteOp::Put { key, .. }
            | WriteOp::PutWithExpiry { key, .. }
            | WriteOp::ConditionalSet { key, .. }
            | WriteOp::SetExpiry { key, .. }
            | WriteOp::Persist { key } => std::slice::from_ref(key),
            WriteOp::Delete { keys } => keys,
        }
    }

    /// How to turn this op's outcome into a reply (take it before moving the op into
    /// the proposal).
    pub fn reply_shape(&self) -> WriteReplyShape {
        match self {
            WriteOp::Put { .. } | WriteOp::PutWithExpiry { .. } => WriteReplyShape::Ok,
            WriteOp::ConditionalSet { return_old, .. } => WriteReplyShape::Set {
                return_old: *return_old,
            },
            WriteOp::Delete { .. } => WriteReplyShape::Count,
            WriteOp::SetExpiry { .. } | WriteOp::Persist { .. } => WriteReplyShape::Flag,
        }
    }
}

/// A write and the leader's clock at proposal time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// Proposal time, Unix milliseconds (the state machine's "now" for this op).
    pub now_ms: u64,
    /// What to do.
    pub op: WriteOp,
}

/// What the state machine answered to a `WriteOp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// `Put`, `PutWithExpiry`.
    Done,
    /// `ConditionalSet`: whether it stored, and the old value if asked for.
    Set {
        /// The condition held and the value was stored.
        applied: bool,
        /// The live old value (only meaningful with `return_old`).
        old: Option<Bytes>,
    },
    /// `Delete`: keys removed.
    Deleted(u64),
    /// `SetExpiry`, `Persist`: whether the key changed.
    Changed(bool),
}

/// How a write's outcome becomes a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteReplyShape {
    /// `+OK`
    Ok,
    /// SET with options: the old value (GET), else OK or null.
    Set {
        /// GET option given.
        return_old: bool,
    },
    /// An integer count.
    Count,
    /// `:1` / `:0`.
    Flag,
}

impl WriteReplyShape {
    /// The Redis reply for `outcome`.
    pub fn reply(self, outcome: WriteOutcome) -> Reply {
        match (self, outcome) {
            (WriteReplyShape::Ok, WriteOutcome::Done) => Reply::Ok,
            (WriteReplyShape::Set { return_old: true }, WriteOutcome::Set { old, .. }) => {
                Reply::bulk_or_null(old)
            }
            (WriteReplyShape::Set { return_old: false }, WriteOutcome::Set { applied, .. }) => {
                if applied {
                    Reply::Ok
                } else {
                    Reply::Null
                }
            }
            (WriteReplyShape::Count, WriteOutcome::Deleted(n)) => Reply::Integer(saturate(n)),
            (WriteReplyShape::Flag, WriteOutcome::Changed(changed)) => {
                Reply::Integer(i64::from(changed))
            }
            (shape, outcome) => {
                debug_assert!(false, "outcome {outcome:?} does not fit reply {shape:?}");
                Reply::Error(ErrorReply::new("internal error: store outcome mismatch"))
            }
        }
    }
}

fn saturate(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Read {
    /// The Redis reply for `outcome`.
    pub fn reply(&self, outcome: ReadOutcome) -> Reply {
        match (&self.op, outcome) {
            (ReadOp::Get { .. }, ReadOutcome::Value(v)) => Reply::bulk_or_null(v),
            (ReadOp::MGet { keys }, ReadOutcome::Values(values)) if values.len() == keys.len() => {
                Reply::Array(values.into_iter().map(Reply::bulk_or_null).collect())
            }
            (ReadOp::Exists { .. }, ReadOutcome::Count(n)) => Reply::Integer(saturate(n)),
            (ReadOp::Ttl { unit, .. }, ReadOutcome::Ttl(lookup)) => {
                ttl_reply(lookup, self.now_ms, *unit)
            }
            (op, outcome) => {
                debug_assert!(false, "outcome {outcome:?} does not fit read {op:?}");
                Reply::Error(ErrorReply::new("internal error: store outcome mismatch"))
            }
        }
    }
}

/// TTL/PTTL as Redis answers: -2 missing, -1 no expiry, else the remaining time (never
/// negative), in seconds rounded to nearest or in milliseconds.
pub fn ttl_reply(lookup: TtlLookup, now_ms: u64, unit: TimeUnit) -> Reply {
    match lookup {
        TtlLookup::Missing => Reply::Integer(-2),
        TtlLookup::NoExpiry => Reply::Integer(-1),
        TtlLookup::ExpiresAt(at) => {
            let left = saturate(at.saturating_sub(now_ms));
            match unit {
                TimeUnit::Millis => Reply::Integer(left),
                TimeUnit::Seconds => Reply::Integer(left.saturating_add(500) / 1000),
            }
        }
    }
}
