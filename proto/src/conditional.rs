//! The conditional and TTL-changing operations (the Redis front door's writes, open to
//! native clients too): `SetIf`, `Expire`, `Persist`, `DeleteMulti`, and the `Ttl` read.
//! Their bodies are defined here; `request` and `response` dispatch to them.
//!
//! Layouts (little endian; `key`/`value` = u32 length + bytes; `shard` = u32, `ANY` for
//! "route it"):
//!
//! ```text
//! SetIf       shard, u8 mode, [u64 expire_at_ms if ttl = ExpireAt], key, value
//!             mode: bits 0-1 condition (0 always, 1 if absent, 2 if present),
//!                   bit 2 return the old value, bits 3-4 ttl (0 clear, 1 keep, 2 at)
//! Expire      shard, u64 expire_at_ms, u8 condition (NX 1, XX 2, GT 4, LT 8), key
//! Persist     shard, key
//! DeleteMulti shard, u32 count (1..=MAX_BATCH_KEYS), count x key
//! Ttl         shard, key                      (header flags: read consistency)
//! SetIfResp   u8 applied, u8 has_old, [value]
//! ExpireResp  u8 changed        PersistResp u8 changed
//! DeleteMultiResp u32 removed   TtlResp u8 kind (0 missing, 1 no expiry, 2 at), [u64 at]
//! ```
//!
//! Invariants: expiry times are absolute Unix milliseconds (the node's clock decides
//! liveness: the owning group's leader fixes `now` when it proposes); every mode or
//! condition byte with unknown bits or an invalid combination (NX with XX/GT/LT, GT with
//! LT) is refused, so every message has one encoding.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::BodyError;
use crate::limits::{MAX_BATCH_KEYS, MAX_KEY_LEN, MAX_SHARDS, MAX_VALUE_LEN};
use crate::request::ReadConsistency;
use crate::status::LimitKind;
use crate::wire::{Reader, check_limit, put_len_prefixed, put_opt_index};

/// When a `SetIf` stores its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SetCondition {
    /// Always.
    Always,
    /// Only if the key is absent (Redis NX).
    IfAbsent,
    /// Only if the key is present (Redis XX).
    IfPresent,
}

/// The expiry a `SetIf` leaves on the key it stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TtlMode {
    /// No expiry.
    Clear,
    /// The old live key's expiry (Redis KEEPTTL).
    Keep,
    /// This absolute Unix time in milliseconds (in the past: the key is removed).
    ExpireAt(u64),
}

/// `SetIf`: an atomic conditional set (Redis SET with NX/XX/GET/KEEPTTL/EX...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetIf {
    /// Stated shard, or `None` to route.
    pub shard: Option<u32>,
    /// The key.
    pub key: Bytes,
    /// The value.
    pub value: Bytes,
    /// When to store.
    pub condition: SetCondition,
    /// Expiry afterwards.
    pub ttl: TtlMode,
    /// Answer the old live value.
    pub return_old: bool,
}

/// EXPIRE conditions as a bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ExpireCondition {
    /// Only without a current expiry.
    pub nx: bool,
    /// Only with a current expiry.
    pub xx: bool,
    /// Only to a later expiry (no expiry counts as infinite).
    pub gt: bool,
    /// Only to an earlier expiry (no expiry counts as infinite).
    pub lt: bool,
}

impl ExpireCondition {
    /// The wire byte.
    pub fn bits(self) -> u8 {
        u8::from(self.nx) | u8::from(self.xx) << 1 | u8::from(self.gt) << 2 | u8::from(self.lt) << 3
    }

    /// Parses the wire byte; `None` for unknown bits or an invalid combination.
    pub fn from_bits(b: u8) -> Option<ExpireCondition> {
        let c = ExpireCondition {
            nx: b & 1 != 0,
            xx: b & 2 != 0,
            gt: b & 4 != 0,
            lt: b & 8 != 0,
        };
        (b & !0x0f == 0 && c.is_valid()).then_some(c)
    }

    /// Redis accepts none, NX, XX, GT, LT, XX+GT, XX+LT.
    pub fn is_valid(self) -> bool {
        !(self.nx && (self.xx || self.gt || self.lt)) && !(self.gt && self.lt)
    }
}

/// `Expire`: set a live key's absolute expiry if `condition` allows (in the past: remove).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expire {
    /// Stated shard, or `None` to route.
    pub shard: Option<u32>,
    /// The key.
    pub key: Bytes,
    /// Absolute Unix milliseconds.
    pub expire_at_ms: u64,
    /// NX/XX/GT/LT.
    pub condition: ExpireCondition,
}

/// `Persist`: drop a live key's expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Persist {
    /// Stated shard, or `None` to route.
    pub shard: Option<u32>,
    /// The key.
    pub key: Bytes,
}

/// `DeleteMulti`: delete keys that all belong to one shard; answers how many were live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteMulti {
    /// Stated shard, or `None` (the node routes by the first key; all must match).
    pub shard: Option<u32>,
    /// `1..=MAX_BATCH_KEYS` keys.
    pub keys: Vec<Bytes>,
}

/// `Ttl`: a key's expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ttl {
    /// Stated shard, or `None` to route.
    pub shard: Option<u32>,
    /// The key.
    pub key: Bytes,
    /// Read consistency (header flags).
    pub consistency: ReadConsistency,
}

/// A key's expiry, as the `Ttl` response reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyTtl {
    /// No live key.
    Missing,
    /// A live key without expiry.
    NoExpiry,
    /// A live key expiring at this absolute Unix time in ms.
    ExpiresAt(u64),
}

