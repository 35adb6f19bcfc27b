//! Limits specific to the RESP front door.
//!
//! These belong with every other limit in `proto/src/limits.rs` (crate `shoal-proto`);
//! they live here only until the lead moves them. Each is enforced by the request decoder
//! or the command parser *before* anything proportional to a peer-announced size is
//! allocated, and each violation has a clear error.
//!
//! TODO(lead): move these four constants to `proto/src/limits.rs`.

use shoal_proto::limits::{MAX_BATCH_KEYS, MAX_FRAME_LEN, MAX_KEY_LEN, MAX_VALUE_LEN};

/// Most arguments (command name included) in one request. A multibulk header announcing
/// more is a protocol error that closes the connection. It is deliberately larger than
/// `MAX_BATCH_KEYS + 1` so that a `DEL`/`MGET`/`EXISTS` with too many keys gets a
/// readable error *reply* from the command parser instead of a dropped connection, while
/// still bounding the argument vector (at 32 bytes per `Bytes`, 256 KiB).
pub const MAX_ARGS_PER_COMMAND: usize = 8 * MAX_BATCH_KEYS;

/// Longest inline (telnet) command line, in bytes, without its line terminator. This is
/// Redis's `PROTO_INLINE_MAX_SIZE`.
pub const MAX_INLINE_LEN: usize = 64 * 1024;

/// Longest `*<count>` or `$<len>` header line, in bytes, without its CRLF. Any valid
/// count fits in 20 digits; a longer header is hostile or broken.
pub const MAX_HEADER_LINE_LEN: usize = 32;

/// Largest single argument (bulk string), in bytes: the largest of a key and a value.
/// Command parsing then checks keys against `MAX_KEY_LEN` precisely.
pub const MAX_ARG_LEN: usize = if MAX_VALUE_LEN > MAX_KEY_LEN {
    MAX_VALUE_LEN
} else {
    MAX_KEY_LEN
};

/// Largest request, in bytes of argument payload summed over all its arguments. A request
/// announcing more (checked as each bulk header is read) closes the connection.
pub const MAX_REQUEST_LEN: usize = MAX_FRAME_LEN;

const _: () = assert!(MAX_ARGS_PER_COMMAND > MAX_BATCH_KEYS + 1);
const _: () = assert!(MAX_ARG_LEN <= MAX_REQUEST_LEN);
