//! An in-memory [`Disk`] for tests that can tear a write at any byte, flip bits, fail a
//! sync, and lose, at a simulated crash, everything not yet reported durable.
//!
//! Model: every file has a durable image and a volatile image (what reads see). A
//! successful `write_durable` updates both. A planned fault hits one future write:
//! `Tear(n)` puts only the first `n` bytes of it on the durable image and then acts as a
//! power loss (every later call fails until [`MemDisk::crash`]); `FailSync` updates only
//! the volatile image and reports an error. Directory entries are durable only after
//! `sync_dir`. [`MemDisk::crash`] rolls volatile images and names back to the durable
//! ones and invalidates every open handle.
//!
//! Invariants: writes must be 4 KiB-aligned (as O_DIRECT demands), or they fail.

use super::{Disk, DiskFile};
use bytes::Bytes;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::rc::Rc;

/// A fault planned for one future write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Only the first `n` bytes reach the disk, then the power goes.
    Tear(usize),
    /// The write reaches only the volatile image and the sync reports an error.
    FailSync,
}

#[derive(Debug, Default)]
struct FileData {
    durable: Vec<u8>,
    volatile: Vec<u8>,
}

#[derive(Debug, Default)]
struct State {
    generation: u64,
    dead: bool,
    files: HashMap<u64, FileData>,
    names: BTreeMap<String, u64>,
    durable_names: BTreeMap<String, u64>,
    next_id: u64,
    writes: u64,
    planned: Option<(u64, Fault)>,
}

/// The in-memory disk; clones share the same state.
#[derive(Debug, Clone, Default)]
pub struct MemDisk {
    st: Rc<RefCell<State>>,
}

/// An open in-memory file.
#[derive(Debug)]
pub struct MemFile {
    st: Rc<RefCell<State>>,
    id: u64,
    generation: u64,
    len: u64,
}

fn crashed() -> io::Error {
    io::Error::other("simulated power loss: disk unavailable until crash()")
}

impl State {
    fn live(&self, generation: Option<u64>) -> io::Result<()> {
        if self.dead || generation.is_some_and(|g| g != self.generation) {
            return Err(crashed());
        }
        Ok(())
    }
}

impl MemDisk {
    /// An empty disk.
    pub fn new() -> Self {
        Self::default()
    }

    /// A deep copy of the whole disk (durable and volatile images, names); handles opened
    /// on `self` do not work on the copy.
    pub fn snapshot(&self) -> MemDisk {
        let s = self.st.borrow();
        let files = s
            .files
            .iter()
            .map(|(id, f)| {
                (
                    *id,
                    FileData {
                        durable: f.durable.clone(),
                        volatile: f.volatile.clone(),
                    },
                )
            })
            .collect();
        let copy = State {
            generation: s.generation + 1,
            dead: s.dead,
            files,
            names: s.names.clone(),
            durable_names: s.durable_names.clone(),
            next_id: s.next_id,
            writes: s.writes,
            planned: None,
        };
        MemDisk {
            st: Rc::new(RefCell::new(copy)),
        }
    }

    /// Plans `fault` for the write that comes `after` writes from now (0: the next one).
    pub fn plan_fault(&self, after: u64, fault: Fault) {
        let mut s = self.st.borrow_mut();
        s.planned = Some((s.writes + after, fault));
    }

    /// Number of `write_durable` calls so far.
    pub fn writes(&self) -> u64 {
        self.st.borrow().writes
    }

    /// Simulated power loss and reboot: only durable data and durable names remain.
    pub fn crash(&self) {
        let mut s = self.st.borrow_mut();
        s.generation += 1;
        s.dead = false;
        s.planned = None;
        s.names = s.durable_names.clone();
        let keep: std::collections::HashSet<u64> = s.names.values().copied().collect();
        s.files.retain(|id, _| keep.contains(id));
        for f in s.files.values_mut() {
            f.volatile = f.durable.clone();
        }
    }

    /// Flips one bit of a file, on both images (media damage).
    pub fn flip_bit(&self, name: &str, offset: u64, bit: u8) {
        let mut s = self.st.borrow_mut();
        let id = s.names[name];
        let f = s.files.get_mut(&id).expect("named file exists");
        f.durable[offset as usize] ^= 1 << bit;
        f.volatile[offset as usize] ^= 1 << bit;
    }

    /// The durable image of a file.
    pub fn durable_bytes(&self, name: &str) -> Option<Vec<u8>> {
        let s = self.st.borrow();
        let id = s.durable_names.get(name)?;
        Some(s.files.get(id)?.durable.clone())
    }

    /// Names currently visible.
    pub fn names(&self) -> Vec<String> {
        self.st.borrow().names.keys().cloned().collect()
    }

