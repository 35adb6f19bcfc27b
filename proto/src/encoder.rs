//! Frame encoders: append whole frames (header + body) to a reusable `BytesMut`.
//!
//! Invariants: an encoder either appends one complete, valid frame or returns an error
//! and leaves the buffer exactly as it found it. Every limit the decoder enforces is
//! enforced here first, so a well-behaved side never sends a frame the other refuses for
//! size; a response that would exceed `MAX_FRAME_LEN` fails with `TooLarge` and the node
//! answers with [`EncodeError::to_error_response`] instead.

use bytes::{BufMut, BytesMut};

use crate::error::{BodyError, EncodeError};
use crate::error_response::ErrorResponse;
use crate::frame::{HEADER_LEN, Header, PROTOCOL_VERSION};
use crate::limits::{MAX_FRAME_LEN, MAX_PEER_FRAME_LEN};
use crate::opcode::Opcode;
use crate::peer::{PeerMessage, encode_peer_body};
use crate::request::{ReadConsistency, Request, write_keyed};
use crate::response::Response;
use crate::status::{LimitKind, Status};

/// Appends a request frame.
pub fn encode_request(
    buf: &mut BytesMut,
    request_id: u64,
    req: &Request,
) -> Result<(), EncodeError> {
    frame(
        buf,
        req.opcode(),
        req.flags(),
        Status::Ok,
        request_id,
        MAX_FRAME_LEN,
        |b| req.encode_body(b).map_err(EncodeError::from),
    )
}

/// Appends a response frame.
pub fn encode_response(
    buf: &mut BytesMut,
    request_id: u64,
    resp: &Response,
) -> Result<(), EncodeError> {
    frame(
        buf,
        resp.opcode(),
        0,
        resp.status(),
        request_id,
        MAX_FRAME_LEN,
        |b| resp.encode_body(b).map_err(EncodeError::from),
    )
}

/// Appends an `Error` frame answering `request_id`.
pub fn encode_error(
    buf: &mut BytesMut,
    request_id: u64,
    err: &ErrorResponse,
) -> Result<(), EncodeError> {
    frame(
        buf,
        Opcode::Error,
        0,
        err.status(),
        request_id,
        MAX_FRAME_LEN,
        |b| err.encode(b).map_err(EncodeError::from),
    )
}

/// Appends a `Get` request from borrowed bytes: the same frame as
/// [`encode_request`] with [`Request::Get`], without building `Bytes` first.
pub fn encode_get(
    buf: &mut BytesMut,
    request_id: u64,
    shard: Option<u32>,
    key: &[u8],
    consistency: ReadConsistency,
) -> Result<(), EncodeError> {
    frame(
        buf,
        Opcode::Get,
        consistency as u8,
        Status::Ok,
        request_id,
        MAX_FRAME_LEN,
        |b| write_keyed(b, shard, key, None, None).map_err(EncodeError::from),
    )
}

/// Appends a `Put` (when `ttl_ms` is `None`) or `PutWithTtl` request from borrowed bytes.
pub fn encode_put(
    buf: &mut BytesMut,
    request_id: u64,
    shard: Option<u32>,
    key: &[u8],
    value: &[u8],
    ttl_ms: Option<u64>,
) -> Result<(), EncodeError> {
    let op = if ttl_ms.is_some() {
        Opcode::PutWithTtl
    } else {
        Opcode::Put
    };
    frame(buf, op, 0, Status::Ok, request_id, MAX_FRAME_LEN, |b| {
        write_keyed(b, shard, key, Some(value), ttl_ms).map_err(EncodeError::from)
    })
}

/// Appends a `Delete` request from borrowed bytes.
pub fn encode_delete(
    buf: &mut BytesMut,
    request_id: u64,
    shard: Option<u32>,
    key: &[u8],
) -> Result<(), EncodeError> {
    frame(
        buf,
        Opcode::Delete,
        0,
        Status::Ok,
        request_id,
        MAX_FRAME_LEN,
        |b| write_keyed(b, shard, key, None, None).map_err(EncodeError::from),
    )
}

/// Appends a peer frame (the opcode follows from the message).
pub fn encode_peer(
    buf: &mut BytesMut,
    request_id: u64,
    msg: &PeerMessage,
) -> Result<(), EncodeError> {
    frame(
        buf,
        msg.opcode(),
        0,
        Status::Ok,
        request_id,
        MAX_PEER_FRAME_LEN,
        |b| encode_peer_body(b, msg),
    )
}

fn frame(
    buf: &mut BytesMut,
    op: Opcode,
    flags: u8,
    status: Status,
    request_id: u64,
    max_body: usize,
    body: impl FnOnce(&mut BytesMut) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    let start = buf.len();
    buf.put_bytes(0, HEADER_LEN);
    if let Err(e) = body(buf) {
        buf.truncate(start);
        return Err(e);
    }
    let body_len = buf.len() - start - HEADER_LEN;
    if body_len > max_body {
        buf.truncate(start);
        let limit = if max_body == MAX_PEER_FRAME_LEN {
            LimitKind::PeerFrame
        } else {
            LimitKind::Frame
        };
        return Err(EncodeError::from(BodyError::TooLarge {
            limit,
            max: max_body as u64,
            actual: body_len as u64,
        }));
    }
    let header = Header {
        version: PROTOCOL_VERSION,
        opcode: op.as_u8(),
        flags,
        status: status.as_u8(),
        request_id,
        // body_len <= max_body <= MAX_PEER_FRAME_LEN < u32::MAX.
        body_len: body_len as u32,
    };
    buf[start..start + HEADER_LEN].copy_from_slice(&header.to_bytes());
    Ok(())
}
