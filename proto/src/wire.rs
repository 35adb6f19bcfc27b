//! Primitive field codecs for frame bodies: a bounds-checked reader over a frozen body
//! and the matching writers.
//!
//! Invariants: every read checks the remaining length first and fails with
//! [`BodyError::Truncated`]; every length prefix is checked against its limit *before*
//! anything is allocated or sliced; byte strings are handed out as zero-copy slices of the
//! body ([`Bytes::split_to`]). All integers are little-endian.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::BodyError;
use crate::status::LimitKind;

/// Sentinel for "no shard / any shard / all groups" in `u32` shard and group fields.
pub const ANY: u32 = u32::MAX;

/// A cursor over one frame body.
#[derive(Debug)]
pub(crate) struct Reader {
    body: Bytes,
}

impl Reader {
    pub(crate) fn new(body: Bytes) -> Reader {
        Reader { body }
    }

    fn need(&self, n: usize) -> Result<(), BodyError> {
        if self.body.len() < n {
            return Err(BodyError::Truncated {
                needed: n,
                remaining: self.body.len(),
            });
        }
        Ok(())
    }

    pub(crate) fn remaining(&self) -> usize {
        self.body.len()
    }

    pub(crate) fn u8(&mut self) -> Result<u8, BodyError> {
        self.need(1)?;
        Ok(self.body.get_u8())
    }

    pub(crate) fn u16(&mut self) -> Result<u16, BodyError> {
        self.need(2)?;
        Ok(self.body.get_u16_le())
    }

    pub(crate) fn u32(&mut self) -> Result<u32, BodyError> {
        self.need(4)?;
        Ok(self.body.get_u32_le())
    }

    pub(crate) fn u64(&mut self) -> Result<u64, BodyError> {
        self.need(8)?;
        Ok(self.body.get_u64_le())
    }

    /// A strict boolean: 0 or 1, anything else is invalid.
    pub(crate) fn bool(&mut self, what: &'static str) -> Result<bool, BodyError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(BodyError::Invalid(what)),
        }
    }

    /// A presence byte (0/1) followed, when present, by a `u64`.
    pub(crate) fn opt_u64(&mut self, what: &'static str) -> Result<Option<u64>, BodyError> {
        if self.bool(what)? {
            Ok(Some(self.u64()?))
        } else {
            Ok(None)
        }
    }

    /// A `u32` shard or group field where [`ANY`] means "none"; others must be `< max`.
    pub(crate) fn opt_index(
        &mut self,
        max: usize,
        what: &'static str,
    ) -> Result<Option<u32>, BodyError> {
        let v = self.u32()?;
        if v == ANY {
            return Ok(None);
        }
        if v as usize >= max {
            return Err(BodyError::Invalid(what));
        }
        Ok(Some(v))
    }

    /// Exactly `n` bytes as a zero-copy slice.
    pub(crate) fn bytes(&mut self, n: usize) -> Result<Bytes, BodyError> {
        self.need(n)?;
        Ok(self.body.split_to(n))
    }

    /// A `u32` length checked against `max` (as limit `kind`), then that many bytes.
    pub(crate) fn len_prefixed(&mut self, kind: LimitKind, max: usize) -> Result<Bytes, BodyError> {
        let n = self.u32()? as usize;
        check_limit(kind, max, n)?;
        self.bytes(n)
    }

    /// A `u16` length checked against `max`, then that many bytes of UTF-8.
    pub(crate) fn string(&mut self, max: usize, what: &'static str) -> Result<String, BodyError> {
        let n = self.u16()? as usize;
        if n > max {
            return Err(BodyError::Invalid(what));
        }
        let b = self.bytes(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| BodyError::Utf8(what))
    }

    /// A `u16` count checked against `max`, then that many `u64`s.
    pub(crate) fn u64_list(
        &mut self,
        max: usize,
        what: &'static str,
    ) -> Result<Vec<u64>, BodyError> {
        let n = self.u16()? as usize;
        if n > max {
            return Err(BodyError::Invalid(what));
        }
        self.need(n * 8)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(self.body.get_u64_le());
        }
        Ok(v)
    }

    /// Fails unless the whole body was consumed: trailing garbage is a format error.
    pub(crate) fn finish(self) -> Result<(), BodyError> {
        if self.body.is_empty() {
            Ok(())
        } else {
            Err(BodyError::TrailingBytes(self.body.len()))
        }
    }
}

/// Fails with `TooLarge` when `actual > max`.
pub(crate) fn check_limit(kind: LimitKind, max: usize, actual: usize) -> Result<(), BodyError> {
    if actual > max {
        return Err(BodyError::TooLarge {
            limit: kind,
            max: max as u64,
            actual: actual as u64,
        });
    }
    Ok(())
}

pub(crate) fn put_opt_u64(buf: &mut BytesMut, v: Option<u64>) {
    match v {
        Some(v) => {
            buf.put_u8(1);
            buf.put_u64_le(v);
        }
        None => buf.put_u8(0),
    }
}

/// Writes a shard or group field ([`ANY`] for `None`); fails, writing nothing, when the
/// index is not below `max`, since the decoder would refuse it.
pub(crate) fn put_opt_index(
    buf: &mut BytesMut,
    v: Option<u32>,
    max: usize,
) -> Result<(), BodyError> {
    if let Some(i) = v {
        if i as usize >= max {
            return Err(BodyError::Invalid("shard or group index out of range"));
        }
    }
    buf.put_u32_le(v.unwrap_or(ANY));
    Ok(())
}

pub(crate) fn put_len_prefixed(buf: &mut BytesMut, b: &[u8]) {
    // Callers checked `b` against a limit far below u32::MAX.
    buf.put_u32_le(b.len() as u32);
    buf.put_slice(b);
}

/// Writes a `u16`-prefixed string; callers validated its length (see `check_str`).
pub(crate) fn put_string(buf: &mut BytesMut, s: &str) {
    buf.put_u16_le(s.len() as u16);
    buf.put_slice(s.as_bytes());
}

pub(crate) fn put_u64_list(buf: &mut BytesMut, v: &[u64]) {
    buf.put_u16_le(v.len() as u16);
    for x in v {
        buf.put_u64_le(*x);
    }
}
