//! Torn-write and bit-flip sweeps on the in-memory disk.
#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.
mod common;
use bytes::Bytes;
use common::*;
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
        let (disk, model) = base_log(12).await;
        // The torn write carries a batch of 5 records; tear it at every byte.
        let batch: Vec<_> = (13..=17u64).map(|i| (i, payload(i, 5))).collect();
        let mut last_kept = 0;
        let mut t = 0usize;
        loop {
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
            assert!(got.len() >= model.len(), "tear at {t} lost durable records");
            assert_eq!(got[..model.len()], model[..], "tear at {t}");
            let kept = got.len() - model.len();
            assert_eq!(got[model.len()..], batch[..kept], "tear at {t}");
            assert!(kept >= last_kept, "a longer tear keeps at least as much");
            last_kept = kept;
            if kept < batch.len() {
                // Something of the batch was cut: it must have been reported, unless
                // the tear left nothing but the bytes already on disk.
                if let Some(tt) = &rep.torn_tail {
                    assert!(tt.garbage_end > tt.offset);
                }
            }
            // The cut tail was zeroed: new records after it survive another crash.
            let next = got.last().map_or(1, |e| e.0 + 1);
            w.append([(next, Bytes::from_static(b"after"))])
                .unwrap()
                .await
                .unwrap();
            drop(w);
            d.crash();
            let (w, rep2) = open_mem(&d).await.unwrap();
            assert_eq!(rep2.torn_tail, None);
            let mut want = got.clone();
            want.push((next, Bytes::from_static(b"after")));
            assert_eq!(
                contents(&w).await,
                want,
                "tear at {t}, then one more append"
            );
            if kept == batch.len() {
                break;
            }
            t += 1;
            assert!(t < 64 << 10, "the whole batch never became valid");
        }
        assert_eq!(last_kept, batch.len());
    });
}

#[test]
fn single_bit_flips_are_detected_and_located() {
    run(|| async {
        let (disk, model) = base_log(30).await;
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
