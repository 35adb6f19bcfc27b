//! Typed replies and their RESP2/RESP3 encoding into a reusable `BytesMut`.
//!
//! Encoding is done by the well-kept `redis-protocol` crate (its `BytesFrame` types and
//! `extend_encode`), except for the scalar replies of the hot commands (bulk, null,
//! `+OK`, simple strings, integers), written directly, byte for byte the same (tested),
//! because building a frame per GET/SET reply was a visible share of a pipelined wave's
//! cost. This module maps Shoal's `Reply` onto the crate's frames, per protocol
//! version, the way Redis degrades RESP3 types for RESP2 clients:
//! - `Null` is `$-1` in RESP2 and `_` in RESP3;
//! - `Map` is a flat array of key, value, key, value... in RESP2 and `%` in RESP3;
//! - `Set` is an array in RESP2 and `~` in RESP3;
//! - `Verbatim` (INFO's text) is a bulk string in RESP2 and `=` with format `txt` in RESP3.
//!
//! Invariants: simple strings and error texts hold no CR or LF (`ErrorReply` guarantees
//! it for errors; simple strings are Shoal's own constants). Map keys are unique (RESP3
//! maps are keyed); `encode` keeps the given order.

use bytes::{Bytes, BytesMut};
use redis_protocol::bytes_utils::Str;
use redis_protocol::resp2::types::BytesFrame as Frame2;
use redis_protocol::resp3::types::{
    BytesFrame as Frame3, FrameMap, FrameSet, VerbatimStringFormat,
};

use crate::connection::Protocol;
use crate::errors::ErrorReply;

/// One reply, independent of the protocol version.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+OK`
    Ok,
    /// A status reply such as `PONG`.
    Simple(&'static str),
    /// An error reply.
    Error(ErrorReply),
    /// An integer.
    Integer(i64),
    /// A bulk (blob) string.
    Bulk(Bytes),
    /// The null reply.
    Null,
    /// An array.
    Array(Vec<Reply>),
    /// A map (ordered as given).
    Map(Vec<(Reply, Reply)>),
    /// A set.
    Set(Vec<Reply>),
    /// Text shown as is (format `txt`).
    Verbatim(Bytes),
}

impl Reply {
    /// A bulk string from static text.
    pub fn bulk_static(text: &'static str) -> Reply {
        Reply::Bulk(Bytes::from_static(text.as_bytes()))
    }

    /// A bulk string, or null for `None`.
    pub fn bulk_or_null(value: Option<Bytes>) -> Reply {
        value.map_or(Reply::Null, Reply::Bulk)
    }

    /// Whether this is an error reply.
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }
}

impl From<ErrorReply> for Reply {
    fn from(e: ErrorReply) -> Self {
        Reply::Error(e)
    }
}

fn to_resp2(reply: &Reply) -> Frame2 {
    match reply {
        Reply::Ok => Frame2::SimpleString(Bytes::from_static(b"OK")),
        Reply::Simple(s) => Frame2::SimpleString(Bytes::from_static(s.as_bytes())),
        Reply::Error(e) => Frame2::Error(Str::from(e.text())),
        Reply::Integer(i) => Frame2::Integer(*i),
        Reply::Bulk(b) | Reply::Verbatim(b) => Frame2::BulkString(b.clone()),
        Reply::Null => Frame2::Null,
        Reply::Array(items) | Reply::Set(items) => {
            Frame2::Array(items.iter().map(to_resp2).collect())
        }
        Reply::Map(pairs) => Frame2::Array(
            pairs
                .iter()
                .flat_map(|(k, v)| [to_resp2(k), to_resp2(v)])
                .collect(),
        ),
    }
}

fn to_resp3(reply: &Reply) -> Frame3 {
    match reply {
        Reply::Ok => Frame3::SimpleString {
            data: Bytes::from_static(b"OK"),
            attributes: None,
        },
        Reply::Simple(s) => Frame3::SimpleString {
            data: Bytes::from_static(s.as_bytes()),
            attributes: None,
        },
        Reply::Error(e) => Frame3::SimpleError {
            data: Str::from(e.text()),
            attributes: None,
        },
        Reply::Integer(i) => Frame3::Number {
            data: *i,
            attributes: None,
        },
        Reply::Bulk(b) => Frame3::BlobString {
            data: b.clone(),
            attributes: None,
        },
        Reply::Verbatim(b) => Frame3::VerbatimString {
            data: b.clone(),
            format: VerbatimStringFormat::Text,
            attributes: None,
        },
        Reply::Null => Frame3::Null,
        Reply::Array(items) => Frame3::Array {
            data: items.iter().map(to_resp3).collect(),
            attributes: None,
        },
        Reply::Set(items) => {
            let mut data = FrameSet::default();
            for item in items {
                data.insert(to_resp3(item));
            }
            Frame3::Set {
                data,
                attributes: None,
            }
        }
        Reply::Map(pairs) => {
            let mut data = FrameMap::default();
            for (k, v) in pairs {
                let previous = data.insert(to_resp3(k), to_resp3(v));
                debug_assert!(previous.is_none(), "duplicate map key in a reply");
            }
            Frame3::Map {
                data,
                attributes: None,
            }
        }
    }
}

