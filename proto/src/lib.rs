//! Shoal's wire protocol and system limits.
//!
//! This crate owns every byte format that crosses a socket (client frames, peer frames)
//! and every numeric limit of the system ([`limits`]). It is sans-IO: bytes in, frames
//! out, no sockets, no clocks, no executor, so the server, the clients and the peers share
//! one codec and it can be property-tested and fuzzed on its own.

pub mod limits;
