//! Commands applied to the state machine and their compact, versioned binary encoding.
//!
//! Commands travel in the Raft log (inside WAL records, which carry their own CRC), so the
//! encoding is compact and carries no checksum of its own. Layout (all integers little
//! endian, `varint` = unsigned LEB128 of at most 5 bytes holding a `u32`):
//!
//! ```text
//! byte 0      version (COMMAND_VERSION = 1)
//! byte 1      opcode: 1 Put, 2 PutWithTtl, 3 Delete, 4 SetIf, 5 SetExpiry, 6 Persist,
//!             7 DeleteLive
//! Put         varint key_len, key, varint value_len, value
//! PutWithTtl  u64 expire_at_ms, varint key_len, key, varint value_len, value
//! Delete      varint key_len, key
//! SetIf       u64 now_ms, u8 flags, [u64 expire_at_ms if ttl mode 2], key, value
//!             flags: bits 0-1 condition (0 always, 1 if absent, 2 if present),
//!             bit 2 return_old, bits 3-4 ttl mode (0 clear, 1 keep, 2 expire at)
//! SetExpiry   u64 now_ms, u64 expire_at_ms, u8 condition (NX 1, XX 2, GT 4, LT 8), key
//! Persist     u64 now_ms, key
//! DeleteLive  u64 now_ms, varint count (1..=MAX_BATCH_KEYS), count x key
//! ```
//!
//! Opcodes 4-7 were added after 1-3 without changing their layout, so the version byte
//! stays 1: logs written before them decode unchanged. Commands whose outcome depends on
//! whether a key is live carry `now_ms`, the leader's clock when it proposed: apply never
//! reads a clock, so every replica decides the same. Flag bytes with unknown bits or
//! invalid combinations are refused, so every command keeps exactly one encoding.
//!
//! Invariants: a decoded command always respects `limits::MAX_KEY_LEN` and
//! `limits::MAX_VALUE_LEN`; decoding consumes the whole buffer or fails; decoding never
//! panics and never allocates beyond the `Bytes` handles it returns (keys and values are
//! zero-copy slices of the input, which the state copies into its own allocation at apply).
//! New commands (compare-and-swap, NX/XX, expire/persist, batches) get new opcodes; an
//! incompatible layout change bumps the version byte.

use bytes::Bytes;
use shoal_proto::limits;

use super::error::CommandError;

/// Version byte written first in every encoded command.
pub const COMMAND_VERSION: u8 = 1;

const OP_PUT: u8 = 1;
const OP_PUT_WITH_TTL: u8 = 2;
const OP_DELETE: u8 = 3;
const OP_SET_IF: u8 = 4;
const OP_SET_EXPIRY: u8 = 5;
const OP_PERSIST: u8 = 6;
const OP_DELETE_LIVE: u8 = 7;

/// When a `SetIf` stores its value, judged on the key's liveness at the command's `now_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetCondition {
    /// Always (plain SET with GET or KEEPTTL).
    Always = 0,
    /// Only if no live key (NX).
    IfAbsent = 1,
    /// Only if a live key (XX).
    IfPresent = 2,
}

/// What a `SetIf` that stores does to the key's expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtlChange {
    /// No expiry afterwards.
    Clear,
    /// Keep the live old key's expiry (none if there was no live key): KEEPTTL.
    Keep,
    /// Expire at this Unix time in ms (at or before `now_ms`: the key is removed at once).
    ExpireAt(u64),
}

/// Conditions of a `SetExpiry` (EXPIRE's NX/XX/GT/LT), as a validated bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExpiryCondition {
    /// Only if the key has no expiry.
    pub nx: bool,
    /// Only if the key has an expiry.
    pub xx: bool,
    /// Only if the new expiry is later than the current one (no expiry = infinite).
    pub gt: bool,
    /// Only if the new expiry is earlier than the current one (no expiry = infinite).
    pub lt: bool,
}

impl ExpiryCondition {
    fn bits(self) -> u8 {
        u8::from(self.nx) | u8::from(self.xx) << 1 | u8::from(self.gt) << 2 | u8::from(self.lt) << 3
    }

    /// Valid sets: none, NX, XX, GT, LT, XX+GT, XX+LT (Redis refuses the others).
    pub fn is_valid(self) -> bool {
        !(self.nx && (self.xx || self.gt || self.lt)) && !(self.gt && self.lt)
    }

