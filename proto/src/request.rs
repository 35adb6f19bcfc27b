//! Client requests: one variant per operation, their header flags and body layouts.
//!
//! Invariants: keys and values are zero-copy [`Bytes`] slices of the received frame;
//! every length is checked against `MAX_KEY_LEN`, `MAX_VALUE_LEN`, `MAX_BATCH_KEYS` and
//! `MAX_TTL_MS` before slicing or allocating, on decode *and* on encode (a client cannot
//! produce a frame the node would refuse for size). Only `Get` and `GetMulti` use flags
//! (bits 0-1: read consistency); every other flag bit must be zero.

use bytes::{BufMut, Bytes, BytesMut};

use crate::conditional::{
    DeleteMulti, Expire, Persist, SetIf, Ttl, decode_delete_multi, decode_expire, decode_set_if,
    encode_delete_multi, encode_expire, encode_set_if,
};
use crate::error::BodyError;
use crate::error_response::{ErrorDetail, ErrorResponse};
use crate::frame::FLAG_CONSISTENCY_MASK;
use crate::handshake::Hello;
use crate::limits::{
    MAX_ADDR_LEN, MAX_BATCH_KEYS, MAX_KEY_LEN, MAX_SHARDS, MAX_TTL_MS, MAX_VALUE_LEN,
};
use crate::opcode::Opcode;
use crate::routing::shard_for_key;
use crate::status::LimitKind;
use crate::topology::{check_addr, check_node_list};
use crate::wire::{Reader, check_limit, put_len_prefixed, put_opt_index, put_string, put_u64_list};

/// How fresh a read must be. Carried in header flag bits 0-1 of `Get` and `GetMulti`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum ReadConsistency {
    /// The default: the leader confirms its leadership with a quorum (ReadIndex) and
    /// waits until the read index is applied. Sees every write acknowledged before it.
    #[default]
    Linearizable = 0,
    /// The leader serves from its state if its leader lease is valid: no quorum round;
    /// linearizable unless clocks drift beyond the lease margin.
    Lease = 1,
    /// Any replica (followers too) serves from its applied state: may miss recent writes.
    Stale = 2,
}

impl ReadConsistency {
    fn from_flags(flags: u8) -> Result<ReadConsistency, BodyError> {
        match flags {
            0 => Ok(ReadConsistency::Linearizable),
            1 => Ok(ReadConsistency::Lease),
            2 => Ok(ReadConsistency::Stale),
            _ => Err(BodyError::Invalid("read consistency flags")),
        }
    }
}

/// `Get`: read one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Get {
    /// The shard the client believes owns the key; `None` lets the node route it.
    pub shard: Option<u32>,
    /// The key.
    pub key: Bytes,
    /// Read consistency.
    pub consistency: ReadConsistency,
}

/// `GetMulti`: read up to `MAX_BATCH_KEYS` keys; answers in request order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetMulti {
    /// When `Some`, every key must belong to that shard; `None` lets the node fan out.
    pub shard: Option<u32>,
    /// The keys.
    pub keys: Vec<Bytes>,
    /// Read consistency.
    pub consistency: ReadConsistency,
}

/// `Put`: write one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Put {
    /// The shard the client believes owns the key; `None` lets the node route it.
    pub shard: Option<u32>,
    /// The key.
    pub key: Bytes,
    /// The value.
    pub value: Bytes,
}

/// `PutWithTtl`: write one key that expires `ttl_ms` after the leader proposes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutWithTtl {
    /// The shard the client believes owns the key; `None` lets the node route it.
    pub shard: Option<u32>,
    /// The key.
    pub key: Bytes,
    /// The value.
    pub value: Bytes,
    /// Time to live in milliseconds, `1..=MAX_TTL_MS` (the contract's seconds × 1000).
    pub ttl_ms: u64,
}

/// `Delete`: remove one key (idempotent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delete {
    /// The shard the client believes owns the key; `None` lets the node route it.
    pub shard: Option<u32>,
    /// The key.
    pub key: Bytes,
}

