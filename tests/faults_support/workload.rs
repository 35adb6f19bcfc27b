//! The clients of the fault suites: concurrent loops of put, put_with_ttl, delete, get and
//! get_multi on a small key space, every call recorded with `shoal_checker::Recorder`
//! (`Ok`/`Read` on success, `Failed` when the error says the request certainly was not
//! applied, `Unknown` otherwise), plus the harness's own recorded reads of every key.
//!
//! Invariants: each client id issues one call at a time (the checker's process model);
//! every written value is unique (`c<client>-<seq>`), so a read names the write it saw; a
//! write whose outcome is unknown is never resent (a resent put could be seen, overwritten
//! and seen again: three reads no single linearization point explains).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use shoal_checker::{Blob, Op, Outcome, Recorder};
use shoal_client::{KvClient, KvClientError, RemoteKvClient, RemoteOptions, RetryPolicy};

/// Options of the workload's clients: few attempts, short timeouts, so every call ends
/// (ok / failed / unknown) well within a fault window; NotLeader hints are followed.
pub fn client_options() -> RemoteOptions {
    RemoteOptions {
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_millis(1500),
        retry: RetryPolicy {
            max_attempts: 3,
            retry_uncertain_writes: false,
            ..RetryPolicy::default()
        },
        ..RemoteOptions::default()
    }
}

/// One attempt, no hint following: the call goes where the client's topology points.
pub fn one_shot_options(timeout: Duration) -> RemoteOptions {
    RemoteOptions {
        connect_timeout: Duration::from_millis(500),
        request_timeout: timeout,
        retry: RetryPolicy {
            max_attempts: 1,
            retry_uncertain_writes: false,
            ..RetryPolicy::default()
        },
        ..RemoteOptions::default()
    }
}

pub fn outcome_of_error(e: &KvClientError) -> Outcome {
    if e.certainly_not_applied() {
        Outcome::Failed
    } else {
        Outcome::Unknown
    }
}

fn blob(v: Option<Bytes>) -> Option<Blob> {
    v.map(Blob::from)
}

pub fn key_name(k: usize) -> String {
    format!("h{k}")
}

/// The running workload: its recorder and its client tasks.
pub struct Workload {
    pub rec: Arc<Recorder>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Workload {
    /// Spawns clients `0..clients` on `rt` (see [`client_loop`]); client `id` connects to
    /// `addrs` with `opts(id)`.
    pub fn start(
        rt: &tokio::runtime::Runtime,
        clients: u64,
        addrs: Vec<SocketAddr>,
        opts: impl Fn(u64) -> RemoteOptions,
        keys: usize,
        seed: u64,
    ) -> Workload {
        let rec = Arc::new(Recorder::new());
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..clients)
            .map(|id| {
                let (addrs, rec, stop) = (addrs.clone(), rec.clone(), stop.clone());
                rt.spawn(client_loop(id, addrs, opts(id), rec, stop, keys, seed))
            })
            .collect();
        Workload { rec, stop, tasks }
    }

    /// Stops the clients and waits for each to end its call (bounded: a call ends within
    /// its request timeout).
    pub fn stop(self, rt: &tokio::runtime::Runtime) {
        self.stop.store(true, Ordering::Relaxed);
        rt.block_on(async {
            for t in self.tasks {
                tokio::time::timeout(Duration::from_secs(10), t)
                    .await
                    .expect("clients stop")
                    .expect("a client task panicked");
            }
        });
    }
}

