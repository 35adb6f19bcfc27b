//! Shoal's wire protocol and system limits.
//!
//! This crate owns every byte format that crosses a socket (client frames, peer frames)
//! and every numeric limit of the system ([`limits`]). It is sans-IO: bytes in, frames
//! out, no sockets, no clocks, no executor, so the server, the clients and the peers share
//! one codec and it can be property-tested and fuzzed on its own. The format is specified
//! in `docs/PROTOCOL.md`.
//!
//! Dependencies point one way: `limits`, `frame`, `opcode`, `status` ← `wire` ←
//! message modules (`handshake`, `topology`, `digest`, `error_response`, `request`, `response`,
//! `peer`) ← `encoder`, `decoder`, `peer_handshake`.

pub mod limits;

mod conditional;
mod decoder;
mod digest;
mod encoder;
mod error;
mod error_response;
mod frame;
mod handshake;
mod opcode;
pub mod peer;
mod peer_handshake;
mod request;
mod response;
mod routing;
mod status;
mod topology;
mod wire;

pub use conditional::{
    DeleteMulti, Expire, ExpireCondition, KeyTtl, Persist, SetCondition, SetIf, Ttl, TtlMode,
};
pub use decoder::{Frame, FrameDecoder, PeerFrame, RequestFrame, ResponseFrame, Role};
pub use digest::GroupDigest;
pub use encoder::{
    encode_delete, encode_error, encode_get, encode_peer, encode_put, encode_request,
    encode_response,
};
pub use error::{BodyError, DecodeError, Disposition, EncodeError};
pub use error_response::{ErrorDetail, ErrorResponse};
pub use frame::{
    FLAG_CONSISTENCY_MASK, HEADER_LEN, Header, MAX_PROTOCOL_VERSION, MIN_PROTOCOL_VERSION,
    PROTOCOL_VERSION,
};
pub use handshake::{Hello, HelloOk, MAGIC, negotiate_version};
pub use opcode::{Channel, Opcode, RESPONSE_BIT};
pub use peer::PeerMessage;
pub use peer_handshake::{LocalPeer, accept_peer_hello};
pub use request::{
    AddLearner, ChangeMembership, Delete, Get, GetMulti, Put, PutWithTtl, ReadConsistency, Request,
};
pub use response::Response;
pub use routing::{HASH_XXH3_64_SEED0, group_by_shard, shard_for_key};
pub use status::{LimitKind, Status};
pub use topology::{GroupLeader, GroupStatus, NodeInfo, RaftRole, StatusReport, Topology};
pub use wire::ANY;