/// `AddLearner`: add a non-voting replica to one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddLearner {
    /// Group (= shard) id.
    pub group: u32,
    /// The new node's id.
    pub node_id: u64,
    /// The new node's peer address, `host:port` (of its shard 0; group g at port + g).
    pub addr: String,
    /// The new node's client address, `host:port` (of its shard 0), for `NotLeader`
    /// hints and the topology once it leads or serves.
    pub client_addr: String,
}

/// `ChangeMembership`: replace one group's voter set (openraft runs the joint consensus).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeMembership {
    /// Group (= shard) id.
    pub group: u32,
    /// The new voter set; each must already be a member (learner or voter).
    pub voters: Vec<u64>,
    /// Keep removed voters as learners instead of removing them.
    pub retain: bool,
}

/// A client request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Handshake.
    Hello(Hello),
    /// Liveness probe.
    Ping,
    /// Read one key.
    Get(Get),
    /// Read several keys.
    GetMulti(GetMulti),
    /// Write one key.
    Put(Put),
    /// Write one key with a TTL.
    PutWithTtl(PutWithTtl),
    /// Delete one key.
    Delete(Delete),
    /// Ask for the cluster topology.
    Topology,
    /// Admin: add a learner.
    AddLearner(AddLearner),
    /// Admin: change the voters.
    ChangeMembership(ChangeMembership),
    /// Admin: Raft status of one group (`Some`) or all groups of the node (`None`).
    Status {
        /// The group, or all.
        group: Option<u32>,
    },
    /// Conditional set.
    SetIf(SetIf),
    /// Set a key's expiry.
    Expire(Expire),
    /// Drop a key's expiry.
    Persist(Persist),
    /// Delete several keys of one shard.
    DeleteMulti(DeleteMulti),
    /// Read a key's expiry.
    Ttl(Ttl),
    /// Keys stored by one group on the answering node.
    KeyCount {
        /// The group.
        group: u32,
    },
    /// Admin: the digest of one group's state machine on the answering node.
    StateDigest {
        /// The group.
        group: u32,
    },
}

impl Request {
    /// The opcode of this request.
    pub fn opcode(&self) -> Opcode {
        match self {
            Request::Hello(_) => Opcode::Hello,
            Request::Ping => Opcode::Ping,
            Request::Get(_) => Opcode::Get,
            Request::GetMulti(_) => Opcode::GetMulti,
            Request::Put(_) => Opcode::Put,
            Request::PutWithTtl(_) => Opcode::PutWithTtl,
            Request::Delete(_) => Opcode::Delete,
            Request::Topology => Opcode::Topology,
            Request::AddLearner(_) => Opcode::AddLearner,
            Request::ChangeMembership(_) => Opcode::ChangeMembership,
            Request::Status { .. } => Opcode::Status,
            Request::SetIf(_) => Opcode::SetIf,
            Request::Expire(_) => Opcode::Expire,
            Request::Persist(_) => Opcode::Persist,
            Request::DeleteMulti(_) => Opcode::DeleteMulti,
            Request::Ttl(_) => Opcode::Ttl,
            Request::KeyCount { .. } => Opcode::KeyCount,
            Request::StateDigest { .. } => Opcode::StateDigest,
        }
    }

    /// The header flags of this request.
    pub fn flags(&self) -> u8 {
        match self {
            Request::Get(g) => g.consistency as u8,
            Request::GetMulti(g) => g.consistency as u8,
            Request::Ttl(t) => t.consistency as u8,
            _ => 0,
        }
    }

    /// The key of a single-key request (what routes it).
    pub fn key(&self) -> Option<&Bytes> {
        match self {
            Request::Get(g) => Some(&g.key),
            Request::Put(p) => Some(&p.key),
            Request::PutWithTtl(p) => Some(&p.key),
            Request::Delete(d) => Some(&d.key),
            Request::SetIf(s) => Some(&s.key),
            Request::Expire(e) => Some(&e.key),
            Request::Persist(p) => Some(&p.key),
            Request::Ttl(t) => Some(&t.key),
            _ => None,
        }
    }

