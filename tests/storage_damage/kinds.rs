//! The damage kinds of the cluster storage-fault suite (`tests/faults_storage_cluster.rs`)
//! and, for each, the outcome a start on the damaged files must have, with the exact
//! file and byte offset the node must name (computed from the undamaged files).

use std::path::Path;

use super::{
    HEADER_LEN, KIND_ENTRY, block_inside, containing, copy_chunk, data_segments, flip_bit,
    saved_meta, seg_name, segment_records, tear_last_write, tear_meta, truncate,
};

/// The damage applied to the stopped node's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// One bit of a committed record's payload in the middle of segment 1.
    BitFlip,
    /// 4 KiB of segment 1 copied over another place of segment 1.
    ChunkCopy,
    /// The copy of segment 1 taken before segment 2 existed, restored over it.
    StaleSegment,
    /// The last data segment cut at a block boundary inside a record the saved commit
    /// index covers (what follows is gone).
    TruncatedTail,
    /// After kill -9: the last data segment cut at a block boundary inside the first entry
    /// past the saved commit index (which lags after a crash), so that recovery cannot
    /// tell the cut from a torn write.
    TruncatedAfterCrash,
    /// After kill -9: a torn last write past the durable end, and the newest metadata
    /// (vote) slot torn mid-write.
    TornVote,
}

/// The expected outcome of a restart on damaged files.
pub enum Expect {
    /// Refused; the log holds every string.
    Refused(Vec<String>),
    /// Starts; the log holds every string (the recovery's warnings).
    Recovers(Vec<String>),
}

/// Applies `damage` to the WAL directory `wal` of a stopped node; returns the outcome a
/// start must have, or `None` if the files offer no place for this damage now (then they
/// are unchanged). `stale` is the node's segment 1 from before segment 2 existed and
/// where its records end (`StaleSegment` only).
pub fn apply(wal: &Path, damage: Damage, stale: Option<(&[u8], u64)>) -> Option<Expect> {
    let seg = |n: u64| wal.join(seg_name(n));
    let wal_s = wal.display().to_string();
    let at = |file: &str, offset: u64| {
        vec![
            wal_s.clone(),
            format!("WAL corruption in {file} at byte offset {offset}"),
        ]
    };
    let recs1 = segment_records(wal, 1);
    match damage {
        Damage::BitFlip => {
            let r = recs1[recs1.len() / 2];
            flip_bit(&seg(1), r.offset + HEADER_LEN + 1000);
            Some(Expect::Refused(at(&seg_name(1), r.offset)))
        }
        Damage::ChunkCopy => {
            let src = recs1[3].offset + 512;
            let dst = recs1[recs1.len() - 4].offset + 2048;
            let first = copy_chunk(&seg(1), src, dst, 4096);
            let r = containing(&recs1, first);
            Some(Expect::Refused(at(&seg_name(1), r.offset)))
        }
        Damage::StaleSegment => {
            let (stale, stale_end) = stale.expect("a stale copy of segment 1");
            std::fs::write(seg(1), stale).unwrap();
            let mut e = at(&seg_name(2), 0);
            e.push(format!("previous segment ends at {stale_end} but"));
            Some(Expect::Refused(e))
        }
        Damage::TruncatedTail => {
            let (_, committed) = saved_meta(wal);
            let committed = committed.expect("a graceful stop saves the commit index");
            let segs = data_segments(wal);
            let last = *segs.last().unwrap();
            // The last record the saved commit index covers that a block boundary
            // cuts, in the newest segment holding one.
            let (id_cut, r, cut) = segs
                .iter()
                .rev()
                .find_map(|&s| {
                    segment_records(wal, s).into_iter().rev().find_map(|r| {
                        let cut = block_inside(&r)?;
                        (r.kind == KIND_ENTRY && r.index <= committed).then_some((s, r, cut))
                    })
                })
                .unwrap();
            truncate(&seg(id_cut), cut);
            let name = seg_name(id_cut);
            let expect = if id_cut == last {
                vec![
                    wal_s.clone(),
                    "past the end of the log".to_string(),
                    format!("recovery cut the log in {name} at byte offset {}", r.offset),
                ]
            } else {
                at(&name, r.offset)
            };
            Some(Expect::Refused(expect))
        }
        Damage::TruncatedAfterCrash => {
            let (_, committed) = saved_meta(wal);
            let last = *data_segments(wal).last().unwrap();
            let (r, cut) = segment_records(wal, last).into_iter().find_map(|r| {
                let cut = block_inside(&r)?;
                (r.kind == KIND_ENTRY && Some(r.index) > committed).then_some((r, cut))
            })?;
            truncate(&seg(last), cut);
            eprintln!(
                "cutting {} at {cut}: entry {} at {} (saved commit index {committed:?})",
                seg_name(last),
                r.index,
                r.offset
            );
            Some(Expect::Recovers(vec![format!(
                "WAL recovery cut a torn tail in {} at byte offset {}",
                seg_name(last),
                r.offset
            )]))
        }
        Damage::TornVote => {
            let (file, offset) = tear_last_write(wal);
            let slot = tear_meta(wal, 20);
            Some(Expect::Recovers(vec![
                format!("WAL recovery cut a torn tail in {file} at byte offset {offset}"),
                format!("WAL metadata: meta slot {slot}:"),
            ]))
        }
    }
}
