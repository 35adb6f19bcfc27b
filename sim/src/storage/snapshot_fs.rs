//! [`SimSnapshotFs`]: the snapshot directory of a simulated node, behind Shoal's
//! `SnapshotFs` seam, so the production snapshot store (its write sequence, its recovery
//! at open) runs on it.
//!
//! Model (the POSIX contract the store is written against):
//! - A file's data is durable only once `fdatasync` completed; names (create, rename,
//!   remove) are durable only once `sync_dir` completed. `fdatasync` and `sync_dir` take a
//!   virtual fsync latency from the seed's Disk stream, so a crash can hit them midway.
//! - A **crash** keeps the durable names only; each surviving file keeps its synced data
//!   plus a random prefix (from the Disk stream) of what was written after it, when that
//!   extends the synced data (partial write-back); handles of the old incarnation fail.
//!
//! Invariant: the node's directory outlives its incarnations (clones share it).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::rc::Rc;

use openraft_rt::AsyncRuntime;
use shoal::raft::SnapshotFile;
use shoal::raft::SnapshotFs;
use shoal::raft::snapshot_store::snapshot_key;

use super::log_store::fsync_latency;
use crate::runtime::SimRuntime;
use crate::runtime::Stream;
use crate::runtime::rng;
use crate::trace::Kind;

#[derive(Debug, Default)]
struct Inode {
    data: Vec<u8>,
    synced: Vec<u8>,
}

#[derive(Debug, Default)]
struct Inner {
    inodes: BTreeMap<u64, Inode>,
    next: u64,
    names: BTreeMap<String, u64>,
    durable_names: BTreeMap<String, u64>,
    /// Bumped at every crash: handles of an older epoch fail.
    epoch: u64,
    /// Renames onto a snapshot file name (`*.snap`): snapshots persisted.
    persisted: u64,
}

/// One simulated node's snapshot directory; clones share it.
#[derive(Debug, Clone)]
pub struct SimSnapshotFs {
    node: u64,
    inner: Rc<RefCell<Inner>>,
}

/// An open file of a [`SimSnapshotFs`].
#[derive(Debug)]
pub struct SimSnapshotFile {
    fs: SimSnapshotFs,
    ino: u64,
    epoch: u64,
}

fn not_found(name: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("no file {name}"))
}

impl SimSnapshotFs {
    /// The empty snapshot directory of node `node`.
    pub fn new(node: u64) -> Self {
        SimSnapshotFs {
            node,
            inner: Rc::new(RefCell::new(Inner::default())),
        }
    }

    async fn latency(&self, what: u64) {
        let d = fsync_latency();
        crate::runtime::context::with(|sim| sim.trace.record(Kind::Disk, self.node, what));
        SimRuntime::sleep(d).await;
    }

    /// Power loss: keep durable names, synced data and a random prefix of later writes.
    pub fn crash(&self) {
        let mut inner = self.inner.borrow_mut();
        inner.epoch += 1;
        inner.names = inner.durable_names.clone();
        let live: Vec<u64> = inner.names.values().copied().collect();
        inner.inodes.retain(|ino, _| live.contains(ino));
        for inode in inner.inodes.values_mut() {
            let Inode { data, synced } = inode;
            if data.len() > synced.len() && data.starts_with(synced) {
                let extra = (data.len() - synced.len()) as u64;
                let keep = synced.len() + rng::below(Stream::Disk, extra + 1) as usize;
                data.truncate(keep);
            } else {
                *data = synced.clone();
            }
            *synced = data.clone();
        }
    }

    /// Snapshot files renamed into place so far.
    pub fn persisted(&self) -> u64 {
        self.inner.borrow().persisted
    }

    /// Index of the newest snapshot file whose name is durable (what a restart would load),
    /// `Some(None)` for a snapshot taken before any entry, `None` if there is none.
    pub fn durable_snapshot_index(&self) -> Option<Option<u64>> {
        newest(&self.inner.borrow().durable_names)
    }

    /// Index of the newest snapshot file in the directory now.
    pub fn snapshot_index(&self) -> Option<Option<u64>> {
        newest(&self.inner.borrow().names)
    }

    fn check(&self, epoch: u64) -> io::Result<()> {
        if self.inner.borrow().epoch == epoch {
            Ok(())
        } else {
            Err(io::Error::other("file handle of a crashed incarnation"))
        }
    }
}

