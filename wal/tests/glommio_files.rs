//! The WAL on real files through glommio, for every write path: append, drop without
//! closing (a crash of the process), reopen, compare; reads served from disk.
#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.
mod common;
use bytes::Bytes;
use common::*;
use shoal_wal::{GlommioDisk, SyncMode, Wal, WalConfig};

fn cfg() -> WalConfig {
    WalConfig {
        segment_size: 1 << 20,
        max_write: 256 << 10,
        max_payload: 64 << 10,
        cache_bytes: 4 << 10,
        max_read: 128 << 10,
    }
}

#[test]
fn crash_and_reopen_on_real_files() {
    for mode in SyncMode::ALL {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let path = dir.path().to_path_buf();
        run(|| async move {
            let disk = GlommioDisk::open(&path, mode).await.unwrap();
            let (w, rep) = Wal::open(disk, cfg()).await.unwrap();
            assert_eq!(rep.live_entries, 0);
            let mut model = Vec::new();
            let mut tickets = Vec::new();
            for i in 1..=3000u64 {
                let p = if i % 200 == 0 {
                    Bytes::from(vec![i as u8; 60 << 10])
                } else {
                    payload(i, 7)
                };
                model.push((i, p.clone()));
                tickets.push(w.append([(i, p)]).unwrap());
            }
            for t in tickets {
                t.await.unwrap();
            }
            w.truncate(2901).await.unwrap();
            model.truncate(2900);
            w.save_meta(Bytes::from_static(b"vote")).await.unwrap();
            let batch: Vec<_> = (2901..=2950u64).map(|i| (i, payload(i, 8))).collect();
            w.append(batch.clone()).unwrap().await.unwrap();
            model.extend(batch);
            w.purge(1200).await.unwrap();
            model.retain(|e| e.0 >= 1200);
            assert_eq!(contents(&w).await, model, "{mode:?} before the crash");
            // Crash: no close, nothing in flight.
            drop(w);
            let disk = GlommioDisk::open(&path, mode).await.unwrap();
            let (w, rep) = Wal::open(disk, cfg()).await.unwrap();
            assert_eq!(rep.torn_tail, None, "{mode:?}");
            assert!(rep.segments >= 2, "{mode:?}: {rep:?}");
            assert_eq!(contents(&w).await, model, "{mode:?} after the crash");
            assert_eq!(w.meta(), Some(Bytes::from_static(b"vote")));
            assert_eq!(w.floor(), 1200);
            w.close().await.unwrap();
        });
    }
}
