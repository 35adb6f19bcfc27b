//! Limits, timeouts, malformed input, disconnects and shutdown.

use std::net::{Shutdown, TcpStream};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use shoal::server::DrainReport;
use shoal_proto::{ErrorDetail, Get, LimitKind, Put, ReadConsistency, Request, Response};

use crate::support::{Client, GATED, Node, WAIT, config, keys_on, try_bind, wait_until};

fn put(key: &Bytes) -> Request {
    Request::Put(Put {
        shard: None,
        key: key.clone(),
        value: Bytes::from_static(b"v"),
    })
}

fn gated(name: &str) -> Bytes {
    Bytes::from([GATED, name.as_bytes()].concat())
}

fn header(opcode: u8, flags: u8, id: u64, body_len: u32) -> BytesMut {
    let mut b = BytesMut::new();
    b.put_u8(1);
    b.put_u8(opcode);
    b.put_u8(flags);
    b.put_u8(0);
    b.put_u64_le(id);
    b.put_u32_le(body_len);
    b
}

fn detail(r: (u64, Response)) -> (u64, ErrorDetail) {
    match r {
        (id, Response::Error(e)) => (id, e.detail),
        other => panic!("expected an error, got {other:?}"),
    }
}

const BUSY: ErrorDetail = ErrorDetail::Busy { retry_after_ms: 5 };

#[test]
fn a_full_connection_answers_busy_without_executing() {
    let node = Node::start(1, |c| c.max_in_flight_per_connection = 2);
    let mut c = node.client(0);
    c.send(1, &put(&gated("a")));
    c.send(2, &put(&gated("b")));
    node.knobs.wait_running(2);
    c.send(3, &put(&Bytes::from_static(b"c")));
    assert_eq!(detail(c.recv()), (3, BUSY));
    c.send(4, &Request::Ping);
    assert_eq!(c.recv(), (4, Response::Pong));
    node.knobs.open_gate();
    let mut ids = [c.recv().0, c.recv().0];
    ids.sort_unstable();
    assert_eq!(ids, [1, 2]);
    // Slots came back: the connection accepts requests again.
    assert_eq!(c.call(put(&Bytes::from_static(b"c"))), Response::Put);
    assert_eq!(node.knobs.executed.load(Ordering::SeqCst), 3);
}

#[test]
fn a_full_shard_answers_busy_to_every_connection_and_the_inbox() {
    let node = Node::start(2, |c| c.max_in_flight_per_shard = 2);
    let k0 = keys_on(0, 2, "full:", 1).remove(0);
    let mut c1 = node.client(0);
    c1.send(1, &put(&gated("a")));
    c1.send(2, &put(&gated("b")));
    // Shard 0 counts both whichever shard owns the keys.
    wait_until("both held requests admitted", || {
        node.knobs.running.load(Ordering::SeqCst) == 2
    });
    let mut c2 = node.client(0);
    assert_eq!(detail((0, c2.call(put(&k0)))).1, BUSY);
    let deadline = Instant::now() + WAIT;
    let local = futures::executor::block_on(node.mesh.call(0, put(&k0), deadline));
    assert_eq!(detail((0, local)).1, BUSY);
    node.knobs.open_gate();
    let mut ids = [c1.recv().0, c1.recv().0];
    ids.sort_unstable();
    assert_eq!(ids, [1, 2]);
    assert_eq!(c2.call(put(&k0)), Response::Put);
}

#[test]
fn a_request_past_its_timeout_is_answered_timeout() {
    let node = Node::start(2, |c| c.request_timeout = Duration::from_millis(200));
    let mut c = node.client(0);
    let held = gated("slow");
    assert_eq!(detail((0, c.call(put(&held)))).1, ErrorDetail::Timeout);
    // The connection goes on.
    assert_eq!(c.call(Request::Ping), Response::Pong);
}

