//! Offline damage to a stopped node's files, shared by the storage-fault suites
//! (`tests/faults_storage.rs` on one node, `tests/faults_storage_cluster.rs` on three).
//!
//! Owns the test-side reading of the on-disk layout (`docs/WAL.md`: segment records, the
//! two metadata slots) and the damage primitives: bit flips, chunk copies, truncation, a
//! torn last write, a torn metadata save, and `Backup`/`restore` of whole files. Offsets
//! are computed from the undamaged files, so a test can name the exact byte offset the
//! node must report. Everything here panics on unexpected files: it runs on files the
//! test itself just made. `values` holds the large, key-derived values they write;
//! `kinds` the cluster suite's damage kinds with their expected outcomes.
#![allow(dead_code)]

pub mod kinds;
pub mod values;

use std::path::{Path, PathBuf};

/// `docs/WAL.md`: record header length, record alignment.
pub const HEADER_LEN: u64 = 24;
pub const ALIGN: u64 = 8;
/// The node's WAL `max_write` with 8 MiB segments (half a segment, at most 4 MiB).
pub const MAX_WRITE: u64 = 4 << 20;
/// `docs/WAL.md`, "Metadata": two slots of one block each.
pub const META_SLOT: usize = 4096;

/// One record of a segment, as laid out on disk (`docs/WAL.md`, "Record format").
#[derive(Debug, Clone, Copy)]
pub struct Rec {
    pub offset: u64,
    pub end: u64,
    pub index: u64,
    pub durable: u64,
    pub kind: u8,
}

/// Record kind of an entry (`docs/WAL.md`).
pub const KIND_ENTRY: u8 = 1;

/// Walks the records of an undamaged segment from offset 0 to the first zero header.
pub fn records(seg: &[u8]) -> Vec<Rec> {
    let mut out = Vec::new();
    let mut pos = 0u64;
    while pos + HEADER_LEN <= seg.len() as u64 {
        let h = &seg[pos as usize..(pos + HEADER_LEN) as usize];
        if h.iter().all(|b| *b == 0) {
            break;
        }
        let len = u64::from(u32::from_le_bytes(h[4..8].try_into().unwrap()));
        let index = u64::from_le_bytes(h[8..16].try_into().unwrap());
        let durable = u64::from(u32::from_le_bytes(h[16..20].try_into().unwrap()));
        let end = (pos + HEADER_LEN + len).div_ceil(ALIGN) * ALIGN;
        assert!(
            end <= seg.len() as u64,
            "record at {pos} runs past the segment"
        );
        out.push(Rec {
            offset: pos,
            end,
            index,
            durable,
            kind: h[20],
        });
        pos = end;
    }
    out
}

/// A record (not the segment start) that a later record within one write's reach
/// declares durable: damage to it cannot be a torn tail.
pub fn witnessed(recs: &[Rec]) -> Option<Rec> {
    recs.iter().skip(1).copied().find(|r| {
        recs.iter()
            .any(|l| l.offset > r.offset && l.offset < r.offset + MAX_WRITE && l.durable > r.offset)
    })
}

/// The first 4 KiB block boundary strictly inside record `r` (a truncation there leaves a
/// file of whole blocks that ends inside the record), if it spans one.
pub fn block_inside(r: &Rec) -> Option<u64> {
    let b = (r.offset / 4096 + 1) * 4096;
    (b < r.end).then_some(b)
}

/// The record holding byte `at`.
pub fn containing(recs: &[Rec], at: u64) -> Rec {
    *recs
        .iter()
        .find(|r| r.offset <= at && at < r.end)
        .unwrap_or_else(|| panic!("no record holds byte {at}"))
}

pub fn seg_name(id: u64) -> String {
    format!("{id:020}.seg")
}

pub fn wal_dir(data: &Path, shard: u16) -> PathBuf {
    data.join(format!("shard-{shard}")).join("wal")
}

/// Ids of the segments of `wal` that hold records, in order.
pub fn data_segments(wal: &Path) -> Vec<u64> {
    let mut ids: Vec<u64> = std::fs::read_dir(wal)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().ok()?;
            name.strip_suffix(".seg")?.parse().ok()
        })
        .filter(|id| {
            let b = std::fs::read(wal.join(seg_name(*id))).unwrap();
            b[..HEADER_LEN as usize].iter().any(|x| *x != 0)
        })
        .collect();
    ids.sort_unstable();
    ids
}

