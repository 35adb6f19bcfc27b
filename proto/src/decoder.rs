//! The incremental frame decoder: bytes in, whole validated frames out.
//!
//! Invariants: the decoder never allocates for a frame before its header has been checked
//! against the connection's limit, and never allocates more than the frame's (limited)
//! body needs; it never panics. Partial input is `Ok(None)` (read more, call again);
//! several frames in one buffer come out one per call. Keys and values of decoded frames
//! are zero-copy slices of the read buffer (`split_to(..).freeze()`). A recoverable error
//! consumes exactly the bad frame; after a non-recoverable one (unsupported version, frame
//! too large) the decoder consumes nothing more and repeats that error.

use bytes::{Buf, BytesMut};

use crate::error::{DecodeError, Disposition};
use crate::frame::{HEADER_LEN, Header, MAX_PROTOCOL_VERSION, MIN_PROTOCOL_VERSION};
use crate::limits::{MAX_FRAME_LEN, MAX_PEER_FRAME_LEN};
use crate::opcode::{Channel, Opcode};
use crate::peer::{PeerMessage, decode_peer_body};
use crate::request::Request;
use crate::response::Response;
use crate::wire::Reader;

/// Which frames a decoder accepts: the side of the connection it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A node reading client requests.
    Server,
    /// A client reading a node's responses.
    Client,
    /// Either end of a peer connection (peer requests and responses, and the
    /// version-independent `Error` frame a node sends to refuse a version).
    Peer,
}

/// A decoded client request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFrame {
    /// The requester's id, to be echoed in the response.
    pub request_id: u64,
    /// The request.
    pub request: Request,
}

/// A decoded client response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseFrame {
    /// Id of the request this answers.
    pub request_id: u64,
    /// The response.
    pub response: Response,
}

/// A decoded peer frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerFrame {
    /// Request id (a response echoes its request's).
    pub request_id: u64,
    /// The message.
    pub message: PeerMessage,
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// From a client (decoder role [`Role::Server`]).
    Request(RequestFrame),
    /// From a node (role [`Role::Client`], or an `Error` frame on a peer connection).
    Response(ResponseFrame),
    /// From a peer (role [`Role::Peer`]).
    Peer(PeerFrame),
}

/// Incremental, sans-IO frame decoder for one connection.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    role: Role,
    max_body: usize,
    failed: Option<DecodeError>,
}

impl FrameDecoder {
    /// A decoder for `role` with the protocol's hard body limit (`MAX_FRAME_LEN` for
    /// client frames, `MAX_PEER_FRAME_LEN` for peer frames).
    pub fn new(role: Role) -> FrameDecoder {
        let max_body = match role {
            Role::Server | Role::Client => MAX_FRAME_LEN,
            Role::Peer => MAX_PEER_FRAME_LEN,
        };
        FrameDecoder {
            role,
            max_body,
            failed: None,
        }
    }

    /// A decoder with a lower body limit (a node's configured `max_frame_len`).
    ///
    /// # Panics
    /// If `max_body` exceeds the role's hard limit: limits may be lowered, never raised.
    pub fn with_max_body(role: Role, max_body: usize) -> FrameDecoder {
        let mut d = FrameDecoder::new(role);
        assert!(
            max_body <= d.max_body,
            "max_body above the protocol's hard limit"
        );
        d.max_body = max_body;
        d
    }

    /// The role this decoder serves.
    pub fn role(&self) -> Role {
        self.role
    }

    /// What to do after `e` on this decoder's connection, taking the role into account:
    /// a node reading requests answers what it can ([`DecodeError::disposition`]); a client
    /// never answers a node, it closes; a peer only answers a version mismatch (with the
    /// version-independent `Error` frame) and closes on anything else.
    pub fn disposition(&self, e: &DecodeError) -> Disposition {
        match (self.role, e) {
            (Role::Server, _) | (Role::Peer, DecodeError::UnsupportedVersion { .. }) => {
                e.disposition()
            }
            (Role::Client | Role::Peer, _) => Disposition::Close,
        }
    }

    /// Total bytes `buf` must hold before the next call can make progress: the header, or
    /// the whole frame once its header is known and valid (bounded by the body limit).
    /// Lets a caller reserve exactly, and no more than the limit.
    pub fn bytes_needed(&self, buf: &[u8]) -> usize {
        match header_of(buf) {
            Some(h) if (h.body_len as usize) <= self.max_body => HEADER_LEN + h.body_len as usize,
            _ => HEADER_LEN,
        }
    }

    /// Decodes the next frame from the front of `buf`, consuming its bytes.
    ///
    /// `Ok(None)`: `buf` does not hold a whole frame yet. `Err`: see
    /// [`DecodeError::disposition`] for what to answer and whether to go on.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let Some(header) = header_of(buf) else {
            return Ok(None);
        };
        if !(MIN_PROTOCOL_VERSION..=MAX_PROTOCOL_VERSION).contains(&header.version) {
            return Err(self.fail(DecodeError::UnsupportedVersion { header }));
        }
        let body_len = header.body_len as usize;
        if body_len > self.max_body {
            return Err(self.fail(DecodeError::FrameTooLarge {
                header,
                max: self.max_body,
            }));
        }
        if buf.len() < HEADER_LEN + body_len {
            return Ok(None);
        }
        // The whole frame is here: consume it now, so every later error is recoverable.
        let mut frame = buf.split_to(HEADER_LEN + body_len);
        frame.advance(HEADER_LEN);
        let body = frame.freeze();

        let Some(op) = Opcode::from_u8(header.opcode) else {
            return Err(DecodeError::UnknownOpcode { header });
        };
        let accepted = match self.role {
            Role::Server => op.channel() == Channel::Client && !op.is_response(),
            Role::Client => op.channel() == Channel::Client && op.is_response(),
            Role::Peer => op.channel() == Channel::Peer || op == Opcode::Error,
        };
        if !accepted {
            return Err(DecodeError::UnexpectedOpcode { header });
        }
        if !op.is_response() && header.status != 0 {
            return Err(DecodeError::InvalidHeader {
                header,
                reason: "status must be zero in a request",
            });
        }
        let body_err = |source| DecodeError::Body { header, source };
        let frame = match op.channel() {
            Channel::Client if op.is_response() => {
                let response =
                    Response::decode_body(op, header.flags, header.status, Reader::new(body))
                        .map_err(body_err)?;
                Frame::Response(ResponseFrame {
                    request_id: header.request_id,
                    response,
                })
            }
            Channel::Client => {
                let request =
                    Request::decode_body(op, header.flags, Reader::new(body)).map_err(body_err)?;
                Frame::Request(RequestFrame {
                    request_id: header.request_id,
                    request,
                })
            }
            Channel::Peer => {
                if header.flags != 0 || header.status != 0 {
                    return Err(DecodeError::InvalidHeader {
                        header,
                        reason: "peer frames have zero flags and status",
                    });
                }
                let message = decode_peer_body(&body).map_err(body_err)?;
                if !message.fits_opcode(op) {
                    return Err(DecodeError::InvalidHeader {
                        header,
                        reason: "peer message does not match the opcode",
                    });
                }
                Frame::Peer(PeerFrame {
                    request_id: header.request_id,
                    message,
                })
            }
        };
        Ok(Some(frame))
    }

    fn fail(&mut self, e: DecodeError) -> DecodeError {
        self.failed = Some(e.clone());
        e
    }
}

fn header_of(buf: &[u8]) -> Option<Header> {
    let head: &[u8; HEADER_LEN] = buf.get(..HEADER_LEN)?.try_into().ok()?;
    Some(Header::parse(head))
}
