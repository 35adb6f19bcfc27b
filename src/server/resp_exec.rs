//! Executes one planned RESP command (`shoal_resp::Action`) through the shard's
//! [`Forwarder`] (the [`Dispatcher`](super::dispatch::Dispatcher) for groups this node
//! leads, the leader node otherwise), so RESP gets the native protocol's routing,
//! forwarding over the mesh, limits and deadlines, and turns the outcome into a RESP
//! [`Reply`].
//!
//! Invariants:
//! - Every write is exactly one state-machine command per shard it touches (`SetIf`,
//!   `Expire`, `Persist`, `DeleteMulti`, `Put`), so conditional and TTL-changing commands
//!   are atomic and linearizable. A DEL over keys of several shards runs one `DeleteMulti`
//!   per shard: each shard's part is atomic, the whole is not (documented in `write_op`).
//! - Reads are linearizable (ReadIndex), like the native protocol's default, on the
//!   group's leader wherever it is (MGET/EXISTS: one `GetMulti` per owning group).
//! - A store error becomes a Redis error reply (`-ERR ...`, `-BUSY ...`, `-TIMEOUT ...`);
//!   it never closes the connection.

use std::collections::BTreeMap;
use std::time::Instant;

use bytes::Bytes;
use futures::future::join_all;
use shoal_proto::{
    DeleteMulti, ErrorDetail, Expire, ExpireCondition, Get, GetMulti, KeyTtl, Persist, Put,
    ReadConsistency, Request, Response, SetCondition, SetIf, Ttl, TtlMode, group_by_shard,
    limits::MAX_BATCH_KEYS, shard_for_key,
};
use shoal_resp::{
    ErrorReply, Read, ReadOp, ReadOutcome, Reply, TtlLookup, TtlUpdate, Write, WriteOp,
    WriteOutcome,
};

use super::forward::Forwarder;

const CONSISTENCY: ReadConsistency = ReadConsistency::Linearizable;

/// Serves a RESP read.
pub(crate) async fn read(d: &Forwarder, read: Read, deadline: Instant) -> Reply {
    let outcome = match &read.op {
        ReadOp::Get { key } => match d.handle(get(key), deadline).await {
            Response::Get(v) => Ok(ReadOutcome::Value(v)),
            other => Err(other),
        },
        ReadOp::MGet { keys } => get_multi(d, keys, deadline).await.map(ReadOutcome::Values),
        ReadOp::Exists { keys } => get_multi(d, keys, deadline)
            .await
            .map(|vs| ReadOutcome::Count(vs.iter().filter(|v| v.is_some()).count() as u64)),
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
pub(crate) async fn write(d: &Forwarder, write: Write, deadline: Instant) -> Reply {
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
    d: &Forwarder,
    keys: Vec<Bytes>,
    deadline: Instant,
) -> Result<WriteOutcome, Response> {
    let mut by_shard: BTreeMap<u32, Vec<Bytes>> = BTreeMap::new();
    for key in keys {
        by_shard
            .entry(shard_for_key(&key, d.dispatcher().shard_count))
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

/// Serves the GETs of one pipelined wave together: one `GetMulti` per owning group and
/// per [`MAX_BATCH_KEYS`] keys (one dispatch, one wait for a shared ReadIndex round, one
/// state lookup), instead of one `Get` each; the replies come back in `reads`' order.
///
/// As linearizable as one `Get` each: the GETs of a wave were all sent before any of
/// them was answered, so they are concurrent with each other, and the `GetMulti` is
/// dispatched after every one of them was invoked, so the read point it gets (a ReadIndex
/// round that starts after it arrives) is one each of them could have had. A part that
/// fails fails every GET of the wave with that error (each would have met the same
/// group), except `TooLarge` (a forwarded answer over the frame limit, which one GET
/// would not reach): then the GETs are served one by one.
///
/// `reads` must all be `ReadOp::Get` within the node's key limit (the caller checks).
pub(crate) async fn get_wave(d: &Forwarder, reads: Vec<Read>, deadline: Instant) -> Vec<Reply> {
    let keys: Vec<Bytes> = reads
        .iter()
        .filter_map(|r| match &r.op {
            ReadOp::Get { key } => Some(key.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(keys.len(), reads.len(), "get_wave takes GETs only");
    let parts = keys
        .chunks(MAX_BATCH_KEYS)
        .map(|chunk| get_multi(d, chunk, deadline));
    let mut values = Vec::with_capacity(keys.len());
    let mut failure = None;
    for part in join_all(parts).await {
        match part {
            Ok(vs) => values.extend(vs),
            Err(response) => {
                failure = Some(response);
                break;
            }
        }
    }
    match failure {
        None => reads
            .iter()
            .zip(values)
            .map(|(r, v)| r.reply(ReadOutcome::Value(v)))
            .collect(),
        Some(Response::Error(e)) if matches!(e.detail, ErrorDetail::TooLarge { .. }) => {
            join_all(reads.into_iter().map(|r| read(d, r, deadline))).await
        }
        Some(response) => {
            let reply = error_reply(response);
            vec![reply; reads.len()]
        }
    }
}

fn get(key: &Bytes) -> Request {
    Request::Get(Get {
        shard: None,
        key: key.clone(),
        consistency: CONSISTENCY,
    })
}

/// MGET/EXISTS: one `GetMulti` per owning group, concurrently (each at its group's
/// leader), merged back into the keys' order; any failed part fails the whole.
async fn get_multi(
    d: &Forwarder,
    keys: &[Bytes],
    deadline: Instant,
) -> Result<Vec<Option<Bytes>>, Response> {
    let groups = group_by_shard(keys, d.dispatcher().shard_count);
    let parts = groups.iter().map(|(shard, positions)| {
        let request = Request::GetMulti(GetMulti {
            shard: Some(*shard),
            keys: positions.iter().map(|&i| keys[i].clone()).collect(),
            consistency: CONSISTENCY,
        });
        d.handle(request, deadline)
    });
    let mut values: Vec<Option<Bytes>> = vec![None; keys.len()];
    for ((_, positions), answer) in groups.iter().zip(join_all(parts).await) {
        match answer {
            Response::GetMulti(vs) if vs.len() == positions.len() => {
                for (&i, v) in positions.iter().zip(vs) {
                    values[i] = v;
                }
            }
            other => return Err(other),
        }
    }
    Ok(values)
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
