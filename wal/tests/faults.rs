//! Torn-write and bit-flip sweeps on the in-memory disk.
#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.
mod common;
use bytes::Bytes;
use common::*;
use shoal_wal::record::record_len;
use shoal_wal::{Fault, MemDisk, WalError};

/// A disk holding records 1..=n, each made durable by its own write.
async fn base_log(n: u64) -> (MemDisk, Vec<(u64, Bytes)>) {
    let disk = MemDisk::new();
    let (w, _) = open_mem(&disk).await.unwrap();
    let mut model = Vec::new();
    for i in 1..=n {
        let p = payload(i, 9);
        w.append([(i, p.clone())]).unwrap().await.unwrap();
        model.push((i, p));
    }
    w.close().await.unwrap();
    (disk, model)
}

#[test]
fn torn_tail_sweep_leaves_exactly_the_durable_prefix() {
    run(|| async {
        // 20 records end near the end of the first 4 KiB block, so the torn batch
        // straddles a block boundary and a cut tail outlives the next write's block.
        let (disk, model) = base_log(20).await;
        // Where the durable log ends: the segment start record, then the records.
        let rl = |n: usize| record_len(n) as u64;
        let end = rl(8) + model.iter().map(|e| rl(e.1.len())).sum::<u64>();
        let head = (end % 4096) as usize;
        assert!(
            head > 3000,
            "the batch must straddle a block boundary (head {head})"
        );
        // The torn write carries a batch of 5 records after the rewritten head block;
        // tear it at every byte of the batch.
        let batch: Vec<_> = (21..=25u64).map(|i| (i, payload(i, 5))).collect();
        let mut ends = vec![0u64];
        for e in &batch {
            ends.push(ends.last().unwrap() + rl(e.1.len()));
        }
        let batch_bytes = *ends.last().unwrap() as usize;
        // Bytes of record k that must be written for it to be whole: up to its last
        // non-zero byte (the kind byte at 20, or the payload's last non-zero byte).
        let full: Vec<u64> = batch
            .iter()
            .enumerate()
            .map(|(k, e)| {
                let nz =
                    e.1.iter()
                        .rposition(|b| *b != 0)
                        .map_or(21, |p| 24 + p as u64 + 1);
                ends[k] + nz
            })
            .collect();
        for t in head..=head + batch_bytes {
            let d = disk.snapshot();
            let (w, _) = open_mem(&d).await.unwrap();
            let writes = d.writes();
            d.plan_fault(0, Fault::Tear(t));
            let err = w.append(batch.clone()).unwrap().await.unwrap_err();
            assert!(matches!(err, WalError::Poisoned(_)), "{err}");
            assert_eq!(d.writes(), writes + 1, "one write for the whole batch");
            drop(w);
            d.crash();
            let (w, rep) = open_mem(&d).await.unwrap();
            let got = contents(&w).await;
            // Exactly the durable prefix plus the batch records whose non-zero bytes all
            // reached the disk (trailing zeros of a record need not be written).
            let new = (t - head) as u64;
            let kept = full.iter().filter(|f| **f <= new).count();
            let mut want = model.clone();
            want.extend_from_slice(&batch[..kept]);
            assert_eq!(got, want, "tear at {t}");
            // Once the next record's kind byte (offset 20) is on disk, the partial record
            // is non-zero and must be reported as a cut torn tail.
            if kept < batch.len() && new > ends[kept] + 20 {
                let tt = rep
                    .torn_tail
                    .as_ref()
                    .unwrap_or_else(|| panic!("tear at {t} unreported"));
                assert_eq!(tt.offset, end + ends[kept], "tear at {t}");
            }
            if kept == batch.len() || new <= ends[kept] {
                assert_eq!(rep.torn_tail, None, "tear at {t} on a record boundary");
            }
            // The cut tail was zeroed: records written after it survive another crash.
            let next = got.last().map_or(1, |e| e.0 + 1);
            w.append([(next, Bytes::from_static(b"after"))])
                .unwrap()
                .await
                .unwrap();
            drop(w);
            d.crash();
            let (w, rep2) = open_mem(&d).await.unwrap();
            assert_eq!(rep2.torn_tail, None);
            want.push((next, Bytes::from_static(b"after")));
            assert_eq!(
                contents(&w).await,
                want,
                "tear at {t}, then one more append"
            );
        }
    });
}

#[test]
fn single_bit_flips_are_detected_and_located() {
    run(|| async {
        let (disk, model) = base_log(20).await;
        let seg = "00000000000000000001.seg";
        let image = disk.durable_bytes(seg).unwrap();
        let used = image.iter().rposition(|b| *b != 0).unwrap() + 1;
        // Where the last record starts: a flip there cannot be told from a torn write.
        let (w, _) = open_mem(&disk.snapshot()).await.unwrap();
        drop(w);
        let positions: Vec<usize> = (0..used + 64)
            .chain((used + 64..image.len()).step_by(211))
            .collect();
        let mut errors = 0;
        let mut torn = 0;
        for &p in &positions {
            let d = disk.snapshot();
            d.flip_bit(seg, p as u64, (p % 8) as u8);
            match open_mem(&d).await {
                Err(WalError::Corruption { file, offset, .. }) => {
                    assert_eq!(file, seg);
                    // Inside the log the error names the damaged record; past it, the
                    // end of the valid log (the reason names the stray byte).
                    assert!(offset as usize <= p, "flip {p} at {offset}");
                    assert!(
                        p >= used || p - (offset as usize) < 400,
                        "flip {p} at {offset}"
                    );
                    errors += 1;
                }
                Err(e) => panic!("flip at {p}: unexpected error {e}"),
                Ok((w, rep)) => {
                    let t = rep
                        .torn_tail
                        .unwrap_or_else(|| panic!("flip at {p} went unnoticed"));
                    assert!(
                        t.offset as usize <= p && p < t.garbage_end as usize,
                        "flip {p}: {t:?}"
                    );
                    // Only the last record (or the zeros after it) can be taken for a
                    // torn tail; everything before it is intact.
                    let got = contents(&w).await;
                    assert!(
                        got.len() >= model.len() - 1,
                        "flip at {p} dropped durable records"
                    );
                    assert_eq!(got[..], model[..got.len()]);
                    torn += 1;
                }
            }
        }
        assert!(
            errors > used / 2,
            "most flips are hard errors ({errors} of {})",
            positions.len()
        );
        assert!(torn > 0);
    });
}

