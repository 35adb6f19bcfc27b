//! Client overhead figures against the in-test mock node (not a Shoal node: no Raft, no
//! fsync), next to the floor measured in the same run: a bare loopback TCP round trip of
//! a 16-byte frame. Prints figures; asserts nothing about speed.
//!
//! `cargo run --release -p shoal-client --example mock_roundtrip [seconds-per-case]`

#![allow(clippy::unwrap_used)]

#[path = "../tests/mock/mod.rs"]
mod mock;

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use shoal_client::{KvClient, RemoteKvClient, RemoteOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn report(name: &str, h: &Histogram<u64>, elapsed: Duration) {
    println!(
        "{name:<34} {:>9.0} ops/s  p50 {:>6.1} us  p99 {:>7.1} us",
        h.len() as f64 / elapsed.as_secs_f64(),
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
    );
}

async fn loopback_floor(secs: f64) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        s.set_nodelay(true).unwrap();
        let mut b = [0u8; 16];
        while s.read_exact(&mut b).await.is_ok() {
            if s.write_all(&b).await.is_err() {
                return;
            }
        }
    });
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let mut h = Histogram::<u64>::new(3).unwrap();
    let mut b = [0u8; 16];
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < secs {
        let t = Instant::now();
        s.write_all(&b).await.unwrap();
        s.read_exact(&mut b).await.unwrap();
        h.record(t.elapsed().as_nanos() as u64).unwrap();
    }
    report("loopback round trip (floor)", &h, start.elapsed());
}

async fn client_case(c: &RemoteKvClient, in_flight: usize, secs: f64, put: bool, conns: usize) {
    let value = vec![7u8; 100];
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..in_flight {
        let c = c.clone();
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new(3).unwrap();
            let key = format!("bench:{t}");
            c.put(&key, &value).await.unwrap();
            while start.elapsed().as_secs_f64() < secs {
                let t0 = Instant::now();
                if put {
                    c.put(&key, &value).await.unwrap();
                } else {
                    c.get(&key).await.unwrap();
                }
                h.record(t0.elapsed().as_nanos() as u64).unwrap();
            }
            h
        }));
    }
    let mut all = Histogram::<u64>::new(3).unwrap();
    for t in tasks {
        all.add(t.await.unwrap()).unwrap();
    }
    let op = if put { "put" } else { "get" };
    let name = format!("client {op}, {in_flight} in flight, {conns} conn");
    report(&name, &all, start.elapsed());
}

fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!("RemoteKvClient against the mock node (100-byte values), {secs} s per case");
        loopback_floor(secs).await;
        let m = Arc::new(mock::MockCluster::start(1, 1).await);
        for conns in [1, 2, 4] {
            let opts = RemoteOptions {
                connections_per_shard: conns,
                ..RemoteOptions::default()
            };
            let c = RemoteKvClient::connect(m.seeds(), opts).await.unwrap();
            let cases: &[(usize, bool)] = if conns == 1 {
                &[(1, false), (64, false), (1, true), (64, true)]
            } else {
                &[(64, false), (64, true)]
            };
            for &(in_flight, put) in cases {
                client_case(&c, in_flight, secs, put, conns).await;
            }
        }
    });
}
