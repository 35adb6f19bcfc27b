//! Throughput of the sans-IO path, printed as figures (no assertions): pipelined
//! requests decoded, parsed and planned, and replies encoded, per protocol version.
//! Run with `cargo bench -p shoal-resp --bench codec`. Compare figures as ratios within
//! one run: the machine is shared and noisy.

use std::hint::black_box;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use shoal_resp::{Action, Protocol, ReadOutcome, Reply, Session, encode_reply};

const REQUESTS: usize = 16 * 1024;
const ROUNDS: usize = 20;

fn multibulk(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Best-of-ROUNDS nanoseconds per request to take `REQUESTS` requests off one buffer.
fn bench_requests(name: &str, one: &[u8]) {
    let stream: Vec<u8> = one.repeat(REQUESTS);
    let mut best = f64::MAX;
    for _ in 0..ROUNDS {
        let mut session = Session::new(1);
        let mut buf = BytesMut::from(&stream[..]);
        let start = Instant::now();
        let mut n = 0;
        while let Some(step) = session
            .next(&mut buf, 1_700_000_000_000)
            .expect("valid input")
        {
            black_box(&step);
            n += 1;
        }
        let ns = start.elapsed().as_nanos() as f64 / n as f64;
        assert_eq!(n, REQUESTS);
        best = best.min(ns);
    }
    let mb_s = one.len() as f64 / best * 1e3;
    println!("decode+parse+plan {name:<28} {best:>8.1} ns/request {mb_s:>8.1} MB/s");
}

fn bench_replies(name: &str, reply: &Reply, protocol: Protocol) {
    let mut best = f64::MAX;
    let mut out = BytesMut::with_capacity(1 << 20);
    for _ in 0..ROUNDS {
        out.clear();
        let start = Instant::now();
        for _ in 0..REQUESTS {
            encode_reply(black_box(reply), protocol, &mut out);
        }
        best = best.min(start.elapsed().as_nanos() as f64 / REQUESTS as f64);
    }
    println!("encode {name:<39} {best:>8.1} ns/reply");
}

fn main() {
    let value = vec![b'v'; 100];
    bench_requests("GET key (RESP)", &multibulk(&[b"GET", b"key:000000000001"]));
    bench_requests(
        "SET key <100 B> (RESP)",
        &multibulk(&[b"SET", b"key:000000000001", &value]),
    );
    bench_requests(
        "SET key <100 B> NX PX 1000",
        &multibulk(&[b"SET", b"key:000000000001", &value, b"NX", b"PX", b"1000"]),
    );
    bench_requests("GET key (inline)", b"GET key:000000000001\r\n");

    // The reply path of a GET hit, as the node would build it.
    let mut session = Session::new(1);
    let step = session.plan_args(
        vec![Bytes::from_static(b"GET"), Bytes::from_static(b"k")],
        0,
    );
    let Action::Read(read) = step.action else {
        unreachable!("GET plans a read")
    };
    let hit = read.reply(ReadOutcome::Value(Some(Bytes::from(value))));
    for protocol in [Protocol::Resp2, Protocol::Resp3] {
        bench_replies(&format!("GET hit <100 B> {protocol:?}"), &hit, protocol);
        bench_replies(&format!("+OK {protocol:?}"), &Reply::Ok, protocol);
        bench_replies(&format!("null {protocol:?}"), &Reply::Null, protocol);
    }
}
