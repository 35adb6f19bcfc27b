//! The `floor-fsync` target: the raw write + fdatasync baseline, the floor under a durable
//! put (`shoal-local --workload write`).
//!
//! Each put overwrites the next 4 KiB block of a zero-filled 64 MiB file opened with
//! `O_DIRECT`, with plain `pwrite` + `fdatasync` syscalls: exactly the baseline of
//! `wal-bench` (`wal/src/bin/wal-bench.rs`), measured here through the same engine and
//! histograms as the other targets, in the same run. Only writes make sense: the target
//! refuses a mix with reads or deletes (`check_mix`).
//!
//! Invariants: one sync at a time (a mutex around the file), so with C > 1 in flight the
//! figures show serialized syncs, not group commit; compare it at 1 in flight. The
//! syscalls run on the calling worker thread (`block_in_place` on a multi-thread
//! runtime), without a hand-off to another thread that would add a wake-up.
//! The file lives in a fresh directory under `--data-dir` (default: the system temp dir,
//! which must be on the disk under test), removed at the end unless `--keep-data`.

use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bytes::Bytes;

use super::{ConnectError, ErrorKind, OpError, Target};
use crate::workload::Mix;

/// Bytes per write (one page, `O_DIRECT`-aligned).
pub const BLOCK: usize = 4096;
/// Size of the zero-filled file the writes cycle over.
pub const FILE_BYTES: u64 = 64 << 20;

struct Baseline {
    file: File,
    buf: Vec<u8>,
    start: usize,
    next: u64,
}

impl Baseline {
    fn write_and_sync(&mut self) -> std::io::Result<()> {
        self.file
            .write_all_at(&self.buf[self.start..self.start + BLOCK], self.next)?;
        self.file.sync_data()?;
        self.next = (self.next + BLOCK as u64) % FILE_BYTES;
        Ok(())
    }
}

/// A zero-filled `O_DIRECT` file and its next block.
pub struct FsyncFloor {
    baseline: Mutex<Baseline>,
    path: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for FsyncFloor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FsyncFloor")
            .field("path", &self.path)
            .finish()
    }
}

/// Refuses mixes with anything but writes: this floor only has a meaning for them.
pub fn check_mix(mix: &Mix) -> Result<(), String> {
    if mix.read > 0.0 || mix.delete > 0.0 || mix.multi_get > 0.0 {
        return Err(
            "--target floor-fsync measures durable writes only: use --workload write".into(),
        );
    }
    Ok(())
}

impl FsyncFloor {
    /// Creates the file in a fresh directory under `parent` (the system temp dir when
    /// `None`); `keep` leaves the directory in place at the end.
    pub fn create(parent: Option<&Path>, keep: bool) -> Result<Self, ConnectError> {
        let failed = |what: &str, e: std::io::Error| ConnectError::Failed {
            target: "floor-fsync",
            endpoint: parent.map_or_else(
                || std::env::temp_dir().display().to_string(),
                |p| p.display().to_string(),
            ),
            reason: format!("{what}: {e}"),
        };
        let mut builder = tempfile::Builder::new();
        builder.prefix("loadgen-fsync-");
        let dir = match parent {
            Some(p) => builder.tempdir_in(p),
            None => builder.tempdir(),
        }
        .map_err(|e| failed("creating the directory", e))?;
        let path = dir.path().join("baseline.dat");
        // Zero-filled and synced up front: the writes overwrite allocated blocks, as the
        // WAL's preallocated segments are.
        std::fs::write(&path, vec![0u8; FILE_BYTES as usize])
            .map_err(|e| failed("writing the file", e))?;
        File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(|e| failed("syncing the file", e))?;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(&path)
            .map_err(|e| failed("opening with O_DIRECT", e))?;
        let mut buf = vec![0u8; 2 * BLOCK];
        let start = buf.as_ptr().align_offset(BLOCK);
        buf[start..start + BLOCK].fill(0x5a);
        let (dir, kept) = if keep {
            (None, Some(dir.keep()))
        } else {
            (Some(dir), None)
        };
        if let Some(k) = kept {
            eprintln!("loadgen: floor-fsync file kept in {}", k.display());
        }
        Ok(FsyncFloor {
            baseline: Mutex::new(Baseline {
                file,
                buf,
                start,
                next: 0,
            }),
            path,
            _dir: dir,
        })
    }

    fn sync_write(&self) -> Result<(), OpError> {
        let run = || {
            let mut b = self
                .baseline
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            b.write_and_sync()
        };
        let result = match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(run),
            _ => run(),
        };
        result.map_err(|e| OpError::new(ErrorKind::Other, format!("pwrite + fdatasync: {e}")))
    }
}

fn writes_only(what: &str) -> OpError {
    OpError::new(
        ErrorKind::Other,
        format!("floor-fsync measures writes only, not {what}"),
    )
}

impl Target for FsyncFloor {
    fn describe(&self) -> String {
        format!(
            "floor-fsync {} (4 KiB O_DIRECT overwrite + fdatasync per put, plain syscalls: \
             the raw durability floor, as wal-bench's baseline)",
            self.path.display()
        )
    }

    async fn put(&self, _key: &[u8], _value: &[u8]) -> Result<(), OpError> {
        self.sync_write()
    }

    async fn put_with_ttl(&self, _key: &[u8], _value: &[u8], _ttl: u64) -> Result<(), OpError> {
        self.sync_write()
    }

    async fn get(&self, _key: &[u8]) -> Result<bool, OpError> {
        Err(writes_only("gets"))
    }

    async fn get_multi(&self, _keys: &[Bytes]) -> Result<usize, OpError> {
        Err(writes_only("multi-gets"))
    }

    async fn delete(&self, _key: &[u8]) -> Result<(), OpError> {
        Err(writes_only("deletes"))
    }

    async fn preflight(&self) -> Result<(), OpError> {
        self.sync_write()
    }
}
