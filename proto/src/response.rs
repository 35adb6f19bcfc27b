//! Client responses: one variant per operation plus `Error`, their header status and
//! body layouts.
//!
//! Invariants: a success frame carries the request's opcode with the response bit and
//! status `Ok` (or `NotFound` for a `Get` of an absent key, with an empty body); a failure
//! is an `Error` frame (opcode 0xFF) whose status is the error's and whose body is an
//! [`ErrorResponse`]. Values are zero-copy [`Bytes`] slices of the received frame and are
//! checked against `MAX_VALUE_LEN` / `MAX_BATCH_KEYS` before slicing or allocating.

use bytes::{BufMut, Bytes, BytesMut};

use crate::conditional::{
    KeyTtl, decode_key_ttl, decode_set_if_resp, encode_key_ttl, encode_set_if_resp,
};
use crate::digest::GroupDigest;
use crate::error::BodyError;
use crate::error_response::ErrorResponse;
use crate::handshake::HelloOk;
use crate::limits::{MAX_BATCH_KEYS, MAX_VALUE_LEN};
use crate::opcode::Opcode;
use crate::status::{LimitKind, Status};
use crate::topology::{StatusReport, Topology};
use crate::wire::{Reader, check_limit, put_len_prefixed};

/// A node's answer to a client request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// Handshake accepted.
    Hello(HelloOk),
    /// Answer to `Ping`.
    Pong,
    /// The value, or `None` (status `NotFound`) when absent or expired.
    Get(Option<Bytes>),
    /// One entry per requested key, in request order.
    GetMulti(Vec<Option<Bytes>>),
    /// The put is durable on a quorum and applied.
    Put,
    /// The put with TTL is durable on a quorum and applied.
    PutWithTtl,
    /// The delete is durable on a quorum and applied.
    Delete {
        /// Whether the key existed (and was unexpired) when the delete applied.
        existed: bool,
    },
    /// The cluster topology.
    Topology(Topology),
    /// The learner was added; the membership entry's log index.
    AddLearner {
        /// Log index of the membership entry.
        log_index: u64,
    },
    /// The membership change committed; the final membership entry's log index.
    ChangeMembership {
        /// Log index of the final membership entry.
        log_index: u64,
    },
    /// Raft status of the requested groups.
    Status(StatusReport),
    /// The request failed.
    Error(ErrorResponse),
    /// `SetIf` applied (durable on a quorum): whether it stored, and the old live value
    /// when asked for.
    SetIf {
        /// The condition held and the value was stored.
        applied: bool,
        /// The old live value (only when the request asked for it).
        old: Option<Bytes>,
    },
    /// `Expire` applied: whether the key's expiry changed (or it was removed).
    Expire {
        /// The key changed.
        changed: bool,
    },
    /// `Persist` applied: whether an expiry was dropped.
    Persist {
        /// The key changed.
        changed: bool,
    },
    /// `DeleteMulti` applied: how many distinct keys were live.
    DeleteMulti {
        /// Live keys removed.
        removed: u32,
    },
    /// The key's expiry.
    Ttl(KeyTtl),
    /// Keys stored by the group (expired ones not yet reclaimed included, as Redis's
    /// DBSIZE counts them), and how many of them have an expiry.
    KeyCount {
        /// Keys stored.
        keys: u64,
        /// Of those, keys with an expiry.
        expiring: u64,
    },
    /// The digest of one group's state machine on the answering node.
    StateDigest(GroupDigest),
}

impl Response {
    /// The opcode of this response's frame.
    pub fn opcode(&self) -> Opcode {
        match self {
            Response::Hello(_) => Opcode::HelloResp,
            Response::Pong => Opcode::Pong,
            Response::Get(_) => Opcode::GetResp,
            Response::GetMulti(_) => Opcode::GetMultiResp,
            Response::Put => Opcode::PutResp,
            Response::PutWithTtl => Opcode::PutWithTtlResp,
            Response::Delete { .. } => Opcode::DeleteResp,
            Response::Topology(_) => Opcode::TopologyResp,
            Response::AddLearner { .. } => Opcode::AddLearnerResp,
            Response::ChangeMembership { .. } => Opcode::ChangeMembershipResp,
            Response::Status(_) => Opcode::StatusResp,
            Response::Error(_) => Opcode::Error,
            Response::SetIf { .. } => Opcode::SetIfResp,
            Response::Expire { .. } => Opcode::ExpireResp,
            Response::Persist { .. } => Opcode::PersistResp,
            Response::DeleteMulti { .. } => Opcode::DeleteMultiResp,
            Response::Ttl(_) => Opcode::TtlResp,
            Response::KeyCount { .. } => Opcode::KeyCountResp,
            Response::StateDigest(_) => Opcode::StateDigestResp,
        }
    }

    /// The header status of this response's frame.
    pub fn status(&self) -> Status {
        match self {
            Response::Get(None) => Status::NotFound,
            Response::Error(e) => e.status(),
            _ => Status::Ok,
        }
    }