    /// A write of `data` at `offset` of `file` that was in flight when the power went: only
    /// its first `keep` bytes reach the disk (both images; call [`MemDisk::crash`] next).
    /// Unlike a planned [`Fault::Tear`], several writes can be torn this way at one crash.
    pub fn tear_write(&self, file: &MemFile, offset: u64, data: &[u8], keep: usize) {
        let mut s = self.st.borrow_mut();
        let keep = keep.min(data.len());
        let o = offset as usize;
        if let Some(f) = s.files.get_mut(&file.id) {
            let end = (o + keep).min(f.durable.len());
            if o < end {
                f.durable[o..end].copy_from_slice(&data[..end - o]);
                f.volatile[o..end].copy_from_slice(&data[..end - o]);
            }
        }
    }

    /// Names that survive a crash now (made durable by `sync_dir`), in order.
    pub fn durable_names(&self) -> Vec<String> {
        self.st.borrow().durable_names.keys().cloned().collect()
    }
}

impl Disk for MemDisk {
    type File = MemFile;

    async fn list(&self) -> io::Result<Vec<String>> {
        let s = self.st.borrow();
        s.live(None)?;
        Ok(s.names.keys().cloned().collect())
    }

    async fn open(&self, name: &str) -> io::Result<MemFile> {
        let s = self.st.borrow();
        s.live(None)?;
        let id = *s
            .names
            .get(name)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        let len = s.files[&id].volatile.len() as u64;
        Ok(MemFile {
            st: self.st.clone(),
            id,
            generation: s.generation,
            len,
        })
    }

    async fn create_zeroed(&self, name: &str, len: u64) -> io::Result<MemFile> {
        let mut s = self.st.borrow_mut();
        s.live(None)?;
        s.next_id += 1;
        let id = s.next_id;
        let zeros = vec![0u8; len as usize];
        s.files.insert(
            id,
            FileData {
                durable: zeros.clone(),
                volatile: zeros,
            },
        );
        s.names.insert(name.to_string(), id);
        Ok(MemFile {
            st: self.st.clone(),
            id,
            generation: s.generation,
            len,
        })
    }

    async fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut s = self.st.borrow_mut();
        s.live(None)?;
        let id = s
            .names
            .remove(from)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        s.names.insert(to.to_string(), id);
        Ok(())
    }

    async fn remove(&self, name: &str) -> io::Result<()> {
        let mut s = self.st.borrow_mut();
        s.live(None)?;
        s.names
            .remove(name)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        Ok(())
    }

    async fn sync_dir(&self) -> io::Result<()> {
        let mut s = self.st.borrow_mut();
        s.live(None)?;
        s.durable_names = s.names.clone();
        Ok(())
    }
}

impl DiskFile for MemFile {
    fn len(&self) -> u64 {
        self.len
    }

    async fn read_at(&self, offset: u64, len: usize) -> io::Result<Bytes> {
        let s = self.st.borrow();
        s.live(Some(self.generation))?;
        let f = &s.files[&self.id].volatile;
        let r = f
            .get(offset as usize..offset as usize + len)
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        Ok(Bytes::copy_from_slice(r))
    }

    async fn read_all(&self, mut buf: Vec<u8>) -> io::Result<(Vec<u8>, std::ops::Range<usize>)> {
        let s = self.st.borrow();
        s.live(Some(self.generation))?;
        buf.clear();
        buf.extend_from_slice(&s.files[&self.id].volatile);
        let n = buf.len();
        Ok((buf, 0..n))
    }

    async fn write_durable(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut s = self.st.borrow_mut();
        s.live(Some(self.generation))?;
        if offset % 4096 != 0 || data.len() % 4096 != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "unaligned O_DIRECT write",
            ));
        }
        let end = offset as usize + data.len();
        if end > self.len as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "write past the file end",
            ));
        }
        let n = s.writes;
        s.writes += 1;
        let fault = match s.planned {
            Some((at, f)) if at == n => {
                s.planned = None;
                Some(f)
            }
            _ => None,
        };
        let st = &mut *s;
        let f = st.files.get_mut(&self.id).expect("open file exists");
        let o = offset as usize;
        match fault {
            None => {
                f.volatile[o..end].copy_from_slice(data);
                f.durable[o..end].copy_from_slice(data);
                Ok(())
            }
            Some(Fault::Tear(k)) => {
                let k = k.min(data.len());
                f.durable[o..o + k].copy_from_slice(&data[..k]);
                f.volatile[o..o + k].copy_from_slice(&data[..k]);
                st.dead = true;
                Err(crashed())
            }
            Some(Fault::FailSync) => {
                f.volatile[o..end].copy_from_slice(data);
                Err(io::Error::other("simulated fdatasync failure (EIO)"))
            }
        }
    }
}