fn newest(names: &BTreeMap<String, u64>) -> Option<Option<u64>> {
    names
        .keys()
        .filter_map(|n| snapshot_key(n))
        .max()
        .map(|key| key.map(|(index, _term)| index))
}

impl SnapshotFs for SimSnapshotFs {
    type File = SimSnapshotFile;

    fn path(&self, name: &str) -> PathBuf {
        PathBuf::from(format!("sim-node-{}/snapshots/{name}", self.node))
    }

    async fn prepare(&self) -> io::Result<()> {
        Ok(())
    }

    async fn list(&self) -> io::Result<Vec<String>> {
        Ok(self.inner.borrow().names.keys().cloned().collect())
    }

    async fn create(&self, name: &str) -> io::Result<SimSnapshotFile> {
        let mut inner = self.inner.borrow_mut();
        let ino = inner.next;
        inner.next += 1;
        inner.inodes.insert(ino, Inode::default());
        inner.names.insert(name.to_string(), ino);
        Ok(SimSnapshotFile {
            fs: self.clone(),
            ino,
            epoch: inner.epoch,
        })
    }

    async fn open(&self, name: &str) -> io::Result<SimSnapshotFile> {
        let inner = self.inner.borrow();
        let ino = *inner.names.get(name).ok_or_else(|| not_found(name))?;
        Ok(SimSnapshotFile {
            fs: self.clone(),
            ino,
            epoch: inner.epoch,
        })
    }

    async fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut inner = self.inner.borrow_mut();
        let ino = inner.names.remove(from).ok_or_else(|| not_found(from))?;
        if snapshot_key(to).is_some() {
            inner.persisted += 1;
        }
        inner.names.insert(to.to_string(), ino);
        Ok(())
    }

    async fn remove(&self, name: &str) -> io::Result<()> {
        let mut inner = self.inner.borrow_mut();
        inner.names.remove(name).ok_or_else(|| not_found(name))?;
        Ok(())
    }

    async fn sync_dir(&self) -> io::Result<()> {
        let epoch = self.inner.borrow().epoch;
        self.latency(0).await;
        self.check(epoch)?;
        let mut inner = self.inner.borrow_mut();
        inner.durable_names = inner.names.clone();
        // Files unlinked durably are gone for good (the store holds no handle to a file
        // it removes: every file operation runs under its lock).
        let live: Vec<u64> = inner.names.values().copied().collect();
        inner.inodes.retain(|ino, _| live.contains(ino));
        Ok(())
    }
}

impl SnapshotFile for SimSnapshotFile {
    type Chunk = Vec<u8>;

    async fn write_at(&self, bytes: Vec<u8>, pos: u64) -> io::Result<usize> {
        self.fs.check(self.epoch)?;
        let mut inner = self.fs.inner.borrow_mut();
        let inode = inner
            .inodes
            .get_mut(&self.ino)
            .ok_or_else(|| io::Error::other("write to a deleted file"))?;
        let pos = usize::try_from(pos).map_err(io::Error::other)?;
        let end = pos + bytes.len();
        if inode.data.len() < end {
            inode.data.resize(end, 0);
        }
        inode.data[pos..end].copy_from_slice(&bytes);
        Ok(bytes.len())
    }

    async fn read_at(&self, pos: u64, len: usize) -> io::Result<Vec<u8>> {
        self.fs.check(self.epoch)?;
        let inner = self.fs.inner.borrow();
        let inode = inner
            .inodes
            .get(&self.ino)
            .ok_or_else(|| io::Error::other("read of a deleted file"))?;
        let pos = usize::try_from(pos).map_err(io::Error::other)?;
        let start = pos.min(inode.data.len());
        let end = pos.saturating_add(len).min(inode.data.len());
        Ok(inode.data[start..end].to_vec())
    }

    async fn fdatasync(&self) -> io::Result<()> {
        self.fs.check(self.epoch)?;
        let len = self
            .fs
            .inner
            .borrow()
            .inodes
            .get(&self.ino)
            .map_or(0, |i| i.data.len() as u64);
        self.fs.latency(len).await;
        self.fs.check(self.epoch)?;
        let mut inner = self.fs.inner.borrow_mut();
        if let Some(inode) = inner.inodes.get_mut(&self.ino) {
            inode.synced = inode.data.clone();
        }
        Ok(())
    }

    async fn close(self) -> io::Result<()> {
        Ok(())
    }
}
