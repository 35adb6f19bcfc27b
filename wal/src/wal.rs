//! The WAL's API: submission in log order, group commit, reads, truncation, purge and
//! metadata. Runs on one glommio executor; state lives in `RefCell`s and no borrow is
//! held across an `.await`.
//!
//! Invariants: records get their segment and offset when submitted, in call order, so
//! the order of the log is fixed when `append`/`truncate`/`purge` return; a ticket
//! resolves `Ok` only after every byte up to its last record has been reported durable;
//! any failed write or sync poisons the WAL and fails every waiter and every later call.

use crate::cache::TailCache;
use crate::commit::{self, Doorbell, Pending};
use crate::config::{MAX_META_LEN, WalConfig};
use crate::disk::{Disk, DiskFile};
use crate::error::{Result, WalError};
use crate::index::{Loc, LogIndex};
use crate::meta;
pub use crate::open::RecoveryReport;
use crate::record::{self, Decoded, Kind, START_PAYLOAD_LEN};
use bytes::Bytes;
use futures::channel::oneshot;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Counters of the WAL's work since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalStats {
    /// Durable writes (each one write + sync) of log records.
    pub writes: u64,
    /// Entries appended.
    pub entries: u64,
    /// Bytes of records made durable.
    pub bytes: u64,
}

/// Name of segment file `id`.
pub fn segment_name(id: u64) -> String {
    format!("{id:020}.seg")
}

/// Id of a segment file name, if it is one.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".seg")?;
    if stem.len() != 20 {
        return None;
    }
    stem.parse().ok()
}

pub(crate) struct MetaState<F> {
    pub file: Rc<F>,
    pub slot: u64,
    pub seq: u64,
    pub value: Option<Bytes>,
}

/// A submitter waiting for durability up to a (segment, offset) position.
pub(crate) type Waiter = ((u64, u64), oneshot::Sender<Result<()>>);
/// A segment being zero-filled in the background.
pub(crate) type Prep<F> = (u64, crate::disk::Joinable<Result<Rc<F>>>);

pub(crate) struct State<F> {
    pub poison: Option<WalError>,
    pub closed: bool,
    pub index: LogIndex,
    pub cache: TailCache,
    pub files: BTreeMap<u64, Rc<F>>,
    /// Where the next record goes.
    pub tail_seg: u64,
    pub tail_off: u64,
    pub tail_seg_size: u64,
    /// End of the previous segment, for the start record of a segment still empty.
    pub prev_end: Option<u64>,
    /// Bytes submitted but not written.
    pub pending: Pending,
    /// Everything before this position is durable.
    pub dur_seg: u64,
    pub dur_off: u64,
    /// The bytes of the durable end's block before the durable end (rewritten unchanged
    /// by the next write, since O_DIRECT writes whole blocks).
    pub head_block: Vec<u8>,
    pub waiters: std::collections::VecDeque<Waiter>,
    pub meta: MetaState<F>,
    pub stats: WalStats,
}

pub(crate) struct Inner<D: Disk> {
    pub disk: D,
    pub cfg: WalConfig,
    pub st: RefCell<State<D::File>>,
    pub bell: Rc<Doorbell>,
    pub prep: RefCell<Option<Prep<D::File>>>,
    pub meta_lock: futures::lock::Mutex<()>,
    pub purge_lock: futures::lock::Mutex<()>,
}

/// One shard's write-ahead log.
pub struct Wal<D: Disk> {
    pub(crate) inner: Rc<Inner<D>>,
}

impl<D: Disk> std::fmt::Debug for Wal<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.inner.st.borrow();
        f.debug_struct("Wal")
            .field("first", &st.index.first())
            .field("last", &st.index.last())
            .field("floor", &st.index.floor())
            .field("poisoned", &st.poison.is_some())
            .finish()
    }
}

/// Resolves once the submitted records are durable (or the WAL failed or closed).
#[derive(Debug)]
#[must_use = "a ticket says when the records are durable"]
pub struct Ticket {
    rx: Option<oneshot::Receiver<Result<()>>>,
}