#[test]
fn malformed_frames_are_answered_and_the_connection_survives() {
    let node = Node::start(1, |_| {});
    let mut c = node.client(0);
    let mut other = node.client(0);
    // Get with the invalid consistency value 3.
    let mut f = header(0x10, 3, 77, 9);
    f.put_u32_le(0);
    f.put_u32_le(1);
    f.put_u8(b'k');
    c.send_raw(&f);
    assert_eq!(detail(c.recv()), (77, ErrorDetail::InvalidRequest));
    // Unknown opcode with a body: skipped by its length.
    let mut f = header(0x7e, 0, 78, 3);
    f.put_slice(b"xyz");
    c.send_raw(&f);
    assert_eq!(detail(c.recv()), (78, ErrorDetail::InvalidRequest));
    // Trailing bytes after a Ping.
    let mut f = header(0x02, 0, 79, 1);
    f.put_u8(0);
    c.send_raw(&f);
    assert_eq!(detail(c.recv()), (79, ErrorDetail::InvalidRequest));
    // A key above the node's configured limit (below the protocol's).
    let long = Bytes::from(vec![b'k'; 2000]);
    match c.call(Request::Get(Get {
        shard: None,
        key: long,
        consistency: ReadConsistency::Linearizable,
    })) {
        Response::Error(e) => assert_eq!(
            e.detail,
            ErrorDetail::TooLarge {
                limit: LimitKind::Key,
                max: 1024,
                actual: 2000
            }
        ),
        r => panic!("{r:?}"),
    }
    assert_eq!(c.call(Request::Ping), Response::Pong);
    assert_eq!(other.call(Request::Ping), Response::Pong);
}

#[test]
fn an_oversized_length_is_answered_then_only_that_connection_closes() {
    let node = Node::start(1, |_| {});
    let mut bad = node.client(0);
    let mut good = node.client(0);
    bad.send_raw(&header(0x12, 0, 5, 64 * 1024 + 1));
    assert_eq!(
        detail(bad.recv()),
        (
            5,
            ErrorDetail::TooLarge {
                limit: LimitKind::Frame,
                max: 64 * 1024,
                actual: 64 * 1024 + 1
            }
        )
    );
    bad.expect_closed();
    // A bad header version: IncompatibleVersion, then closed.
    let mut v = node.client(0);
    let mut f = header(0x02, 0, 6, 0);
    f[0] = 9;
    v.send_raw(&f);
    assert_eq!(
        detail(v.recv()),
        (
            6,
            ErrorDetail::IncompatibleVersion {
                min_version: 1,
                max_version: 1
            }
        )
    );
    v.expect_closed();
    assert_eq!(good.call(Request::Ping), Response::Pong);
}

#[test]
fn unfinished_frames_and_silent_connections_are_closed_after_the_read_timeout() {
    let node = Node::start(1, |c| c.frame_read_timeout = Duration::from_millis(300));
    let mut good = node.client(0);
    // Half a header.
    let mut half = node.client(0);
    half.send_raw(&header(0x02, 0, 1, 0)[..8]);
    // A whole header, half its body.
    let mut body = node.client(0);
    let mut f = header(0x12, 0, 2, 100);
    f.put_slice(&[0u8; 50]);
    body.send_raw(&f);
    // Never says Hello.
    let mut silent = Client::raw(node.addrs[0]);
    for c in [&mut half, &mut body, &mut silent] {
        c.expect_closed();
    }
    // An idle connection with no partial frame is kept; it still works.
    assert_eq!(good.call(Request::Ping), Response::Pong);
}

#[test]
fn connections_over_the_limit_are_refused_with_busy() {
    let node = Node::start(1, |c| c.max_connections = 2);
    let a = node.client(0);
    let mut b = node.client(0);
    let mut refused = Client::raw(node.addrs[0]);
    assert_eq!(detail(refused.recv()), (0, BUSY));
    refused.expect_closed();
    drop(a);
    // The slot comes back once the server sees the close.
    wait_until("a connection slot to free up", || {
        let mut c = Client::raw(node.addrs[0]);
        c.send(0, &Request::Hello(Default::default()));
        matches!(c.recv_or_eof(), Some((0, Response::Hello(_))))
    });
    assert_eq!(b.call(Request::Ping), Response::Pong);
}

#[test]
fn an_abrupt_disconnect_cancels_nothing_else() {
    let mut node = Node::start(2, |_| {});
    let mut gone = node.client(0);
    gone.send(1, &put(&gated("x")));
    gone.send(2, &put(&gated("y")));
    gone.send(3, &put(&gated("z")));
    node.knobs.wait_running(3);
    gone.stream.shutdown(Shutdown::Both).unwrap();
    drop(gone);
    let mut c = node.client(0);
    let k = keys_on(1, 2, "after:", 1).remove(0);
    assert_eq!(c.call(put(&k)), Response::Put);
    node.knobs.open_gate();
    wait_until("the orphaned requests to finish", || {
        node.knobs.executed.load(Ordering::SeqCst) == 4
    });
    drop(c);
    node.signal_shutdown(0);
    node.signal_shutdown(1);
    assert_eq!(node.join(0), DrainReport::default());
    assert_eq!(node.join(1), DrainReport::default());
}

