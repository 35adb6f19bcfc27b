//! The codec's error types and what a server should do about each decode error.
//!
//! Invariants: decoding never panics on any input; every failure is one of these typed
//! errors. A [`DecodeError`] keeps the raw header of the offending frame so the server can
//! answer it by request id. [`DecodeError::disposition`] is the single place that decides
//! between "answer with an error frame and keep the connection" (the bad frame was
//! consumed whole), "answer, then close" (the stream cannot be resynchronised, or the
//! other side speaks another version: even a peer gets that answer, as a version-independent
//! `Error` frame) and "close without answering" (responses, and any other peer-frame error).

use thiserror::Error;

use crate::error_response::{ErrorDetail, ErrorResponse};
use crate::frame::{Header, MAX_PROTOCOL_VERSION, MIN_PROTOCOL_VERSION};
use crate::opcode::{Channel, RESPONSE_BIT, channel_of};
use crate::status::LimitKind;

/// Why a frame body (whose header was valid and whose bytes were all present) is invalid.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// The body ended before a field.
    #[error("body truncated: needed {needed} more bytes, {remaining} left")]
    Truncated {
        /// Bytes the next field needs.
        needed: usize,
        /// Bytes left in the body.
        remaining: usize,
    },
    /// Bytes left over after the last field.
    #[error("{0} trailing bytes after the last field")]
    TrailingBytes(usize),
    /// A length or count exceeds a system limit.
    #[error("{limit} too large: {actual} > {max}")]
    TooLarge {
        /// Which limit.
        limit: LimitKind,
        /// The limit.
        max: u64,
        /// The offending size.
        actual: u64,
    },
    /// A field holds a value outside its domain.
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// A string field is not UTF-8.
    #[error("{0} is not valid UTF-8")]
    Utf8(&'static str),
    /// A peer (rkyv) body failed validation.
    #[error("peer message rejected by validation: {0}")]
    Peer(String),
}

/// Why the decoder refused a frame.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The header's version is not one this side speaks.
    #[error(
        "unsupported protocol version {} (supported {MIN_PROTOCOL_VERSION}..={MAX_PROTOCOL_VERSION})",
        header.version
    )]
    UnsupportedVersion {
        /// The offending header.
        header: Header,
    },
    /// The header announces a body longer than the connection's limit.
    #[error("frame body of {} bytes exceeds the {max}-byte limit", header.body_len)]
    FrameTooLarge {
        /// The offending header.
        header: Header,
        /// The limit in force on this connection.
        max: usize,
    },
    /// The opcode is not defined by this version.
    #[error("unknown opcode {:#04x}", header.opcode)]
    UnknownOpcode {
        /// The offending header.
        header: Header,
    },
    /// The opcode is defined but not valid on this side of this connection (a response
    /// sent to a server, a peer frame on a client port...).
    #[error("opcode {:#04x} is not valid on this connection", header.opcode)]
    UnexpectedOpcode {
        /// The offending header.
        header: Header,
    },
    /// Flags or status hold a value the opcode does not allow.
    #[error("invalid header for opcode {:#04x}: {reason}", header.opcode)]
    InvalidHeader {
        /// The offending header.
        header: Header,
        /// What is wrong.
        reason: &'static str,
    },
    /// The body does not parse.
    #[error("invalid body for opcode {:#04x}: {source}", header.opcode)]
    Body {
        /// The offending header.
        header: Header,
        /// What is wrong with the body.
        #[source]
        source: BodyError,
    },
}

/// What a node should do after a [`DecodeError`] on a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Send `error` with `request_id` (encode it with
    /// [`encode_error`](crate::encode_error)). If `close`, flush it and close the
    /// connection; otherwise the bad frame was consumed and decoding may continue.
    Answer {
        /// Id of the refused request.
        request_id: u64,
        /// The error frame to send.
        error: ErrorResponse,
        /// Close the connection once the answer is flushed.
        close: bool,
    },
    /// Close the connection without answering: the frame came from a server or a peer,
    /// and neither is ever answered with a client error frame.
    Close,
}