    fn from_bits(b: u8) -> Option<ExpiryCondition> {
        if b & !0x0f != 0 {
            return None;
        }
        let c = ExpiryCondition {
            nx: b & 1 != 0,
            xx: b & 2 != 0,
            gt: b & 4 != 0,
            lt: b & 8 != 0,
        };
        c.is_valid().then_some(c)
    }

    /// `from_bits` for the model tests.
    #[cfg(test)]
    pub(crate) fn from_bits_for_tests(b: u8) -> Option<ExpiryCondition> {
        Self::from_bits(b)
    }

    /// Whether a key whose expiry is `current` may get `new`.
    pub fn allows(self, current: Option<u64>, new: u64) -> bool {
        if self.nx && current.is_some() {
            return false;
        }
        if self.xx && current.is_none() {
            return false;
        }
        if self.gt && current.is_none_or(|c| new <= c) {
            return false;
        }
        if self.lt && current.is_some_and(|c| new >= c) {
            return false;
        }
        true
    }
}

/// One state-machine command, as carried by a Raft log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Set `key` to `value` with no expiry (cancels any previous expiry).
    Put { key: Bytes, value: Bytes },
    /// Set `key` to `value`, invisible from `expire_at_ms` on. The leader turns the
    /// client's TTL into this absolute time when it proposes the entry, so every replica
    /// applies the same expiry.
    PutWithTtl {
        key: Bytes,
        value: Bytes,
        expire_at_ms: u64,
    },
    /// Remove `key`; idempotent.
    Delete { key: Bytes },
    /// SET with NX/XX/GET/KEEPTTL, atomically: read the old value live at `now_ms`, check
    /// `condition`, store `value` with `ttl` if it holds. Answers whether it stored and,
    /// with `return_old`, the old live value.
    SetIf {
        key: Bytes,
        value: Bytes,
        now_ms: u64,
        condition: SetCondition,
        ttl: TtlChange,
        return_old: bool,
    },
    /// EXPIRE/PEXPIRE: if `key` is live at `now_ms` and `condition` allows it, set its
    /// expiry to `expire_at_ms` (at or before `now_ms` removes the key). Answers whether
    /// the key changed.
    SetExpiry {
        key: Bytes,
        now_ms: u64,
        expire_at_ms: u64,
        condition: ExpiryCondition,
    },
    /// PERSIST: if `key` is live at `now_ms` and has an expiry, drop the expiry.
    Persist { key: Bytes, now_ms: u64 },
    /// DEL of up to `MAX_BATCH_KEYS` keys: removes them and answers how many were live at
    /// `now_ms` (a key named twice counts once).
    DeleteLive { keys: Vec<Bytes>, now_ms: u64 },
}

impl Command {
    /// The keys this command writes (one, except `DeleteLive`).
    pub fn keys(&self) -> &[Bytes] {
        match self {
            Command::Put { key, .. }
            | Command::PutWithTtl { key, .. }
            | Command::Delete { key }
            | Command::SetIf { key, .. }
            | Command::SetExpiry { key, .. }
            | Command::Persist { key, .. } => std::slice::from_ref(key),
            Command::DeleteLive { keys, .. } => keys,
        }
    }

    /// Checks the limits of `limits.rs`. `decode` does it already; `apply` does it again
    /// for commands built in-process.
    pub fn validate(&self) -> Result<(), CommandError> {
        for key in self.keys() {
            check_key(key.len())?;
        }
        match self {
            Command::Put { value, .. }
            | Command::PutWithTtl { value, .. }
            | Command::SetIf { value, .. } => check_value(value.len()),
            Command::SetExpiry { condition, .. } if !condition.is_valid() => {
                Err(CommandError::BadFlags(condition.bits()))
            }
            Command::DeleteLive { keys, .. } => check_batch(keys.len()),
            Command::Delete { .. } | Command::SetExpiry { .. } | Command::Persist { .. } => Ok(()),
        }
    }

    /// Exact length of the encoding.
    pub fn encoded_len(&self) -> usize {
        2 + match self {
            Command::Put { key, value } => field_len(key) + field_len(value),
            Command::PutWithTtl { key, value, .. } => 8 + field_len(key) + field_len(value),
            Command::Delete { key } => field_len(key),
            Command::SetIf {
                key, value, ttl, ..
            } => {
                8 + 1
                    + if matches!(ttl, TtlChange::ExpireAt(_)) {
                        8
                    } else {
                        0
                    }
                    + field_len(key)
                    + field_len(value)
            }
            Command::SetExpiry { key, .. } => 8 + 8 + 1 + field_len(key),
            Command::Persist { key, .. } => 8 + field_len(key),
            Command::DeleteLive { keys, .. } => {
                8 + varint_len(keys.len()) + keys.iter().map(|k| field_len(k)).sum::<usize>()
            }
        }
    }

