//! Group commit: the buffer of submitted-but-unwritten records, the flusher task that
//! turns it into block-aligned durable writes, segment preallocation, poisoning and
//! segment deletion.
//!
//! Invariants: at most one log write is in flight, and the next starts only after it
//! was reported durable; one write carries at most `max_write` new bytes and ends on a
//! record boundary; every write starts at the block holding the durable end and rewrites
//! that block's durable bytes unchanged, so a torn write cannot damage them; a segment is
//! written only after it was zero-filled, synced, renamed into place and its directory
//! synced.

use crate::config::{BLOCK, WalConfig};
use crate::disk::{Disk, DiskFile};
use crate::error::{Result, WalError};
use crate::index::Loc;
use crate::wal::{Inner, State, segment_name};
use std::cell::Cell;
use std::collections::VecDeque;
use std::rc::{Rc, Weak};
use std::task::{Poll, Waker};

/// Wakes the flusher; closing it makes the flusher exit.
#[derive(Default)]
pub(crate) struct Doorbell {
    rung: Cell<bool>,
    closed: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

impl std::fmt::Debug for Doorbell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Doorbell")
            .field("closed", &self.closed.get())
            .finish()
    }
}

impl Doorbell {
    pub fn ring(&self) {
        self.rung.set(true);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    pub fn close(&self) {
        self.closed.set(true);
        self.ring();
    }

    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }

    /// Waits for a ring; false once closed.
    pub async fn wait(&self) -> bool {
        std::future::poll_fn(|cx| {
            if self.closed.get() {
                return Poll::Ready(false);
            }
            if self.rung.replace(false) {
                return Poll::Ready(true);
            }
            self.waker.set(Some(cx.waker().clone()));
            Poll::Pending
        })
        .await
    }
}

#[derive(Debug)]
struct Chunk {
    seg: u64,
    start: u64,
    data: Vec<u8>,
    /// Segment offsets where records end, in order.
    ends: VecDeque<u64>,
}

/// Encoded records not yet handed to a write, per segment, in log order.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    chunks: VecDeque<Chunk>,
}

impl Pending {
    /// The buffer to append a record at `off` of segment `seg` to.
    pub fn buffer_at(&mut self, seg: u64, off: u64) -> &mut Vec<u8> {
        let fits = self
            .chunks
            .back()
            .is_some_and(|c| c.seg == seg && c.start + c.data.len() as u64 == off);
        if !fits {
            let c = Chunk {
                seg,
                start: off,
                data: Vec::new(),
                ends: VecDeque::new(),
            };
            self.chunks.push_back(c);
        }
        &mut self.chunks.back_mut().expect("just ensured").data
    }

    /// Marks the end of the record just encoded.
    pub fn record_end(&mut self, end: u64) {
        let c = self.chunks.back_mut().expect("a record was just encoded");
        debug_assert_eq!(c.start + c.data.len() as u64, end);
        c.ends.push_back(end);
    }

    pub fn clear(&mut self) {
        self.chunks.clear();
    }

    /// Takes the next write's bytes: from the front chunk, as many whole records as fit
    /// in `max_write`. Returns (segment, start offset, bytes).
    fn take(&mut self, max_write: u64) -> Option<(u64, u64, Vec<u8>)> {
        let c = self.chunks.front_mut()?;
        let mut end = *c.ends.front().expect("a chunk holds at least one record");
        assert!(end - c.start <= max_write, "record larger than one write");
        while let Some(e) = c.ends.front() {
            if e - c.start > max_write {
                break;
            }
            end = *e;
            c.ends.pop_front();
        }
        let n = (end - c.start) as usize;
        let rest = c.data.split_off(n);
        let data = std::mem::replace(&mut c.data, rest);
        let out = (c.seg, c.start, data);
        c.start = end;
        if c.ends.is_empty() {
            self.chunks.pop_front();
        }
        Some(out)
    }
}

/// One durable write about to be issued.
struct Unit {
    seg: u64,
    block_start: u64,
    buf: Vec<u8>,
    new_end: u64,
    new_bytes: u64,
}

fn take_unit<F>(st: &mut State<F>, cfg: &WalConfig) -> Option<Unit> {
    let (seg, start, data) = st.pending.take(cfg.max_write)?;
    if seg != st.dur_seg {
        // A new segment: everything in the previous one is already durable.
        assert!(
            seg == st.dur_seg + 1 && start == 0,
            "segments are written in order"
        );
        st.dur_seg = seg;
        st.dur_off = 0;
        st.head_block.clear();
    }
    assert_eq!(start, st.dur_off, "writes continue at the durable end");
    assert_eq!(st.head_block.len() as u64, start % BLOCK);
    let block_start = start - start % BLOCK;
    let mut buf = Vec::with_capacity(st.head_block.len() + data.len() + BLOCK as usize);
    buf.extend_from_slice(&st.head_block);
    buf.extend_from_slice(&data);
    buf.resize(buf.len().div_ceil(BLOCK as usize) * BLOCK as usize, 0);
    let new_bytes = data.len() as u64;
    Some(Unit {
        seg,
        block_start,
        buf,
        new_end: start + new_bytes,
        new_bytes,
    })
}

/// Poisons the WAL with `e`: fails every waiter and drops unwritten records. Returns `e`.
pub(crate) fn poison<D: Disk>(inner: &Inner<D>, e: WalError) -> WalError {
    let mut st = inner.st.borrow_mut();
    if st.poison.is_none() {
        st.poison = Some(e.clone());
    }
    let p = WalError::Poisoned(std::sync::Arc::new(e.clone()));
    for (_, tx) in st.waiters.drain(..) {
        let _ = tx.send(Err(p.clone()));
    }
    st.pending.clear();
    e
}

