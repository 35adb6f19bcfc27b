//! Limits of the RESP front door, under the names this crate uses.
//!
//! They are defined with every other limit in `shoal_proto::limits` (the one place limits
//! are named); each is enforced by the request decoder or the command parser *before*
//! anything proportional to a peer-announced size is allocated.

pub use shoal_proto::limits::{
    RESP_MAX_ARG_LEN as MAX_ARG_LEN, RESP_MAX_ARGS_PER_COMMAND as MAX_ARGS_PER_COMMAND,
    RESP_MAX_HEADER_LINE_LEN as MAX_HEADER_LINE_LEN, RESP_MAX_INLINE_LEN as MAX_INLINE_LEN,
    RESP_MAX_REQUEST_LEN as MAX_REQUEST_LEN,
};
