//! A running node facing hostile or broken clients: malformed frames, an oversized
//! length, a frame that never finishes, abrupt disconnects with requests in flight, many
//! half-sent large frames. The node answers errors where it can, closes only the offending
//! connection, keeps serving everyone else, and its memory stays bounded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod node_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use node_support::NodeProcess;
use shoal_client::KvClient;
use shoal_proto::{
    Frame, FrameDecoder, HEADER_LEN, Header, Hello, PROTOCOL_VERSION, Put, Request, Response, Role,
    encode_request,
};

const IO_TIMEOUT: Duration = Duration::from_secs(10);

fn connect(node: &NodeProcess) -> TcpStream {
    let s = TcpStream::connect(node.client_addr).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Reads frames until one decodes or the peer closes; `None` on close.
fn read_frame(s: &mut TcpStream, dec: &mut FrameDecoder, buf: &mut BytesMut) -> Option<Response> {
    loop {
        if let Some(frame) = dec.decode(buf).expect("the node sends valid frames") {
            match frame {
                Frame::Response(r) => return Some(r.response),
                other => panic!("unexpected frame {other:?}"),
            }
        }
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
            Err(e) => panic!("read: {e}"),
        }
    }
}

fn send(s: &mut TcpStream, id: u64, req: &Request) {
    let mut b = BytesMut::new();
    encode_request(&mut b, id, req).unwrap();
    s.write_all(&b).unwrap();
}

fn hello(s: &mut TcpStream) -> (FrameDecoder, BytesMut) {
    let mut dec = FrameDecoder::new(Role::Client);
    let mut buf = BytesMut::new();
    send(s, 1, &Request::Hello(Hello::default()));
    match read_frame(s, &mut dec, &mut buf) {
        Some(Response::Hello(_)) => {}
        other => panic!("handshake: {other:?}"),
    }
    (dec, buf)
}

/// Reads until EOF, returning the error responses seen (bounded by the read timeout).
fn errors_then_close(s: &mut TcpStream, dec: &mut FrameDecoder, buf: &mut BytesMut) -> usize {
    let mut errors = 0;
    while let Some(r) = read_frame(s, dec, buf) {
        assert!(matches!(r, Response::Error(_)), "{r:?}");
        errors += 1;
    }
    errors
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn hostile_connections_are_closed_alone_and_memory_stays_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let mut node = NodeProcess::start(&tmp.path().join("data"), 2, &[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = rt.block_on(node.client());
    rt.block_on(client.put(b"canary", b"alive")).unwrap();

    // 1. Garbage instead of a header: an error frame (where one can be framed), then close.
    let mut s = connect(&node);
    s.write_all(&[0xEE; 64]).unwrap();
    let mut dec = FrameDecoder::new(Role::Client);
    let mut buf = BytesMut::new();
    assert!(errors_then_close(&mut s, &mut dec, &mut buf) <= 1);

    // 2. A header announcing a body far above the frame limit: error frame, then close.
    let mut s = connect(&node);
    let (mut dec, mut buf) = hello(&mut s);
    let h = Header {
        version: PROTOCOL_VERSION,
        opcode: Request::Ping.opcode().as_u8(),
        flags: 0,
        status: 0,
        request_id: 7,
        body_len: u32::MAX,
    };
    s.write_all(&h.to_bytes()).unwrap();
    assert_eq!(errors_then_close(&mut s, &mut dec, &mut buf), 1);

    // 3. A well-framed but invalid body: an error answer, and the connection stays usable.
    let mut s = connect(&node);
    let (mut dec, mut buf) = hello(&mut s);
    let h = Header {
        version: PROTOCOL_VERSION,
        opcode: Request::Ping.opcode().as_u8(),
        flags: 0,
        status: 0,
        request_id: 8,
        body_len: 3,
    };
    s.write_all(&h.to_bytes()).unwrap();
    s.write_all(&[1, 2, 3]).unwrap();
    assert!(matches!(
        read_frame(&mut s, &mut dec, &mut buf),
        Some(Response::Error(_))
    ));
    send(&mut s, 9, &Request::Ping);
    assert_eq!(read_frame(&mut s, &mut dec, &mut buf), Some(Response::Pong));

    // 4. Abrupt disconnects with pipelined writes in flight, many times.
    for round in 0..20 {
        let mut s = connect(&node);
        let _ = hello(&mut s);
        for i in 0..50u64 {
            let put = Request::Put(Put {
                shard: None,
                key: Bytes::from(format!("abrupt-{round}-{i}")),
                value: Bytes::from_static(b"v"),
            });
            send(&mut s, 100 + i, &put);
        }
        drop(s);
    }

    // 5. Many connections each announcing a large frame and sending only part of it: the
    //    node must not reserve the announced sizes.
    let before = rss_kib(node.process.pid());
    let mut hanging = Vec::new();
    for i in 0..200u64 {
        let mut s = connect(&node);
        let _ = hello(&mut s);
        let h = Header {
            version: PROTOCOL_VERSION,
            opcode: Request::Ping.opcode().as_u8(),
            flags: 0,
            status: 0,
            request_id: 1000 + i,
            body_len: (shoal_proto::limits::MAX_FRAME_LEN - HEADER_LEN) as u32,
        };
        s.write_all(&h.to_bytes()).unwrap();
        s.write_all(&[0u8; 1024]).unwrap();
        hanging.push(s);
    }
    // Everyone else is still served while those connections hang.
    rt.block_on(async {
        assert_eq!(
            client.get(b"canary").await.unwrap(),
            Some(Bytes::from("alive"))
        );
        client.put(b"after", b"hostility").await.unwrap();
        assert_eq!(
            client.get(b"after").await.unwrap(),
            Some(Bytes::from("hostility"))
        );
    });
    let after = rss_kib(node.process.pid());
    let growth_mib = after.saturating_sub(before) / 1024;
    eprintln!("RSS {before} KiB -> {after} KiB with 200 half-sent 8 MiB frames");
    // 200 announced frames of 8 MiB would be 1.6 GiB if reserved up front.
    assert!(growth_mib < 256, "RSS grew by {growth_mib} MiB");
    drop(hanging);

    assert!(
        node.process.try_status().unwrap().is_none(),
        "the node is still running"
    );
    node.process.kill().unwrap();
}