    /// Appends the encoding to `out`. Fails only if the command breaks a limit, so an
    /// encoded command always decodes.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), CommandError> {
        self.validate()?;
        out.reserve(self.encoded_len());
        out.push(COMMAND_VERSION);
        match self {
            Command::Put { key, value } => {
                out.push(OP_PUT);
                put_field(out, key);
                put_field(out, value);
            }
            Command::PutWithTtl {
                key,
                value,
                expire_at_ms,
            } => {
                out.push(OP_PUT_WITH_TTL);
                out.extend_from_slice(&expire_at_ms.to_le_bytes());
                put_field(out, key);
                put_field(out, value);
            }
            Command::Delete { key } => {
                out.push(OP_DELETE);
                put_field(out, key);
            }
            Command::SetIf {
                key,
                value,
                now_ms,
                condition,
                ttl,
                return_old,
            } => {
                out.push(OP_SET_IF);
                out.extend_from_slice(&now_ms.to_le_bytes());
                let mode: u8 = match ttl {
                    TtlChange::Clear => 0,
                    TtlChange::Keep => 1,
                    TtlChange::ExpireAt(_) => 2,
                };
                out.push(*condition as u8 | u8::from(*return_old) << 2 | mode << 3);
                if let TtlChange::ExpireAt(at) = ttl {
                    out.extend_from_slice(&at.to_le_bytes());
                }
                put_field(out, key);
                put_field(out, value);
            }
            Command::SetExpiry {
                key,
                now_ms,
                expire_at_ms,
                condition,
            } => {
                out.push(OP_SET_EXPIRY);
                out.extend_from_slice(&now_ms.to_le_bytes());
                out.extend_from_slice(&expire_at_ms.to_le_bytes());
                out.push(condition.bits());
                put_field(out, key);
            }
            Command::Persist { key, now_ms } => {
                out.push(OP_PERSIST);
                out.extend_from_slice(&now_ms.to_le_bytes());
                put_field(out, key);
            }
            Command::DeleteLive { keys, now_ms } => {
                out.push(OP_DELETE_LIVE);
                out.extend_from_slice(&now_ms.to_le_bytes());
                put_varint(out, keys.len() as u32);
                for key in keys {
                    put_field(out, key);
                }
            }
        }
        Ok(())
    }

    /// Encodes into a fresh buffer.
    pub fn to_bytes(&self) -> Result<Bytes, CommandError> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode(&mut out)?;
        Ok(Bytes::from(out))
    }

    /// Decodes one command that fills `buf` exactly. Keys and values are zero-copy slices
    /// of `buf`.
    pub fn decode(buf: &Bytes) -> Result<Command, CommandError> {
        let mut r = Reader { buf, pos: 0 };
        let version = r.u8()?;
        if version != COMMAND_VERSION {
            return Err(CommandError::UnknownVersion(version));
        }
        let cmd = match r.u8()? {
            OP_PUT => {
                let key = r.field(Limit::Key)?;
                let value = r.field(Limit::Value)?;
                Command::Put { key, value }
            }
            OP_PUT_WITH_TTL => {
                let expire_at_ms = r.u64()?;
                let key = r.field(Limit::Key)?;
                let value = r.field(Limit::Value)?;
                Command::PutWithTtl {
                    key,
                    value,
                    expire_at_ms,
                }
            }
            OP_DELETE => Command::Delete {
                key: r.field(Limit::Key)?,
            },
            OP_SET_IF => {
                let now_ms = r.u64()?;
                let flags = r.u8()?;
                let condition = match flags & 0b11 {
                    0 => SetCondition::Always,
                    1 => SetCondition::IfAbsent,
                    2 => SetCondition::IfPresent,
                    _ => return Err(CommandError::BadFlags(flags)),
                };
                let return_old = flags & 0b100 != 0;
                let ttl = match flags >> 3 {
                    0 => TtlChange::Clear,
                    1 => TtlChange::Keep,
                    2 => TtlChange::ExpireAt(r.u64()?),
                    _ => return Err(CommandError::BadFlags(flags)),
                };
                let key = r.field(Limit::Key)?;
                let value = r.field(Limit::Value)?;
                Command::SetIf {
                    key,
                    value,
                    now_ms,
                    condition,
                    ttl,
                    return_old,
                }
            }
            OP_SET_EXPIRY => {
                let now_ms = r.u64()?;
                let expire_at_ms = r.u64()?;
                let bits = r.u8()?;
                let condition =
                    ExpiryCondition::from_bits(bits).ok_or(CommandError::BadFlags(bits))?;
                Command::SetExpiry {
                    key: r.field(Limit::Key)?,
                    now_ms,
                    expire_at_ms,
                    condition,
                }
            }
            OP_PERSIST => {
                let now_ms = r.u64()?;
                Command::Persist {
                    key: r.field(Limit::Key)?,
                    now_ms,
                }
            }
            OP_DELETE_LIVE => {
                let now_ms = r.u64()?;
                let count = r.varint()? as usize;
                check_batch(count)?;
                // Each key takes at least its one-byte length: refuse a count the buffer
                // cannot hold before reserving space for it.
                r.need(count)?;
                let mut keys = Vec::with_capacity(count);
                for _ in 0..count {
                    keys.push(r.field(Limit::Key)?);
                }
                Command::DeleteLive { keys, now_ms }
            }
            op => return Err(CommandError::UnknownOpcode(op)),
        };
        let extra = buf.len() - r.pos;
        if extra != 0 {
            return Err(CommandError::TrailingBytes { extra });
        }
        Ok(cmd)
    }
}

