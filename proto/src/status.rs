//! Status codes of response frames, and the names of the limits a `TooLarge` refers to.
//!
//! Invariants: `Ok` and `NotFound` are the only statuses of successful response frames
//! (`NotFound` only on a `Get` response); every other status travels in an
//! [`Opcode::Error`](crate::Opcode::Error) frame whose body carries the details. Values are
//! frozen: a new status takes a new value; a client treats an unknown status as `Internal`.

use std::fmt;

/// The status byte of a response header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Status {
    /// Success.
    Ok = 0,
    /// `Get`: the key does not exist or has expired. Client: return `None`.
    NotFound = 1,
    /// This node does not lead the key's group (writes, linearizable and lease reads).
    /// Client: resend to the hinted leader, or refresh the topology when there is no hint.
    NotLeader = 2,
    /// The stated shard does not own the key (the client's shard count or topology is
    /// stale). Client: refresh the topology, recompute the shard, resend.
    WrongShard = 3,
    /// A key, value, batch, frame or response exceeds a limit. Client: do not retry as
    /// is; split a `GetMulti`, report other cases to the caller.
    TooLarge = 4,
    /// Malformed or meaningless request. Client: a bug; report, do not retry.
    InvalidRequest = 5,
    /// The operation did not complete in time; a write may or may not have applied.
    /// Client: report `Timeout` (retrying a put is safe, it is idempotent).
    Timeout = 6,
    /// The group has no quorum or is not ready (election in progress, recovering).
    /// Client: retry after a short backoff, possibly on another node.
    Unavailable = 7,
    /// The node is shutting down and will close the connection. Client: reconnect to
    /// another node; retry.
    ShuttingDown = 8,
    /// Backpressure: the connection's or shard's in-flight limit is reached; the request
    /// was not executed. Client: retry after `retry_after_ms`, lower its pipelining depth.
    Busy = 9,
    /// A bug or an unexpected failure on the node (for example a poisoned WAL).
    /// Client: report; the request may or may not have applied.
    Internal = 10,
    /// The handshake found no common protocol version; the connection is closed.
    IncompatibleVersion = 11,
}

impl Status {
    /// Parses a status byte; `None` for a value this version does not define.
    pub fn from_u8(v: u8) -> Option<Status> {
        use Status::*;
        Some(match v {
            0 => Ok,
            1 => NotFound,
            2 => NotLeader,
            3 => WrongShard,
            4 => TooLarge,
            5 => InvalidRequest,
            6 => Timeout,
            7 => Unavailable,
            8 => ShuttingDown,
            9 => Busy,
            10 => Internal,
            11 => IncompatibleVersion,
            _ => return None,
        })
    }

    /// The byte written in the header.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// True when the status is carried by an `Error` frame.
    pub fn is_error(self) -> bool {
        !matches!(self, Status::Ok | Status::NotFound)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Which limit a `TooLarge` answer refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum LimitKind {
    /// `MAX_KEY_LEN`.
    Key = 1,
    /// `MAX_VALUE_LEN`.
    Value = 2,
    /// `MAX_BATCH_KEYS`.
    Batch = 3,
    /// `MAX_FRAME_LEN` on a request frame.
    Frame = 4,
    /// `MAX_FRAME_LEN` on the response the request would produce (split the batch).
    Response = 5,
    /// `MAX_TTL_MS`.
    Ttl = 6,
    /// `MAX_PEER_FRAME_LEN`.
    PeerFrame = 7,
}

impl LimitKind {
    /// Parses a limit byte; `None` for a value this version does not define.
    pub fn from_u8(v: u8) -> Option<LimitKind> {
        use LimitKind::*;
        Some(match v {
            1 => Key,
            2 => Value,
            3 => Batch,
            4 => Frame,
            5 => Response,
            6 => Ttl,
            7 => PeerFrame,
            _ => return None,
        })
    }

    /// The byte written on the wire.
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

impl fmt::Display for LimitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip() {
        for b in 0..=255u8 {
            if let Some(s) = Status::from_u8(b) {
                assert_eq!(s.as_u8(), b);
            }
            if let Some(l) = LimitKind::from_u8(b) {
                assert_eq!(l.as_u8(), b);
            }
        }
        assert!(!Status::Ok.is_error());
        assert!(!Status::NotFound.is_error());
        assert!(Status::Busy.is_error());
        assert_eq!(Status::from_u8(12), None);
    }
}
