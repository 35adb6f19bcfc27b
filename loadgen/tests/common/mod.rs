//! Test doubles for the engine's tests: an in-memory store, a slow target and a flaky one.
//! They live here, in test code only; loadgen itself never ships a fake system.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use loadgen::config::{KeyDist, LoadModel, Preset, RunConfig};
use loadgen::targets::{ErrorKind, OpError, Target};

/// A run configuration for tests: small, quiet, closed loop, stops after 1000 ops.
pub fn test_config() -> RunConfig {
    RunConfig {
        target: "test".to_string(),
        endpoints: Vec::new(),
        connections: 1,
        label: Some("in-test double".to_string()),
        preset: Some(Preset::A),
        mix: Preset::A.mix(),
        ttl_secs: 60,
        multi_get_keys: 10,
        keys: 1000,
        key_dist: KeyDist::ScrambledZipfian { theta: 0.99 },
        key_size: 16,
        value_size: 64,
        preload: false,
        preload_concurrency: 16,
        load: LoadModel::Closed,
        concurrency: 8,
        warmup: Duration::ZERO,
        duration: None,
        ops: Some(1000),
        threads: 2,
        connect_timeout: Duration::from_secs(1),
        op_timeout: Duration::from_secs(1),
        seed: 42,
        quiet: true,
        keep_window_histograms: true,
    }
}

/// Counts of operations a target executed.
#[derive(Debug, Default)]
pub struct Counts {
    pub put: AtomicU64,
    pub put_ttl: AtomicU64,
    pub get: AtomicU64,
    pub get_multi: AtomicU64,
    pub delete: AtomicU64,
}

impl Counts {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

const SHARDS: usize = 16;

type Shard = Mutex<HashMap<Vec<u8>, (Vec<u8>, Option<Instant>)>>;

/// A sharded in-memory map with TTLs.
#[derive(Debug)]
pub struct MemTarget {
    shards: Vec<Shard>,
    pub counts: Counts,
}

impl Default for MemTarget {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            counts: Counts::default(),
        }
    }
}

impl MemTarget {
    fn shard(&self, key: &[u8]) -> &Shard {
        let h = key
            .iter()
            .fold(0usize, |h, &b| h.wrapping_mul(31).wrapping_add(b as usize));
        &self.shards[h % SHARDS]
    }

    fn lookup(&self, key: &[u8]) -> bool {
        let map = self.shard(key).lock().unwrap();
        match map.get(key) {
            Some((_, Some(expiry))) => *expiry > Instant::now(),
            Some((_, None)) => true,
            None => false,
        }
    }

    /// Keys currently stored (expired or not).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap().len()).sum()
    }
}

impl Target for MemTarget {
    fn describe(&self) -> String {
        "in-memory test store".to_string()
    }

    async fn put(&self, key: &[u8], value: &[u8]) -> Result<(), OpError> {
        self.counts.put.fetch_add(1, Ordering::Relaxed);
        self.shard(key)
            .lock()
            .unwrap()
            .insert(key.to_vec(), (value.to_vec(), None));
        Ok(())
    }

    async fn put_with_ttl(&self, key: &[u8], value: &[u8], ttl: u64) -> Result<(), OpError> {
        self.counts.put_ttl.fetch_add(1, Ordering::Relaxed);
        let expiry = Instant::now() + Duration::from_secs(ttl);
        self.shard(key)
            .lock()
            .unwrap()
            .insert(key.to_vec(), (value.to_vec(), Some(expiry)));
        Ok(())
    }

    async fn get(&self, key: &[u8]) -> Result<bool, OpError> {
        self.counts.get.fetch_add(1, Ordering::Relaxed);
        Ok(self.lookup(key))
    }

    async fn get_multi(&self, keys: &[Bytes]) -> Result<usize, OpError> {
        self.counts.get_multi.fetch_add(1, Ordering::Relaxed);
        Ok(keys.iter().filter(|k| self.lookup(k)).count())
    }

    async fn delete(&self, key: &[u8]) -> Result<(), OpError> {
        self.counts.delete.fetch_add(1, Ordering::Relaxed);
        self.shard(key).lock().unwrap().remove(key);
        Ok(())
    }
}

/// Answers every operation after `delay` (a tokio sleep: never early).
#[derive(Debug)]
pub struct SlowTarget {
    pub delay: Duration,
}

impl SlowTarget {
    async fn wait(&self) {
        tokio::time::sleep(self.delay).await;
    }
}

impl Target for SlowTarget {
    fn describe(&self) -> String {
        format!("slow test target ({:?} per op)", self.delay)
    }
    async fn put(&self, _: &[u8], _: &[u8]) -> Result<(), OpError> {
        self.wait().await;
        Ok(())
    }
    async fn put_with_ttl(&self, _: &[u8], _: &[u8], _: u64) -> Result<(), OpError> {
        self.wait().await;
        Ok(())
    }
    async fn get(&self, _: &[u8]) -> Result<bool, OpError> {
        self.wait().await;
        Ok(true)
    }
    async fn get_multi(&self, keys: &[Bytes]) -> Result<usize, OpError> {
        self.wait().await;
        Ok(keys.len())
    }
    async fn delete(&self, _: &[u8]) -> Result<(), OpError> {
        self.wait().await;
        Ok(())
    }
}

/// Fails every `every`-th operation with a server error, otherwise behaves like `MemTarget`.
#[derive(Debug, Default)]
pub struct FlakyTarget {
    pub inner: MemTarget,
    pub every: u64,
    seen: AtomicU64,
}

impl FlakyTarget {
    pub fn new(every: u64) -> Self {
        Self {
            inner: MemTarget::default(),
            every,
            seen: AtomicU64::new(0),
        }
    }

    fn fail(&self) -> Result<(), OpError> {
        let n = self.seen.fetch_add(1, Ordering::Relaxed) + 1;
        if n % self.every == 0 {
            Err(OpError::new(
                ErrorKind::Server,
                format!("injected failure #{n}"),
            ))
        } else {
            Ok(())
        }
    }
}

impl Target for FlakyTarget {
    fn describe(&self) -> String {
        format!("flaky test store (every {}th op fails)", self.every)
    }
    async fn put(&self, k: &[u8], v: &[u8]) -> Result<(), OpError> {
        self.fail()?;
        self.inner.put(k, v).await
    }
    async fn put_with_ttl(&self, k: &[u8], v: &[u8], ttl: u64) -> Result<(), OpError> {
        self.fail()?;
        self.inner.put_with_ttl(k, v, ttl).await
    }
    async fn get(&self, k: &[u8]) -> Result<bool, OpError> {
        self.fail()?;
        self.inner.get(k).await
    }
    async fn get_multi(&self, keys: &[Bytes]) -> Result<usize, OpError> {
        self.fail()?;
        self.inner.get_multi(keys).await
    }
    async fn delete(&self, k: &[u8]) -> Result<(), OpError> {
        self.fail()?;
        self.inner.delete(k).await
    }
}
