//! Storage faults on a real node process: data is written through a running `shoal` node
//! (2 shards), the node is stopped, its files are damaged offline, and it is started again.
//! The node must never serve damaged data: it either refuses to start with a message
//! naming the damaged file and the byte offset (asserted exactly, computed here from the
//! record layout of `docs/WAL.md`), or, for damage a crash can cause (a torn last write, a
//! torn metadata save), it recovers and serves every acknowledged write.
//!
//! Each case damages a copy-restorable set of files, checks the outcome, then puts the
//! original bytes back; every test ends by starting the node on the restored files and
//! reading every acknowledged write (the control: the undamaged files are served).
//!
//! Single node for now; a 3-node variant adds "repairs from its peers" (docs/TESTING.md).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod node_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use node_support::NodeProcess;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use shoal_client::{KvClient, RemoteKvClient};

const SHARDS: u16 = 2;
/// Large values fill several 8 MiB segments per shard with a few hundred puts.
const VALUE_LEN: usize = 96 * 1024;
/// `docs/WAL.md`: record header length, record alignment.
const HEADER_LEN: u64 = 24;
const ALIGN: u64 = 8;
/// The node's WAL `max_write` with 8 MiB segments (half a segment, at most 4 MiB).
const MAX_WRITE: u64 = 4 << 20;

/// One record of a segment, as laid out on disk (`docs/WAL.md`, "Record format").
#[derive(Debug, Clone, Copy)]
struct Rec {
    offset: u64,
    end: u64,
    durable: u64,
    kind: u8,
}

/// Walks the records of an undamaged segment from offset 0 to the first zero header.
fn records(seg: &[u8]) -> Vec<Rec> {
    let mut out = Vec::new();
    let mut pos = 0u64;
    while pos + HEADER_LEN <= seg.len() as u64 {
        let h = &seg[pos as usize..(pos + HEADER_LEN) as usize];
        if h.iter().all(|b| *b == 0) {
            break;
        }
        let len = u64::from(u32::from_le_bytes(h[4..8].try_into().unwrap()));
        let durable = u64::from(u32::from_le_bytes(h[16..20].try_into().unwrap()));
        let end = (pos + HEADER_LEN + len).div_ceil(ALIGN) * ALIGN;
        assert!(
            end <= seg.len() as u64,
            "record at {pos} runs past the segment"
        );
        out.push(Rec {
            offset: pos,
            end,
            durable,
            kind: h[20],
        });
        pos = end;
    }
    out
}

/// A record (not the segment start) that a later record within one write's reach
/// declares durable: damage to it cannot be a torn tail.
fn witnessed(recs: &[Rec]) -> Option<Rec> {
    recs.iter().skip(1).copied().find(|r| {
        recs.iter()
            .any(|l| l.offset > r.offset && l.offset < r.offset + MAX_WRITE && l.durable > r.offset)
    })
}

/// The record holding byte `at`.
fn containing(recs: &[Rec], at: u64) -> Rec {
    *recs
        .iter()
        .find(|r| r.offset <= at && at < r.end)
        .unwrap_or_else(|| panic!("no record holds byte {at}"))
}

fn seg_name(id: u64) -> String {
    format!("{id:020}.seg")
}

fn wal_dir(data: &Path, shard: u16) -> PathBuf {
    data.join(format!("shard-{shard}")).join("wal")
}