/// Appends `reply`, encoded for `protocol`, to `out` (a buffer reused across replies).
pub fn encode_reply(reply: &Reply, protocol: Protocol, out: &mut BytesMut) {
    if encode_scalar(reply, protocol, out) {
        return;
    }
    let result = match protocol {
        Protocol::Resp2 => {
            redis_protocol::resp2::encode::extend_encode(out, &to_resp2(reply), false)
        }
        Protocol::Resp3 => {
            redis_protocol::resp3::encode::complete::extend_encode(out, &to_resp3(reply), false)
        }
    };
    // The encoder fails only on frames it cannot represent (e.g. a streaming frame);
    // every `Reply` maps to a representable frame, so failure is a bug here.
    if let Err(e) = result {
        panic!("redis-protocol refused a reply frame: {e:?}");
    }
}

/// The replies of the hot commands (GET, SET: bulk, null, `+OK`, simple strings,
/// integers) written straight into `out`, byte for byte what `redis-protocol` writes for
/// the same frame (a test compares both), without building a frame first; false for
/// every other reply (left to `redis-protocol`).
fn encode_scalar(reply: &Reply, protocol: Protocol, out: &mut BytesMut) -> bool {
    match reply {
        Reply::Ok => out.extend_from_slice(b"+OK\r\n"),
        Reply::Simple(s) => {
            out.reserve(s.len() + 3);
            out.extend_from_slice(b"+");
            out.extend_from_slice(s.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Reply::Integer(i) => {
            out.extend_from_slice(b":");
            let mut digits = Digits::new();
            out.extend_from_slice(digits.signed(*i));
            out.extend_from_slice(b"\r\n");
        }
        Reply::Bulk(b) => {
            let mut digits = Digits::new();
            let len = digits.unsigned(b.len() as u64);
            out.reserve(b.len() + len.len() + 5);
            out.extend_from_slice(b"$");
            out.extend_from_slice(len);
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(b);
            out.extend_from_slice(b"\r\n");
        }
        Reply::Null => match protocol {
            Protocol::Resp2 => out.extend_from_slice(b"$-1\r\n"),
            Protocol::Resp3 => out.extend_from_slice(b"_\r\n"),
        },
        _ => return false,
    }
    true
}

/// Decimal digits of an integer, formatted on the stack.
struct Digits {
    buf: [u8; 20],
}

impl Digits {
    fn new() -> Digits {
        Digits { buf: [0; 20] }
    }

    fn unsigned(&mut self, mut n: u64) -> &[u8] {
        let mut at = self.buf.len();
        loop {
            at -= 1;
            self.buf[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        &self.buf[at..]
    }

    /// `n` with a leading `-` when negative. `Digits` holds 20 bytes: `u64::MAX` needs 20
    /// digits, `i64::MIN` 19 digits plus the sign.
    fn signed(&mut self, n: i64) -> &[u8] {
        if n >= 0 {
            return self.unsigned(n as u64);
        }
        let digits = self.unsigned(n.unsigned_abs()).len();
        let at = self.buf.len() - digits - 1;
        self.buf[at] = b'-';
        &self.buf[at..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `redis-protocol` writes for `reply`.
    fn by_crate(reply: &Reply, protocol: Protocol) -> BytesMut {
        let mut out = BytesMut::new();
        match protocol {
            Protocol::Resp2 => {
                redis_protocol::resp2::encode::extend_encode(&mut out, &to_resp2(reply), false)
                    .unwrap();
            }
            Protocol::Resp3 => {
                redis_protocol::resp3::encode::complete::extend_encode(
                    &mut out,
                    &to_resp3(reply),
                    false,
                )
                .unwrap();
            }
        }
        out
    }

    #[test]
    fn scalar_replies_are_encoded_exactly_as_redis_protocol_does() {
        let replies = [
            Reply::Ok,
            Reply::Simple("PONG"),
            Reply::Integer(0),
            Reply::Integer(7),
            Reply::Integer(-1),
            Reply::Integer(-2),
            Reply::Integer(1_234_567_890),
            Reply::Integer(i64::MAX),
            Reply::Integer(i64::MIN),
            Reply::Bulk(Bytes::new()),
            Reply::Bulk(Bytes::from_static(b"x")),
            Reply::Bulk(Bytes::from(vec![b'\r'; 1000])),
            Reply::Null,
        ];
        for protocol in [Protocol::Resp2, Protocol::Resp3] {
            for reply in &replies {
                let mut fast = BytesMut::from(&b"before"[..]);
                assert!(encode_scalar(reply, protocol, &mut fast), "{reply:?}");
                let mut expected = BytesMut::from(&b"before"[..]);
                expected.extend_from_slice(&by_crate(reply, protocol));
                assert_eq!(fast, expected, "{reply:?} in {protocol:?}");
            }
            let mut out = BytesMut::new();
            assert!(!encode_scalar(&Reply::Array(vec![]), protocol, &mut out));
            assert!(out.is_empty());
        }
    }
}
