//! Opening a WAL: listing the directory, loading the metadata, scanning every segment
//! through the sans-IO recovery, cutting a torn tail durably, and starting the flusher.
//!
//! Invariants: after `open` returns, every byte past the durable end is zero again (a cut
//! tail is overwritten with zeros before anything new is written), so the recovery rule
//! holds for the next crash too; leftover temporary files are removed and reported.

use crate::cache::TailCache;
use crate::commit::{self, Doorbell, Pending};
use crate::config::{BLOCK, WalConfig};
use crate::disk::{Disk, DiskFile};
use crate::error::{Result, WalError};
use crate::meta::{self, META_FILE, META_FILE_LEN};
use crate::recovery::{Replay, TornTail};
use crate::wal::{Inner, MetaState, State, Wal, WalStats, parse_segment_name, segment_name};
use bytes::Bytes;
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;
use std::rc::Rc;

/// What recovery found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segment files scanned.
    pub segments: usize,
    /// Bytes read and validated.
    pub bytes_scanned: u64,
    /// Valid records found (entries and markers).
    pub records_scanned: u64,
    /// Live entries after replaying truncations and purges.
    pub live_entries: usize,
    /// The torn tail that was cut, if any.
    pub torn_tail: Option<TornTail>,
    /// Temporary files of interrupted preallocations, removed.
    pub removed_temp_files: Vec<String>,
    /// An invalid metadata slot (a torn save, or damage that looks like one).
    pub meta_damage: Option<String>,
}

async fn load_meta<D: Disk>(
    disk: &D,
    names: &[String],
) -> Result<(MetaState<D::File>, Option<String>)> {
    let io = |op| move |e| WalError::io(op, e);
    if !names.iter().any(|n| n == META_FILE) {
        let tmp = format!("{META_FILE}.tmp");
        let f = disk
            .create_zeroed(&tmp, META_FILE_LEN)
            .await
            .map_err(io("meta create"))?;
        disk.rename(&tmp, META_FILE)
            .await
            .map_err(io("meta create"))?;
        disk.sync_dir().await.map_err(io("directory sync"))?;
        let st = MetaState {
            file: Rc::new(f),
            slot: 1,
            seq: 0,
            value: None,
        };
        return Ok((st, None));
    }
    let f = disk.open(META_FILE).await.map_err(io("meta open"))?;
    if f.len() != META_FILE_LEN {
        let why = format!("meta file is {} bytes, not {META_FILE_LEN}", f.len());
        return Err(WalError::corruption(META_FILE, 0, why));
    }
    let b = f
        .read_at(0, META_FILE_LEN as usize)
        .await
        .map_err(io("meta read"))?;
    let a = meta::decode_slot(0, &b[..BLOCK as usize]);
    let c = meta::decode_slot(1, &b[BLOCK as usize..]);
    // A save only ever writes the slot not holding the current value, so a torn save
    // damages one slot. Both damaged is corruption: falling back to "no metadata" would
    // forget the vote (a node could vote twice in one term) and the committed index.
    if let (meta::SlotState::Invalid(x), meta::SlotState::Invalid(y)) = (&a, &c) {
        let why = format!(
            "both metadata slots are damaged (slot 0: {x}; slot 1 at byte offset {BLOCK}: {y}); \
             a torn save damages only one"
        );
        return Err(WalError::corruption(META_FILE, 0, why));
    }
    let (slot, cur, damage) = meta::choose(a, c);
    let (seq, value) = match slot {
        Some(s) => (s.seq, Some(s.value)),
        None => (0, None),
    };
    Ok((
        MetaState {
            file: Rc::new(f),
            slot: cur,
            seq,
            value,
        },
        damage,
    ))
}

type ReadFut =
    std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<(Vec<u8>, Range<usize>)>>>>;