#[test]
fn graceful_shutdown_finishes_requests_in_flight_then_closes() {
    let mut node = Node::start(2, |_| {});
    let mut c = node.client(0);
    c.send(1, &put(&gated("drain")));
    node.knobs.wait_running(1);
    node.signal_shutdown(0);
    // The listener closes first: new connections are refused by the kernel.
    wait_until("shard 0 to stop accepting", || {
        TcpStream::connect(node.addrs[0]).is_err()
    });
    node.knobs.open_gate();
    assert_eq!(c.recv(), (1, Response::Put));
    c.expect_closed();
    assert_eq!(node.join(0), DrainReport::default());
    // Shard 1 still serves.
    assert_eq!(node.client(1).call(Request::Ping), Response::Pong);
}

#[test]
fn a_drain_past_its_timeout_abandons_what_is_left() {
    let mut node = Node::start(1, |c| c.drain_timeout = Duration::from_millis(200));
    let mut c = node.client(0);
    c.send(1, &put(&gated("stuck")));
    node.knobs.wait_running(1);
    node.signal_shutdown(0);
    let report = node.join(0);
    assert_eq!(
        report,
        DrainReport {
            connections_aborted: 1,
            requests_abandoned: 1
        }
    );
    c.expect_closed();
}

#[test]
fn a_port_in_use_is_a_bind_error() {
    let node = Node::start(1, |_| {});
    let mut cfg = config(0, 1);
    cfg.listen = node.addrs[0];
    let err = try_bind(cfg).unwrap_err();
    assert!(err.contains("cannot listen"), "{err}");
    assert!(err.contains(&node.addrs[0].to_string()), "{err}");
}

/// Stores `n` keys of shard 0 with 32 KiB values, pipelined; returns the keys.
fn fill(c: &mut Client, n: usize) -> Vec<Bytes> {
    let keys = keys_on(0, 1, "big:", n);
    let value = Bytes::from(vec![7u8; 32 * 1024]);
    let mut out = BytesMut::new();
    for (i, k) in keys.iter().enumerate() {
        let p = Request::Put(Put {
            shard: Some(0),
            key: k.clone(),
            value: value.clone(),
        });
        shoal_proto::encode_request(&mut out, 1000 + i as u64, &p).unwrap();
    }
    c.send_raw(&out);
    for _ in 0..n {
        assert_eq!(c.recv().1, Response::Put);
    }
    keys
}

fn get_multi(keys: &[Bytes]) -> Request {
    Request::GetMulti(shoal_proto::GetMulti {
        shard: None,
        keys: keys.to_vec(),
        consistency: ReadConsistency::Stale,
    })
}

#[test]
fn an_answer_too_large_for_a_frame_is_answered_too_large() {
    let node = Node::start(1, |_| {});
    let mut c = node.client(0);
    let keys = fill(&mut c, 300);
    match c.call(get_multi(&keys)) {
        Response::Error(e) => assert!(
            matches!(
                e.detail,
                ErrorDetail::TooLarge {
                    limit: LimitKind::Response,
                    ..
                }
            ),
            "{e:?}"
        ),
        r => panic!("{:?}", r.opcode()),
    }
    assert!(matches!(c.call(get_multi(&keys[..10])), Response::GetMulti(v) if v.len() == 10));
}

#[test]
fn a_client_that_does_not_read_its_answers_is_disconnected() {
    let node = Node::start(1, |c| {
        c.write_timeout = Duration::from_millis(300);
        c.max_connections = 1;
    });
    let mut c = node.client(0);
    let keys = fill(&mut c, 200);
    // 20 answers of 6.4 MiB each, far more than the socket buffers hold.
    let mut out = BytesMut::new();
    for id in 0..20 {
        shoal_proto::encode_request(&mut out, id, &get_multi(&keys)).unwrap();
    }
    c.send_raw(&out);
    // `c` holds the only connection slot: a handshake succeeds once the server has given
    // up on `c` and closed it.
    wait_until("the server to give up on the connection", || {
        let mut probe = Client::raw(node.addrs[0]);
        probe.send(0, &Request::Hello(Default::default()));
        matches!(probe.recv_or_eof(), Some((0, Response::Hello(_))))
    });
    let mut answers = 0;
    while let Some((_, r)) = c.recv_or_eof() {
        assert!(matches!(r, Response::GetMulti(_)));
        answers += 1;
    }
    assert!(
        answers < 20,
        "all {answers} answers arrived: the connection was not cut"
    );
}
