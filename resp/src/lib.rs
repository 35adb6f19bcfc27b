//! Shoal's Redis front door, sans IO: bytes in, typed commands out; typed results in,
//! reply bytes out. No sockets, no clock reads (time is an argument), no runtime.
//!
//! Flow for one connection (see `Session`):
//! 1. `RequestDecoder` frames RESP multibulk and inline requests from the read buffer
//!    (zero-copy `Bytes` arguments, limits checked before allocation).
//! 2. `Command::parse` types them, answering Redis's exact error replies.
//! 3. `plan` answers connection-level commands and turns data commands into a `Read` or
//!    a `Write` (`WriteOp`: one atomic state-machine command each) for the node.
//! 4. `Read::reply` / `WriteReplyShape::reply` turn store outcomes into a `Reply`, and
//!    `encode_reply` writes it as RESP2 or RESP3.

pub mod action;
pub mod command;
pub mod command_table;
pub mod connection;
pub mod decode;
pub mod errors;
pub mod info;
pub mod inline;
pub mod introspect;
pub mod limits;
pub mod num;
pub mod reply;
pub mod session;
pub mod set_options;
pub mod write_op;

pub use action::{Action, plan};
pub use command::{ClientAttr, Command, Hello, TimeUnit};
pub use connection::{ConnectionState, Protocol};
pub use decode::{ProtocolError, RequestDecoder};
pub use errors::ErrorReply;
pub use info::{InfoFigures, InfoSections};
pub use reply::{Reply, encode_reply};
pub use session::{Session, Step};
pub use set_options::{ExpireCondition, SetCondition, SetExpiry, SetName, SetOptions};
pub use write_op::{
    Read, ReadOp, ReadOutcome, TtlLookup, TtlUpdate, Write, WriteOp, WriteOutcome, WriteReplyShape,
    ttl_reply,
};

/// The Redis version whose command semantics Shoal follows, reported by `HELLO` and as
/// `redis_version` in `INFO` (clients use it for feature detection).
pub const REDIS_COMPAT_VERSION: &str = "7.0.0";