    /// Checks the shard the client stated against the owner of the request's key(s) under
    /// the node's `shard_count`, so a client with a stale topology learns it.
    ///
    /// `Ok(Some(s))`: the request belongs to shard `s` (stated and correct, or computed when
    /// the client sent `ANY`). `Ok(None)`: no single shard (not a keyed request, an empty
    /// batch, or a `GetMulti` with `ANY`: the node fans out). `Err`: a `WrongShard` answer
    /// naming the owner of the first key the stated shard does not own.
    ///
    /// # Panics
    /// If `shard_count` is zero (a node always has at least one shard).
    pub fn route(&self, shard_count: u32) -> Result<Option<u32>, ErrorResponse> {
        let wrong = |owner_shard: u32, stated: u32| {
            ErrorResponse::new(
                ErrorDetail::WrongShard {
                    owner_shard,
                    shard_count,
                },
                format!(
                    "shard {stated} does not own the key; shard {owner_shard} of {shard_count} does"
                ),
            )
        };
        let (stated, keys): (Option<u32>, &[Bytes]) = match self {
            Request::Get(g) => (g.shard, std::slice::from_ref(&g.key)),
            Request::Put(p) => (p.shard, std::slice::from_ref(&p.key)),
            Request::PutWithTtl(p) => (p.shard, std::slice::from_ref(&p.key)),
            Request::Delete(d) => (d.shard, std::slice::from_ref(&d.key)),
            Request::GetMulti(g) => match g.shard {
                None => return Ok(None),
                Some(_) => (g.shard, &g.keys[..]),
            },
            Request::SetIf(s) => (s.shard, std::slice::from_ref(&s.key)),
            Request::Expire(e) => (e.shard, std::slice::from_ref(&e.key)),
            Request::Persist(p) => (p.shard, std::slice::from_ref(&p.key)),
            Request::Ttl(t) => (t.shard, std::slice::from_ref(&t.key)),
            Request::DeleteMulti(d) => {
                // One shard for the whole batch: stated, or the first key's owner.
                let first = d.keys.first().map(|k| shard_for_key(k, shard_count));
                (d.shard.or(first), &d.keys[..])
            }
            _ => return Ok(None),
        };
        let mut route = None;
        for key in keys {
            let owner = shard_for_key(key, shard_count);
            match stated {
                Some(s) if s != owner => return Err(wrong(owner, s)),
                _ => route = Some(owner),
            }
        }
        Ok(route)
    }

    /// Writes the body after the header. On error the caller (`encoder`) truncates the
    /// buffer back to the frame's start.
    pub(crate) fn encode_body(&self, buf: &mut BytesMut) -> Result<(), BodyError> {
        match self {
            Request::Hello(h) => h.encode(buf)?,
            Request::Ping | Request::Topology => {}
            Request::Get(g) => write_keyed(buf, g.shard, &g.key, None, None)?,
            Request::GetMulti(g) => {
                check_limit(LimitKind::Batch, MAX_BATCH_KEYS, g.keys.len())?;
                put_opt_index(buf, g.shard, MAX_SHARDS)?;
                buf.put_u32_le(g.keys.len() as u32);
                for k in &g.keys {
                    check_limit(LimitKind::Key, MAX_KEY_LEN, k.len())?;
                    put_len_prefixed(buf, k);
                }
            }
            Request::Put(p) => write_keyed(buf, p.shard, &p.key, Some(&p.value), None)?,
            Request::PutWithTtl(p) => {
                write_keyed(buf, p.shard, &p.key, Some(&p.value), Some(p.ttl_ms))?;
            }
            Request::Delete(d) => write_keyed(buf, d.shard, &d.key, None, None)?,
            Request::AddLearner(a) => {
                check_addr(&a.addr)?;
                check_addr(&a.client_addr)?;
                group_id(a.group)?;
                buf.put_u32_le(a.group);
                buf.put_u64_le(a.node_id);
                put_string(buf, &a.addr);
                put_string(buf, &a.client_addr);
            }
            Request::ChangeMembership(c) => {
                check_node_list(&c.voters)?;
                group_id(c.group)?;
                if c.voters.is_empty() {
                    return Err(BodyError::Invalid("empty voter set"));
                }
                buf.put_u32_le(c.group);
                buf.put_u8(u8::from(c.retain));
                put_u64_list(buf, &c.voters);
            }
            Request::Status { group } => put_opt_index(buf, *group, MAX_SHARDS)?,
            Request::SetIf(s) => encode_set_if(buf, s)?,
            Request::Expire(e) => encode_expire(buf, e)?,
            Request::Persist(p) => write_keyed(buf, p.shard, &p.key, None, None)?,
            Request::DeleteMulti(d) => encode_delete_multi(buf, d)?,
            Request::Ttl(t) => write_keyed(buf, t.shard, &t.key, None, None)?,
            Request::KeyCount { group } | Request::StateDigest { group } => {
                buf.put_u32_le(group_id(*group)?)
            }
        }
        Ok(())
    }