    pub(crate) fn encode_body(&self, buf: &mut BytesMut) -> Result<(), BodyError> {
        match self {
            Response::Hello(h) => h.encode(buf)?,
            Response::Pong | Response::Put | Response::PutWithTtl | Response::Get(None) => {}
            Response::Get(Some(v)) => {
                check_limit(LimitKind::Value, MAX_VALUE_LEN, v.len())?;
                put_len_prefixed(buf, v);
            }
            Response::GetMulti(vs) => {
                check_limit(LimitKind::Batch, MAX_BATCH_KEYS, vs.len())?;
                buf.put_u32_le(vs.len() as u32);
                for v in vs {
                    match v {
                        Some(v) => {
                            check_limit(LimitKind::Value, MAX_VALUE_LEN, v.len())?;
                            buf.put_u8(1);
                            put_len_prefixed(buf, v);
                        }
                        None => buf.put_u8(0),
                    }
                }
            }
            Response::Delete { existed } => buf.put_u8(u8::from(*existed)),
            Response::Topology(t) => t.encode(buf)?,
            Response::AddLearner { log_index } | Response::ChangeMembership { log_index } => {
                buf.put_u64_le(*log_index);
            }
            Response::Status(s) => s.encode(buf)?,
            Response::Error(e) => e.encode(buf)?,
            Response::SetIf { applied, old } => encode_set_if_resp(buf, *applied, old)?,
            Response::Expire { changed } | Response::Persist { changed } => {
                buf.put_u8(u8::from(*changed));
            }
            Response::DeleteMulti { removed } => buf.put_u32_le(*removed),
            Response::Ttl(t) => encode_key_ttl(buf, *t),
            Response::KeyCount { keys, expiring } => {
                buf.put_u64_le(*keys);
                buf.put_u64_le(*expiring);
            }
            Response::StateDigest(d) => d.encode(buf)?,
        }
        Ok(())
    }

    /// Parses a response body; `flags` and `status` were not yet checked.
    pub(crate) fn decode_body(
        op: Opcode,
        flags: u8,
        status: u8,
        mut r: Reader,
    ) -> Result<Response, BodyError> {
        if flags != 0 {
            return Err(BodyError::Invalid("response flags (must be zero)"));
        }
        let status = Status::from_u8(status).ok_or(BodyError::Invalid("status"))?;
        let resp = match (op, status) {
            (Opcode::Error, s) if s.is_error() => {
                Response::Error(ErrorResponse::decode(s, &mut r)?)
            }
            (Opcode::Error, _) => {
                return Err(BodyError::Invalid("error frame with a success status"));
            }
            (Opcode::GetResp, Status::NotFound) => Response::Get(None),
            (_, Status::Ok) => Self::decode_ok(op, &mut r)?,
            _ => return Err(BodyError::Invalid("status for this opcode")),
        };
        r.finish()?;
        Ok(resp)
    }

    fn decode_ok(op: Opcode, r: &mut Reader) -> Result<Response, BodyError> {
        Ok(match op {
            Opcode::HelloResp => Response::Hello(HelloOk::decode(r)?),
            Opcode::Pong => Response::Pong,
            Opcode::GetResp => {
                Response::Get(Some(r.len_prefixed(LimitKind::Value, MAX_VALUE_LEN)?))
            }
            Opcode::GetMultiResp => {
                let n = r.u32()? as usize;
                check_limit(LimitKind::Batch, MAX_BATCH_KEYS, n)?;
                // Each entry takes at least its presence byte.
                if n > r.remaining() {
                    return Err(BodyError::Truncated {
                        needed: n,
                        remaining: r.remaining(),
                    });
                }
                let mut vs = Vec::with_capacity(n);
                for _ in 0..n {
                    vs.push(if r.bool("value presence")? {
                        Some(r.len_prefixed(LimitKind::Value, MAX_VALUE_LEN)?)
                    } else {
                        None
                    });
                }
                Response::GetMulti(vs)
            }
            Opcode::PutResp => Response::Put,
            Opcode::PutWithTtlResp => Response::PutWithTtl,
            Opcode::DeleteResp => Response::Delete {
                existed: r.bool("existed flag")?,
            },
            Opcode::TopologyResp => Response::Topology(Topology::decode(r)?),
            Opcode::AddLearnerResp => Response::AddLearner {
                log_index: r.u64()?,
            },
            Opcode::ChangeMembershipResp => Response::ChangeMembership {
                log_index: r.u64()?,
            },
            Opcode::StatusResp => Response::Status(StatusReport::decode(r)?),
            Opcode::SetIfResp => {
                let (applied, old) = decode_set_if_resp(r)?;
                Response::SetIf { applied, old }
            }
            Opcode::ExpireResp => Response::Expire {
                changed: r.bool("changed flag")?,
            },
            Opcode::PersistResp => Response::Persist {
                changed: r.bool("changed flag")?,
            },
            Opcode::DeleteMultiResp => Response::DeleteMulti { removed: r.u32()? },
            Opcode::TtlResp => Response::Ttl(decode_key_ttl(r)?),
            Opcode::KeyCountResp => Response::KeyCount {
                keys: r.u64()?,
                expiring: r.u64()?,
            },
            Opcode::StateDigestResp => Response::StateDigest(GroupDigest::decode(r)?),
            _ => return Err(BodyError::Invalid("not a client response opcode")),
        })
    }
}
