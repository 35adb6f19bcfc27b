//! Incremental framing of client requests: RESP multibulk and inline (telnet) commands.
//!
//! Clients send the same request shape in RESP2 and RESP3 (an array of bulk strings), so
//! one decoder serves both protocol versions; a request whose first byte is not `*` is an
//! inline command line, as in Redis. The decoder is resumable: it keeps how far it got
//! inside a request between calls, so a large value arriving in many reads is never
//! re-scanned, and several pipelined requests in one read come out one by one.
//!
//! Invariants:
//! - Every announced size (argument count, bulk length, running request size, header and
//!   inline line length) is checked against `crate::limits` as soon as it is read, before
//!   anything proportional to it is allocated or buffered.
//! - Arguments are zero-copy: each is a frozen slice of the connection's read buffer
//!   (quoted inline words excepted).
//! - A `ProtocolError` means the connection must be closed after sending its reply text
//!   (Redis does the same); the decoder must not be used again afterwards.
//!
//! The well-kept `redis-protocol` crate is used for replies, not here: it decodes whole
//! frames of any type from the start of the buffer each time, accepts nested and
//! non-string frames that Redis refuses in requests, and has no hook to refuse a huge
//! announced length before waiting for (and buffering) its bytes. Redis's own request
//! parser (`processMultibulkBuffer`) is this small state machine.

use bytes::{Buf, Bytes, BytesMut};
use thiserror::Error;

use crate::errors::ErrorReply;
use crate::inline::{UnbalancedQuotes, split_args};
use crate::limits::{
    MAX_ARG_LEN, MAX_ARGS_PER_COMMAND, MAX_HEADER_LINE_LEN, MAX_INLINE_LEN, MAX_REQUEST_LEN,
};
use crate::num::parse_i64;
use crate::reply::Reply;

/// Malformed or over-limit input: reply with [`ProtocolError::reply_text`], then close
/// the connection. Texts match Redis 7 where Redis has the same check.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtocolError {
    /// An inline command line longer than `MAX_INLINE_LEN`.
    #[error("Protocol error: too big inline request")]
    TooBigInlineRequest,
    /// An inline command line with an unterminated or badly closed quote.
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    /// A `*<count>` header line longer than `MAX_HEADER_LINE_LEN`.
    #[error("Protocol error: too big mbulk count string")]
    TooBigMultibulkCount,
    /// A `*<count>` that is not an integer or exceeds `MAX_ARGS_PER_COMMAND`.
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    /// An array element that is not a bulk string.
    #[error("Protocol error: expected '$', got '{0}'")]
    ExpectedBulk(char),
    /// A `$<len>` header line longer than `MAX_HEADER_LINE_LEN`.
    #[error("Protocol error: too big bulk count string")]
    TooBigBulkCount,
    /// A `$<len>` that is not an integer, is negative, or exceeds `MAX_ARG_LEN`.
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    /// A header line whose `\r` is not followed by `\n`, or a bulk string not followed by
    /// CRLF. (Redis skips those two bytes unchecked; Shoal refuses them.)
    #[error("Protocol error: expected CRLF")]
    ExpectedCrlf,
    /// Arguments summing to more than `MAX_REQUEST_LEN` bytes.
    #[error("Protocol error: request larger than {MAX_REQUEST_LEN} bytes")]
    RequestTooLarge,
    /// An inline line with more than `MAX_ARGS_PER_COMMAND` words.
    #[error("Protocol error: too many arguments in inline request")]
    TooManyInlineArgs,
}

impl ProtocolError {
    /// The error reply to send before closing, without the leading `-` (e.g.
    /// `ERR Protocol error: invalid bulk length`).
    pub fn reply_text(&self) -> String {
        format!("ERR {self}")
    }

    /// The error reply to send before closing the connection.
    pub fn reply(&self) -> Reply {
        Reply::Error(ErrorReply::new(self.to_string()))
    }
}

/// Where the decoder is inside the request being read.
#[derive(Debug)]
enum State {
    /// Between requests.
    Idle,
    /// Inside a multibulk request.
    Multibulk {
        /// Arguments still to read.
        remaining: usize,
        /// Arguments read so far.
        args: Vec<Bytes>,
        /// Sum of the bulk lengths announced so far.
        payload: usize,
        /// Length of the bulk string whose header was read but whose bytes were not.
        pending_bulk: Option<usize>,
    },
}

/// Resumable request decoder; one per connection.
#[derive(Debug)]
pub struct RequestDecoder {
    state: State,
}

impl Default for RequestDecoder {
    fn default() -> Self {
        Self::new()
    }
}

/// Result of looking for a header or inline line terminator.
enum Line {
    /// Not yet complete.
    Incomplete,
    /// The line's content is `buf[start..end]`; the terminator ends at `next`.
    Complete { end: usize, next: usize },
}

/// Finds the CRLF ending the line that starts at `start`. A line longer than `max`
/// (counting the bytes present so far) is `LineError::TooLong`.
fn crlf_line(buf: &[u8], start: usize, max: usize) -> Result<Line, LineError> {
    let window_end = buf.len().min(start + max + 1);
    match buf[start..window_end].iter().position(|&c| c == b'\r') {
        Some(offset) => {
            let end = start + offset;
            match buf.get(end + 1) {
                None => Ok(Line::Incomplete),
                Some(b'\n') => Ok(Line::Complete { end, next: end + 2 }),
                Some(_) => Err(LineError::NoLf),
            }
        }
        None if buf.len() - start > max => Err(LineError::TooLong),
        None => Ok(Line::Incomplete),
    }
}

enum LineError {
    TooLong,
    NoLf,
}

