//! One connection's sans-IO driver: bytes in, planned actions out, replies encoded.
//!
//! The node's connection task owns a `Session` and a read buffer. After each read it
//! calls `next` until it returns `Ok(None)`, executing each `Step` and encoding replies
//! IN REQUEST ORDER (pipelining: several steps may be in flight, replies must not
//! overtake each other). Each `Step` carries the protocol version in force when its
//! command was planned, so a reply is encoded as the client expects even when a later
//! pipelined `HELLO` switched the connection's version.
//!
//! On `Err(ProtocolError)`: encode `error.reply()`, flush, close. On `Action::Close`:
//! encode its reply, flush, close.

use bytes::{Bytes, BytesMut};

use crate::action::{Action, plan};
use crate::command::Command;
use crate::connection::{ConnectionState, Protocol};
use crate::decode::{ProtocolError, RequestDecoder};
use crate::reply::Reply;

/// One planned command.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// What to do.
    pub action: Action,
    /// Protocol version to encode this command's reply with.
    pub protocol: Protocol,
}

/// Decoder plus connection state for one client connection.
#[derive(Debug)]
pub struct Session {
    decoder: RequestDecoder,
    state: ConnectionState,
}

impl Session {
    /// A session for connection `id` (node-unique, reported by `CLIENT ID`).
    pub fn new(id: u64) -> Self {
        Self {
            decoder: RequestDecoder::new(),
            state: ConnectionState::new(id),
        }
    }

    /// Connection state (name, protocol, library attributes).
    pub fn state(&self) -> &ConnectionState {
        &self.state
    }

    /// Decodes, parses and plans the next request in `buf` at `now_ms`.
    pub fn next(&mut self, buf: &mut BytesMut, now_ms: u64) -> Result<Option<Step>, ProtocolError> {
        let Some(args) = self.decoder.decode(buf)? else {
            return Ok(None);
        };
        Ok(Some(self.plan_args(args, now_ms)))
    }

    /// Parses and plans one already-framed request.
    pub fn plan_args(&mut self, args: Vec<Bytes>, now_ms: u64) -> Step {
        let protocol_before = self.state.protocol;
        let mut is_hello = false;
        let action = match Command::parse(args) {
            Ok(command) => {
                is_hello = matches!(command, Command::Hello(_));
                plan(command, &mut self.state, now_ms)
            }
            Err(e) => Action::Reply(Reply::Error(e)),
        };
        // HELLO's own reply uses the version it switches to (as Redis does); every other
        // command's reply uses the version in force when it was planned.
        let protocol = if is_hello {
            self.state.protocol
        } else {
            protocol_before
        };
        Step { action, protocol }
    }
}