pub(crate) fn encode_set_if(buf: &mut BytesMut, s: &SetIf) -> Result<(), BodyError> {
    check_limit(LimitKind::Key, MAX_KEY_LEN, s.key.len())?;
    check_limit(LimitKind::Value, MAX_VALUE_LEN, s.value.len())?;
    put_opt_index(buf, s.shard, MAX_SHARDS)?;
    let cond = match s.condition {
        SetCondition::Always => 0,
        SetCondition::IfAbsent => 1,
        SetCondition::IfPresent => 2,
    };
    let ttl = match s.ttl {
        TtlMode::Clear => 0,
        TtlMode::Keep => 1,
        TtlMode::ExpireAt(_) => 2,
    };
    buf.put_u8(cond | u8::from(s.return_old) << 2 | ttl << 3);
    if let TtlMode::ExpireAt(at) = s.ttl {
        buf.put_u64_le(at);
    }
    put_len_prefixed(buf, &s.key);
    put_len_prefixed(buf, &s.value);
    Ok(())
}

pub(crate) fn decode_set_if(r: &mut Reader) -> Result<SetIf, BodyError> {
    let shard = r.opt_index(MAX_SHARDS, "shard")?;
    let mode = r.u8()?;
    let condition = match mode & 0b11 {
        0 => SetCondition::Always,
        1 => SetCondition::IfAbsent,
        2 => SetCondition::IfPresent,
        _ => return Err(BodyError::Invalid("set condition")),
    };
    let ttl = match mode >> 3 {
        0 => TtlMode::Clear,
        1 => TtlMode::Keep,
        2 => TtlMode::ExpireAt(r.u64()?),
        _ => return Err(BodyError::Invalid("set ttl mode")),
    };
    let key = r.len_prefixed(LimitKind::Key, MAX_KEY_LEN)?;
    let value = r.len_prefixed(LimitKind::Value, MAX_VALUE_LEN)?;
    Ok(SetIf {
        shard,
        key,
        value,
        condition,
        ttl,
        return_old: mode & 0b100 != 0,
    })
}

pub(crate) fn encode_expire(buf: &mut BytesMut, e: &Expire) -> Result<(), BodyError> {
    check_limit(LimitKind::Key, MAX_KEY_LEN, e.key.len())?;
    if !e.condition.is_valid() {
        return Err(BodyError::Invalid("expire condition"));
    }
    put_opt_index(buf, e.shard, MAX_SHARDS)?;
    buf.put_u64_le(e.expire_at_ms);
    buf.put_u8(e.condition.bits());
    put_len_prefixed(buf, &e.key);
    Ok(())
}

pub(crate) fn decode_expire(r: &mut Reader) -> Result<Expire, BodyError> {
    let shard = r.opt_index(MAX_SHARDS, "shard")?;
    let expire_at_ms = r.u64()?;
    let condition =
        ExpireCondition::from_bits(r.u8()?).ok_or(BodyError::Invalid("expire condition"))?;
    let key = r.len_prefixed(LimitKind::Key, MAX_KEY_LEN)?;
    Ok(Expire {
        shard,
        key,
        expire_at_ms,
        condition,
    })
}

pub(crate) fn encode_delete_multi(buf: &mut BytesMut, d: &DeleteMulti) -> Result<(), BodyError> {
    check_batch(d.keys.len())?;
    for k in &d.keys {
        check_limit(LimitKind::Key, MAX_KEY_LEN, k.len())?;
    }
    put_opt_index(buf, d.shard, MAX_SHARDS)?;
    buf.put_u32_le(d.keys.len() as u32);
    for k in &d.keys {
        put_len_prefixed(buf, k);
    }
    Ok(())
}

pub(crate) fn decode_delete_multi(r: &mut Reader) -> Result<DeleteMulti, BodyError> {
    let shard = r.opt_index(MAX_SHARDS, "shard")?;
    let n = r.u32()? as usize;
    check_batch(n)?;
    // Each key takes at least its 4-byte length: refuse a count the body cannot hold
    // before reserving space for it.
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
    Ok(DeleteMulti { shard, keys })
}

fn check_batch(n: usize) -> Result<(), BodyError> {
    if n == 0 {
        return Err(BodyError::Invalid("empty key batch"));
    }
    check_limit(LimitKind::Batch, MAX_BATCH_KEYS, n)
}

pub(crate) fn encode_set_if_resp(
    buf: &mut BytesMut,
    applied: bool,
    old: &Option<Bytes>,
) -> Result<(), BodyError> {
    buf.put_u8(u8::from(applied));
    match old {
        None => buf.put_u8(0),
        Some(v) => {
            check_limit(LimitKind::Value, MAX_VALUE_LEN, v.len())?;
            buf.put_u8(1);
            put_len_prefixed(buf, v);
        }
    }
    Ok(())
}

pub(crate) fn decode_set_if_resp(r: &mut Reader) -> Result<(bool, Option<Bytes>), BodyError> {
    let applied = r.bool("applied flag")?;
    let old = if r.bool("old value presence")? {
        Some(r.len_prefixed(LimitKind::Value, MAX_VALUE_LEN)?)
    } else {
        None
    };
    Ok((applied, old))
}

pub(crate) fn encode_key_ttl(buf: &mut BytesMut, t: KeyTtl) {
    match t {
        KeyTtl::Missing => buf.put_u8(0),
        KeyTtl::NoExpiry => buf.put_u8(1),
        KeyTtl::ExpiresAt(at) => {
            buf.put_u8(2);
            buf.put_u64_le(at);
        }
    }
}

pub(crate) fn decode_key_ttl(r: &mut Reader) -> Result<KeyTtl, BodyError> {
    Ok(match r.u8()? {
        0 => KeyTtl::Missing,
        1 => KeyTtl::NoExpiry,
        2 => KeyTtl::ExpiresAt(r.u64()?),
        _ => return Err(BodyError::Invalid("key ttl kind")),
    })
}
