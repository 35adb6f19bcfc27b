//! Consensus for a shard: openraft `0.10.0-alpha.37` running on the shard's glommio
//! executor.
//!
//! Owns the glommio `AsyncRuntime` ([`runtime`]), its `tokio::sync` channel adapters
//! ([`sync`]), the openraft type configuration of a Shoal group ([`types`]), the
//! WAL-backed log store ([`log_store`]; reads in [`log_reader`], shared state and the
//! metadata write path in `log_shared`, entry and metadata encodings in [`log_codec`]) and
//! the state machine over a shard's `State` ([`state_machine`], with [`snapshot_builder`],
//! the snapshot files [`snapshot_store`] over the file seam [`snapshot_fs`], their Raft metadata [`snapshot_meta`] and the
//! client replies [`apply_reply`]; its executor seam is [`sm_runtime`]).
//! Invariant: a `Raft` handle and everything it spawns live on one executor thread (the
//! runtime is `single-threaded`, so nothing here is `Send`); other threads reach a group
//! through channels only. See `docs/RAFT.md` for how the storage and network traits are
//! meant to be implemented.

pub mod apply_reply;
pub mod log_codec;
pub mod log_reader;
mod log_shared;
pub mod log_store;
pub mod runtime;
pub mod sm_runtime;
pub mod snapshot_builder;
pub mod snapshot_fs;
pub mod snapshot_meta;
pub mod snapshot_store;
pub mod state_machine;
pub mod sync;
pub mod types;

pub use apply_reply::ApplyReply;
pub use log_store::{AckMode, LogStoreError, LogStoreStats, WalLogReader, WalLogStore};
pub use runtime::GlommioRuntime;
pub use sm_runtime::SmRuntime;
pub use snapshot_fs::{FileSnapshotFs, SnapshotFile, SnapshotFs};
pub use state_machine::{ShardStateMachine, SharedState, SmError};
pub use types::{ShoalTypeConfig, TypeConfig};
