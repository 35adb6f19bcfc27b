//! The body of an `Error` frame: a status-specific detail and a human-readable message.
//!
//! Invariants: the frame's header status is always `detail.status()`; messages are UTF-8
//! and at most `MAX_ERROR_MESSAGE_LEN` bytes ([`ErrorResponse::new`] truncates at a
//! character boundary, the decoder refuses longer ones).

use bytes::{BufMut, BytesMut};

use crate::error::BodyError;
use crate::limits::{MAX_ERROR_MESSAGE_LEN, MAX_SHARDS};
use crate::status::{LimitKind, Status};
use crate::topology::{NodeInfo, put_node, read_node};
use crate::wire::{Reader, put_string};

/// Status-specific details of an error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorDetail {
    /// See [`Status::NotLeader`]. `leader` is the hint (id and client address) when known.
    NotLeader {
        /// The leader this node believes in.
        leader: Option<NodeInfo>,
    },
    /// See [`Status::WrongShard`].
    WrongShard {
        /// The shard that owns the key under the node's shard count.
        owner_shard: u32,
        /// The node's shard count.
        shard_count: u32,
    },
    /// See [`Status::TooLarge`].
    TooLarge {
        /// Which limit.
        limit: LimitKind,
        /// The limit.
        max: u64,
        /// The offending size.
        actual: u64,
    },
    /// See [`Status::InvalidRequest`].
    InvalidRequest,
    /// See [`Status::Timeout`].
    Timeout,
    /// See [`Status::Unavailable`].
    Unavailable,
    /// See [`Status::ShuttingDown`].
    ShuttingDown,
    /// See [`Status::Busy`].
    Busy {
        /// Suggested wait before retrying.
        retry_after_ms: u32,
    },
    /// See [`Status::Internal`].
    Internal,
    /// See [`Status::IncompatibleVersion`]: the versions the node speaks.
    IncompatibleVersion {
        /// Oldest supported version.
        min_version: u8,
        /// Newest supported version.
        max_version: u8,
    },
}

impl ErrorDetail {
    /// The header status that carries this detail.
    pub fn status(&self) -> Status {
        match self {
            ErrorDetail::NotLeader { .. } => Status::NotLeader,
            ErrorDetail::WrongShard { .. } => Status::WrongShard,
            ErrorDetail::TooLarge { .. } => Status::TooLarge,
            ErrorDetail::InvalidRequest => Status::InvalidRequest,
            ErrorDetail::Timeout => Status::Timeout,
            ErrorDetail::Unavailable => Status::Unavailable,
            ErrorDetail::ShuttingDown => Status::ShuttingDown,
            ErrorDetail::Busy { .. } => Status::Busy,
            ErrorDetail::Internal => Status::Internal,
            ErrorDetail::IncompatibleVersion { .. } => Status::IncompatibleVersion,
        }
    }
}

/// A failed request's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorResponse {
    /// Machine-readable detail; decides the header status.
    pub detail: ErrorDetail,
    /// Human-readable explanation, for logs.
    pub message: String,
}

impl ErrorResponse {
    /// Builds an error answer, truncating `message` to `MAX_ERROR_MESSAGE_LEN` bytes at a
    /// character boundary.
    pub fn new(detail: ErrorDetail, message: impl Into<String>) -> ErrorResponse {
        let mut message = message.into();
        if message.len() > MAX_ERROR_MESSAGE_LEN {
            let mut cut = MAX_ERROR_MESSAGE_LEN;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        ErrorResponse { detail, message }
    }

    /// The header status of this answer.
    pub fn status(&self) -> Status {
        self.detail.status()
    }

    pub(crate) fn encode(&self, buf: &mut BytesMut) -> Result<(), BodyError> {
        if self.message.len() > MAX_ERROR_MESSAGE_LEN {
            return Err(BodyError::Invalid(
                "error message longer than MAX_ERROR_MESSAGE_LEN",
            ));
        }
        match &self.detail {
            ErrorDetail::NotLeader { leader } => match leader {
                Some(n) => {
                    buf.put_u8(1);
                    put_node(buf, n)?;
                }
                None => buf.put_u8(0),
            },
            ErrorDetail::WrongShard {
                owner_shard,
                shard_count,
            } => {
                buf.put_u32_le(*owner_shard);
                buf.put_u32_le(*shard_count);
            }
            ErrorDetail::TooLarge { limit, max, actual } => {
                buf.put_u8(limit.as_u8());
                buf.put_u64_le(*max);
                buf.put_u64_le(*actual);
            }
            ErrorDetail::Busy { retry_after_ms } => buf.put_u32_le(*retry_after_ms),
            ErrorDetail::IncompatibleVersion {
                min_version,
                max_version,
            } => {
                buf.put_u8(*min_version);
                buf.put_u8(*max_version);
            }
            ErrorDetail::InvalidRequest
            | ErrorDetail::Timeout
            | ErrorDetail::Unavailable
            | ErrorDetail::ShuttingDown
            | ErrorDetail::Internal => {}
        }
        put_string(buf, &self.message);
        Ok(())
    }

    pub(crate) fn decode(status: Status, r: &mut Reader) -> Result<ErrorResponse, BodyError> {
        let detail = match status {
            Status::NotLeader => {
                let leader = if r.bool("leader presence")? {
                    Some(read_node(r)?)
                } else {
                    None
                };
                ErrorDetail::NotLeader { leader }
            }
            Status::WrongShard => {
                let owner_shard = r.u32()?;
                let shard_count = r.u32()?;
                if shard_count == 0
                    || shard_count as usize > MAX_SHARDS
                    || owner_shard >= shard_count
                {
                    return Err(BodyError::Invalid("wrong-shard detail"));
                }
                ErrorDetail::WrongShard {
                    owner_shard,
                    shard_count,
                }
            }
            Status::TooLarge => {
                let limit = LimitKind::from_u8(r.u8()?).ok_or(BodyError::Invalid("limit kind"))?;
                ErrorDetail::TooLarge {
                    limit,
                    max: r.u64()?,
                    actual: r.u64()?,
                }
            }
            Status::InvalidRequest => ErrorDetail::InvalidRequest,
            Status::Timeout => ErrorDetail::Timeout,
            Status::Unavailable => ErrorDetail::Unavailable,
            Status::ShuttingDown => ErrorDetail::ShuttingDown,
            Status::Busy => ErrorDetail::Busy {
                retry_after_ms: r.u32()?,
            },
            Status::Internal => ErrorDetail::Internal,
            Status::IncompatibleVersion => ErrorDetail::IncompatibleVersion {
                min_version: r.u8()?,
                max_version: r.u8()?,
            },
            Status::Ok | Status::NotFound => {
                return Err(BodyError::Invalid("error frame with a success status"));
            }
        };
        let message = r.string(MAX_ERROR_MESSAGE_LEN, "error message length")?;
        Ok(ErrorResponse { detail, message })
    }
}