    /// Parses a request body; `flags` were not yet checked.
    pub(crate) fn decode_body(op: Opcode, flags: u8, mut r: Reader) -> Result<Request, BodyError> {
        let reads = matches!(op, Opcode::Get | Opcode::GetMulti | Opcode::Ttl);
        if !reads && flags != 0 {
            return Err(BodyError::Invalid("flags (must be zero for this opcode)"));
        }
        if reads && flags & !FLAG_CONSISTENCY_MASK != 0 {
            return Err(BodyError::Invalid("flags (reserved bits set)"));
        }
        let req = match op {
            Opcode::Hello => Request::Hello(Hello::decode(&mut r)?),
            Opcode::Ping => Request::Ping,
            Opcode::Topology => Request::Topology,
            Opcode::Get => {
                let consistency = ReadConsistency::from_flags(flags)?;
                let shard = r.opt_index(MAX_SHARDS, "shard")?;
                let key = r.len_prefixed(LimitKind::Key, MAX_KEY_LEN)?;
                Request::Get(Get {
                    shard,
                    key,
                    consistency,
                })
            }
            Opcode::GetMulti => {
                let consistency = ReadConsistency::from_flags(flags)?;
                let shard = r.opt_index(MAX_SHARDS, "shard")?;
                let n = r.u32()? as usize;
                check_limit(LimitKind::Batch, MAX_BATCH_KEYS, n)?;
                // Each key takes at least its 4-byte length: refuse a count the body cannot
                // hold before reserving space for it.
                if n.saturating_mul(4) > r.remaining() {
                    return Err(BodyError::Truncated {
                        needed: n * 4,
                        remaining: r.remaining(),
                    });
                }
                let mut keys = Vec::with_capacity(n);
                for _ in 0..n {
                    keys.push(r.len_prefixed(LimitKind::Key, MAX_KEY_LEN)?);
                }
                Request::GetMulti(GetMulti {
                    shard,
                    keys,
                    consistency,
                })
            }
            Opcode::Put => {
                let shard = r.opt_index(MAX_SHARDS, "shard")?;
                let key = r.len_prefixed(LimitKind::Key, MAX_KEY_LEN)?;
                let value = r.len_prefixed(LimitKind::Value, MAX_VALUE_LEN)?;
                Request::Put(Put { shard, key, value })
            }
            Opcode::PutWithTtl => {
                let shard = r.opt_index(MAX_SHARDS, "shard")?;
                let ttl_ms = r.u64()?;
                check_ttl(ttl_ms)?;
                let key = r.len_prefixed(LimitKind::Key, MAX_KEY_LEN)?;
                let value = r.len_prefixed(LimitKind::Value, MAX_VALUE_LEN)?;
                Request::PutWithTtl(PutWithTtl {
                    shard,
                    key,
                    value,
                    ttl_ms,
                })
            }
            Opcode::Delete => {
                let shard = r.opt_index(MAX_SHARDS, "shard")?;
                let key = r.len_prefixed(LimitKind::Key, MAX_KEY_LEN)?;
                Request::Delete(Delete { shard, key })
            }
            Opcode::AddLearner => {
                let group = group_id(r.u32()?)?;
                let node_id = r.u64()?;
                let addr = r.string(MAX_ADDR_LEN, "learner address length")?;
                let client_addr = r.string(MAX_ADDR_LEN, "learner client address length")?;
                Request::AddLearner(AddLearner {
                    group,
                    node_id,
                    addr,
                    client_addr,
                })
            }
            Opcode::ChangeMembership => {
                let group = group_id(r.u32()?)?;
                let retain = r.bool("retain flag")?;
                let voters = r.u64_list(crate::limits::MAX_NODES, "voter count")?;
                if voters.is_empty() {
                    return Err(BodyError::Invalid("empty voter set"));
                }
                Request::ChangeMembership(ChangeMembership {
                    group,
                    voters,
                    retain,
                })
            }
            Opcode::Status => Request::Status {
                group: r.opt_index(MAX_SHARDS, "group")?,
            },
            Opcode::SetIf => Request::SetIf(decode_set_if(&mut r)?),
            Opcode::Expire => Request::Expire(decode_expire(&mut r)?),
            Opcode::Persist => {
                let shard = r.opt_index(MAX_SHARDS, "shard")?;
                let key = r.len_prefixed(LimitKind::Key, MAX_KEY_LEN)?;
                Request::Persist(Persist { shard, key })
            }
            Opcode::DeleteMulti => Request::DeleteMulti(decode_delete_multi(&mut r)?),
            Opcode::Ttl => {
                let consistency = ReadConsistency::from_flags(flags)?;
                let shard = r.opt_index(MAX_SHARDS, "shard")?;
                let key = r.len_prefixed(LimitKind::Key, MAX_KEY_LEN)?;
                Request::Ttl(Ttl {
                    shard,
                    key,
                    consistency,
                })
            }
            Opcode::KeyCount => Request::KeyCount {
                group: group_id(r.u32()?)?,
            },
            Opcode::StateDigest => Request::StateDigest {
                group: group_id(r.u32()?)?,
            },
            _ => return Err(BodyError::Invalid("not a client request opcode")),
        };
        r.finish()?;
        Ok(req)
    }
}

