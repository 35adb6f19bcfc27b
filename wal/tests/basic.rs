//! Appends, reads, truncation, purge, metadata and reopening on the in-memory disk.
#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.
mod common;
use bytes::Bytes;
use common::*;
use shoal_wal::{Fault, MemDisk, WalError};

#[test]
fn append_read_reopen_across_segments() {
    run(|| async {
        let disk = MemDisk::new();
        let (w, rep) = open_mem(&disk).await.unwrap();
        assert_eq!(rep.live_entries, 0);
        let mut model = Vec::new();
        for i in 1..=600u64 {
            let p = payload(i, 1);
            model.push((i, p.clone()));
            if i % 3 == 0 {
                w.append([(i, p)]).unwrap().await.unwrap();
            } else {
                let _t = w.append([(i, p)]).unwrap();
            }
        }
        w.sync().unwrap().await.unwrap();
        assert!(disk.names().iter().filter(|n| n.ends_with(".seg")).count() > 2);
        assert_eq!(contents(&w).await, model);
        assert_eq!(w.read_range(10, 13).await.unwrap(), model[9..12].to_vec());
        w.close().await.unwrap();
        let (w, rep) = open_mem(&disk).await.unwrap();
        assert_eq!(rep.torn_tail, None);
        assert_eq!(rep.live_entries, 600);
        assert_eq!(contents(&w).await, model);
        // Order is enforced.
        assert!(matches!(
            w.append([(600, payload(1, 1))]),
            Err(WalError::IndexOrder { .. })
        ));
        w.append([(601, payload(601, 1))]).unwrap().await.unwrap();
    });
}

#[test]
fn truncate_purge_meta_survive_crash() {
    run(|| async {
        let disk = MemDisk::new();
        let (w, _) = open_mem(&disk).await.unwrap();
        let batch: Vec<_> = (1..=1000u64).map(|i| (i, payload(i, 2))).collect();
        w.append(batch.clone()).unwrap().await.unwrap();
        w.truncate(901).await.unwrap();
        assert_eq!(w.last_index(), Some(900));
        let again: Vec<_> = (901..=950u64).map(|i| (i, payload(i, 3))).collect();
        w.append(again.clone()).unwrap().await.unwrap();
        let segs_before = disk.names().len();
        w.purge(700).await.unwrap();
        assert!(
            disk.names().len() < segs_before,
            "whole old segments are deleted"
        );
        assert_eq!(w.first_index(), Some(700));
        w.save_meta(Bytes::from_static(b"vote=3")).await.unwrap();
        w.save_meta(Bytes::from_static(b"vote=4")).await.unwrap();
        let mut model: Vec<_> = batch[699..900].to_vec();
        model.extend(again);
        drop(w);
        disk.crash();
        let (w, rep) = open_mem(&disk).await.unwrap();
        assert_eq!(rep.torn_tail, None);
        assert_eq!(w.floor(), 700);
        assert_eq!(contents(&w).await, model);
        assert_eq!(w.meta(), Some(Bytes::from_static(b"vote=4")));
        assert!(matches!(
            w.read_range(650, 710).await,
            Err(WalError::OutOfRange { .. })
        ));
        // Purge past the end empties the log; appends resume at the floor.
        w.purge(1000).await.unwrap();
        assert_eq!(
            (w.first_index(), w.last_index(), w.floor()),
            (None, None, 1000)
        );
        w.append([(1000, payload(1000, 4))]).unwrap().await.unwrap();
        drop(w);
        disk.crash();
        let (w, _) = open_mem(&disk).await.unwrap();
        assert_eq!(contents(&w).await, vec![(1000, payload(1000, 4))]);
    });
}

#[test]
fn failed_sync_poisons_everything() {
    run(|| async {
        let disk = MemDisk::new();
        let (w, _) = open_mem(&disk).await.unwrap();
        w.append([(1, payload(1, 0))]).unwrap().await.unwrap();
        disk.plan_fault(0, Fault::FailSync);
        let t1 = w.append([(2, payload(2, 0))]).unwrap();
        let err = t1.await.unwrap_err();
        assert!(matches!(err, WalError::Poisoned(_)), "{err}");
        assert!(matches!(
            w.append([(3, payload(3, 0))]),
            Err(WalError::Poisoned(_))
        ));
        assert!(w.read_range(1, 2).await.is_err());
        assert!(w.save_meta(Bytes::new()).await.is_err());
        assert!(w.truncate(1).await.is_err());
        assert!(w.sync().is_err());
        // Nothing was retried: exactly the one failed write after the good one.
        let writes = disk.writes();
        assert!(w.purge(1).await.is_err());
        assert_eq!(disk.writes(), writes);
        drop(w);
        disk.crash();
        let (w, _) = open_mem(&disk).await.unwrap();
        assert_eq!(contents(&w).await, vec![(1, payload(1, 0))]);
    });
}

#[test]
fn failed_meta_write_poisons() {
    run(|| async {
        let disk = MemDisk::new();
        let (w, _) = open_mem(&disk).await.unwrap();
        w.save_meta(Bytes::from_static(b"a")).await.unwrap();
        disk.plan_fault(0, Fault::FailSync);
        assert!(w.save_meta(Bytes::from_static(b"b")).await.is_err());
        assert!(matches!(
            w.append([(1, payload(1, 0))]),
            Err(WalError::Poisoned(_))
        ));
        drop(w);
        disk.crash();
        let (w, _) = open_mem(&disk).await.unwrap();
        assert_eq!(w.meta(), Some(Bytes::from_static(b"a")));
    });
}

#[test]
fn concurrent_appends_share_writes() {
    run(|| async {
        let disk = MemDisk::new();
        let (w, _) = open_mem(&disk).await.unwrap();
        let mut tickets = Vec::new();
        for i in 1..=50u64 {
            tickets.push(w.append([(i, Bytes::from_static(b"x"))]).unwrap());
        }
        for t in tickets {
            t.await.unwrap();
        }
        // 50 records in well under 50 writes: one write for the first, one for the rest.
        assert!(w.stats().writes <= 3, "{:?}", w.stats());
    });
}
