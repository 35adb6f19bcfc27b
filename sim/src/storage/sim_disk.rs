//! [`SimDisk`]: the real WAL's `Disk` on the simulated runtime. It wraps
//! `shoal_wal::MemDisk` (durable and volatile images, names durable only after
//! `sync_dir`, a crash keeping only durable data) and adds virtual time and crash tears.
//!
//! Model:
//! - `write_durable` (a write + fdatasync) takes a virtual fsync latency drawn from the
//!   seed's Disk stream and lands on the images only when that time has passed, so group
//!   commit batches form and a crash can hit a write in flight. `create_zeroed` and
//!   `sync_dir` take a latency too; reads are immediate.
//! - A **crash** tears every write in flight: a random prefix (0 ..= all of its bytes, from
//!   the Disk stream) reaches the durable image, the rest is lost, then `MemDisk::crash`
//!   keeps only durable data and durable names and invalidates every open handle. (A
//!   prefix tear is the WAL's documented failure model: `docs/WAL.md`.)
//! - Background tasks of the WAL and of the log store are spawned on the simulated
//!   executor (the spawn seam of `shoal_wal::Disk`), so they carry the node's tag and die
//!   with it at a crash.
//!
//! Invariants: writes in flight are tracked outside the futures doing them (a crash drops
//! those futures); [`SimDisk::durable_version`] changes whenever the durable image may have
//! changed, so callers can cache what they derive from it.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::rc::Rc;

use bytes::Bytes;
use openraft_rt::AsyncRuntime;
use shoal_wal::disk::Joinable;
use shoal_wal::{Disk, DiskFile, MemDisk};

use super::log_store::fsync_latency;
use crate::runtime::SimRuntime;
use crate::runtime::Stream;
use crate::runtime::rng;
use crate::trace::Kind;

/// A write in flight: the file it goes to and what it writes.
struct InFlight {
    file: Rc<shoal_wal::disk::memory::MemFile>,
    offset: u64,
    data: Vec<u8>,
}

#[derive(Default)]
struct Shared {
    in_flight: RefCell<BTreeMap<u64, InFlight>>,
    next_write: Cell<u64>,
    version: Cell<u64>,
    writes: Cell<u64>,
    torn: Cell<u64>,
}

/// One simulated node's WAL directory; clones share it (and survive the node's crashes).
#[derive(Clone)]
pub struct SimDisk {
    node: u64,
    mem: MemDisk,
    shared: Rc<Shared>,
}

impl std::fmt::Debug for SimDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimDisk")
            .field("node", &self.node)
            .field("in_flight", &self.shared.in_flight.borrow().len())
            .field("version", &self.shared.version.get())
            .finish()
    }
}

/// An open file of a [`SimDisk`].
#[derive(Debug)]
pub struct SimFile {
    disk: SimDisk,
    file: Rc<shoal_wal::disk::memory::MemFile>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

impl SimDisk {
    /// An empty disk of node `node`.
    pub fn new(node: u64) -> Self {
        SimDisk {
            node,
            mem: MemDisk::new(),
            shared: Rc::new(Shared::default()),
        }
    }

    /// The underlying in-memory disk (durable images for the invariant checks).
    pub fn mem(&self) -> &MemDisk {
        &self.mem
    }

    /// Changes whenever the durable image may have changed.
    pub fn durable_version(&self) -> u64 {
        self.shared.version.get()
    }

    /// Writes in flight now (begun, their latency not yet elapsed).
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.borrow().len()
    }

    /// Durable writes completed, and writes torn by crashes, so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.shared.writes.get(), self.shared.torn.get())
    }

    fn bump(&self) {
        self.shared.version.set(self.shared.version.get() + 1);
    }

    async fn latency(&self, what: u64) {
        let d = fsync_latency();
        crate::runtime::context::with(|sim| sim.trace.record(Kind::Disk, self.node, what));
        SimRuntime::sleep(d).await;
    }

    /// Power loss: tear every write in flight at a random byte, then keep only durable data
    /// (`MemDisk::crash`). Call after the node's tasks were dropped. Returns how many writes
    /// were in flight (torn or lost).
    pub fn crash(&self) -> usize {
        let in_flight = std::mem::take(&mut *self.shared.in_flight.borrow_mut());
        let n = in_flight.len();
        for w in in_flight.into_values() {
            let keep = usize::try_from(rng::below(
                Stream::Disk,
                u64::try_from(w.data.len()).unwrap_or(0) + 1,
            ))
            .unwrap_or(0);
            if keep > 0 {
                self.mem.tear_write(&w.file, w.offset, &w.data, keep);
                self.shared.torn.set(self.shared.torn.get() + 1);
            }
        }
        self.mem.crash();
        self.bump();
        n
    }
}

impl Disk for SimDisk {
    type File = SimFile;

    async fn list(&self) -> io::Result<Vec<String>> {
        self.mem.list().await
    }

    async fn open(&self, name: &str) -> io::Result<SimFile> {
        let file = Rc::new(self.mem.open(name).await?);
        Ok(SimFile {
            disk: self.clone(),
            file,
        })
    }

    async fn create_zeroed(&self, name: &str, len: u64) -> io::Result<SimFile> {
        self.latency(len).await;
        let file = Rc::new(self.mem.create_zeroed(name, len).await?);
        self.bump();
        Ok(SimFile {
            disk: self.clone(),
            file,
        })
    }

    async fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.mem.rename(from, to).await
    }

    async fn remove(&self, name: &str) -> io::Result<()> {
        self.mem.remove(name).await
    }

    async fn sync_dir(&self) -> io::Result<()> {
        self.latency(0).await;
        let r = self.mem.sync_dir().await;
        self.bump();
        r
    }

    fn spawn_detached(&self, fut: impl Future<Output = ()> + 'static) {
        drop(SimRuntime::spawn(fut));
    }

    fn spawn_joinable<T: 'static>(&self, fut: impl Future<Output = T> + 'static) -> Joinable<T> {
        let handle = SimRuntime::spawn(fut);
        Box::pin(async move {
            match handle.await {
                Ok(v) => v,
                // The task and its joiner belong to the same node and die together; a
                // panic inside it is already recorded by the executor.
                Err(e) => panic!("joined WAL task did not finish: {e:?}"),
            }
        })
    }
}

impl DiskFile for SimFile {
    fn len(&self) -> u64 {
        self.file.len()
    }

    async fn read_at(&self, offset: u64, len: usize) -> io::Result<Bytes> {
        self.file.read_at(offset, len).await
    }

    async fn read_all(&self, buf: Vec<u8>) -> io::Result<(Vec<u8>, std::ops::Range<usize>)> {
        self.file.read_all(buf).await
    }

    async fn write_durable(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let shared = &self.disk.shared;
        let id = shared.next_write.get();
        shared.next_write.set(id + 1);
        shared.in_flight.borrow_mut().insert(
            id,
            InFlight {
                file: self.file.clone(),
                offset,
                data: data.to_vec(),
            },
        );
        self.disk
            .latency(u64::try_from(data.len()).unwrap_or(u64::MAX))
            .await;
        shared.in_flight.borrow_mut().remove(&id);
        let r = self.file.write_durable(offset, data).await;
        shared.writes.set(shared.writes.get() + 1);
        self.disk.bump();
        r
    }
}