impl Future for Ticket {
    type Output = Result<()>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let Some(rx) = self.rx.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        match Pin::new(rx).poll(cx) {
            Poll::Ready(Ok(r)) => Poll::Ready(r),
            Poll::Ready(Err(_)) => Poll::Ready(Err(WalError::Closed)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<F: DiskFile> State<F> {
    pub(crate) fn usable(&self) -> Result<()> {
        if let Some(e) = &self.poison {
            return Err(WalError::Poisoned(Arc::new(e.clone())));
        }
        if self.closed {
            return Err(WalError::Closed);
        }
        Ok(())
    }

    /// Encodes one record at the tail, rolling to a new segment when it does not fit.
    /// Returns the record's segment and offset.
    fn encode(&mut self, cfg: &WalConfig, kind: Kind, index: u64, payload: &[u8]) -> (u64, u64) {
        let len = record::record_len(payload.len()) as u64;
        if self.tail_off + len > self.tail_seg_size {
            self.prev_end = Some(self.tail_off);
            self.tail_seg += 1;
            self.tail_off = 0;
            self.tail_seg_size = cfg.segment_size;
        }
        if self.tail_off == 0 {
            // Known to the index even if it never holds an entry, so purges delete
            // segments strictly oldest first.
            self.index.note_segment(self.tail_seg);
            let prev = self.prev_end.unwrap_or(0).to_le_bytes();
            debug_assert_eq!(prev.len(), START_PAYLOAD_LEN);
            let floor = self.index.floor();
            self.put(Kind::SegmentStart, floor, &prev);
        }
        let at = (self.tail_seg, self.tail_off);
        self.put(kind, index, payload);
        at
    }

    fn put(&mut self, kind: Kind, index: u64, payload: &[u8]) {
        let durable = if self.dur_seg == self.tail_seg {
            self.dur_off as u32
        } else {
            0
        };
        let (seg, off) = (self.tail_seg, self.tail_off);
        let buf = self.pending.buffer_at(seg, off);
        record::encode(buf, seg, off, kind, index, durable, payload);
        self.tail_off += record::record_len(payload.len()) as u64;
        self.pending.record_end(self.tail_off);
    }

    /// A ticket for everything submitted so far.
    fn ticket(&mut self, bell: &Doorbell) -> Ticket {
        let pos = (self.tail_seg, self.tail_off);
        if pos <= (self.dur_seg, self.dur_off) {
            return Ticket { rx: None };
        }
        let (tx, rx) = oneshot::channel();
        self.waiters.push_back((pos, tx));
        bell.ring();
        Ticket { rx: Some(rx) }
    }

    /// Evicts durable entries from the front of the cache while it is over budget.
    pub(crate) fn evict(&mut self) {
        while self.cache.over_budget() {
            let Some(first) = self.cache.first() else {
                return;
            };
            let durable = match self.index.range(first, first + 1).next() {
                Some(l) => (l.segment, u64::from(l.offset)) < (self.dur_seg, self.dur_off),
                // Not live any more (cannot happen: truncate and purge trim the cache).
                None => true,
            };
            if !durable {
                return;
            }
            self.cache.pop_front();
        }
    }
}

impl<D: Disk + Clone + 'static> Wal<D> {
    /// Opens (or creates) the WAL on `disk`, scanning and validating every record.
    pub async fn open(disk: D, cfg: WalConfig) -> Result<(Wal<D>, RecoveryReport)> {
        crate::open::open(disk, cfg).await
    }

    /// Submits entries in order; their place in the log is fixed when this returns. The
    /// ticket resolves when all of them are durable. Each index must be at least
    /// `max(floor, last + 1)`; nothing is submitted if any entry is refused.
    pub fn append<I>(&self, entries: I) -> Result<Ticket>
    where
        I: IntoIterator<Item = (u64, Bytes)>,
    {
        let entries: Vec<(u64, Bytes)> = entries.into_iter().collect();
        let cfg = &self.inner.cfg;
        let mut st = self.inner.st.borrow_mut();
        st.usable()?;
        let mut min = st.index.min_next();
        for (i, p) in &entries {
            if *i < min {
                return Err(WalError::IndexOrder { index: *i, min });
            }
            if p.len() > cfg.max_payload {
                let max = cfg.max_payload;
                return Err(WalError::TooLarge {
                    what: "payload",
                    len: p.len(),
                    max,
                });
            }
            min = i + 1;
        }
        let n = entries.len() as u64;
        for (i, p) in entries {
            let (seg, off) = st.encode(cfg, Kind::Entry, i, &p);
            let loc = Loc {
                index: i,
                segment: seg,
                offset: off as u32,
                len: p.len() as u32,
            };
            st.index.push(loc);
            st.cache.push(i, p);
        }
        st.stats.entries += n;
        st.evict();
        Ok(st.ticket(&self.inner.bell))
    }

    /// Drops every entry at or above `from`; durable when it returns. `from` must not be
    /// below the purge floor.
    pub async fn truncate(&self, from: u64) -> Result<()> {
        let ticket = {
            let mut st = self.inner.st.borrow_mut();
            st.usable()?;
            let floor = st.index.floor();
            if from < floor {
                return Err(WalError::IndexOrder {
                    index: from,
                    min: floor,
                });
            }
            if from >= st.index.min_next() {
                return Ok(());
            }
            st.encode(&self.inner.cfg, Kind::Truncate, from, &[]);
            st.index.truncate(from);
            st.cache.truncate(from);
            st.ticket(&self.inner.bell)
        };
        ticket.await
    }

    /// Drops every entry below `below` (after a snapshot): the floor is durable when this
    /// returns, then whole segments holding only older entries are deleted.
    pub async fn purge(&self, below: u64) -> Result<()> {
        let _g = self.inner.purge_lock.lock().await;
        let ticket = {
            let mut st = self.inner.st.borrow_mut();
            st.usable()?;
            if below <= st.index.floor() {
                return Ok(());
            }
            st.encode(&self.inner.cfg, Kind::Purge, below, &[]);
            st.index.purge(below);
            st.cache.purge(below);
            st.ticket(&self.inner.bell)
        };
        ticket.await?;
        commit::delete_segments(&self.inner, below).await
    }

    /// A ticket for everything submitted so far.
    pub fn sync(&self) -> Result<Ticket> {
        let mut st = self.inner.st.borrow_mut();
        st.usable()?;
        Ok(st.ticket(&self.inner.bell))
    }

    /// Waits until everything submitted is durable, then closes the WAL.
    pub async fn close(self) -> Result<()> {
        self.sync()?.await?;
        self.inner.st.borrow_mut().closed = true;
        Ok(())
    }

    /// Waits until the segment after the active one is zero-filled and in place (it is
    /// prepared in the background; this lets a caller keep that work out of a
    /// latency-sensitive phase).
    pub async fn ready_next_segment(&self) -> Result<()> {
        let next = self.inner.st.borrow().tail_seg + 1;
        commit::segment_file(&self.inner, next).await.map(|_| ())
    }

    /// First live index.
    pub fn first_index(&self) -> Option<u64> {
        self.inner.st.borrow().index.first()
    }

    /// Last live index (submitted, not necessarily durable yet).
    pub fn last_index(&self) -> Option<u64> {
        self.inner.st.borrow().index.last()
    }

    /// Every index below this is purged; appends start at or above it.
    pub fn floor(&self) -> u64 {
        self.inner.st.borrow().index.floor()
    }

    /// Counters since open.
    pub fn stats(&self) -> WalStats {
        self.inner.st.borrow().stats
    }

    /// The live entries with indices in `lo..hi`, all of which must be live.
    pub async fn read_range(&self, lo: u64, hi: u64) -> Result<Vec<(u64, Bytes)>> {
        if lo >= hi {
            return Ok(Vec::new());
        }
        let (disk_runs, cached) = {
            let st = self.inner.st.borrow();
            st.usable()?;
            let first = st.index.first().unwrap_or(st.index.floor());
            let end = st.index.min_next();
            if lo < first || hi > end {
                return Err(WalError::OutOfRange { lo, hi, first, end });
            }
            let cache_from = st.cache.first().unwrap_or(u64::MAX).max(lo);
            let locs: Vec<Loc> = st.index.range(lo, cache_from.min(hi)).copied().collect();
            let runs = commit::group_runs(&locs, self.inner.cfg.max_read);
            let runs: Vec<(Rc<D::File>, Vec<Loc>)> = runs
                .into_iter()
                .map(|r| {
                    let f = st.files.get(&r[0].segment).cloned().ok_or_else(|| {
                        WalError::corruption(segment_name(r[0].segment), 0, "segment not open")
                    })?;
                    Ok((f, r))
                })
                .collect::<Result<_>>()?;
            let cached: Vec<(u64, Bytes)> = st.cache.range(cache_from, hi).cloned().collect();
            (runs, cached)
        };
        let mut out = Vec::new();
        for (file, run) in disk_runs {
            read_run(&*file, &run, self.inner.cfg.max_payload, &mut out).await?;
        }
        out.extend(cached);
        Ok(out)
    }

    /// Saves the metadata value durably (at most [`MAX_META_LEN`] bytes).
    pub async fn save_meta(&self, value: Bytes) -> Result<()> {
        if value.len() > MAX_META_LEN {
            return Err(WalError::TooLarge {
                what: "meta",
                len: value.len(),
                max: MAX_META_LEN,
            });
        }
        let _g = self.inner.meta_lock.lock().await;
        let (file, slot, seq) = {
            let st = self.inner.st.borrow();
            st.usable()?;
            (st.meta.file.clone(), 1 - st.meta.slot, st.meta.seq + 1)
        };
        let block = meta::encode_slot(slot, seq, &value);
        match file
            .write_durable(slot * crate::config::BLOCK, &block)
            .await
        {
            Ok(()) => {
                let mut st = self.inner.st.borrow_mut();
                st.meta.slot = slot;
                st.meta.seq = seq;
                st.meta.value = Some(value);
                Ok(())
            }
            Err(e) => Err(commit::poison(&self.inner, WalError::io("meta write", e))),
        }
    }

    /// The last saved metadata value.
    pub fn meta(&self) -> Option<Bytes> {
        self.inner.st.borrow().meta.value.clone()
    }

    /// The disk this WAL runs on (also the spawn seam of the tasks built on it).
    pub fn disk(&self) -> &D {
        &self.inner.disk
    }
}

impl<D: Disk> Drop for Wal<D> {
    fn drop(&mut self) {
        // Like a crash: records not yet durable are abandoned and their tickets fail.
        self.inner.bell.close();
    }
}

async fn read_run<F: DiskFile>(
    file: &F,
    run: &[Loc],
    max_payload: usize,
    out: &mut Vec<(u64, Bytes)>,
) -> Result<()> {
    let (first, last) = (run[0], run[run.len() - 1]);
    let base = u64::from(first.offset);
    let end = u64::from(last.offset) + record::record_len(last.len as usize) as u64;
    let buf = file
        .read_at(base, (end - base) as usize)
        .await
        .map_err(|e| WalError::io("segment read", e))?;
    for l in run {
        let off = u64::from(l.offset);
        let bad = |why: &str| WalError::corruption(segment_name(l.segment), off, why.to_string());
        match record::decode(l.segment, &buf, base, off, max_payload) {
            Decoded::Valid(r) if r.kind == Kind::Entry && r.index == l.index && r.len == l.len => {
                let s = (off - base) as usize + record::HEADER_LEN;
                out.push((l.index, buf.slice(s..s + l.len as usize)));
            }
            Decoded::Valid(_) => return Err(bad("record differs from the index")),
            Decoded::Zero => return Err(bad("record read back as zeros")),
            Decoded::Invalid(why) => return Err(bad(why)),
        }
    }
    Ok(())
}
