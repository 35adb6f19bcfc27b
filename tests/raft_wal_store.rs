//! The WAL-backed Raft log store under crashes and faults, on the in-memory disk (whose
//! `crash()` keeps only what was reported durable): what was flushed survives a crash,
//! a failed sync poisons the store, the unsafe ack mode really acks before durability,
//! committed is persisted but never ahead of the durable log, an interrupted purge is
//! finished at open, and replication reads are capped by bytes.
// Test binary: a failed unwrap is how a helper fails the test.
#![allow(clippy::unwrap_used)]

mod raft_support;

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use bytes::Bytes;
use futures::StreamExt;
use openraft::Membership;
use openraft::RaftLogReader;
use openraft::storage::IOFlushed;
use openraft::storage::RaftLogStorage;
use openraft::type_config::TypeConfigExt;
use shoal::limits::MAX_REPLICATION_READ_BYTES;
use shoal::raft::TypeConfig;
use shoal::raft::log_codec::log_id;
use shoal::raft::log_store::AckMode;
use shoal::raft::log_store::COMMITTED_PERSIST_INTERVAL;
use shoal::raft::log_store::WalLogStore;
use shoal::raft::types::Entry;
use shoal::raft::types::EntryPayload;
use shoal::raft::types::Request;
use shoal::raft::types::Vote;
use shoal_wal::Fault;
use shoal_wal::MemDisk;
use shoal_wal::WalConfig;

type Store = WalLogStore<MemDisk>;

fn entry(term: u64, index: u64) -> Entry {
    Entry {
        log_id: log_id(term, 1, index),
        payload: EntryPayload::Normal(Request {
            command: Bytes::from(format!("cmd-{term}-{index}")),
        }),
    }
}

fn vote(term: u64, node: u64, committed: bool) -> Vote {
    let mut v = Vote::new(term, node);
    v.committed = committed;
    v
}

async fn open(disk: &MemDisk, ack: AckMode) -> Store {
    WalLogStore::open(disk.clone(), WalConfig::small_for_tests(), ack)
        .await
        .unwrap()
        .0
}

/// Appends and returns a future of the flush result reported to openraft.
async fn append_cb(
    store: &mut Store,
    entries: Vec<Entry>,
) -> impl std::future::Future<Output = Result<(), std::io::Error>> + use<> {
    let (tx, rx) = TypeConfig::oneshot();
    store.append(entries, IOFlushed::signal(tx)).await.unwrap();
    async move { rx.await.unwrap() }
}

async fn all_entries(store: &mut Store) -> Vec<Entry> {
    store.try_get_log_entries(0..).await.unwrap()
}

#[test]
fn a_crash_keeps_flushed_entries_vote_and_committed() {
    raft_support::executor().run(async {
        let disk = MemDisk::new();
        let mut s = open(&disk, AckMode::AfterFsync).await;
        let entries: Vec<Entry> = (1..=50).map(|i| entry(1, i)).collect();
        append_cb(&mut s, entries.clone()).await.await.unwrap();
        s.save_committed(Some(log_id(1, 1, 40))).await.unwrap();
        // The vote write carries the committed id along.
        s.save_vote(&vote(1, 1, true)).await.unwrap();
        // Not flushed yet when the power goes: may be lost, never half-present.
        let pending = append_cb(&mut s, vec![entry(1, 51)]).await;
        drop(pending);
        drop(s);
        disk.crash();

        let mut s = open(&disk, AckMode::AfterFsync).await;
        let got = all_entries(&mut s).await;
        assert!(got.len() == 50 || got.len() == 51, "{}", got.len());
        assert_eq!(got[..50], entries[..]);
        assert_eq!(s.read_vote().await.unwrap(), Some(vote(1, 1, true)));
        assert_eq!(s.read_committed().await.unwrap(), Some(log_id(1, 1, 40)));
        let state = s.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, None);
        assert_eq!(state.last_log_id, got.last().map(|e| e.log_id));
        // Indexes continue where the durable log ends.
        let next = got.len() as u64 + 1;
        append_cb(&mut s, vec![entry(2, next)]).await.await.unwrap();
        assert_eq!(
            s.get_log_state().await.unwrap().last_log_id,
            Some(log_id(2, 1, next))
        );
    });
}

