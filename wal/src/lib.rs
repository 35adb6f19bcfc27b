//! Shoal's write-ahead log: one per shard, holding that shard's Raft log, vote and
//! committed index. It knows nothing of Raft, keys or shards: it stores records with a
//! caller-given, strictly increasing `u64` index and an opaque payload, plus one small
//! opaque metadata value. See `docs/WAL.md` for the format and the recovery rule.
//!
//! Layers: `record`, `recovery`, `index`, `meta` and `cache` are sans-IO; `disk` is the
//! file-access trait with a glommio and an in-memory implementation; `wal` is the API with
//! group commit, running on one glommio executor.

pub mod cache;
mod commit;
pub mod config;
pub mod disk;
pub mod error;
pub mod index;
pub mod meta;
mod open;
pub mod record;
pub mod recovery;
pub mod wal;

pub use config::{BLOCK, MAX_META_LEN, WalConfig};
pub use disk::glommio::{GlommioDisk, SyncMode};
pub use disk::memory::{Fault, MemDisk};
pub use disk::{Disk, DiskFile};
pub use error::{Result, WalError};
pub use recovery::TornTail;
pub use wal::{RecoveryReport, Ticket, Wal, WalStats};
