//! Property test: random appends, truncations, purges, metadata saves, clean reopens,
//! crashes, torn writes and failed syncs on the in-memory disk, checked against a `Vec`
//! model. After every reopen the log must equal the model's durable prefix.
#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.
mod common;
use bytes::Bytes;
use common::*;
use proptest::prelude::*;
use shoal_wal::{Fault, MemDisk, Wal};

#[derive(Debug, Clone)]
enum Op {
    /// Append a batch (payload sizes), index gap before it.
    Append(Vec<u16>, u8),
    /// Truncate the last `n` entries.
    Truncate(u8),
    /// Purge the first `n` entries.
    Purge(u8),
    Meta(u8),
    Reopen,
    Crash,
    /// The next write is torn after this many bytes, then the power goes.
    TornAppend(Vec<u16>, u16),
    /// The next write's sync fails.
    FailedAppend(Vec<u16>),
    /// Submit a batch and crash before awaiting it.
    UnackedCrash(Vec<u16>),
}

fn op() -> impl Strategy<Value = Op> {
    let sizes = prop::collection::vec(0u16..700, 1..6);
    prop_oneof![
        6 => (sizes.clone(), 0u8..3).prop_map(|(s, g)| Op::Append(s, g)),
        1 => (0u8..8).prop_map(Op::Truncate),
        1 => (0u8..30).prop_map(Op::Purge),
        1 => any::<u8>().prop_map(Op::Meta),
        1 => Just(Op::Reopen),
        1 => Just(Op::Crash),
        1 => (sizes.clone(), 0u16..9000).prop_map(|(s, t)| Op::TornAppend(s, t)),
        1 => sizes.clone().prop_map(Op::FailedAppend),
        1 => sizes.prop_map(Op::UnackedCrash),
    ]
}

#[derive(Debug, Default)]
struct Model {
    log: Vec<(u64, Bytes)>,
    floor: u64,
    meta: Option<Bytes>,
}

impl Model {
    fn next(&self, gap: u8) -> u64 {
        self.log
            .last()
            .map_or(self.floor, |e| e.0 + 1)
            .max(self.floor)
            + u64::from(gap)
    }
    fn batch(&self, sizes: &[u16], gap: u8, salt: u8) -> Vec<(u64, Bytes)> {
        let first = self.next(gap);
        sizes
            .iter()
            .enumerate()
            .map(|(k, s)| {
                let i = first + k as u64;
                (i, Bytes::from(vec![(i as u8) ^ salt; *s as usize]))
            })
            .collect()
    }
}

async fn check(w: &Wal<MemDisk>, m: &Model) {
    assert_eq!(contents(w).await, m.log);
    assert_eq!(w.floor(), m.floor);
    assert_eq!(w.meta(), m.meta);
    assert_eq!(w.first_index(), m.log.first().map(|e| e.0));
}

async fn crash_reopen(
    w: Wal<MemDisk>,
    disk: &MemDisk,
) -> (Wal<MemDisk>, shoal_wal::RecoveryReport) {
    drop(w);
    disk.crash();
    open_mem(disk).await.expect("reopen after crash")
}

fn scenario(ops: Vec<Op>) {
    run(|| async move {
        let disk = MemDisk::new();
        let (mut w, _) = open_mem(&disk).await.unwrap();
        let mut m = Model::default();
        for (n, op) in ops.into_iter().enumerate() {
            let salt = n as u8;
            match op {
                Op::Append(sizes, gap) => {
                    let b = m.batch(&sizes, gap, salt);
                    w.append(b.clone()).unwrap().await.unwrap();
                    m.log.extend(b);
                }
                Op::Truncate(k) => {
                    let keep = m.log.len().saturating_sub(k as usize);
                    if let Some(&(from, _)) = m.log.get(keep) {
                        w.truncate(from).await.unwrap();
                        m.log.truncate(keep);
                    }
                }
                Op::Purge(k) => {
                    let below = match m.log.get(k as usize) {
                        Some(e) => e.0,
                        None => m.next(k % 3),
                    };
                    w.purge(below).await.unwrap();
                    m.floor = m.floor.max(below);
                    m.log.retain(|e| e.0 >= below);
                }
                Op::Meta(v) => {
                    let b = Bytes::from(vec![v; v as usize % 50]);
                    w.save_meta(b.clone()).await.unwrap();
                    m.meta = Some(b);
                }
                Op::Reopen => {
                    w.close().await.unwrap();
                    let (w2, rep) = open_mem(&disk).await.unwrap();
                    assert_eq!(rep.torn_tail, None);
                    w = w2;
                    check(&w, &m).await;
                }
                Op::Crash => {
                    let (w2, rep) = crash_reopen(w, &disk).await;
                    assert_eq!(rep.torn_tail, None);
                    w = w2;
                    check(&w, &m).await;
                }
                Op::TornAppend(sizes, t) => {
                    let b = m.batch(&sizes, 0, salt);
                    disk.plan_fault(0, Fault::Tear(t as usize));
                    // The tear may hit the batch's write or the preallocation of a
                    // segment; either way the WAL fails and nothing acked is lost.
                    let r = match w.append(b.clone()) {
                        Ok(t) => t.await,
                        Err(e) => Err(e),
                    };
                    assert!(r.is_err());
                    let (w2, _) = crash_reopen(w, &disk).await;
                    w = w2;
                    let got = contents(&w).await;
                    assert!(got.len() >= m.log.len());
                    assert_eq!(got[..m.log.len()], m.log[..]);
                    let kept = got.len() - m.log.len();
                    assert_eq!(got[m.log.len()..], b[..kept]);
                    m.log.extend(b.into_iter().take(kept));
                    check(&w, &m).await;
                }
                Op::UnackedCrash(sizes) => {
                    let b = m.batch(&sizes, 0, salt);
                    let ticket = w.append(b.clone()).unwrap();
                    drop(ticket);
                    let (w2, _) = crash_reopen(w, &disk).await;
                    w = w2;
                    // Unacknowledged: any prefix of the batch may have survived.
                    let got = contents(&w).await;
                    assert_eq!(got[..m.log.len()], m.log[..]);
                    let kept = got.len() - m.log.len();
                    assert_eq!(got[m.log.len()..], b[..kept]);
                    m.log.extend(b.into_iter().take(kept));
                    check(&w, &m).await;
                }
                Op::FailedAppend(sizes) => {
                    let b = m.batch(&sizes, 0, salt);
                    disk.plan_fault(0, Fault::FailSync);
                    let r = match w.append(b) {
                        Ok(t) => t.await,
                        Err(e) => Err(e),
                    };
                    assert!(r.is_err());
                    assert!(w.append([(u64::MAX, Bytes::new())]).is_err(), "poisoned");
                    let (w2, _) = crash_reopen(w, &disk).await;
                    w = w2;
                    check(&w, &m).await;
                }
            }
        }
        let (w, _) = crash_reopen(w, &disk).await;
        check(&w, &m).await;
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn wal_matches_model(ops in prop::collection::vec(op(), 1..40)) {
        scenario(ops);
    }
}