#[test]
fn entries_are_readable_before_they_are_durable() {
    raft_support::executor().run(async {
        let disk = MemDisk::new();
        let mut s = open(&disk, AckMode::AfterFsync).await;
        let writes = disk.writes();
        let flushed = append_cb(&mut s, (0..5).map(|i| entry(1, i)).collect()).await;
        // Nothing was written yet (the flusher has not run), but every reader sees them.
        assert_eq!(disk.writes(), writes);
        let mut reader = s.get_log_reader().await;
        assert_eq!(reader.try_get_log_entries(2..4).await.unwrap().len(), 2);
        flushed.await.unwrap();
    });
}

#[test]
fn a_failed_sync_reports_a_flush_error_and_poisons_the_store() {
    raft_support::executor().run(async {
        let disk = MemDisk::new();
        let mut s = open(&disk, AckMode::AfterFsync).await;
        append_cb(&mut s, vec![entry(1, 1)]).await.await.unwrap();
        disk.plan_fault(0, Fault::FailSync);
        let r = append_cb(&mut s, vec![entry(1, 2)]).await.await;
        assert!(r.is_err(), "the failed fdatasync must reach openraft");
        let writes = disk.writes();
        // Every later call fails, and nothing is retried.
        let (tx, _rx) = TypeConfig::oneshot();
        assert!(
            s.append(vec![entry(1, 3)], IOFlushed::signal(tx))
                .await
                .is_err()
        );
        assert!(s.save_vote(&vote(2, 1, false)).await.is_err());
        assert!(s.truncate_after(Some(log_id(1, 1, 1))).await.is_err());
        assert!(s.purge(log_id(1, 1, 1)).await.is_err());
        assert!(s.try_get_log_entries(0..).await.is_err());
        assert!(s.get_log_state().await.is_err());
        assert!(s.clone().close().await.is_err());
        assert_eq!(disk.writes(), writes, "no write after the failure");
    });
}

#[test]
fn ack_before_fsync_loses_acked_entries_in_a_crash_ack_after_fsync_does_not() {
    raft_support::executor().run(async {
        for mode in [AckMode::BeforeFsyncUnsafe, AckMode::AfterFsync] {
            let disk = MemDisk::new();
            let mut s = open(&disk, mode).await;
            append_cb(&mut s, vec![entry(1, 1)]).await.await.unwrap();
            // A vote is durable in both modes, and so is every append before it.
            s.save_vote(&vote(1, 1, true)).await.unwrap();
            let batch: Vec<Entry> = (2..=10).map(|i| entry(1, i)).collect();
            // Wait for openraft's "flushed", then lose power at once.
            append_cb(&mut s, batch).await.await.unwrap();
            disk.crash();
            drop(s);
            let mut s = open(&disk, mode).await;
            let kept = all_entries(&mut s).await.len();
            match mode {
                AckMode::BeforeFsyncUnsafe => {
                    assert_eq!(
                        kept, 1,
                        "acked entries were lost: the negative control works"
                    )
                }
                AckMode::AfterFsync => assert_eq!(kept, 10, "acked entries survive"),
            }
        }
    });
}