/// One client: random operations until `stop`, reconnecting (with `opts`, seeded with
/// `addrs`) after any failure.
#[allow(clippy::too_many_arguments)]
pub async fn client_loop(
    id: u64,
    addrs: Vec<SocketAddr>,
    opts: RemoteOptions,
    rec: Arc<Recorder>,
    stop: Arc<AtomicBool>,
    keys: usize,
    seed: u64,
) {
    let mut rng = SmallRng::seed_from_u64(seed.wrapping_add(id));
    let mut client: Option<RemoteKvClient> = None;
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let Some(c) = client.as_ref() else {
            match RemoteKvClient::connect(addrs.clone(), opts.clone()).await {
                Ok(c) => client = Some(c),
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
            continue;
        };
        seq += 1;
        let key = key_name(rng.random_range(0..keys));
        let value = format!("c{id}-{seq}");
        let roll = rng.random_range(0..100);
        let (t, r) = if roll < 30 {
            let t = rec.invoke(id, Op::put(key.as_str(), value.as_str()));
            (t, c.put(&key, &value).await.map(|()| Outcome::Ok))
        } else if roll < 40 {
            // Longer than `eps`, so the checker also requires the value to stay visible
            // until shortly before its expiry.
            let ttl = rng.random_range(3..=5u64);
            let t = rec.invoke(
                id,
                Op::put_with_ttl(key.as_str(), value.as_str(), ttl * 1_000_000_000),
            );
            let r = c.put_with_ttl(&key, &value, ttl).await;
            (t, r.map(|()| Outcome::Ok))
        } else if roll < 50 {
            let t = rec.invoke(id, Op::delete(key.as_str()));
            (t, c.delete(&key).await.map(|()| Outcome::Ok))
        } else if roll < 85 {
            let t = rec.invoke(id, Op::get(key.as_str()));
            (t, c.get(&key).await.map(|v| Outcome::Read(blob(v))))
        } else {
            let ks: Vec<String> = (0..3)
                .map(|_| key_name(rng.random_range(0..keys)))
                .collect();
            let t = rec.invoke(id, Op::get_multi(ks.iter().map(String::as_str)));
            let bs: Vec<Bytes> = ks.iter().map(|k| Bytes::from(k.clone())).collect();
            let r = c.get_multi(&bs).await;
            (
                t,
                r.map(|vs| Outcome::ReadMulti(vs.into_iter().map(blob).collect())),
            )
        };
        match r {
            Ok(o) => rec.complete(t, o),
            Err(e) => {
                rec.complete(t, outcome_of_error(&e));
                client = None;
            }
        }
        // Pacing: keeps each key's history short enough to check in seconds.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Recorded gets of every key by the harness (`client`), one at a time, through `c`.
/// Returns how many failed.
pub async fn read_all(rec: &Recorder, client: u64, c: &RemoteKvClient, keys: usize) -> usize {
    let mut failed = 0;
    for k in 0..keys {
        let key = key_name(k);
        let t = rec.invoke(client, Op::get(key.as_str()));
        match c.get(&key).await {
            Ok(v) => rec.complete(t, Outcome::Read(blob(v))),
            Err(e) => {
                failed += 1;
                rec.complete(t, outcome_of_error(&e));
            }
        }
    }
    failed
}

/// A recorded put of `value` to `key` by `client` through `c`; true if acknowledged.
pub async fn put_recorded(
    rec: &Recorder,
    client: u64,
    c: &RemoteKvClient,
    key: &str,
    value: &str,
) -> bool {
    let t = rec.invoke(client, Op::put(key, value));
    match c.put(key, value).await {
        Ok(()) => {
            rec.complete(t, Outcome::Ok);
            true
        }
        Err(e) => {
            rec.complete(t, outcome_of_error(&e));
            false
        }
    }
}

/// A recorded get of `key` by `client` through `c`; the value if it succeeded.
pub async fn get_recorded(
    rec: &Recorder,
    client: u64,
    c: &RemoteKvClient,
    key: &str,
) -> Option<Option<Bytes>> {
    let t = rec.invoke(client, Op::get(key));
    match c.get(key).await {
        Ok(v) => {
            rec.complete(t, Outcome::Read(v.clone().map(Blob::from)));
            Some(v)
        }
        Err(e) => {
            rec.complete(t, outcome_of_error(&e));
            None
        }
    }
}

/// The number of fault cycles: `$SHOAL_FAULT_CYCLES`, else `default`.
pub fn cycles_from_env(default: usize) -> usize {
    std::env::var("SHOAL_FAULT_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