pub(crate) async fn open<D: Disk + Clone + 'static>(
    disk: D,
    cfg: WalConfig,
) -> Result<(Wal<D>, RecoveryReport)> {
    cfg.validate()?;
    let io = |op| move |e| WalError::io(op, e);
    let mut report = RecoveryReport::default();
    let mut names = disk.list().await.map_err(io("directory list"))?;
    for n in names.iter().filter(|n| n.ends_with(".tmp")) {
        disk.remove(n).await.map_err(io("temporary file removal"))?;
        report.removed_temp_files.push(n.clone());
    }
    if !report.removed_temp_files.is_empty() {
        disk.sync_dir().await.map_err(io("directory sync"))?;
        names.retain(|n| !n.ends_with(".tmp"));
    }
    let (meta, meta_damage) = load_meta(&disk, &names).await?;
    report.meta_damage = meta_damage;

    let mut ids: Vec<u64> = names.iter().filter_map(|n| parse_segment_name(n)).collect();
    ids.sort_unstable();
    let mut files = BTreeMap::new();
    if ids.is_empty() {
        files.insert(
            1,
            commit::prepare_segment(&disk, 1, cfg.segment_size).await?,
        );
        ids.push(1);
    }
    let mut replay = Replay::new(cfg.max_payload, cfg.max_write);
    let mut handles = Vec::with_capacity(ids.len());
    for &id in &ids {
        let name = segment_name(id);
        let f = match files.get(&id) {
            Some(f) => Rc::clone(f),
            None => Rc::new(disk.open(&name).await.map_err(io("segment open"))?),
        };
        if f.len() % BLOCK != 0 || f.len() < BLOCK || f.len() > u64::from(u32::MAX) {
            let why = format!(
                "segment of {} bytes: not a positive multiple of 4096 below 4 GiB",
                f.len()
            );
            return Err(WalError::corruption(name, 0, why));
        }
        files.insert(id, f.clone());
        handles.push((id, name, f));
    }
    // Read segment k+1 while segment k is scanned, rotating a few reused buffers.
    let read = |f: Rc<D::File>, buf: Vec<u8>| -> ReadFut {
        Box::pin(async move { f.read_all(buf).await })
    };
    let mut pool: Vec<Vec<u8>> = Vec::new();
    let mut last: Option<(u64, Vec<u8>, Range<usize>)> = None;
    let mut next = handles.first().map(|h| read(h.2.clone(), Vec::new()));
    for (k, (id, name, _)) in handles.iter().enumerate() {
        let Some(cur) = next.take() else { break };
        let (buf, range) = cur.await.map_err(io("segment read"))?;
        if let Some((_, _, f)) = handles.get(k + 1) {
            let mut fut = read(f.clone(), pool.pop().unwrap_or_default());
            // Poll once so the read is under way before the scan below takes the CPU.
            if let std::task::Poll::Ready(r) = futures::poll!(&mut fut) {
                fut = Box::pin(std::future::ready(r));
            }
            next = Some(fut);
        }
        report.bytes_scanned += range.len() as u64;
        if replay.push(*id, name, &buf[range.clone()])? {
            if let Some((_, old, _)) = last.replace((*id, buf, range)) {
                pool.push(old);
            }
        } else {
            pool.push(buf);
        }
    }
    drop(pool);
    let last_data = last.map(|(id, buf, range)| (id, Bytes::from(buf).slice(range)));
    report.segments = ids.len();
    report.records_scanned = replay.records;
    let (index, end) = replay.finish()?;
    report.live_entries = index.len();

    // Cut the torn tail: zero it durably, keeping the durable bytes of its first block.
    let mut head_block = Vec::new();
    if let Some((id, data)) = &last_data {
        if *id == end.segment {
            let bs = (end.offset - end.offset % BLOCK) as usize;
            head_block = data[bs..end.offset as usize].to_vec();
            if let Some(t) = &end.torn {
                let stop = t.garbage_end.div_ceil(BLOCK) * BLOCK;
                let mut buf = head_block.clone();
                buf.resize((stop as usize) - bs, 0);
                let f = &files[id];
                f.write_durable(bs as u64, &buf)
                    .await
                    .map_err(io("torn tail cut"))?;
            }
        }
    }
    report.torn_tail = end.torn.clone();

    let mut cache = TailCache::new(cfg.cache_bytes);
    if let Some((id, data)) = &last_data {
        let mut tail: Vec<_> = Vec::new();
        let mut bytes = 0usize;
        let all: Vec<_> = index
            .range(0, u64::MAX)
            .rev()
            .take_while(|l| l.segment == *id)
            .collect();
        for l in all {
            if bytes + l.len as usize > cfg.cache_bytes {
                break;
            }
            bytes += l.len as usize;
            let s = l.offset as usize + crate::record::HEADER_LEN;
            tail.push((l.index, data.slice(s..s + l.len as usize)));
        }
        for (i, p) in tail.into_iter().rev() {
            cache.push(i, p);
        }
    }

    let tail_seg_size = files[&end.segment].len();
    let st = State {
        poison: None,
        closed: false,
        index,
        cache,
        files,
        tail_seg: end.segment,
        tail_off: end.offset,
        tail_seg_size,
        prev_end: end.prev_end,
        pending: Pending::default(),
        dur_seg: end.segment,
        dur_off: end.offset,
        head_block,
        waiters: VecDeque::new(),
        meta,
        stats: WalStats::default(),
    };
    let bell = Rc::new(Doorbell::default());
    let inner = Rc::new(Inner {
        disk,
        cfg,
        st: RefCell::new(st),
        bell: bell.clone(),
        prep: RefCell::new(None),
        meta_lock: futures::lock::Mutex::new(()),
        purge_lock: futures::lock::Mutex::new(()),
    });
    inner
        .disk
        .spawn_detached(commit::flusher(Rc::downgrade(&inner), bell));
    if end.offset > 0 {
        commit::prepare_next(&inner, end.segment + 1);
    }
    Ok((Wal { inner }, report))
}