#[test]
fn committed_is_persisted_lazily_and_never_ahead_of_the_durable_log() {
    raft_support::executor().run(async {
        let disk = MemDisk::new();
        let mut s = open(&disk, AckMode::AfterFsync).await;
        let n = COMMITTED_PERSIST_INTERVAL + 10;
        for i in 1..=n {
            append_cb(&mut s, vec![entry(1, i)]).await.await.unwrap();
        }
        // Below the interval: memory only.
        s.save_committed(Some(log_id(1, 1, 5))).await.unwrap();
        let meta_writes = s.stats().meta_writes;
        for _ in 0..100 {
            glommio::executor().yield_task_queue_now().await;
        }
        assert_eq!(s.stats().meta_writes, meta_writes);
        // Past it: persisted in the background.
        s.save_committed(Some(log_id(1, 1, n))).await.unwrap();
        for _ in 0..10_000 {
            if s.stats().meta_writes > meta_writes {
                break;
            }
            glommio::executor().yield_task_queue_now().await;
        }
        assert_eq!(s.stats().meta_writes, meta_writes + 1);
        // A committed id beyond this log (a follower told of a commit it has not received)
        // is not persisted: the saved one stays.
        s.save_committed(Some(log_id(1, 1, n + 100_000)))
            .await
            .unwrap();
        s.save_vote(&vote(2, 1, false)).await.unwrap();
        // Nor one whose index is here but held by another (conflicting) entry.
        s.save_committed(Some(log_id(2, 1, n))).await.unwrap();
        s.save_vote(&vote(2, 1, false)).await.unwrap();
        drop(s);
        disk.crash();
        let mut s = open(&disk, AckMode::AfterFsync).await;
        assert_eq!(s.read_committed().await.unwrap(), Some(log_id(1, 1, n)));
        assert_eq!(s.read_vote().await.unwrap(), Some(vote(2, 1, false)));
        // close() saves the exact value.
        s.save_committed(Some(log_id(1, 1, n))).await.unwrap();
        append_cb(&mut s, vec![entry(2, n + 1)])
            .await
            .await
            .unwrap();
        s.save_committed(Some(log_id(2, 1, n + 1))).await.unwrap();
        s.clone().close().await.unwrap();
        assert!(s.save_vote(&vote(3, 1, false)).await.is_err(), "closed");
        drop(s);
        disk.crash();
        let mut s = open(&disk, AckMode::AfterFsync).await;
        assert_eq!(s.read_committed().await.unwrap(), Some(log_id(2, 1, n + 1)));
    });
}

#[test]
fn truncate_and_purge_survive_a_crash_and_indexes_continue() {
    raft_support::executor().run(async {
        let disk = MemDisk::new();
        let mut s = open(&disk, AckMode::AfterFsync).await;
        append_cb(&mut s, (0..=20).map(|i| entry(1, i)).collect())
            .await
            .await
            .unwrap();
        s.truncate_after(Some(log_id(1, 1, 15))).await.unwrap();
        // A hole or a rewrite is refused.
        let (tx, _rx) = TypeConfig::oneshot();
        assert!(
            s.append(vec![entry(2, 18)], IOFlushed::signal(tx))
                .await
                .is_err()
        );
        drop(s);
        disk.crash();
        let mut s = open(&disk, AckMode::AfterFsync).await;
        assert_eq!(
            s.get_log_state().await.unwrap().last_log_id,
            Some(log_id(1, 1, 15))
        );
        append_cb(&mut s, (16..=30).map(|i| entry(2, i)).collect())
            .await
            .await
            .unwrap();
        s.purge(log_id(1, 1, 10)).await.unwrap();
        drop(s);
        disk.crash();
        let mut s = open(&disk, AckMode::AfterFsync).await;
        let state = s.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(log_id(1, 1, 10)));
        assert_eq!(state.last_log_id, Some(log_id(2, 1, 30)));
        let got = all_entries(&mut s).await;
        let want: Vec<Entry> = (11..=15)
            .map(|i| entry(1, i))
            .chain((16..=30).map(|i| entry(2, i)))
            .collect();
        assert_eq!(got, want);
        // Purge past the end, then the log continues after the purged id.
        s.purge(log_id(2, 1, 40)).await.unwrap();
        let state = s.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id, Some(log_id(2, 1, 40)));
        drop(s);
        disk.crash();
        let mut s = open(&disk, AckMode::AfterFsync).await;
        assert_eq!(
            s.get_log_state().await.unwrap().last_log_id,
            Some(log_id(2, 1, 40))
        );
        append_cb(&mut s, vec![entry(3, 41)]).await.await.unwrap();
        assert_eq!(all_entries(&mut s).await, vec![entry(3, 41)]);
    });
}

