//! `SimSnapshotFs`, the simulated snapshot directory, keeps the POSIX contract the
//! production snapshot store relies on: data survives a crash only after `fdatasync`,
//! names only after `sync_dir`; and the production `SnapshotStore` recovers from what a
//! crash mid-persist leaves (an unfinished `.tmp` is deleted, the previous snapshot stays).
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use openraft::impls::leader_id_adv::LeaderId;
use openraft_rt::AsyncRuntime;
use shoal::raft::SnapshotFile;
use shoal::raft::SnapshotFs;
use shoal::raft::snapshot_store::SnapshotStore;
use shoal::raft::types::LogId;
use shoal::raft::types::SnapshotMeta;
use shoal::raft::types::StoredMembership;
use shoal::state::State;
use shoal_sim::runtime::SimRuntime;
use shoal_sim::runtime::kill_node;
use shoal_sim::runtime::spawn_tagged;
use shoal_sim::storage::snapshot_fs::SimSnapshotFs;

async fn write_file(fs: &SimSnapshotFs, name: &str, data: &[u8], sync: bool) {
    let f = fs.create(name).await.unwrap();
    f.write_at(data.to_vec(), 0).await.unwrap();
    if sync {
        f.fdatasync().await.unwrap();
    }
    f.close().await.unwrap();
}

async fn read_file(fs: &SimSnapshotFs, name: &str) -> Option<Vec<u8>> {
    let f = fs.open(name).await.ok()?;
    Some(f.read_at(0, 1 << 20).await.unwrap())
}

#[test]
fn names_and_data_survive_a_crash_only_once_synced() {
    for seed in 0..20 {
        let mut rt = SimRuntime::with_seed(seed, false);
        rt.block_on(async {
            let fs = SimSnapshotFs::new(1);
            write_file(&fs, "a", b"durable", true).await;
            fs.sync_dir().await.unwrap();
            // Data synced, name never synced: gone after a crash.
            write_file(&fs, "b", b"synced data", true).await;
            // Name synced, data never synced: the name survives with a prefix of the data.
            write_file(&fs, "c", b"unsynced data", false).await;
            fs.sync_dir().await.unwrap();
            fs.rename("b", "b2").await.unwrap();
            fs.remove("a").await.unwrap();
            let stale = fs.open("c").await.unwrap();
            fs.crash();
            assert!(stale.read_at(0, 10).await.is_err(), "old handles fail");
            let mut names = fs.list().await.unwrap();
            names.sort();
            assert_eq!(names, vec!["a", "b", "c"], "only durable names survive");
            assert_eq!(read_file(&fs, "a").await.unwrap(), b"durable");
            assert_eq!(read_file(&fs, "b").await.unwrap(), b"synced data");
            let c = read_file(&fs, "c").await.unwrap();
            assert!(b"unsynced data".starts_with(&c), "torn prefix: {c:?}");
        });
    }
}

fn meta(index: u64) -> SnapshotMeta {
    SnapshotMeta {
        last_log_id: Some(LogId {
            leader_id: LeaderId {
                term: 1,
                node_id: 1,
            },
            index,
        }),
        last_membership: StoredMembership::default(),
    }
}

fn snapshot_bytes(index: u64) -> Bytes {
    let mut state = State::new();
    state
        .apply_empty(shoal::state::LogId {
            term: 1,
            node_id: 1,
            index,
        })
        .unwrap();
    let m = shoal::raft::snapshot_meta::encode_meta(&meta(index));
    Bytes::from(state.snapshot_to_vec(&m).unwrap())
}

#[test]
fn the_production_store_recovers_from_a_crash_mid_persist() {
    let mut leftovers = 0;
    for seed in 0..20 {
        let mut rt = SimRuntime::with_seed(seed, false);
        leftovers += rt.block_on(async move {
            let fs = SimSnapshotFs::new(1);
            let (store, loaded) = SnapshotStore::<_, SimRuntime>::open(fs.clone())
                .await
                .unwrap();
            assert!(loaded.is_none());
            assert!(store.persist(&meta(5), &snapshot_bytes(5)).await.unwrap());
            // A second persist as node 1's task, crashed after a seeded virtual delay
            // (fsyncs take 50 µs to 1 ms, sometimes up to 20 ms).
            drop(spawn_tagged(1, async move {
                store.persist(&meta(9), &snapshot_bytes(9)).await.unwrap();
            }));
            SimRuntime::sleep(std::time::Duration::from_micros(seed * 150)).await;
            kill_node(1);
            let tmp_left = fs.list().await.unwrap().iter().any(|n| n.ends_with(".tmp"));
            fs.crash();
            let (_store, loaded) = SnapshotStore::<_, SimRuntime>::open(fs.clone())
                .await
                .unwrap();
            let last = loaded.unwrap().meta.last_log_id.unwrap().index;
            assert!(last == 5 || last == 9, "restored {last}");
            let names = fs.list().await.unwrap();
            assert_eq!(names.len(), 1, "one snapshot file after open: {names:?}");
            u32::from(tmp_left)
        });
    }
    eprintln!("{leftovers} of 20 crashes happened with a .tmp file in the directory");
}
