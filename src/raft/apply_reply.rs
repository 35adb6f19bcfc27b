//! What applying one client command answers the client that proposed it, and its
//! encoding inside `raft::types::Response::reply`.
//!
//! Invariants:
//! - A reply never leaves the node that applied the entry: openraft hands `Response`s only
//!   to the local `client_write` caller, so the encoding is node-local and carries no
//!   version byte. It is still checked strictly on decode (tag, length, UTF-8).
//! - `Written` and `Rejected` are functions of the log alone (every replica would compute
//!   the same). `Deleted { existed }` is leader-side information read just before the
//!   delete is applied, at the leader's wall clock; it is not part of the replicated state.
//! - Blank and membership entries answer an empty `reply`, which decodes to an error: a
//!   client command always gets one of the variants below.

use bytes::Bytes;
use thiserror::Error;

use super::types::Response;

const TAG_WRITTEN: u8 = 1;
const TAG_DELETED: u8 = 2;
const TAG_REJECTED: u8 = 3;
const TAG_SET_IF: u8 = 4;
const TAG_CHANGED: u8 = 5;
const TAG_REMOVED: u8 = 6;

/// The outcome of one applied client command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyReply {
    /// A `Put` or `PutWithTtl` stored its value.
    Written,
    /// A `Delete` was applied. `existed`: a live (unexpired) value was there just before,
    /// by the applying node's wall clock.
    Deleted { existed: bool },
    /// The command was not applied: its bytes do not decode or it breaks a limit. The log
    /// index still counts as applied, identically on every replica.
    Rejected { reason: String },
    /// A `SetIf`: whether it stored, and the old live value when asked for. A function of
    /// the log (the command carries the leader's `now_ms`).
    SetIf { applied: bool, old: Option<Bytes> },
    /// A `SetExpiry` / `Persist`: whether the key changed. A function of the log.
    Changed(bool),
    /// A `DeleteLive`: how many keys were live. A function of the log.
    Removed(u32),
}

/// A reply whose bytes are not an [`ApplyReply`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ApplyReplyError {
    /// No bytes: the entry carried no client command (blank or membership).
    #[error("empty apply reply (the entry carried no client command)")]
    Empty,
    /// The first byte names no variant.
    #[error("unknown apply reply tag {0}")]
    UnknownTag(u8),
    /// The length does not fit the variant.
    #[error("apply reply with tag {tag} has a bad length {len}")]
    BadLength { tag: u8, len: usize },
    /// `Deleted`'s flag byte is not 0 or 1.
    #[error("apply reply: bad existed flag {0}")]
    BadFlag(u8),
    /// `Rejected`'s reason is not UTF-8.
    #[error("apply reply: rejection reason is not UTF-8")]
    BadReason,
}

impl ApplyReply {
    /// Encodes into the bytes of a [`Response`].
    pub fn encode(&self) -> Bytes {
        match self {
            ApplyReply::Written => Bytes::from_static(&[TAG_WRITTEN]),
            ApplyReply::Deleted { existed: false } => Bytes::from_static(&[TAG_DELETED, 0]),
            ApplyReply::Deleted { existed: true } => Bytes::from_static(&[TAG_DELETED, 1]),
            ApplyReply::SetIf { applied, old } => {
                let mut out = Vec::with_capacity(3 + old.as_ref().map_or(0, Bytes::len));
                out.push(TAG_SET_IF);
                out.push(u8::from(*applied));
                match old {
                    None => out.push(0),
                    Some(v) => {
                        out.push(1);
                        out.extend_from_slice(v);
                    }
                }
                Bytes::from(out)
            }
            ApplyReply::Changed(c) => Bytes::copy_from_slice(&[TAG_CHANGED, u8::from(*c)]),
            ApplyReply::Removed(n) => {
                let mut out = vec![TAG_REMOVED];
                out.extend_from_slice(&n.to_le_bytes());
                Bytes::from(out)
            }
            ApplyReply::Rejected { reason } => {
                let mut out = Vec::with_capacity(1 + reason.len());
                out.push(TAG_REJECTED);
                out.extend_from_slice(reason.as_bytes());
                Bytes::from(out)
            }
        }
    }

    /// The [`Response`] carrying this reply.
    pub fn to_response(&self) -> Response {
        Response {
            reply: self.encode(),
        }
    }

