//! The narrow file-access trait the WAL is written against, so the same WAL code runs on
//! real files (glommio, O_DIRECT) and on an in-memory disk that injects faults.
//!
//! Invariants every implementation keeps: `write_durable` offsets and lengths are
//! multiples of 4 KiB, and the call returns `Ok` only once the bytes are on stable
//! storage; `create_zeroed` returns a file whose every byte is durably zero (written, not
//! sparse); directory changes are durable only after `sync_dir`.
//!
//! The trait is also the WAL's spawn seam: the WAL (and the Raft log store over it) start
//! their background tasks through [`Disk::spawn_detached`] / [`Disk::spawn_joinable`], so
//! a simulated disk can run them on a simulated executor. The defaults spawn on the current
//! glommio executor, which is what the real and the in-memory disks use.

pub mod glommio;
pub mod memory;

use bytes::Bytes;
use std::future::Future;
use std::io;
use std::pin::Pin;

/// A handle to a task started with [`Disk::spawn_joinable`]: awaiting it yields the
/// task's output. Dropping it may cancel the task (glommio's `Task` does).
pub type Joinable<T> = Pin<Box<dyn Future<Output = T>>>;

/// A directory of files.
#[allow(async_fn_in_trait)] // Used on one executor only; the futures need not be Send.
pub trait Disk {
    /// An open file.
    type File: DiskFile + 'static;

    /// Names of the files in the directory.
    async fn list(&self) -> io::Result<Vec<String>>;
    /// Opens an existing file for reading and writing.
    async fn open(&self, name: &str) -> io::Result<Self::File>;
    /// Creates (or replaces) `name` holding `len` zero bytes, written and synced.
    async fn create_zeroed(&self, name: &str, len: u64) -> io::Result<Self::File>;
    /// Renames a file (durable after `sync_dir`).
    async fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// Removes a file (durable after `sync_dir`).
    async fn remove(&self, name: &str) -> io::Result<()>;
    /// Makes the directory's entries durable (fsync of the directory).
    async fn sync_dir(&self) -> io::Result<()>;

    /// Runs `fut` in the background on the executor this disk is used from, to completion
    /// (the WAL's flusher, the log store's completion and persist tasks). Default: the
    /// current glommio executor (`glommio::spawn_local(..).detach()`).
    fn spawn_detached(&self, fut: impl Future<Output = ()> + 'static) {
        ::glommio::spawn_local(fut).detach();
    }

    /// Runs `fut` in the background and returns a handle to await its output (segment
    /// preallocation). Default: `glommio::spawn_local`, whose task is cancelled when the
    /// handle is dropped.
    fn spawn_joinable<T: 'static>(&self, fut: impl Future<Output = T> + 'static) -> Joinable<T> {
        Box::pin(::glommio::spawn_local(fut))
    }
}

/// One open file.
#[allow(async_fn_in_trait)]
pub trait DiskFile {
    /// Size of the file in bytes.
    fn len(&self) -> u64;
    /// True when the file is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Reads exactly `len` bytes at `offset` (any alignment).
    async fn read_at(&self, offset: u64, len: usize) -> io::Result<Bytes>;
    /// Reads the whole file into `buf`, reusing its allocation (recovery rotates a few
    /// segment-sized buffers: faulting in fresh pages for every O_DIRECT read costs more
    /// than the read). Returns the buffer and the range of it holding the file.
    async fn read_all(&self, buf: Vec<u8>) -> io::Result<(Vec<u8>, std::ops::Range<usize>)>;
    /// Writes `data` at `offset` (both 4 KiB-aligned) and returns once it is durable.
    async fn write_durable(&self, offset: u64, data: &[u8]) -> io::Result<()>;
}
