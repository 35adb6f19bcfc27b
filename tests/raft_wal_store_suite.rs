//! openraft's storage conformance suite (`openraft::testing::log::Suite`) against the
//! WAL-backed log store, once on the in-memory disk and once on real files (glommio,
//! O_DIRECT) in a temporary directory. Each test case gets a fresh store. Paired with the
//! test-only state machine, as in `tests/raft_mem_store_suite.rs`.
// Test binary: a failed unwrap is how a helper fails the test.
#![allow(clippy::unwrap_used)]

mod raft_support;

use openraft::StorageError;
use openraft::testing::log::StoreBuilder;
use openraft::testing::log::Suite;
use raft_support::mem_store::MemStateMachine;
use shoal::raft::TypeConfig;
use shoal::raft::log_store::AckMode;
use shoal::raft::log_store::WalLogStore;
use shoal_wal::GlommioDisk;
use shoal_wal::MemDisk;
use shoal_wal::SyncMode;
use shoal_wal::WalConfig;

struct MemDiskBuilder;

impl StoreBuilder<TypeConfig, WalLogStore<MemDisk>, MemStateMachine> for MemDiskBuilder {
    async fn build(
        &self,
    ) -> Result<((), WalLogStore<MemDisk>, MemStateMachine), StorageError<TypeConfig>> {
        let (store, _) = WalLogStore::open(
            MemDisk::new(),
            WalConfig::small_for_tests(),
            AckMode::AfterFsync,
        )
        .await
        .unwrap();
        Ok(((), store, MemStateMachine::default()))
    }
}

struct GlommioDiskBuilder;

impl StoreBuilder<TypeConfig, WalLogStore<GlommioDisk>, MemStateMachine, tempfile::TempDir>
    for GlommioDiskBuilder
{
    async fn build(
        &self,
    ) -> Result<
        (tempfile::TempDir, WalLogStore<GlommioDisk>, MemStateMachine),
        StorageError<TypeConfig>,
    > {
        let dir = tempfile::tempdir().unwrap();
        let disk = GlommioDisk::open(dir.path().join("wal"), SyncMode::DEFAULT)
            .await
            .unwrap();
        let (store, _) = WalLogStore::open(disk, WalConfig::small_for_tests(), AckMode::AfterFsync)
            .await
            .unwrap();
        Ok((dir, store, MemStateMachine::default()))
    }
}

#[test]
fn wal_store_on_mem_disk_passes_openraft_storage_suite() {
    raft_support::executor().run(async {
        Suite::test_all(MemDiskBuilder).await.unwrap();
    });
}

#[test]
fn wal_store_on_glommio_disk_passes_openraft_storage_suite() {
    raft_support::executor().run(async {
        Suite::test_all(GlommioDiskBuilder).await.unwrap();
    });
}
