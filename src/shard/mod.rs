//! One shard's serving logic on its executor: [`ShardCore`] (requests → Raft proposals
//! and reads, Raft answers → responses), the TTL ticker, the wall clock, and the mapping
//! of openraft errors to protocol errors.
//!
//! Invariant: everything here runs on the shard's own executor thread and is reached from
//! other threads only through the node's mesh.

pub mod clock;
mod core;
pub mod errors;
mod read_batch;
pub mod ttl_ticker;
mod write_batch;

pub use core::ShardCore;
