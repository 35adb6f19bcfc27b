//! Real files: a [`Disk`] over a directory, read through glommio `DmaFile` (O_DIRECT,
//! io_uring) and written durably by one of several measured paths ([`SyncMode`]).
//!
//! Why several paths: DESIGN.md measured glommio's io_uring fdatasync at about twice a
//! plain `fdatasync(2)` (io_uring runs fsync on a kernel worker). `wal-bench` measures
//! every mode against a raw baseline, interleaved in one run. On this shared machine the
//! plain-syscall paths win by 20-40 us when it is quiet and lose by ~4 ms (one scheduler
//! tick per sync) when it is busy, while the io_uring path holds ~110-130 us in both, never
//! blocks the executor and needs no thread: it is the default. Figures in `docs/WAL.md`.
//!
//! Invariants: every file is opened with O_DIRECT and written in 4 KiB-aligned blocks
//! from 4 KiB-aligned memory; `write_durable` returns only after the data is on stable
//! storage (fdatasync or an O_DSYNC write completed); before any other `DmaFile` is
//! opened, [`GlommioDisk::open`] reads a 4 KiB sentinel file holding written data, which
//! avoids the EOPNOTSUPP read trap of glommio's per-thread iopoll probe (DESIGN.md).

use super::{Disk, DiskFile};
use bytes::Bytes;
use glommio::io::{DmaFile, OpenOptions};
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, mpsc};

/// How `write_durable` makes a write durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// A glommio DMA write and an fdatasync submitted as one io_uring link chain
    /// (`DmaFile::write_at_then_fdatasync`, added by Shoal's glommio patch,
    /// `vendor/glommio/SHOAL.md`): the kernel runs the fdatasync when the write completes.
    UringFdatasync,
    /// glommio `DmaFile::write_at` on a file opened with O_DSYNC: durable at completion.
    UringDsync,
    /// `pwrite` + `fdatasync` with plain syscalls on a dedicated thread per disk, which
    /// wakes the executor on completion.
    SyncThread,
    /// `pwrite` + `fdatasync` with plain syscalls on the executor thread itself (blocks
    /// the executor for the duration of the sync).
    Inline,
}

impl SyncMode {
    /// Every mode, for benchmarks.
    pub const ALL: [SyncMode; 4] = [
        SyncMode::UringFdatasync,
        SyncMode::UringDsync,
        SyncMode::SyncThread,
        SyncMode::Inline,
    ];
    /// The production default (see the module documentation and `docs/WAL.md`).
    pub const DEFAULT: SyncMode = SyncMode::UringFdatasync;
}

struct Job {
    file: Arc<File>,
    offset: u64,
    buf: AlignedBuf,
    done: futures::channel::oneshot::Sender<io::Result<()>>,
}

/// A heap buffer whose visible part starts at a 4 KiB boundary (for O_DIRECT).
struct AlignedBuf {
    v: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    fn copy_of(data: &[u8]) -> Self {
        let mut v = vec![0u8; data.len() + 4096];
        let start = v.as_ptr().align_offset(4096);
        v[start..start + data.len()].copy_from_slice(data);
        AlignedBuf {
            v,
            start,
            len: data.len(),
        }
    }
    fn as_slice(&self) -> &[u8] {
        &self.v[self.start..self.start + self.len]
    }
}

fn pwrite_sync(file: &File, offset: u64, buf: &[u8]) -> io::Result<()> {
    file.write_all_at(buf, offset)?;
    file.sync_data()
}

/// How long the sync thread spins for the next write before it sleeps.
const SPIN: std::time::Duration = std::time::Duration::from_micros(50);

/// The next job, or `None` once the disk is dropped. A busy WAL sends its next write
/// within tens of microseconds of the last completion, so the thread spins briefly before
/// sleeping, which saves a futex wake-up per write.
fn next_job(rx: &mpsc::Receiver<Job>) -> Option<Job> {
    let spin_until = std::time::Instant::now() + SPIN;
    loop {
        match rx.try_recv() {
            Ok(job) => return Some(job),
            Err(mpsc::TryRecvError::Disconnected) => return None,
            Err(mpsc::TryRecvError::Empty) if std::time::Instant::now() < spin_until => {
                std::hint::spin_loop()
            }
            Err(mpsc::TryRecvError::Empty) => return rx.recv().ok(),
        }
    }
}

/// The dedicated sync thread of one disk; it exits when the disk is dropped.
struct SyncThread {
    tx: mpsc::Sender<Job>,
}

impl SyncThread {
    fn start() -> io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("wal-sync".into())
            .spawn(move || {
                while let Some(job) = next_job(&rx) {
                    let r = pwrite_sync(&job.file, job.offset, job.buf.as_slice());
                    let _ = job.done.send(r);
                }
            })?;
        Ok(SyncThread { tx })
    }
}