/// The records of segment `id` of `wal`.
pub fn segment_records(wal: &Path, id: u64) -> Vec<Rec> {
    records(&std::fs::read(wal.join(seg_name(id))).unwrap())
}

/// Saved contents of some files, put back by `restore`.
pub struct Backup(Vec<(PathBuf, Vec<u8>)>);

impl Backup {
    pub fn of(paths: &[PathBuf]) -> Backup {
        Backup(
            paths
                .iter()
                .map(|p| (p.clone(), std::fs::read(p).unwrap()))
                .collect(),
        )
    }
    pub fn restore(self) {
        for (p, b) in self.0 {
            std::fs::write(p, b).unwrap();
        }
    }
}

pub fn flip_bit(path: &Path, at: u64) {
    let mut b = std::fs::read(path).unwrap();
    b[at as usize] ^= 0x10;
    std::fs::write(path, b).unwrap();
}

/// Copies `len` bytes at `src` over `dst` within one file; returns the offset of the
/// first byte that changed (the copy must change one).
pub fn copy_chunk(path: &Path, src: u64, dst: u64, len: u64) -> u64 {
    let mut b = std::fs::read(path).unwrap();
    let first_diff = (0..len)
        .find(|i| b[(src + i) as usize] != b[(dst + i) as usize])
        .expect("the copied chunk differs from what it overwrites")
        + dst;
    b.copy_within(src as usize..(src + len) as usize, dst as usize);
    std::fs::write(path, b).unwrap();
    first_diff
}

/// Cuts `path` to `len` bytes.
pub fn truncate(path: &Path, len: u64) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_len(len).unwrap();
}

/// Simulates a torn last write: a partial record (bytes of a real record, cut short) lies
/// just past the durable end, where only an unacknowledged write can have put it.
/// Returns the segment's name and the offset of the torn bytes.
pub fn tear_last_write(wal: &Path) -> (String, u64) {
    let id = *data_segments(wal).last().unwrap();
    let path = wal.join(seg_name(id));
    let mut b = std::fs::read(&path).unwrap();
    let recs = records(&b);
    let last = *recs.last().unwrap();
    let end = last.end;
    let n = ((last.end - last.offset) / 2).min(3000) as usize;
    let src = last.offset as usize;
    let torn: Vec<u8> = b[src..src + n].to_vec();
    b[end as usize..end as usize + n].copy_from_slice(&torn);
    std::fs::write(&path, b).unwrap();
    (seg_name(id), end)
}

/// The metadata slot holding the newest value (the higher `seq`).
fn newest_slot(b: &[u8]) -> usize {
    let seq = |slot: usize| {
        u64::from_le_bytes(
            b[slot * META_SLOT + 8..slot * META_SLOT + 16]
                .try_into()
                .unwrap(),
        )
    };
    if seq(1) > seq(0) { 1 } else { 0 }
}

/// Simulates a save of the metadata torn mid-write: the slot holding the newest value
/// (the higher `seq`) keeps its first `keep` bytes, the rest of the 4 KiB block is lost.
/// Returns the slot.
pub fn tear_meta(wal: &Path, keep: usize) -> usize {
    let path = wal.join("meta");
    let mut b = std::fs::read(&path).unwrap();
    assert_eq!(b.len(), 2 * META_SLOT);
    let newest = newest_slot(&b);
    let at = newest * META_SLOT;
    let len = u32::from_le_bytes(b[at + 4..at + 8].try_into().unwrap());
    assert!(len > 0, "the newest slot holds a value");
    for x in &mut b[at + keep..at + META_SLOT] {
        *x = 0;
    }
    std::fs::write(&path, b).unwrap();
    newest
}

/// The vote (term, node) and committed index saved in the newest slot of an undamaged
/// `meta` file (`docs/WAL.md`, "Raft entries in the WAL": the `LogMeta` payload).
pub fn saved_meta(wal: &Path) -> (Option<(u64, u64)>, Option<u64>) {
    let b = std::fs::read(wal.join("meta")).unwrap();
    let at = newest_slot(&b) * META_SLOT;
    let p = &b[at + 16..];
    assert_eq!(p[0], 1, "LogMeta version");
    let flags = p[1];
    let u = |i: usize| u64::from_le_bytes(p[2 + 8 * i..10 + 8 * i].try_into().unwrap());
    let mut field = 0;
    let vote = (flags & 1 != 0).then(|| {
        field += 2;
        (u(0), u(1))
    });
    let committed = (flags & 4 != 0).then(|| u(field + 2));
    (vote, committed)
}
