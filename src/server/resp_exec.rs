//! Executes one planned RESP command (`shoal_resp::Action`) through the shard's
//! [`Dispatcher`], so RESP gets the native protocol's routing, forwarding over the mesh,
//! limits and deadlines, and turns the outcome into a RESP [`Reply`].
//!
//! Invariants:
//! - Every write is exactly one state-machine command per shard it touches (`SetIf`,
//!   `Expire`, `Persist`, `DeleteMulti`, `Put`), so conditional and TTL-changing commands
//!   are atomic and linearizable. A DEL over keys of several shards runs one `DeleteMulti`
//!   per shard: each shard's part is atomic, the whole is not (documented in `write_op`).
//! - Reads are linearizable (ReadIndex), like the native protocol's default.
//! - A store error becomes a Redis error reply (`-ERR ...`, `-BUSY ...`, `-TIMEOUT ...`);
//!   it never closes the connection.

use std::collections::BTreeMap;
use std::time::Instant;

use bytes::Bytes;
use futures::future::join_all;
use shoal_proto::{
    DeleteMulti, ErrorDetail, Expire, ExpireCondition, Get, GetMulti, KeyTtl, Persist, Put,
    ReadConsistency, Request, Response, SetCondition, SetIf, Ttl, TtlMode, shard_for_key,
};
use shoal_resp::{
    ErrorReply, Read, ReadOp, ReadOutcome, Reply, TtlLookup, TtlUpdate, Write, WriteOp,
    WriteOutcome,
};

use super::dispatch::Dispatcher;

const CONSISTENCY: ReadConsistency = ReadConsistency::Linearizable;

/// Serves a RESP read.
pub(crate) async fn read(d: &Dispatcher, read: Read, deadline: Instant) -> Reply {
    let outcome = match &read.op {
        ReadOp::Get { key } => match d.handle(get(key), deadline).await {
            Response::Get(v) => Ok(ReadOutcome::Value(v)),
            other => Err(other),
        },
        ReadOp::MGet { keys } => match d.handle(get_multi(keys), deadline).await {
            Response::GetMulti(vs) => Ok(ReadOutcome::Values(vs)),
            other => Err(other),
        },
        ReadOp::Exists { keys } => match d.handle(get_multi(keys), deadline).await {
            Response::GetMulti(vs) => Ok(ReadOutcome::Count(
                vs.iter().filter(|v| v.is_some()).count() as u64,
            )),
            other => Err(other),
        },
        ReadOp::Ttl { key, .. } => {
            let request = Request::Ttl(Ttl {
                shard: None,
                key: key.clone(),
                consistency: CONSISTENCY,
            });
            match d.handle(request, deadline).await {
                Response::Ttl(t) => Ok(ReadOutcome::Ttl(match t {
                    KeyTtl::Missing => TtlLookup::Missing,
                    KeyTtl::NoExpiry => TtlLookup::NoExpiry,
                    KeyTtl::ExpiresAt(at) => TtlLookup::ExpiresAt(at),
                })),
                other => Err(other),
            }
        }
    };
    match outcome {
        Ok(outcome) => read.reply(outcome),
        Err(response) => error_reply(response),
    }
}

