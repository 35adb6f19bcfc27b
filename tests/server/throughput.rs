//! Figures, not assertions: pipelined gets through one connection, served by the shard
//! that owns the keys and forwarded over the mesh. Run with
//! `cargo test --release -p shoal --test server -- --ignored --nocapture throughput`.
//!
//! Measured on the 2-core dev machine (release, fake in-memory service, client in the same
//! process): about 1.4 M gets/s when the connection's shard owns the keys, about 128 k/s
//! when every get is forwarded to the other shard (one mpsc send, one oneshot answer and a
//! cross-thread wake-up per request): a client should connect to the owning shard's port.

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use shoal_proto::{Get, Put, ReadConsistency, Request, Response, encode_request};

use crate::support::{Client, Node, keys_on};

const DEPTH: usize = 256;
const ROUNDS: usize = 400;

fn run(c: &mut Client, keys: &[Bytes], stated: Option<u32>) -> f64 {
    let start = Instant::now();
    let mut out = BytesMut::new();
    for round in 0..ROUNDS {
        out.clear();
        for i in 0..DEPTH {
            let k = &keys[(round * DEPTH + i) % keys.len()];
            let g = Request::Get(Get {
                shard: stated,
                key: k.clone(),
                consistency: ReadConsistency::Lease,
            });
            encode_request(&mut out, i as u64, &g).unwrap();
        }
        c.send_raw(&out);
        for _ in 0..DEPTH {
            let (id, r) = c.recv();
            assert!(matches!(r, Response::Get(Some(_))), "{id}: {r:?}");
        }
    }
    (ROUNDS * DEPTH) as f64 / start.elapsed().as_secs_f64()
}

#[test]
#[ignore = "a benchmark: prints figures"]
fn throughput_of_pipelined_gets_local_and_forwarded() {
    let node = Node::start(2, |_| {});
    let mut c = node.client(0);
    let local = keys_on(0, 2, "tp:", 1000);
    let remote = keys_on(1, 2, "tp:", 1000);
    for k in local.iter().chain(&remote) {
        let p = Request::Put(Put {
            shard: None,
            key: k.clone(),
            value: Bytes::from(vec![1u8; 100]),
        });
        assert_eq!(c.call(p), Response::Put);
    }
    let local_ops = run(&mut c, &local, Some(0));
    let forwarded_ops = run(&mut c, &remote, Some(1));
    println!(
        "server pipelined gets (depth {DEPTH}, 100 B values, one connection): \
         owning shard {local_ops:.0}/s, forwarded over the mesh {forwarded_ops:.0}/s"
    );
    println!(
        "{{\"bench\":\"server_pipelined_gets\",\"depth\":{DEPTH},\"local_ops_per_s\":{local_ops:.0},\"forwarded_ops_per_s\":{forwarded_ops:.0}}}"
    );
}
