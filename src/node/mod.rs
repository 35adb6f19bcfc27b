//! The node: S shard threads, each a glommio executor pinned to a core that owns one Raft
//! group, its WAL, its state and its listeners; plus the mesh that links them.
//!
//! Owns: [`mesh`] (bounded cross-shard inboxes, the only way shards and the embedding
//! application reach one another) and [`service`] (the seam between the server and a
//! shard's consensus).
//!
//! Invariant: shards share no mutable state; everything crossing threads is moved
//! through the mesh.

pub mod layout;
pub mod mesh;
pub mod service;

pub use mesh::{Envelope, Inbox, Mesh};
pub use service::ShardService;
