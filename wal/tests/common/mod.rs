//! Helpers shared by the integration tests.
#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.
#![allow(dead_code)]

use bytes::Bytes;
use shoal_wal::{MemDisk, RecoveryReport, Wal, WalConfig};
use std::future::Future;

/// Runs a future on a fresh glommio executor on this thread.
pub fn run<T, F: Future<Output = T>>(f: impl FnOnce() -> F) -> T {
    glommio::LocalExecutorBuilder::default()
        .make()
        .expect("executor")
        .run(f())
}

/// The payload the tests store at index `i` (length varies with `i`).
pub fn payload(i: u64, salt: u8) -> Bytes {
    let n = (i as usize * 37 + salt as usize) % 300;
    Bytes::from(
        (0..n)
            .map(|k| (k as u8) ^ (i as u8) ^ salt)
            .collect::<Vec<u8>>(),
    )
}

pub async fn open_mem(disk: &MemDisk) -> shoal_wal::Result<(Wal<MemDisk>, RecoveryReport)> {
    Wal::open(disk.clone(), WalConfig::small_for_tests()).await
}

/// Everything live in the WAL.
pub async fn contents<D: shoal_wal::Disk + Clone + 'static>(w: &Wal<D>) -> Vec<(u64, Bytes)> {
    match (w.first_index(), w.last_index()) {
        (Some(a), Some(b)) => w.read_range(a, b + 1).await.expect("read all"),
        _ => Vec::new(),
    }
}
