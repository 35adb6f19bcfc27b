//! Shoal: a Raft-replicated key-value node.
//!
//! A node runs S shards, one glommio executor per core. Each shard owns its share of the
//! keys (`shard = xxh3_64(key, seed 0) mod S`), its own WAL, its in-memory state machine
//! and one openraft group; shards share no mutable state and talk by message passing.
//! See `ARCHITECTURE.md` for the map of modules and which way dependencies point.

pub mod config;
pub mod telemetry;

pub use shoal_proto::limits;

pub mod cli;
pub mod local_client;
pub mod node;
pub mod peer;
pub mod raft;
pub mod server;
pub mod shard;
pub mod state;