/// A WAL directory on a real file system.
#[derive(Clone)]
pub struct GlommioDisk {
    dir: PathBuf,
    mode: SyncMode,
    syncer: Option<Rc<SyncThread>>,
    /// Test-only: how long every durable write waits before it starts (see
    /// [`GlommioDisk::with_write_delay`]).
    write_delay: Option<std::time::Duration>,
}

impl std::fmt::Debug for GlommioDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlommioDisk")
            .field("dir", &self.dir)
            .field("mode", &self.mode)
            .finish()
    }
}

/// Name of the sentinel file read first on each executor.
pub const SENTINEL: &str = "sentinel";

impl GlommioDisk {
    /// Opens (creating if needed) the directory `dir`. Must run on a glommio executor.
    pub async fn open(dir: impl AsRef<Path>, mode: SyncMode) -> io::Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir)?;
        let sentinel = dir.join(SENTINEL);
        if std::fs::metadata(&sentinel)
            .map(|m| m.len() < 4096)
            .unwrap_or(true)
        {
            std::fs::write(&sentinel, [0xA5u8; 4096])?;
            File::open(&sentinel)?.sync_all()?;
            File::open(&dir)?.sync_all()?;
        }
        // The first DmaFile this thread opens must hold written data (EOPNOTSUPP trap).
        let s = DmaFile::open(&sentinel).await?;
        let _ = s.read_at(0, 4096).await?;
        s.close().await?;
        let syncer = match mode {
            SyncMode::SyncThread => Some(Rc::new(SyncThread::start()?)),
            _ => None,
        };
        Ok(GlommioDisk {
            dir,
            mode,
            syncer,
            write_delay: None,
        })
    }

    /// **Test-only.** Every durable write of a file opened from now on waits `delay` before
    /// it starts. Still durable when it returns, only later: this widens the window in
    /// which a store that acknowledges before durability (the negative control of the
    /// crash tests) holds acknowledged data that a `kill -9` loses, so that the tests
    /// that must catch such a store do so on a fast disk too.
    pub fn with_write_delay(mut self, delay: std::time::Duration) -> Self {
        self.write_delay = Some(delay);
        self
    }

    /// The write path in use.
    pub fn mode(&self) -> SyncMode {
        self.mode
    }

    async fn open_path(&self, path: &Path) -> io::Result<GlommioFile> {
        let mut o = OpenOptions::new();
        o.read(true).write(true);
        if self.mode == SyncMode::UringDsync {
            o.custom_flags(libc::O_DSYNC);
        }
        let dma = o.dma_open(path).await?;
        let len = dma.file_size().await?;
        let plain = match self.mode {
            SyncMode::SyncThread | SyncMode::Inline => Some(Arc::new(
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .custom_flags(libc::O_DIRECT)
                    .open(path)?,
            )),
            _ => None,
        };
        let reader = Arc::new(
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECT)
                .open(path)?,
        );
        Ok(GlommioFile {
            dma: Rc::new(dma),
            plain,
            reader,
            len,
            mode: self.mode,
            syncer: self.syncer.clone(),
            write_delay: self.write_delay,
        })
    }
}

/// An open segment or metadata file.
pub struct GlommioFile {
    dma: Rc<DmaFile>,
    plain: Option<Arc<File>>,
    /// O_DIRECT read handle for large reads, done on glommio's blocking thread straight
    /// into the buffer that is returned (recovery reads whole segments this way: no copy,
    /// and the scan of one segment overlaps the read of the next).
    reader: Arc<File>,
    len: u64,
    mode: SyncMode,
    syncer: Option<Rc<SyncThread>>,
    write_delay: Option<std::time::Duration>,
}

impl std::fmt::Debug for GlommioFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlommioFile")
            .field("len", &self.len)
            .field("mode", &self.mode)
            .finish()
    }
}

const READ_CHUNK: usize = 4 << 20;
/// Reads at least this large go through the blocking thread.
const LARGE_READ: usize = 1 << 20;

async fn read_large(file: Arc<File>, offset: u64, len: usize) -> io::Result<Bytes> {
    let aoff = offset - offset % 4096;
    let alen = (offset + len as u64).div_ceil(4096) * 4096 - aoff;
    let (v, start) = glommio::executor()
        .spawn_blocking(move || -> io::Result<(Vec<u8>, usize)> {
            let mut v = vec![0u8; alen as usize + 4096];
            let start = v.as_ptr().align_offset(4096);
            file.read_exact_at(&mut v[start..start + alen as usize], aoff)?;
            Ok((v, start))
        })
        .await?;
    let s = start + (offset - aoff) as usize;
    Ok(Bytes::from(v).slice(s..s + len))
}
const ZERO_CHUNK: usize = 1 << 20;

impl Disk for GlommioDisk {
    type File = GlommioFile;