#[test]
fn a_purge_interrupted_after_its_id_was_saved_is_finished_at_open() {
    raft_support::executor().run(async {
        let disk = MemDisk::new();
        let mut s = open(&disk, AckMode::AfterFsync).await;
        append_cb(&mut s, (1..=20).map(|i| entry(1, i)).collect())
            .await
            .await
            .unwrap();
        // Write 0 from now: the metadata (the purged id); write 1: the WAL's purge record,
        // torn before any byte lands.
        disk.plan_fault(1, Fault::Tear(0));
        assert!(s.purge(log_id(1, 1, 8)).await.is_err());
        drop(s);
        disk.crash();
        let mut s = open(&disk, AckMode::AfterFsync).await;
        let state = s.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(log_id(1, 1, 8)));
        assert_eq!(state.last_log_id, Some(log_id(1, 1, 20)));
        let got = all_entries(&mut s).await;
        assert_eq!(got.first().map(|e| e.log_id.index), Some(9));
        assert_eq!(got.len(), 12);
    });
}

#[test]
fn membership_entries_and_blank_entries_come_back_from_disk() {
    raft_support::executor().run(async {
        let disk = MemDisk::new();
        let mut s = open(&disk, AckMode::AfterFsync).await;
        let m = Membership::new(
            vec![BTreeSet::from([1, 2, 3])],
            BTreeMap::from([
                (1, raft_support::node(1)),
                (2, raft_support::node(2)),
                (3, raft_support::node(3)),
                (4, raft_support::node(4)),
            ]),
        )
        .unwrap();
        let entries = vec![
            Entry {
                log_id: log_id(1, 1, 1),
                payload: EntryPayload::Blank,
            },
            Entry {
                log_id: log_id(1, 1, 2),
                payload: EntryPayload::Membership(m),
            },
            entry(1, 3),
        ];
        // Enough bytes after them that they leave the 8 KiB tail cache: read from disk.
        let filler: Vec<Entry> = (4..40)
            .map(|i| Entry {
                log_id: log_id(1, 1, i),
                payload: EntryPayload::Normal(Request {
                    command: Bytes::from(vec![7u8; 1000]),
                }),
            })
            .collect();
        append_cb(&mut s, entries.clone()).await.await.unwrap();
        append_cb(&mut s, filler).await.await.unwrap();
        assert_eq!(s.try_get_log_entries(1..4).await.unwrap(), entries);
        s.clone().close().await.unwrap();
        drop(s);
        let mut s = open(&disk, AckMode::AfterFsync).await;
        assert_eq!(s.try_get_log_entries(1..4).await.unwrap(), entries);
    });
}