/// Applies a RESP write.
pub(crate) async fn write(d: &Dispatcher, write: Write, deadline: Instant) -> Reply {
    let shape = write.op.reply_shape();
    let outcome = match write.op {
        WriteOp::Put { key, value } => {
            match d
                .handle(
                    Request::Put(Put {
                        shard: None,
                        key,
                        value,
                    }),
                    deadline,
                )
                .await
            {
                Response::Put => Ok(WriteOutcome::Done),
                other => Err(other),
            }
        }
        WriteOp::PutWithExpiry {
            key,
            value,
            expire_at_ms,
        } => {
            let request = Request::SetIf(SetIf {
                shard: None,
                key,
                value,
                condition: SetCondition::Always,
                ttl: TtlMode::ExpireAt(expire_at_ms),
                return_old: false,
            });
            match d.handle(request, deadline).await {
                Response::SetIf { .. } => Ok(WriteOutcome::Done),
                other => Err(other),
            }
        }
        WriteOp::ConditionalSet {
            key,
            value,
            condition,
            ttl,
            return_old,
        } => {
            let request = Request::SetIf(SetIf {
                shard: None,
                key,
                value,
                condition: match condition {
                    shoal_resp::SetCondition::Always => SetCondition::Always,
                    shoal_resp::SetCondition::IfAbsent => SetCondition::IfAbsent,
                    shoal_resp::SetCondition::IfPresent => SetCondition::IfPresent,
                },
                ttl: match ttl {
                    TtlUpdate::Clear => TtlMode::Clear,
                    TtlUpdate::Keep => TtlMode::Keep,
                    TtlUpdate::ExpireAt(at) => TtlMode::ExpireAt(at),
                },
                return_old,
            });
            match d.handle(request, deadline).await {
                Response::SetIf { applied, old } => Ok(WriteOutcome::Set { applied, old }),
                other => Err(other),
            }
        }
        WriteOp::Delete { keys } => delete(d, keys, deadline).await,
        WriteOp::SetExpiry {
            key,
            expire_at_ms,
            condition,
        } => {
            let request = Request::Expire(Expire {
                shard: None,
                key,
                expire_at_ms,
                condition: ExpireCondition {
                    nx: condition.nx,
                    xx: condition.xx,
                    gt: condition.gt,
                    lt: condition.lt,
                },
            });
            match d.handle(request, deadline).await {
                Response::Expire { changed } => Ok(WriteOutcome::Changed(changed)),
                other => Err(other),
            }
        }
        WriteOp::Persist { key } => {
            match d
                .handle(Request::Persist(Persist { shard: None, key }), deadline)
                .await
            {
                Response::Persist { changed } => Ok(WriteOutcome::Changed(changed)),
                other => Err(other),
            }
        }
    };
    match outcome {
        Ok(outcome) => shape.reply(outcome),
        Err(response) => error_reply(response),
    }
}

/// DEL: one `DeleteMulti` per owning shard, concurrently; the counts add up.
async fn delete(
    d: &Dispatcher,
    keys: Vec<Bytes>,
    deadline: Instant,
) -> Result<WriteOutcome, Response> {
    let mut by_shard: BTreeMap<u32, Vec<Bytes>> = BTreeMap::new();
    for key in keys {
        by_shard
            .entry(shard_for_key(&key, d.shard_count))
            .or_default()
            .push(key);
    }
    let parts = by_shard.into_iter().map(|(shard, keys)| {
        d.handle(
            Request::DeleteMulti(DeleteMulti {
                shard: Some(shard),
                keys,
            }),
            deadline,
        )
    });
    let mut removed = 0u64;
    for response in join_all(parts).await {
        match response {
            Response::DeleteMulti { removed: n } => removed += u64::from(n),
            other => return Err(other),
        }
    }
    Ok(WriteOutcome::Deleted(removed))
}

fn get(key: &Bytes) -> Request {
    Request::Get(Get {
        shard: None,
        key: key.clone(),
        consistency: CONSISTENCY,
    })
}

fn get_multi(keys: &[Bytes]) -> Request {
    Request::GetMulti(GetMulti {
        shard: None,
        keys: keys.to_vec(),
        consistency: CONSISTENCY,
    })
}

/// The Redis error reply for a failed (or mismatched) store answer.
pub(crate) fn error_reply(response: Response) -> Reply {
    let text = match response {
        Response::Error(e) => {
            let prefix = match e.detail {
                ErrorDetail::Busy { .. } => "BUSY",
                ErrorDetail::Timeout => "TIMEOUT",
                ErrorDetail::NotLeader { .. } | ErrorDetail::Unavailable => "TRYAGAIN",
                ErrorDetail::ShuttingDown => "SHUTDOWN",
                _ => "ERR",
            };
            format!("-{prefix} {}", e.message)
        }
        other => format!(
            "internal error: unexpected store answer {:?}",
            other.opcode()
        ),
    };
    Reply::Error(ErrorReply::new(text))
}
