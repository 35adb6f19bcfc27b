//! The file-access seam of the snapshot store: the few directory and file operations
//! [`SnapshotStore`](super::snapshot_store::SnapshotStore) performs, so the same store (its
//! crash-safe write sequence, its recovery at open) runs on real files in production and
//! on an in-memory directory that loses unsynced data at a simulated crash.
//!
//! [`FileSnapshotFs`] is the production implementation: glommio's io_uring
//! (`BufferedFile`, `rename`, `remove`, `Directory::sync`), so fdatasync of a large file
//! never blocks the shard's thread. Buffered (not O_DIRECT) files also avoid the DmaFile
//! EOPNOTSUPP trap of `/work/shared/DESIGN.md`.
//!
//! Contract every implementation keeps: file data is durable only after `fdatasync`;
//! creating, renaming and removing a file are durable only after `sync_dir`; `create`
//! truncates an existing file; `list` returns file names (not paths) and skips names that
//! are not UTF-8.

use std::io;
use std::ops::Deref;
use std::path::Path;
use std::path::PathBuf;

use glommio::io::BufferedFile;
use glommio::io::Directory;
use glommio::io::OpenOptions;

/// A snapshot directory.
#[allow(async_fn_in_trait)] // Used on one executor only; the futures need not be Send.
pub trait SnapshotFs: 'static {
    /// An open file.
    type File: SnapshotFile;

    /// Where file `name` lives (for messages and errors).
    fn path(&self, name: &str) -> PathBuf;
    /// Creates the directory if it is missing, durably.
    async fn prepare(&self) -> io::Result<()>;
    /// Names of the files in the directory.
    async fn list(&self) -> io::Result<Vec<String>>;
    /// Creates (or truncates) `name` for writing.
    async fn create(&self, name: &str) -> io::Result<Self::File>;
    /// Opens an existing file for reading.
    async fn open(&self, name: &str) -> io::Result<Self::File>;
    /// Renames a file (durable after `sync_dir`).
    async fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// Removes a file (durable after `sync_dir`).
    async fn remove(&self, name: &str) -> io::Result<()>;
    /// Makes the directory's entries durable.
    async fn sync_dir(&self) -> io::Result<()>;
}

/// An open snapshot file.
#[allow(async_fn_in_trait)]
pub trait SnapshotFile {
    /// Bytes read from the file.
    type Chunk: Deref<Target = [u8]>;

    /// Writes `bytes` at `pos`; returns how many were written.
    async fn write_at(&self, bytes: Vec<u8>, pos: u64) -> io::Result<usize>;
    /// Reads up to `len` bytes at `pos` (fewer at the end of the file, none past it).
    async fn read_at(&self, pos: u64, len: usize) -> io::Result<Self::Chunk>;
    /// Makes the file's data durable.
    async fn fdatasync(&self) -> io::Result<()>;
    /// Closes the file.
    async fn close(self) -> io::Result<()>;
}

/// A shard's snapshot directory on the real file system.
#[derive(Debug, Clone)]
pub struct FileSnapshotFs {
    dir: PathBuf,
}

impl FileSnapshotFs {
    /// The snapshot directory `dir` (created by [`SnapshotFs::prepare`] if missing).
    pub fn new(dir: PathBuf) -> Self {
        FileSnapshotFs { dir }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

async fn sync_dir(dir: &Path) -> io::Result<()> {
    let d = Directory::open(dir).await.map_err(io::Error::from)?;
    d.sync().await.map_err(io::Error::from)?;
    d.close().await.map_err(io::Error::from)
}

impl SnapshotFs for FileSnapshotFs {
    type File = BufferedFile;

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    async fn prepare(&self) -> io::Result<()> {
        if self.dir.is_dir() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.dir)?;
        if let Some(parent) = self.dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent).await?;
        }
        Ok(())
    }

    async fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            if let Some(name) = entry?.file_name().to_str() {
                names.push(name.to_string());
            }
        }
        Ok(names)
    }

    async fn create(&self, name: &str) -> io::Result<BufferedFile> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .buffered_open(self.dir.join(name))
            .await
            .map_err(io::Error::from)
    }

    async fn open(&self, name: &str) -> io::Result<BufferedFile> {
        BufferedFile::open(self.dir.join(name))
            .await
            .map_err(io::Error::from)
    }

    async fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        glommio::io::rename(self.dir.join(from), self.dir.join(to))
            .await
            .map_err(io::Error::from)
    }

    async fn remove(&self, name: &str) -> io::Result<()> {
        glommio::io::remove(self.dir.join(name))
            .await
            .map_err(io::Error::from)
    }

    async fn sync_dir(&self) -> io::Result<()> {
        sync_dir(&self.dir).await
    }
}

impl SnapshotFile for BufferedFile {
    type Chunk = glommio::io::ReadResult;

    async fn write_at(&self, bytes: Vec<u8>, pos: u64) -> io::Result<usize> {
        BufferedFile::write_at(self, bytes, pos)
            .await
            .map_err(io::Error::from)
    }

    async fn read_at(&self, pos: u64, len: usize) -> io::Result<glommio::io::ReadResult> {
        BufferedFile::read_at(self, pos, len)
            .await
            .map_err(io::Error::from)
    }

    async fn fdatasync(&self) -> io::Result<()> {
        BufferedFile::fdatasync(self).await.map_err(io::Error::from)
    }

    async fn close(self) -> io::Result<()> {
        BufferedFile::close(self).await.map_err(io::Error::from)
    }
}
