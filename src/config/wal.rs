//! The WAL settings of every shard: segment size and how a log write is made durable.
//!
//! Invariant: every [`WalSyncMode`] makes a write durable (fdatasync'd) before the WAL
//! reports it so; the modes differ only in which thread waits for the disk, never in what
//! is promised. The choice is a latency/CPU trade-off measured in `docs/WAL.md`.

use serde::{Deserialize, Serialize};
use shoal_wal::SyncMode;

/// How each shard's WAL makes a write durable (`wal.sync_mode`, `--wal-sync-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum WalSyncMode {
    /// io_uring write and io_uring fdatasync, linked: the kernel runs the fdatasync (on a
    /// kernel worker) once the write completed. Never blocks the shard and holds its
    /// latency when the machine is busy: the default.
    #[default]
    Uring,
    /// `pwrite` + `fdatasync` on the shard's own thread: the lowest put latency when the
    /// shard has a core to itself (no kernel worker to schedule, no cross-thread wake-up),
    /// but the shard serves nothing while a sync runs, and on a busy machine each sync may
    /// wait a scheduler tick. For latency-critical embedded deployments with dedicated
    /// cores.
    Inline,
    /// `pwrite` + `fdatasync` on one dedicated thread per shard, which wakes the shard when
    /// done. Costs a thread per shard and two cross-thread wake-ups per write.
    Thread,
}

impl WalSyncMode {
    /// The WAL crate's mode for this setting.
    pub fn disk_mode(self) -> SyncMode {
        match self {
            WalSyncMode::Uring => SyncMode::UringFdatasync,
            WalSyncMode::Inline => SyncMode::Inline,
            WalSyncMode::Thread => SyncMode::SyncThread,
        }
    }
}

/// WAL settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WalConfig {
    /// Size of each segment file, in MiB.
    pub segment_mib: u64,
    /// How a log write is made durable (every mode fdatasyncs before acknowledging).
    pub sync_mode: WalSyncMode,
}

impl Default for WalConfig {
    fn default() -> Self {
        WalConfig {
            segment_mib: 64,
            sync_mode: WalSyncMode::Uring,
        }
    }
}