fn check_key(len: usize) -> Result<(), CommandError> {
    if len > limits::MAX_KEY_LEN {
        return Err(CommandError::KeyTooLong { len });
    }
    Ok(())
}

fn check_value(len: usize) -> Result<(), CommandError> {
    if len > limits::MAX_VALUE_LEN {
        return Err(CommandError::ValueTooLong { len });
    }
    Ok(())
}

fn check_batch(count: usize) -> Result<(), CommandError> {
    if count == 0 || count > limits::MAX_BATCH_KEYS {
        return Err(CommandError::BadBatch { count });
    }
    Ok(())
}

fn varint_len(v: usize) -> usize {
    let bits = usize::BITS - (v | 1).leading_zeros();
    bits.div_ceil(7) as usize
}

fn field_len(b: &[u8]) -> usize {
    varint_len(b.len()) + b.len()
}

fn put_field(out: &mut Vec<u8>, b: &[u8]) {
    // Limits are far below u32::MAX, checked by validate() before we get here.
    put_varint(out, b.len() as u32);
    out.extend_from_slice(b);
}

fn put_varint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[derive(Clone, Copy)]
enum Limit {
    Key,
    Value,
}

struct Reader<'a> {
    buf: &'a Bytes,
    pos: usize,
}

impl Reader<'_> {
    fn need(&self, n: usize) -> Result<(), CommandError> {
        let left = self.buf.len() - self.pos;
        if left < n {
            return Err(CommandError::Truncated {
                offset: self.pos,
                needed: n - left,
            });
        }
        Ok(())
    }

    fn u8(&mut self) -> Result<u8, CommandError> {
        self.need(1)?;
        let b = self.buf[self.pos];
        self.pos += 1;
        Ok(b)
    }

    fn u64(&mut self) -> Result<u64, CommandError> {
        self.need(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(&self.buf[self.pos..self.pos + 8]);
        self.pos += 8;
        Ok(u64::from_le_bytes(a))
    }

    fn varint(&mut self) -> Result<u32, CommandError> {
        let start = self.pos;
        let mut v: u64 = 0;
        for i in 0..5 {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                // Reject non-minimal encodings (a trailing zero group) so each command has
                // exactly one encoding.
                if i > 0 && b == 0 {
                    return Err(CommandError::BadVarint { offset: start });
                }
                return u32::try_from(v).map_err(|_| CommandError::BadVarint { offset: start });
            }
        }
        Err(CommandError::BadVarint { offset: start })
    }

    fn field(&mut self, limit: Limit) -> Result<Bytes, CommandError> {
        let len = self.varint()? as usize;
        match limit {
            Limit::Key => check_key(len)?,
            Limit::Value => check_value(len)?,
        }
        self.need(len)?;
        let b = self.buf.slice(self.pos..self.pos + len);
        self.pos += len;
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_command() -> impl Strategy<Value = Command> {
        let key = proptest::collection::vec(any::<u8>(), 0..300).prop_map(Bytes::from);
        let value = proptest::collection::vec(any::<u8>(), 0..600).prop_map(Bytes::from);
        prop_oneof![
            (key.clone(), value.clone()).prop_map(|(key, value)| Command::Put { key, value }),
            (key.clone(), value.clone(), any::<u64>()).prop_map(|(key, value, expire_at_ms)| {
                Command::PutWithTtl {
                    key,
                    value,
                    expire_at_ms,
                }
            }),
            key.clone().prop_map(|key| Command::Delete { key }),
            (
                key.clone(),
                value,
                any::<u64>(),
                0u8..3,
                0u8..3,
                any::<u64>(),
                any::<bool>()
            )
                .prop_map(|(key, value, now_ms, c, t, at, return_old)| {
                    Command::SetIf {
                        key,
                        value,
                        now_ms,
                        condition: [
                            SetCondition::Always,
                            SetCondition::IfAbsent,
                            SetCondition::IfPresent,
                        ][c as usize],
                        ttl: [TtlChange::Clear, TtlChange::Keep, TtlChange::ExpireAt(at)]
                            [t as usize],
                        return_old,
                    }
                }),
            (
                key.clone(),
                any::<u64>(),
                any::<u64>(),
                arb_expiry_condition()
            )
                .prop_map(|(key, now_ms, expire_at_ms, condition)| {
                    Command::SetExpiry {
                        key,
                        now_ms,
                        expire_at_ms,
                        condition,
                    }
                }),
            (key.clone(), any::<u64>()).prop_map(|(key, now_ms)| Command::Persist { key, now_ms }),
            (proptest::collection::vec(key, 1..20), any::<u64>())
                .prop_map(|(keys, now_ms)| Command::DeleteLive { keys, now_ms }),
        ]
    }

    fn arb_expiry_condition() -> impl Strategy<Value = ExpiryCondition> {
        (0u8..16).prop_filter_map("invalid combination", ExpiryCondition::from_bits)
    }

    #[test]
    fn new_commands_refuse_bad_flags_and_batches() {
        // SetIf with condition 3.
        let mut v = vec![1, OP_SET_IF];
        v.extend_from_slice(&0u64.to_le_bytes());
        v.extend_from_slice(&[3, 0, 0]);
        assert_eq!(
            Command::decode(&Bytes::from(v)),
            Err(CommandError::BadFlags(3))
        );
        // SetExpiry with NX+GT.
        let mut v = vec![1, OP_SET_EXPIRY];
        v.extend_from_slice(&[0u8; 16]);
        v.extend_from_slice(&[1 | 4, 0]);
        assert_eq!(
            Command::decode(&Bytes::from(v)),
            Err(CommandError::BadFlags(5))
        );
        // DeleteLive with no keys, and with more than MAX_BATCH_KEYS.
        let empty = Command::DeleteLive {
            keys: vec![],
            now_ms: 0,
        };
        assert_eq!(empty.to_bytes(), Err(CommandError::BadBatch { count: 0 }));
        let many = Command::DeleteLive {
            keys: vec![Bytes::new(); limits::MAX_BATCH_KEYS + 1],
            now_ms: 0,
        };
        assert!(matches!(
            many.to_bytes(),
            Err(CommandError::BadBatch { .. })
        ));
        // Logs written before opcodes 4-7 still decode: the v1 layout is unchanged.
        assert_eq!(
            Command::decode(&Bytes::from_static(&[1, OP_DELETE, 1, b'k'])),
            Ok(Command::Delete {
                key: Bytes::from_static(b"k")
            })
        );
    }

    #[test]
    fn expiry_conditions_follow_redis() {
        let c = |b| ExpiryCondition::from_bits(b).unwrap();
        assert!(c(0).allows(None, 5) && c(0).allows(Some(9), 5));
        assert!(c(1).allows(None, 5) && !c(1).allows(Some(9), 5));
        assert!(!c(2).allows(None, 5) && c(2).allows(Some(9), 5));
        // GT: no expiry counts as infinite, so GT never applies to a persistent key.
        assert!(!c(4).allows(None, 5) && c(4).allows(Some(4), 5) && !c(4).allows(Some(5), 5));
        // LT: a persistent key always gets the (finite) expiry.
        assert!(c(8).allows(None, 5) && c(8).allows(Some(6), 5) && !c(8).allows(Some(5), 5));
        assert!(!c(2 | 8).allows(None, 5) && c(2 | 8).allows(Some(6), 5));
        for bad in [1 | 2, 1 | 4, 1 | 8, 4 | 8, 16, 0x80] {
            assert_eq!(ExpiryCondition::from_bits(bad), None);
        }
    }

    proptest! {
        #[test]
        fn round_trip(cmd in arb_command()) {
            let bytes = cmd.to_bytes().unwrap();
            prop_assert_eq!(bytes.len(), cmd.encoded_len());
            prop_assert_eq!(Command::decode(&bytes).unwrap(), cmd);
        }

        #[test]
        fn every_strict_prefix_is_rejected(cmd in arb_command()) {
            let bytes = cmd.to_bytes().unwrap();
            for cut in 0..bytes.len() {
                prop_assert!(Command::decode(&bytes.slice(..cut)).is_err());
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..64)) {
            let bytes = Bytes::from(raw);
            if let Ok(cmd) = Command::decode(&bytes) {
                // Whatever decodes re-encodes to the same bytes (one encoding per command).
                prop_assert_eq!(cmd.to_bytes().unwrap(), bytes);
            }
        }
    }

    #[test]
    fn rejects_bad_bytes_with_clear_errors() {
        let put = Command::Put {
            key: Bytes::from_static(b"k"),
            value: Bytes::from_static(b"v"),
        };
        let good = put.to_bytes().unwrap();
        assert_eq!(&good[..], &[1, OP_PUT, 1, b'k', 1, b'v']);

        assert_eq!(
            Command::decode(&Bytes::new()),
            Err(CommandError::Truncated {
                offset: 0,
                needed: 1
            })
        );
        let mut v = good.to_vec();
        v[0] = 9;
        assert_eq!(
            Command::decode(&Bytes::from(v)),
            Err(CommandError::UnknownVersion(9))
        );
        let mut v = good.to_vec();
        v[1] = 77;
        assert_eq!(
            Command::decode(&Bytes::from(v)),
            Err(CommandError::UnknownOpcode(77))
        );
        let mut v = good.to_vec();
        v.push(0);
        assert_eq!(
            Command::decode(&Bytes::from(v)),
            Err(CommandError::TrailingBytes { extra: 1 })
        );
        // Six-byte varint.
        let v = vec![1, OP_DELETE, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00];
        assert_eq!(
            Command::decode(&Bytes::from(v)),
            Err(CommandError::BadVarint { offset: 2 })
        );
        // Non-minimal varint for 0.
        let v = vec![1, OP_DELETE, 0x80, 0x00];
        assert_eq!(
            Command::decode(&Bytes::from(v)),
            Err(CommandError::BadVarint { offset: 2 })
        );
        // Key length over the limit is refused before reading the key.
        let mut v = vec![1, OP_DELETE];
        let big = (limits::MAX_KEY_LEN + 1) as u32;
        v.extend_from_slice(&[
            (big as u8) | 0x80,
            ((big >> 7) as u8) | 0x80,
            (big >> 14) as u8,
        ]);
        assert_eq!(
            Command::decode(&Bytes::from(v)),
            Err(CommandError::KeyTooLong {
                len: limits::MAX_KEY_LEN + 1
            })
        );
    }

    #[test]
    fn encode_refuses_oversized_commands() {
        let key = Bytes::from(vec![0u8; limits::MAX_KEY_LEN + 1]);
        let err = Command::Delete { key }.to_bytes().unwrap_err();
        assert!(matches!(err, CommandError::KeyTooLong { .. }));
        let value = Bytes::from(vec![0u8; limits::MAX_VALUE_LEN + 1]);
        let err = Command::Put {
            key: Bytes::new(),
            value,
        }
        .to_bytes()
        .unwrap_err();
        assert!(matches!(err, CommandError::ValueTooLong { .. }));
        // At the limits exactly is fine.
        let cmd = Command::PutWithTtl {
            key: Bytes::from(vec![1u8; limits::MAX_KEY_LEN]),
            value: Bytes::from(vec![2u8; limits::MAX_VALUE_LEN]),
            expire_at_ms: 5,
        };
        assert_eq!(Command::decode(&cmd.to_bytes().unwrap()).unwrap(), cmd);
    }
}
