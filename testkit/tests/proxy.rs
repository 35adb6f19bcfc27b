//! The proxy's faults do what they say, on a real echo server.

#![allow(clippy::unwrap_used)] // a test fails loudly on any unexpected error

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use shoal_testkit::ports::localhost;
use shoal_testkit::proxy::{Fault, Faults, Proxy};

/// An echo server on a free port, served by a thread per connection.
fn echo_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind(localhost(0)).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn connect(proxy: &Proxy) -> TcpStream {
    let s = TcpStream::connect(proxy.addrs()[0]).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

fn round_trip(s: &mut TcpStream, msg: &[u8]) -> std::io::Result<Vec<u8>> {
    s.write_all(msg)?;
    let mut got = vec![0u8; msg.len()];
    s.read_exact(&mut got)?;
    Ok(got)
}

#[test]
fn pass_forwards_both_ways() {
    let proxy = Proxy::start(&[(localhost(0), echo_server())]).unwrap();
    let mut s = connect(&proxy);
    assert_eq!(round_trip(&mut s, b"hello").unwrap(), b"hello");
}

#[test]
fn delay_slows_each_round_trip() {
    let proxy = Proxy::start(&[(localhost(0), echo_server())]).unwrap();
    let mut s = connect(&proxy);
    round_trip(&mut s, b"warm").unwrap();
    proxy.set_faults(Faults {
        to_upstream: Fault::Delay(Duration::from_millis(50)),
        to_client: Fault::Pass,
    });
    let start = Instant::now();
    assert_eq!(round_trip(&mut s, b"slow").unwrap(), b"slow");
    assert!(
        start.elapsed() >= Duration::from_millis(50),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn hold_stalls_without_loss_and_heal_delivers() {
    let proxy = Proxy::start(&[(localhost(0), echo_server())]).unwrap();
    let mut s = connect(&proxy);
    round_trip(&mut s, b"before").unwrap();
    proxy.set(Fault::Hold);
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    s.write_all(b"held").unwrap();
    let mut buf = [0u8; 4];
    let err = s.read_exact(&mut buf).unwrap_err();
    assert!(matches!(
        err.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    ));
    proxy.heal();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"held");
}

#[test]
fn cut_resets_live_links_and_refuses_new_ones_until_healed() {
    let proxy = Proxy::start(&[(localhost(0), echo_server())]).unwrap();
    let mut s = connect(&proxy);
    round_trip(&mut s, b"up").unwrap();
    proxy.set(Fault::Cut);
    // The live link dies without any traffic being needed to notice the cut.
    let mut buf = [0u8; 1];
    assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)));
    let mut fresh = connect(&proxy);
    assert!(
        round_trip(&mut fresh, b"x").is_err(),
        "a new link must be refused while cut"
    );
    proxy.heal();
    let mut healed = connect(&proxy);
    assert_eq!(round_trip(&mut healed, b"back").unwrap(), b"back");
}

#[test]
fn one_proxy_covers_a_block_of_routes() {
    let (a, b) = (echo_server(), echo_server());
    let proxy = Proxy::start(&[(localhost(0), a), (localhost(0), b)]).unwrap();
    let mut open = Vec::new();
    for addr in proxy.addrs() {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(round_trip(&mut s, b"hi").unwrap(), b"hi");
        open.push(s);
    }
    // Counted before the first byte is forwarded, so both are counted by now.
    assert_eq!(proxy.live_connections(), 2);
}

#[test]
fn jitter_delays_each_chunk_within_its_range_and_keeps_order() {
    let proxy = Proxy::start(&[(localhost(0), echo_server())]).unwrap();
    let mut s = connect(&proxy);
    round_trip(&mut s, b"warm").unwrap();
    proxy.set_faults(Faults {
        to_upstream: Fault::Jitter {
            min: Duration::from_millis(20),
            max: Duration::from_millis(40),
        },
        to_client: Fault::Pass,
    });
    for i in 0..5u8 {
        let start = Instant::now();
        let msg = [b'a' + i; 8];
        assert_eq!(round_trip(&mut s, &msg).unwrap(), msg);
        assert!(start.elapsed() >= Duration::from_millis(20));
    }
}

#[test]
fn lossy_resets_connections_at_the_given_rate() {
    let proxy = Proxy::start(&[(localhost(0), echo_server())]).unwrap();
    // Every chunk lost: the first message resets its connection.
    proxy.set(Fault::Lossy { per_mille: 1000 });
    let mut s = connect(&proxy);
    assert!(round_trip(&mut s, b"gone").is_err());
    // None lost: messages flow again on a new connection.
    proxy.set(Fault::Lossy { per_mille: 0 });
    let mut s = connect(&proxy);
    for _ in 0..20 {
        assert_eq!(round_trip(&mut s, b"kept").unwrap(), b"kept");
    }
}
