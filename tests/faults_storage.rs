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
//! The damage primitives and the record layout reader are shared with the 3-node suite
//! (`tests/storage_damage`, `tests/faults_storage_cluster.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod node_support;
mod storage_damage;

use std::path::{Path, PathBuf};
use std::time::Duration;

use node_support::NodeProcess;
use storage_damage::values::{Acked, fill, wrong_keys};
use storage_damage::{
    Backup, HEADER_LEN, containing, data_segments, flip_bit, records, seg_name, tear_last_write,
    tear_meta, wal_dir, witnessed,
};

const SHARDS: u16 = 2;
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