/// Body of the single-key requests (`Get`, `Put`, `PutWithTtl`, `Delete`) from borrowed
/// bytes: `shard`, then `ttl_ms` when given, `key`, then `value` when given. Checks every
/// limit before writing anything. Shared by [`Request`] and the borrowed encoders.
pub(crate) fn write_keyed(
    buf: &mut BytesMut,
    shard: Option<u32>,
    key: &[u8],
    value: Option<&[u8]>,
    ttl_ms: Option<u64>,
) -> Result<(), BodyError> {
    check_limit(LimitKind::Key, MAX_KEY_LEN, key.len())?;
    if let Some(v) = value {
        check_limit(LimitKind::Value, MAX_VALUE_LEN, v.len())?;
    }
    if let Some(ttl) = ttl_ms {
        check_ttl(ttl)?;
    }
    put_opt_index(buf, shard, MAX_SHARDS)?;
    if let Some(ttl) = ttl_ms {
        buf.put_u64_le(ttl);
    }
    put_len_prefixed(buf, key);
    if let Some(v) = value {
        put_len_prefixed(buf, v);
    }
    Ok(())
}

fn group_id(g: u32) -> Result<u32, BodyError> {
    if g as usize >= MAX_SHARDS {
        return Err(BodyError::Invalid("group id"));
    }
    Ok(g)
}

fn check_ttl(ttl_ms: u64) -> Result<(), BodyError> {
    if ttl_ms == 0 {
        return Err(BodyError::Invalid("ttl of zero"));
    }
    if ttl_ms > MAX_TTL_MS {
        return Err(BodyError::TooLarge {
            limit: LimitKind::Ttl,
            max: MAX_TTL_MS,
            actual: ttl_ms,
        });
    }
    Ok(())
}