/// Ids of the segments of `wal` that hold records, in order.
fn data_segments(wal: &Path) -> Vec<u64> {
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

fn value_of(key: &str) -> Bytes {
    let seed = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let mut v = vec![0u8; VALUE_LEN];
    SmallRng::seed_from_u64(seed).fill_bytes(&mut v);
    Bytes::from(v)
}

/// Puts keys `k{i}` for `i` in `range` (16 at a time) and records each acknowledged one.
async fn fill(client: &RemoteKvClient, range: std::ops::Range<usize>, acked: &mut Acked) {
    let keys: Vec<String> = range.map(|i| format!("k{i:05}")).collect();
    for chunk in keys.chunks(16) {
        let puts = chunk.iter().map(|k| async move {
            let v = value_of(k);
            client.put(k, &v).await.map(|()| (k.clone(), v))
        });
        for r in futures::future::join_all(puts).await {
            let (k, v) = r.expect("put on a healthy node");
            acked.insert(k, v);
        }
    }
}

type Acked = BTreeMap<String, Bytes>;

/// Reads every acknowledged key back; returns the keys missing or wrong.
async fn wrong_keys(client: &RemoteKvClient, acked: &Acked) -> Vec<String> {
    let all: Vec<(&String, &Bytes)> = acked.iter().collect();
    let mut wrong = Vec::new();
    for chunk in all.chunks(8) {
        let keys: Vec<Bytes> = chunk
            .iter()
            .map(|(k, _)| Bytes::from((*k).clone()))
            .collect();
        let got = client.get_multi(&keys).await.expect("get_multi");
        for ((k, v), g) in chunk.iter().zip(got) {
            if g.as_ref() != Some(*v) {
                wrong.push((*k).clone());
            }
        }
    }
    wrong
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Starts the node and requires every acknowledged write to be served.
fn assert_serves_all(rt: &tokio::runtime::Runtime, node: &mut NodeProcess, acked: &Acked) {
    node.restart();
    let wrong = rt.block_on(async { wrong_keys(&node.client().await, acked).await });
    assert!(
        wrong.is_empty(),
        "{} of {} acknowledged writes missing or wrong, e.g. {:?}:\n{}",
        wrong.len(),
        acked.len(),
        &wrong[..wrong.len().min(5)],
        node.process.log()
    );
}

/// Saved contents of some files, put back by `restore`.
struct Backup(Vec<(PathBuf, Vec<u8>)>);

impl Backup {
    fn of(paths: &[PathBuf]) -> Backup {
        Backup(
            paths
                .iter()
                .map(|p| (p.clone(), std::fs::read(p).unwrap()))
                .collect(),
        )
    }
    fn restore(self) {
        for (p, b) in self.0 {
            std::fs::write(p, b).unwrap();
        }
    }
}

/// Damages files with `damage`, expects the node to refuse to start with a message
/// holding every string of `expect`, then restores the files.
fn expect_refusal(
    node: &mut NodeProcess,
    case: &str,
    files: &[PathBuf],
    damage: impl FnOnce(),
    expect: &[String],
) {
    let backup = Backup::of(files);
    damage();
    let log = node.restart_expecting_refusal();
    for e in expect {
        assert!(
            log.contains(e.as_str()),
            "{case}: the refusal does not say `{e}`:\n{log}"
        );
    }
    eprintln!(
        "{case}: refused: {}",
        log.lines()
            .rev()
            .find(|l| l.contains("shoal:"))
            .unwrap_or("")
    );
    backup.restore();
}

fn flip_bit(path: &Path, at: u64) {
    let mut b = std::fs::read(path).unwrap();
    b[at as usize] ^= 0x10;
    std::fs::write(path, b).unwrap();
}

#[test]
fn damaged_wal_files_are_refused_naming_file_and_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let rt = runtime();
    let mut acked = Acked::new();
    let mut node = NodeProcess::start(&data, SHARDS, &[]);
    // Phase 1 leaves segment 1 of shard 0 part-filled: keep that copy as the stale one.
    rt.block_on(async { fill(&node.client().await, 0..40, &mut acked).await });
    node.stop();
    let wal = wal_dir(&data, 0);
    let seg = |id: u64| wal.join(seg_name(id));
    let stale = std::fs::read(seg(1)).unwrap();
    let stale_end = records(&stale).last().unwrap().end;
    // Phase 2 fills at least three segments of shard 0, the last one with several writes
    // (case 2 needs a record that a later write declares durable).
    let mut next = 40;
    let mut more = 600;
    for round in 0.. {
        node.restart();
        rt.block_on(async { fill(&node.client().await, next..next + more, &mut acked).await });
        next += more;
        more = 48;
        node.stop();
        let segs = data_segments(&wal);
        let last = records(&std::fs::read(seg(*segs.last().unwrap())).unwrap());
        if segs.len() >= 3 && witnessed(&last).is_some() {
            break;
        }
        assert!(round < 8, "shard 0 never filled: {segs:?}");
    }
    let segs = data_segments(&wal);
    assert!(segs.len() >= 3, "shard 0 holds {segs:?}: too few segments");
    let wal_s = wal.display().to_string();
    let at = |file: &str, offset: u64| {
        vec![
            wal_s.clone(),
            format!("WAL corruption in {file} at byte offset {offset}"),
        ]
    };
    let recs1 = records(&std::fs::read(seg(1)).unwrap());
    let last_id = *segs.last().unwrap();
    let last_recs = records(&std::fs::read(seg(last_id)).unwrap());

    // 1. A bit flip in the payload of a committed record in the middle of segment 1.
    let r = recs1[recs1.len() / 2];
    expect_refusal(
        &mut node,
        "bit flip in a record of segment 1",
        &[seg(1)],
        || flip_bit(&seg(1), r.offset + HEADER_LEN + 1000),
        &at(&seg_name(1), r.offset),
    );

    // 2. A bit flip in the header of a record of the last segment that later writes
    // declare durable (their `durable` field is past it): not a torn tail.
    let r = witnessed(&last_recs).unwrap();
    expect_refusal(
        &mut node,
        "bit flip in a record of the last segment",
        &[seg(last_id)],
        || flip_bit(&seg(last_id), r.offset + 9),
        &at(&seg_name(last_id), r.offset),
    );

    // 3. A bit flip in the very last record. Alone it looks like a torn tail, but after a
    // graceful stop the saved committed index names it: refused.
    let r = *last_recs.last().unwrap();
    expect_refusal(
        &mut node,
        "bit flip in the last record",
        &[seg(last_id)],
        || flip_bit(&seg(last_id), r.offset + HEADER_LEN),
        &[
            wal_s.clone(),
            "past the end of the log".to_string(),
            format!(
                "recovery cut the log in {} at byte offset {}",
                seg_name(last_id),
                r.offset
            ),
        ],
    );

    // 4. A 4 KiB chunk of segment 1 copied over another place of segment 1: every byte
    // is a valid record's byte, but records are bound to their offset.
    let src = recs1[3].offset + 512;
    let dst = recs1[recs1.len() - 4].offset + 2048;
    let first_diff = {
        let b = std::fs::read(seg(1)).unwrap();
        (0..4096u64)
            .find(|i| b[(src + i) as usize] != b[(dst + i) as usize])
            .unwrap()
            + dst
    };
    expect_refusal(
        &mut node,
        "chunk copied within segment 1",
        &[seg(1)],
        || {
            let mut b = std::fs::read(seg(1)).unwrap();
            b.copy_within(src as usize..(src + 4096) as usize, dst as usize);
            std::fs::write(seg(1), b).unwrap();
        },
        &at(&seg_name(1), containing(&recs1, first_diff).offset),
    );

    // 5. A 64 KiB chunk of segment 2 written over the same place of segment 1 (a
    // misdirected write): the records are bound to their segment too.
    let off = recs1[recs1.len() / 3].offset;
    let first_diff = {
        let a = std::fs::read(seg(1)).unwrap();
        let b = std::fs::read(seg(2)).unwrap();
        (off..off + 65536)
            .find(|i| a[*i as usize] != b[*i as usize])
            .unwrap()
    };
    expect_refusal(
        &mut node,
        "chunk of segment 2 over segment 1",
        &[seg(1)],
        || {
            let mut a = std::fs::read(seg(1)).unwrap();
            let b = std::fs::read(seg(2)).unwrap();
            a[off as usize..(off + 65536) as usize]
                .copy_from_slice(&b[off as usize..(off + 65536) as usize]);
            std::fs::write(seg(1), a).unwrap();
        },
        &at(&seg_name(1), containing(&recs1, first_diff).offset),
    );

    // 6. A stale copy of segment 1 (from before phase 2) restored: it ends cleanly, but
    // segment 2's start record names the real end of segment 1.
    let mut expect = at(&seg_name(2), 0);
    expect.push(format!("previous segment ends at {stale_end} but"));
    expect_refusal(
        &mut node,
        "stale segment 1 restored",
        &[seg(1)],
        || std::fs::write(seg(1), &stale).unwrap(),
        &expect,
    );

    // 7. Segment 1 truncated to a block boundary inside a record.
    // (not at a record's end: then segment 1 would end cleanly and segment 2 complain)
    let mut cut = (recs1[recs1.len() / 2].offset + 8192) / 4096 * 4096;
    while recs1.iter().any(|r| r.end == cut) {
        cut += 4096;
    }
    expect_refusal(
        &mut node,
        "segment 1 truncated at a block boundary",
        &[seg(1)],
        || {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(seg(1))
                .unwrap();
            f.set_len(cut).unwrap();
        },
        &at(&seg_name(1), containing(&recs1, cut - 1).offset),
    );

    // 8. Segment 1 truncated to a length no segment has.
    let mut expect = at(&seg_name(1), 0);
    expect.push("not a positive multiple of 4096".to_string());
    expect_refusal(
        &mut node,
        "segment 1 truncated mid-block",
        &[seg(1)],
        || {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(seg(1))
                .unwrap();
            f.set_len(cut - 100).unwrap();
        },
        &expect,
    );

    // 9. A middle segment deleted.
    let mut expect = at(&seg_name(3), 0);
    expect.push("segment 2 is missing".to_string());
    expect_refusal(
        &mut node,
        "segment 2 deleted",
        &[seg(2)],
        || std::fs::remove_file(seg(2)).unwrap(),
        &expect,
    );

    // 10. Both metadata slots damaged: a torn save damages one slot only, so this is
    // corruption; starting without a vote would let the node vote twice in a term.
    let meta = wal.join("meta");
    let mut expect = at("meta", 0);
    expect.push("both metadata slots are damaged".to_string());
    expect_refusal(
        &mut node,
        "both vote slots damaged",
        std::slice::from_ref(&meta),
        || {
            flip_bit(&meta, 20);
            flip_bit(&meta, 4096 + 20);
        },
        &expect,
    );

    // Control: the restored files are served in full.
    assert_serves_all(&rt, &mut node, &acked);
    node.stop();
    assert_eq!(
        recs1[0].kind, 4,
        "segments begin with a segment start record"
    );
}

/// Simulates a torn last write: a partial record (bytes of a real record, cut short) lies
/// just past the durable end, where only an unacknowledged write can have put it.
fn tear_last_write(wal: &Path) -> (String, u64) {
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

/// Simulates a save of the metadata torn mid-write: the slot holding the newest value
/// (the higher `seq`) keeps its first `keep` bytes, the rest of the 4 KiB block is lost.
fn tear_meta(wal: &Path, keep: usize) -> usize {
    let path = wal.join("meta");
    let mut b = std::fs::read(&path).unwrap();
    assert_eq!(b.len(), 8192);
    let seq =
        |slot: usize| u64::from_le_bytes(b[slot * 4096 + 8..slot * 4096 + 16].try_into().unwrap());
    let newest = if seq(1) > seq(0) { 1 } else { 0 };
    let len = u32::from_le_bytes(b[newest * 4096 + 4..newest * 4096 + 8].try_into().unwrap());
    assert!(len > 0, "the newest slot holds a value");
    for x in &mut b[newest * 4096 + keep..(newest + 1) * 4096] {
        *x = 0;
    }
    std::fs::write(&path, b).unwrap();
    newest
}

#[test]
fn torn_last_write_and_torn_vote_save_recover_every_acknowledged_write() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let rt = runtime();
    let mut acked = Acked::new();
    let mut node = NodeProcess::start(&data, SHARDS, &[]);
    let mut next = 0;
    // Round r tears the last write of shard r and the metadata save of the other shard,
    // after a crash (kill -9), the way these faults happen.
    for round in 0..2u16 {
        rt.block_on(async { fill(&node.client().await, next..next + 40, &mut acked).await });
        next += 40;
        node.process.kill().unwrap();
        let (torn_shard, meta_shard) = (round, 1 - round);
        let (file, offset) = tear_last_write(&wal_dir(&data, torn_shard));
        // Round 0 tears inside the payload, round 1 inside the header.
        let slot = tear_meta(&wal_dir(&data, meta_shard), if round == 0 { 20 } else { 6 });
        assert_serves_all(&rt, &mut node, &acked);
        let log = node.process.log();
        let cut = format!("WAL recovery cut a torn tail in {file} at byte offset {offset}");
        assert!(
            log.contains(&cut),
            "round {round}: no `{cut}` in the log:\n{log}"
        );
        let meta = format!("WAL metadata: meta slot {slot}:");
        assert!(
            log.contains(&meta),
            "round {round}: no `{meta}` in the log:\n{log}"
        );
        eprintln!(
            "round {round}: shard {torn_shard} torn tail at {file}:{offset} cut, shard {meta_shard} meta slot {slot} torn; {} acknowledged writes served",
            acked.len()
        );
    }
    // The cut was made durable: one more crash and restart still serves everything.
    rt.block_on(async { fill(&node.client().await, next..next + 16, &mut acked).await });
    node.process.kill().unwrap();
    assert_serves_all(&rt, &mut node, &acked);
    node.stop();
}

/// Offsets of the frames of a snapshot file (`docs/SNAPSHOT.md`: 16-byte file header,
/// frames of a 12-byte header + `payload_len` bytes).
fn snapshot_frames(b: &[u8]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut pos = 16usize;
    while pos + 12 <= b.len() {
        let len = u32::from_le_bytes(b[pos..pos + 4].try_into().unwrap()) as usize;
        out.push((pos as u64, (pos + 12 + len) as u64));
        pos += 12 + len;
    }
    assert_eq!(
        pos,
        b.len(),
        "an undamaged snapshot ends with its last frame"
    );
    out
}

/// The newest snapshot file of `shard` (`snapshot-<term>-<index>.snap`), the one a start
/// loads.
fn snapshot_file(data: &Path, shard: u16) -> Option<PathBuf> {
    std::fs::read_dir(data.join(format!("shard-{shard}")).join("snapshots"))
        .ok()?
        .map(|e| e.unwrap().path())
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_string();
            let body = name.strip_prefix("snapshot-")?.strip_suffix(".snap")?;
            let (term, index) = body.split_once('-')?;
            let key: (u64, u64) = (index.parse().ok()?, term.parse().ok()?);
            Some((key, p))
        })
        .max()
        .map(|(_, p)| p)
}