/// The flusher task: one per WAL, writing pending records until the WAL is dropped.
pub(crate) async fn flusher<D: Disk + Clone + 'static>(weak: Weak<Inner<D>>, bell: Rc<Doorbell>) {
    while bell.wait().await {
        let Some(inner) = weak.upgrade() else { return };
        loop {
            if bell.is_closed() {
                return;
            }
            let unit = {
                let mut st = inner.st.borrow_mut();
                if st.poison.is_some() {
                    break;
                }
                take_unit(&mut st, &inner.cfg)
            };
            let Some(u) = unit else { break };
            let file = match segment_file(&inner, u.seg).await {
                Ok(f) => f,
                Err(e) => {
                    poison(&inner, e);
                    break;
                }
            };
            if let Err(e) = file.write_durable(u.block_start, &u.buf).await {
                poison(&inner, WalError::io("log write", e));
                break;
            }
            complete(&inner, &u);
        }
    }
}

fn complete<D: Disk + Clone + 'static>(inner: &Inner<D>, u: &Unit) {
    let first_write = {
        let mut st = inner.st.borrow_mut();
        let first_write = st.dur_off == 0;
        st.dur_off = u.new_end;
        let head = (u.new_end - u.new_end % BLOCK - u.block_start) as usize;
        let keep = (u.new_end % BLOCK) as usize;
        st.head_block = u.buf[head..head + keep].to_vec();
        st.stats.writes += 1;
        st.stats.bytes += u.new_bytes;
        let dur = (st.dur_seg, st.dur_off);
        while st.waiters.front().is_some_and(|(pos, _)| *pos <= dur) {
            if let Some((_, tx)) = st.waiters.pop_front() {
                let _ = tx.send(Ok(()));
            }
        }
        st.evict();
        first_write
    };
    if first_write {
        prepare_next(inner, u.seg + 1);
    }
}

/// Starts zero-filling segment `id` in the background, unless it exists or is under way.
pub(crate) fn prepare_next<D: Disk + Clone + 'static>(inner: &Inner<D>, id: u64) {
    if inner.st.borrow().files.contains_key(&id) || inner.prep.borrow().is_some() {
        return;
    }
    let disk = inner.disk.clone();
    let size = inner.cfg.segment_size;
    let task = inner
        .disk
        .spawn_joinable(async move { prepare_segment(&disk, id, size).await });
    *inner.prep.borrow_mut() = Some((id, task));
}

/// Creates segment `id`: zero-filled and synced under a temporary name, renamed into
/// place, directory synced.
pub(crate) async fn prepare_segment<D: Disk>(disk: &D, id: u64, size: u64) -> Result<Rc<D::File>> {
    let name = segment_name(id);
    let tmp = format!("{name}.tmp");
    let io = |e| WalError::io("segment preallocation", e);
    let f = disk.create_zeroed(&tmp, size).await.map_err(io)?;
    disk.rename(&tmp, &name).await.map_err(io)?;
    disk.sync_dir().await.map_err(io)?;
    Ok(Rc::new(f))
}

pub(crate) async fn segment_file<D: Disk + Clone + 'static>(
    inner: &Inner<D>,
    seg: u64,
) -> Result<Rc<D::File>> {
    if let Some(f) = inner.st.borrow().files.get(&seg) {
        return Ok(f.clone());
    }
    inner.st.borrow().usable()?;
    let prep = inner.prep.borrow_mut().take();
    let r = match prep {
        Some((id, task)) if id == seg => task.await,
        _ => prepare_segment(&inner.disk, seg, inner.cfg.segment_size).await,
    };
    let f = r.map_err(|e| poison(inner, e))?;
    inner.st.borrow_mut().files.insert(seg, f.clone());
    Ok(f)
}

/// Deletes, oldest first, the segments that hold only entries below `below`, syncing
/// the directory after each so a crash never leaves a gap.
pub(crate) async fn delete_segments<D: Disk>(inner: &Inner<D>, below: u64) -> Result<()> {
    let ids = {
        let st = inner.st.borrow();
        st.index.deletable_prefix(below, st.dur_seg)
    };
    for id in ids {
        let name = segment_name(id);
        if let Err(e) = inner.disk.remove(&name).await {
            return Err(poison(inner, WalError::io("segment removal", e)));
        }
        if let Err(e) = inner.disk.sync_dir().await {
            return Err(poison(inner, WalError::io("directory sync", e)));
        }
        let mut st = inner.st.borrow_mut();
        st.files.remove(&id);
        st.index.forget_segment(id);
    }
    Ok(())
}

/// Splits locations into runs read with one call each: same segment, at most
/// `max_read` bytes from the first record's start to the last one's end.
pub(crate) fn group_runs(locs: &[Loc], max_read: u64) -> Vec<Vec<Loc>> {
    let mut runs: Vec<Vec<Loc>> = Vec::new();
    for l in locs {
        let end = u64::from(l.offset) + crate::record::record_len(l.len as usize) as u64;
        match runs.last_mut() {
            Some(r) if r[0].segment == l.segment && end - u64::from(r[0].offset) <= max_read => {
                r.push(*l)
            }
            _ => runs.push(vec![*l]),
        }
    }
    runs
}