impl RequestDecoder {
    /// A decoder positioned between requests.
    pub fn new() -> Self {
        Self { state: State::Idle }
    }

    /// Whether the decoder is in the middle of a request (some of it consumed).
    pub fn is_mid_request(&self) -> bool {
        matches!(self.state, State::Multibulk { .. })
    }

    /// Takes the next complete request off the front of `buf`.
    ///
    /// Returns `Ok(Some(args))` with at least one argument (the command name first),
    /// `Ok(None)` when `buf` holds no complete request yet (read more, then call again;
    /// consumed bytes are remembered), or a `ProtocolError` (reply, then close). Empty
    /// requests (`*0`, `*-1`, blank inline lines) are skipped silently, as in Redis.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        loop {
            match &mut self.state {
                State::Idle => {
                    let Some(&first) = buf.first() else {
                        return Ok(None);
                    };
                    if first == b'*' {
                        let (end, next) = match crlf_line(buf, 1, MAX_HEADER_LINE_LEN) {
                            Ok(Line::Incomplete) => return Ok(None),
                            Ok(Line::Complete { end, next }) => (end, next),
                            Err(LineError::TooLong) => {
                                return Err(ProtocolError::TooBigMultibulkCount);
                            }
                            Err(LineError::NoLf) => return Err(ProtocolError::ExpectedCrlf),
                        };
                        let count =
                            parse_i64(&buf[1..end]).ok_or(ProtocolError::InvalidMultibulkLength)?;
                        if count > MAX_ARGS_PER_COMMAND as i64 {
                            return Err(ProtocolError::InvalidMultibulkLength);
                        }
                        buf.advance(next);
                        if count > 0 {
                            let count = count as usize;
                            self.state = State::Multibulk {
                                remaining: count,
                                // Grows with the arguments actually received.
                                args: Vec::with_capacity(count.min(16)),
                                payload: 0,
                                pending_bulk: None,
                            };
                        }
                    } else if let Some(args) = Self::decode_inline(buf)? {
                        if !args.is_empty() {
                            return Ok(Some(args));
                        }
                    } else {
                        return Ok(None);
                    }
                }
                State::Multibulk {
                    remaining,
                    args,
                    payload,
                    pending_bulk,
                } => {
                    while *remaining > 0 {
                        let len = match *pending_bulk {
                            Some(len) => len,
                            None => {
                                let Some(&first) = buf.first() else {
                                    return Ok(None);
                                };
                                if first != b'$' {
                                    return Err(ProtocolError::ExpectedBulk(printable(first)));
                                }
                                let (end, next) = match crlf_line(buf, 1, MAX_HEADER_LINE_LEN) {
                                    Ok(Line::Incomplete) => return Ok(None),
                                    Ok(Line::Complete { end, next }) => (end, next),
                                    Err(LineError::TooLong) => {
                                        return Err(ProtocolError::TooBigBulkCount);
                                    }
                                    Err(LineError::NoLf) => {
                                        return Err(ProtocolError::ExpectedCrlf);
                                    }
                                };
                                let len = parse_i64(&buf[1..end])
                                    .filter(|&len| len >= 0 && len <= MAX_ARG_LEN as i64)
                                    .ok_or(ProtocolError::InvalidBulkLength)?
                                    as usize;
                                *payload += len;
                                if *payload > MAX_REQUEST_LEN {
                                    return Err(ProtocolError::RequestTooLarge);
                                }
                                buf.advance(next);
                                *pending_bulk = Some(len);
                                len
                            }
                        };
                        if buf.len() < len + 2 {
                            // Make room for the whole argument once, now that its length
                            // is known to be within limits.
                            buf.reserve(len + 2 - buf.len());
                            return Ok(None);
                        }
                        if &buf[len..len + 2] != b"\r\n" {
                            return Err(ProtocolError::ExpectedCrlf);
                        }
                        args.push(buf.split_to(len).freeze());
                        buf.advance(2);
                        *pending_bulk = None;
                        *remaining -= 1;
                    }
                    let args = std::mem::take(args);
                    self.state = State::Idle;
                    debug_assert!(!args.is_empty());
                    return Ok(Some(args));
                }
            }
        }
    }

    /// Takes one inline line off `buf`: `Ok(None)` if incomplete, `Ok(Some(vec![]))` for
    /// a blank line.
    fn decode_inline(buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        let window_end = buf.len().min(MAX_INLINE_LEN + 2);
        let Some(newline) = buf[..window_end].iter().position(|&c| c == b'\n') else {
            if buf.len() > MAX_INLINE_LEN + 1 {
                return Err(ProtocolError::TooBigInlineRequest);
            }
            return Ok(None);
        };
        let line_len = if newline > 0 && buf[newline - 1] == b'\r' {
            newline - 1
        } else {
            newline
        };
        if line_len > MAX_INLINE_LEN {
            return Err(ProtocolError::TooBigInlineRequest);
        }
        let taken = buf.split_to(newline + 1).freeze();
        let line = taken.slice(..line_len);
        match split_args(&line, MAX_ARGS_PER_COMMAND) {
            Ok(Some(args)) => Ok(Some(args)),
            Ok(None) => Err(ProtocolError::TooManyInlineArgs),
            Err(UnbalancedQuotes) => Err(ProtocolError::UnbalancedQuotes),
        }
    }
}

/// The byte as Redis's `%c` would show it, kept valid UTF-8 for the error reply.
fn printable(byte: u8) -> char {
    if byte == b'\r' || byte == b'\n' {
        // Redis turns newlines inside error replies into spaces.
        ' '
    } else if byte.is_ascii() {
        char::from(byte)
    } else {
        char::REPLACEMENT_CHARACTER
    }
}
