//! Typed replies and their RESP2/RESP3 encoding into a reusable `BytesMut`.
//!
//! Encoding is done by the well-kept `redis-protocol` crate (its `BytesFrame` types and
//! `extend_encode`); this module only maps Shoal's `Reply` onto its frames, per protocol
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