#[test]
fn replication_reads_are_capped_by_bytes() {
    raft_support::executor().run(async {
        let disk = MemDisk::new();
        let cfg = WalConfig {
            segment_size: 16 << 20,
            max_write: 8 << 20,
            max_payload: 1 << 20,
            cache_bytes: 64 << 20,
            max_read: 8 << 20,
        };
        let mut s = WalLogStore::open(disk.clone(), cfg, AckMode::AfterFsync)
            .await
            .unwrap()
            .0;
        let big = 512 << 10;
        let n = (2 * MAX_REPLICATION_READ_BYTES / big) as u64;
        for i in 1..=n {
            let e = Entry {
                log_id: log_id(1, 1, i),
                payload: EntryPayload::Normal(Request {
                    command: Bytes::from(vec![i as u8; big]),
                }),
            };
            append_cb(&mut s, vec![e]).await.await.unwrap();
        }
        let mut r = s.get_log_reader().await;
        let got = r.limited_get_log_entries(1, n + 1).await.unwrap();
        let bytes: usize = got
            .iter()
            .map(|e| match &e.payload {
                EntryPayload::Normal(r) => r.command.len(),
                _ => 0,
            })
            .sum();
        assert!(!got.is_empty() && (got.len() as u64) < n, "{}", got.len());
        assert!(bytes >= MAX_REPLICATION_READ_BYTES - big);
        assert!(bytes <= MAX_REPLICATION_READ_BYTES + big);
        let ids: Vec<u64> = got.iter().map(|e| e.log_id.index).collect();
        assert_eq!(ids, (1..=got.len() as u64).collect::<Vec<_>>());
        // The apply path streams the whole range, in order, chunk by chunk.
        let streamed: Vec<u64> = r
            .entries_stream(1..=n)
            .await
            .map(|e| e.unwrap().log_id.index)
            .collect()
            .await;
        assert_eq!(streamed, (1..=n).collect::<Vec<_>>());
        let streamed: Vec<u64> = r
            .entries_stream(n - 1..)
            .await
            .map(|e| e.unwrap().log_id.index)
            .collect()
            .await;
        assert_eq!(streamed, vec![n - 1, n]);
        // A short range is returned whole.
        assert_eq!(r.limited_get_log_entries(3, 5).await.unwrap().len(), 2);
        assert!(r.limited_get_log_entries(5, 5).await.unwrap().is_empty());
    });
}

#[test]
fn a_saved_vote_implies_every_earlier_append_is_durable() {
    raft_support::executor().run(async {
        let disk = MemDisk::new();
        let mut s = open(&disk, AckMode::AfterFsync).await;
        // Submitted, not yet flushed; then a vote (a newer IO for openraft's watermark).
        let flushed = append_cb(&mut s, (1..=5).map(|i| entry(1, i)).collect()).await;
        s.save_vote(&vote(2, 3, false)).await.unwrap();
        drop(flushed);
        drop(s);
        disk.crash();
        let mut s = open(&disk, AckMode::AfterFsync).await;
        assert_eq!(s.read_vote().await.unwrap(), Some(vote(2, 3, false)));
        assert_eq!(all_entries(&mut s).await.len(), 5);
    });
}

#[test]
fn undecodable_metadata_or_a_misplaced_entry_is_refused_at_open() {
    raft_support::executor().run(async {
        // Metadata this build cannot read (another version): an error, never a default.
        let disk = MemDisk::new();
        let (wal, _) = shoal_wal::Wal::open(disk.clone(), WalConfig::small_for_tests())
            .await
            .unwrap();
        wal.save_meta(Bytes::from_static(&[9, 0])).await.unwrap();
        wal.close().await.unwrap();
        let r = WalLogStore::open(
            disk.clone(),
            WalConfig::small_for_tests(),
            AckMode::AfterFsync,
        )
        .await;
        assert!(r.is_err());

        // A WAL record whose entry names another index (or is not an entry at all).
        for payload in [
            {
                let mut b = Vec::new();
                shoal::raft::log_codec::encode_entry(&entry(1, 7), &mut b).unwrap();
                Bytes::from(b)
            },
            Bytes::from_static(b"not an entry"),
        ] {
            let disk = MemDisk::new();
            let (wal, _) = shoal_wal::Wal::open(disk.clone(), WalConfig::small_for_tests())
                .await
                .unwrap();
            wal.append([(3, payload)]).unwrap().await.unwrap();
            wal.close().await.unwrap();
            let r = WalLogStore::open(
                disk.clone(),
                WalConfig::small_for_tests(),
                AckMode::AfterFsync,
            )
            .await;
            assert!(r.is_err());
        }
    });
}
