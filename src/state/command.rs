//! Commands applied to the state machine and their compact, versioned binary encoding.
//!
//! Commands travel in the Raft log (inside WAL records, which carry their own CRC), so the
//! encoding is compact and carries no checksum of its own. Layout (all integers little
//! endian, `varint` = unsigned LEB128 of at most 5 bytes holding a `u32`):
//!
//! ```text
//! byte 0      version (COMMAND_VERSION = 1)
//! byte 1      opcode: 1 Put, 2 PutWithTtl, 3 Delete
//! Put         varint key_len, key, varint value_len, value
//! PutWithTtl  u64 expire_at_ms, varint key_len, key, varint value_len, value
//! Delete      varint key_len, key
//! ```
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
}

impl Command {
    /// The key this command writes.
    pub fn key(&self) -> &Bytes {
        match self {
            Command::Put { key, .. }
            | Command::PutWithTtl { key, .. }
            | Command::Delete { key } => key,
        }
    }

    /// Checks the limits of `limits.rs`. `decode` does it already; `apply` does it again
    /// for commands built in-process.
    pub fn validate(&self) -> Result<(), CommandError> {
        check_key(self.key().len())?;
        match self {
            Command::Put { value, .. } | Command::PutWithTtl { value, .. } => {
                check_value(value.len())
            }
            Command::Delete { .. } => Ok(()),
        }
    }

    /// Exact length of the encoding.
    pub fn encoded_len(&self) -> usize {
        2 + match self {
            Command::Put { key, value } => field_len(key) + field_len(value),
            Command::PutWithTtl { key, value, .. } => 8 + field_len(key) + field_len(value),
            Command::Delete { key } => field_len(key),
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

fn varint_len(v: usize) -> usize {
    let bits = usize::BITS - (v | 1).leading_zeros();
    bits.div_ceil(7) as usize
}

fn field_len(b: &[u8]) -> usize {
    varint_len(b.len()) + b.len()
}

fn put_field(out: &mut Vec<u8>, b: &[u8]) {
    // Limits are far below u32::MAX, checked by validate() before we get here.
    let mut v = b.len() as u32;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out.extend_from_slice(b);
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
            (key.clone(), value, any::<u64>()).prop_map(|(key, value, expire_at_ms)| {
                Command::PutWithTtl {
                    key,
                    value,
                    expire_at_ms,
                }
            }),
            key.prop_map(|key| Command::Delete { key }),
        ]
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