    async fn list(&self) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.dir)? {
            let e = e?;
            if let Some(n) = e.file_name().to_str() {
                if n != SENTINEL {
                    out.push(n.to_string());
                }
            }
        }
        Ok(out)
    }

    async fn open(&self, name: &str) -> io::Result<GlommioFile> {
        self.open_path(&self.dir.join(name)).await
    }

    async fn create_zeroed(&self, name: &str, len: u64) -> io::Result<GlommioFile> {
        let path = self.dir.join(name);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .dma_open(&path)
            .await?;
        let f = &file;
        let mut zero = f.alloc_dma_buffer(ZERO_CHUNK);
        zero.as_bytes_mut().fill(0);
        let zero = Rc::new(zero);
        let mut pos = 0u64;
        while pos < len {
            // A few writes in flight at once keep the device busy.
            let mut batch = Vec::new();
            while pos < len && batch.len() < 4 {
                let n = (len - pos).min(ZERO_CHUNK as u64) as usize;
                let buf = if n == ZERO_CHUNK {
                    zero.clone()
                } else {
                    let mut b = f.alloc_dma_buffer(n);
                    b.as_bytes_mut().fill(0);
                    Rc::new(b)
                };
                batch.push(async move { (f.write_rc_at(buf, pos).await, n) });
                pos += n as u64;
            }
            for (r, n) in futures::future::join_all(batch).await {
                if r? != n {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "short zero-fill write",
                    ));
                }
            }
        }
        file.fdatasync().await?;
        file.close().await?;
        self.open_path(&path).await
    }

    async fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        std::fs::rename(self.dir.join(from), self.dir.join(to))
    }

    async fn remove(&self, name: &str) -> io::Result<()> {
        std::fs::remove_file(self.dir.join(name))
    }

    async fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }
}

impl DiskFile for GlommioFile {
    fn len(&self) -> u64 {
        self.len
    }

    async fn read_at(&self, offset: u64, len: usize) -> io::Result<Bytes> {
        if offset + len as u64 > self.len {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        if len >= LARGE_READ {
            return read_large(self.reader.clone(), offset, len).await;
        }
        let mut reads = Vec::new();
        let mut pos = 0usize;
        while pos < len {
            let n = (len - pos).min(READ_CHUNK);
            reads.push(self.dma.read_at(offset + pos as u64, n));
            pos += n;
        }
        let mut out = Vec::with_capacity(len);
        for r in futures::future::join_all(reads).await {
            out.extend_from_slice(&r?);
        }
        if out.len() != len {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        Ok(Bytes::from(out))
    }

    async fn read_all(&self, mut buf: Vec<u8>) -> io::Result<(Vec<u8>, std::ops::Range<usize>)> {
        let len = self.len as usize;
        let file = self.reader.clone();
        glommio::executor()
            .spawn_blocking(move || {
                if buf.len() < len + 4096 {
                    buf.resize(len + 4096, 0);
                }
                let start = buf.as_ptr().align_offset(4096);
                file.read_exact_at(&mut buf[start..start + len], 0)?;
                Ok((buf, start..start + len))
            })
            .await
    }

    async fn write_durable(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        if offset % 4096 != 0 || data.len() % 4096 != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "unaligned O_DIRECT write",
            ));
        }
        if let Some(delay) = self.write_delay {
            glommio::timer::sleep(delay).await;
        }
        match (self.mode, &self.plain, &self.syncer) {
            (SyncMode::UringFdatasync | SyncMode::UringDsync, _, _) => {
                let mut buf = self.dma.alloc_dma_buffer(data.len());
                buf.as_bytes_mut().copy_from_slice(data);
                // UringFdatasync: one io_uring link chain (patched glommio): the kernel
                // starts the fdatasync when the write completes and only the fdatasync
                // wakes the executor.
                if self.mode == SyncMode::UringFdatasync {
                    return Ok(self.dma.write_at_then_fdatasync(buf, offset).await?);
                }
                let n = self.dma.write_at(buf, offset).await?;
                if n != data.len() {
                    return Err(io::Error::new(io::ErrorKind::WriteZero, "short write"));
                }
                Ok(())
            }
            (SyncMode::SyncThread, Some(file), Some(syncer)) => {
                let (done, rx) = futures::channel::oneshot::channel();
                let buf = AlignedBuf::copy_of(data);
                let job = Job {
                    file: file.clone(),
                    offset,
                    buf,
                    done,
                };
                syncer
                    .tx
                    .send(job)
                    .map_err(|_| io::Error::other("sync thread is gone"))?;
                rx.await
                    .map_err(|_| io::Error::other("sync thread dropped the write"))?
            }
            (SyncMode::Inline, Some(file), _) => {
                pwrite_sync(file, offset, AlignedBuf::copy_of(data).as_slice())
            }
            _ => Err(io::Error::other(
                "file opened without the handle its sync mode needs",
            )),
        }
    }
}