#[test]
fn meta_survives_a_torn_save() {
    run(|| async {
        let disk = MemDisk::new();
        let (w, _) = open_mem(&disk).await.unwrap();
        w.save_meta(Bytes::from_static(b"term=1")).await.unwrap();
        drop(w);
        // The second save goes to slot 1; tear it at every byte of its content.
        let slot = shoal_wal::meta::encode_slot(1, 2, b"term=2");
        let content = slot.iter().rposition(|b| *b != 0).unwrap() + 1;
        for t in 0..=content + 8 {
            let d = disk.snapshot();
            let (w2, _) = open_mem(&d).await.unwrap();
            d.plan_fault(0, Fault::Tear(t));
            assert!(w2.save_meta(Bytes::from_static(b"term=2")).await.is_err());
            drop(w2);
            d.crash();
            let (w2, rep) = open_mem(&d).await.unwrap();
            let want: &[u8] = if t >= content { b"term=2" } else { b"term=1" };
            assert_eq!(w2.meta(), Some(Bytes::from_static(want)), "tear at {t}");
            let partial = t < content && slot[..t].iter().any(|b| *b != 0);
            assert_eq!(rep.meta_damage.is_some(), partial, "tear at {t}");
        }
    });
}

#[test]
fn both_meta_slots_damaged_is_corruption_not_an_empty_vote() {
    run(|| async {
        let disk = MemDisk::new();
        let (w, _) = open_mem(&disk).await.unwrap();
        w.save_meta(Bytes::from_static(b"term=1")).await.unwrap();
        w.save_meta(Bytes::from_static(b"term=2")).await.unwrap();
        drop(w);
        // One damaged slot: the other one's value is used, and the damage reported.
        let d = disk.snapshot();
        d.flip_bit("meta", 4096 + 17, 0);
        let (w, rep) = open_mem(&d).await.unwrap();
        assert_eq!(w.meta(), Some(Bytes::from_static(b"term=1")));
        assert!(rep.meta_damage.unwrap().contains("slot 1"));
        drop(w);
        // Both damaged: refused, never opened as if nothing had been saved.
        d.flip_bit("meta", 17, 0);
        match open_mem(&d).await {
            Err(WalError::Corruption {
                file,
                offset,
                reason,
            }) => {
                assert_eq!((file.as_str(), offset), ("meta", 0));
                assert!(reason.contains("both metadata slots"), "{reason}");
            }
            Err(e) => panic!("expected corruption, got {e}"),
            Ok(_) => panic!("opened with both metadata slots damaged"),
        }
    });
}

#[test]
fn damage_before_later_segments_is_corruption_and_gaps_are_refused() {
    run(|| async {
        let disk = MemDisk::new();
        let (w, _) = open_mem(&disk).await.unwrap();
        for i in 1..=700u64 {
            w.append([(i, payload(i, 3))]).unwrap().await.unwrap();
        }
        w.close().await.unwrap();
        let segs: Vec<String> = disk
            .names()
            .into_iter()
            .filter(|n| n.ends_with(".seg"))
            .collect();
        assert!(segs.len() >= 3, "{segs:?}");
        // A flip in the last record of segment 1: later segments hold data, so this is
        // not a torn tail.
        let first = disk.durable_bytes(&segs[0]).unwrap();
        let used = first.iter().rposition(|b| *b != 0).unwrap();
        let d = disk.snapshot();
        d.flip_bit(&segs[0], used as u64, 0);
        match open_mem(&d).await {
            Err(WalError::Corruption { file, offset, .. }) => {
                assert_eq!(file, segs[0]);
                assert!(offset as usize <= used);
            }
            other => panic!("expected corruption, got {other:?}"),
        }
        // A stray byte in the zero space at the end of segment 1: corruption too.
        let d = disk.snapshot();
        d.flip_bit(&segs[0], first.len() as u64 - 1, 3);
        assert!(matches!(
            open_mem(&d).await,
            Err(WalError::Corruption { .. })
        ));
        // A missing middle segment is refused, naming the one after the gap.
        let d = disk.snapshot();
        shoal_wal::Disk::remove(&d, &segs[1]).await.unwrap();
        match open_mem(&d).await {
            Err(WalError::Corruption { file, .. }) => assert_eq!(file, segs[2]),
            other => panic!("expected corruption, got {other:?}"),
        }
        // The untouched disk still opens cleanly.
        let (w, rep) = open_mem(&disk).await.unwrap();
        assert_eq!((rep.torn_tail, rep.live_entries), (None, 700));
        drop(w);
    });
}