impl DecodeError {
    /// The header of the offending frame.
    pub fn header(&self) -> &Header {
        match self {
            DecodeError::UnsupportedVersion { header }
            | DecodeError::FrameTooLarge { header, .. }
            | DecodeError::UnknownOpcode { header }
            | DecodeError::UnexpectedOpcode { header }
            | DecodeError::InvalidHeader { header, .. }
            | DecodeError::Body { header, .. } => header,
        }
    }

    /// True when the decoder consumed the bad frame, so the stream is still in sync.
    /// After a non-recoverable error the decoder refuses to go on: close the connection.
    pub fn is_recoverable(&self) -> bool {
        !matches!(
            self,
            DecodeError::UnsupportedVersion { .. } | DecodeError::FrameTooLarge { .. }
        )
    }

    /// Decides how a node answers this error (see [`Disposition`]).
    pub fn disposition(&self) -> Disposition {
        let header = self.header();
        // Responses (high bit) are never answered. Peer frames are not answered either,
        // except to refuse a version: the `Error` frame is version-independent, so an
        // incompatible peer learns why it is cut off.
        let is_version = matches!(self, DecodeError::UnsupportedVersion { .. });
        if header.opcode & RESPONSE_BIT != 0
            || (channel_of(header.opcode) == Channel::Peer && !is_version)
        {
            return Disposition::Close;
        }
        let error = match self {
            DecodeError::UnsupportedVersion { .. } => ErrorResponse::new(
                ErrorDetail::IncompatibleVersion {
                    min_version: MIN_PROTOCOL_VERSION,
                    max_version: MAX_PROTOCOL_VERSION,
                },
                self.to_string(),
            ),
            DecodeError::FrameTooLarge { header, max } => ErrorResponse::new(
                ErrorDetail::TooLarge {
                    limit: LimitKind::Frame,
                    max: *max as u64,
                    actual: u64::from(header.body_len),
                },
                self.to_string(),
            ),
            DecodeError::Body {
                source: BodyError::TooLarge { limit, max, actual },
                ..
            } => ErrorResponse::new(
                ErrorDetail::TooLarge {
                    limit: *limit,
                    max: *max,
                    actual: *actual,
                },
                self.to_string(),
            ),
            _ => ErrorResponse::new(ErrorDetail::InvalidRequest, self.to_string()),
        };
        Disposition::Answer {
            request_id: header.request_id,
            error,
            close: !self.is_recoverable(),
        }
    }
}

/// Why a message cannot be encoded. The buffer is left as it was before the call.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// A field or the whole frame exceeds a limit; nothing was written.
    #[error("{limit} too large: {actual} > {max}")]
    TooLarge {
        /// Which limit.
        limit: LimitKind,
        /// The limit.
        max: u64,
        /// The offending size.
        actual: u64,
    },
    /// A field holds a value the protocol cannot carry.
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// rkyv serialization failed.
    #[error("peer message serialization failed: {0}")]
    Peer(String),
}

impl From<BodyError> for EncodeError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge { limit, max, actual } => {
                EncodeError::TooLarge { limit, max, actual }
            }
            BodyError::Invalid(w) | BodyError::Utf8(w) => EncodeError::Invalid(w),
            other => EncodeError::Peer(other.to_string()),
        }
    }
}

impl EncodeError {
    /// The error frame a server sends when the response it meant to send cannot be
    /// encoded (for example a `GetMulti` response larger than `MAX_FRAME_LEN`).
    pub fn to_error_response(&self) -> ErrorResponse {
        match self {
            EncodeError::TooLarge { limit, max, actual } => {
                let limit = if *limit == LimitKind::Frame {
                    LimitKind::Response
                } else {
                    *limit
                };
                ErrorResponse::new(
                    ErrorDetail::TooLarge {
                        limit,
                        max: *max,
                        actual: *actual,
                    },
                    self.to_string(),
                )
            }
            _ => ErrorResponse::new(ErrorDetail::Internal, self.to_string()),
        }
    }
}
