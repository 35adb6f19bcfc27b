//! The node: S shard threads, each a glommio executor pinned to a core that owns one Raft
//! group, its WAL, its state and its listeners; plus the mesh that links them.
//!
//! Owns: [`handle`] (the embedding API: `Node::start`, `ready`, `mesh`, `stop`),
//! [`shard_thread`] (one shard's start and stop sequence), [`layout`] (the data
//! directory), [`raft_config`] (each group's openraft config), [`mesh`] (bounded
//! cross-shard inboxes, the only way shards and the embedding application reach one
//! another) and [`service`] (the seam between the server and a shard's consensus).
//!
//! Invariant: shards share no mutable state; everything crossing threads is moved
//! through the mesh.

pub mod handle;
pub mod layout;
pub mod mesh;
pub mod raft_config;
pub mod service;
pub mod shard_thread;

pub use handle::{Node, NodeError, ShutdownHandle};
pub use mesh::{Envelope, Inbox, Mesh};
pub use service::ShardService;
pub use shard_thread::{ShardError, ShardReady};