    /// Decodes the bytes `encode` produced.
    pub fn decode(bytes: &[u8]) -> Result<ApplyReply, ApplyReplyError> {
        let (&tag, rest) = bytes.split_first().ok_or(ApplyReplyError::Empty)?;
        let bad_length = || ApplyReplyError::BadLength {
            tag,
            len: bytes.len(),
        };
        match tag {
            TAG_WRITTEN if rest.is_empty() => Ok(ApplyReply::Written),
            TAG_WRITTEN => Err(bad_length()),
            TAG_DELETED => match rest {
                [0] => Ok(ApplyReply::Deleted { existed: false }),
                [1] => Ok(ApplyReply::Deleted { existed: true }),
                [flag] => Err(ApplyReplyError::BadFlag(*flag)),
                _ => Err(bad_length()),
            },
            TAG_REJECTED => std::str::from_utf8(rest)
                .map(|reason| ApplyReply::Rejected {
                    reason: reason.to_string(),
                })
                .map_err(|_| ApplyReplyError::BadReason),
            TAG_SET_IF => match rest {
                [applied @ (0 | 1), 0] => Ok(ApplyReply::SetIf {
                    applied: *applied == 1,
                    old: None,
                }),
                [applied @ (0 | 1), 1, old @ ..] => Ok(ApplyReply::SetIf {
                    applied: *applied == 1,
                    old: Some(Bytes::copy_from_slice(old)),
                }),
                [a, b, ..] if *a > 1 || *b > 1 => Err(ApplyReplyError::BadFlag((*a).max(*b))),
                _ => Err(bad_length()),
            },
            TAG_CHANGED => match rest {
                [0] => Ok(ApplyReply::Changed(false)),
                [1] => Ok(ApplyReply::Changed(true)),
                [flag] => Err(ApplyReplyError::BadFlag(*flag)),
                _ => Err(bad_length()),
            },
            TAG_REMOVED => <[u8; 4]>::try_from(rest)
                .map(|n| ApplyReply::Removed(u32::from_le_bytes(n)))
                .map_err(|_| bad_length()),
            other => Err(ApplyReplyError::UnknownTag(other)),
        }
    }

    /// Decodes the reply of a [`Response`].
    pub fn from_response(response: &Response) -> Result<ApplyReply, ApplyReplyError> {
        Self::decode(&response.reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_round_trips() {
        for reply in [
            ApplyReply::Written,
            ApplyReply::Deleted { existed: false },
            ApplyReply::Deleted { existed: true },
            ApplyReply::Rejected {
                reason: String::new(),
            },
            ApplyReply::SetIf {
                applied: true,
                old: None,
            },
            ApplyReply::SetIf {
                applied: false,
                old: Some(Bytes::new()),
            },
            ApplyReply::SetIf {
                applied: true,
                old: Some(Bytes::from_static(b"old value")),
            },
            ApplyReply::Changed(false),
            ApplyReply::Changed(true),
            ApplyReply::Removed(0),
            ApplyReply::Removed(1024),
            ApplyReply::Rejected {
                reason: "key of 20000 bytes exceeds MAX_KEY_LEN (16384) ☃".to_string(),
            },
        ] {
            assert_eq!(ApplyReply::decode(&reply.encode()), Ok(reply.clone()));
            assert_eq!(ApplyReply::from_response(&reply.to_response()), Ok(reply));
        }
    }

    #[test]
    fn malformed_replies_are_errors() {
        assert_eq!(ApplyReply::decode(&[]), Err(ApplyReplyError::Empty));
        assert_eq!(
            ApplyReply::decode(&[9]),
            Err(ApplyReplyError::UnknownTag(9))
        );
        assert_eq!(
            ApplyReply::decode(&[TAG_WRITTEN, 0]),
            Err(ApplyReplyError::BadLength { tag: 1, len: 2 })
        );
        assert_eq!(
            ApplyReply::decode(&[TAG_DELETED]),
            Err(ApplyReplyError::BadLength { tag: 2, len: 1 })
        );
        assert_eq!(
            ApplyReply::decode(&[TAG_DELETED, 2]),
            Err(ApplyReplyError::BadFlag(2))
        );
        assert_eq!(
            ApplyReply::decode(&[TAG_REJECTED, 0xff]),
            Err(ApplyReplyError::BadReason)
        );
        assert_eq!(
            ApplyReply::decode(&[TAG_SET_IF, 1]),
            Err(ApplyReplyError::BadLength { tag: 4, len: 2 })
        );
        assert_eq!(
            ApplyReply::decode(&[TAG_SET_IF, 2, 0]),
            Err(ApplyReplyError::BadFlag(2))
        );
        assert_eq!(
            ApplyReply::decode(&[TAG_CHANGED, 7]),
            Err(ApplyReplyError::BadFlag(7))
        );
        assert_eq!(
            ApplyReply::decode(&[TAG_REMOVED, 1, 0]),
            Err(ApplyReplyError::BadLength { tag: 6, len: 3 })
        );
    }
}