#[test]
fn a_corrupt_snapshot_is_refused_naming_file_and_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let rt = runtime();
    let mut acked = Acked::new();
    let mut node = NodeProcess::start(&data, SHARDS, &["--snapshot-every", "32"]);
    rt.block_on(async { fill(&node.client().await, 0..160, &mut acked).await });
    shoal_testkit::wait::wait_for(
        "a snapshot of every shard",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || {
            (0..SHARDS)
                .all(|s| snapshot_file(&data, s).is_some())
                .then_some(())
        },
    )
    .unwrap();
    node.stop();
    let snap = snapshot_file(&data, 0).unwrap();
    let bytes = std::fs::read(&snap).unwrap();
    let frames = snapshot_frames(&bytes);
    assert!(frames.len() >= 3, "header, blocks, trailer: {frames:?}");
    let frame_of = |at: u64| frames.iter().find(|(s, e)| *s <= at && at < *e).unwrap().0;
    let name = snap.display().to_string();

    // A bit flip inside a block's payload.
    let at = bytes.len() as u64 / 2;
    expect_refusal(
        &mut node,
        "bit flip in the snapshot",
        std::slice::from_ref(&snap),
        || flip_bit(&snap, at),
        &[format!(
            "snapshot file {name} is corrupt at byte offset {}",
            frame_of(at)
        )],
    );
    // A snapshot cut short (inside a frame).
    let cut = bytes.len() as u64 * 2 / 3;
    expect_refusal(
        &mut node,
        "truncated snapshot",
        std::slice::from_ref(&snap),
        || {
            let f = std::fs::OpenOptions::new().write(true).open(&snap).unwrap();
            f.set_len(cut).unwrap();
        },
        &[
            format!(
                "snapshot file {name} is corrupt at byte offset {}",
                frame_of(cut)
            ),
            "truncated".to_string(),
        ],
    );
    // The last frame (the trailer) moved before the block frames: bound to its position.
    let (ts, te) = *frames.last().unwrap();
    let (bs, _) = frames[1];
    expect_refusal(
        &mut node,
        "trailer frame moved",
        std::slice::from_ref(&snap),
        || {
            let mut b = bytes[..bs as usize].to_vec();
            b.extend_from_slice(&bytes[ts as usize..te as usize]);
            b.extend_from_slice(&bytes[bs as usize..ts as usize]);
            std::fs::write(&snap, b).unwrap();
        },
        &[format!(
            "snapshot file {name} is corrupt at byte offset {bs}"
        )],
    );
    assert_serves_all(&rt, &mut node, &acked);
    node.stop();
}
