#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Differential check against a real `redis-server` (Debian package `redis-server`,
//! 7.0.x): the same requests, byte for byte the same replies, wherever Shoal means to
//! behave like Redis. Ignored by default because it needs the binary; run it with
//!
//!     cargo test -p shoal-resp --test redis_differential -- --ignored
//!
//! It starts `redis-server` on a free 127.0.0.1 port without persistence, waits for it
//! with a bounded loop, and kills it by pid at the end.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use redis_protocol::resp2::types::BytesFrame;
use shoal_resp::command_table::COMMANDS;
use shoal_resp::{Action, Protocol, Session, encode_reply};

struct Redis {
    child: Child,
    port: u16,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_redis() -> Redis {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Process::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "no", "--daemonize", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server must be on PATH for this test (apt-get install redis-server)");
    let redis = Redis { child, port };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "redis-server did not start within 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    redis
}

/// One connection to Redis, reading exactly one reply frame per request.
struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    resp3: bool,
}

impl Conn {
    fn new(redis: &Redis) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", redis.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        Conn {
            stream,
            buf: BytesMut::new(),
            resp3: false,
        }
    }

    /// Sends raw bytes and returns the raw bytes of the next reply frame.
    fn raw(&mut self, request: &[u8]) -> Vec<u8> {
        self.stream.write_all(request).unwrap();
        loop {
            let bytes = Bytes::copy_from_slice(&self.buf);
            let complete = if self.resp3 {
                redis_protocol::resp3::decode::complete::decode_bytes(&bytes)
                    .expect("redis sent a malformed reply")
                    .map(|(_, used)| used)
            } else {
                redis_protocol::resp2::decode::decode_bytes(&bytes)
                    .expect("redis sent a malformed reply")
                    .map(|(_, used)| used)
            };
            if let Some(used) = complete {
                return self.buf.split_to(used).to_vec();
            }
            let mut chunk = [0u8; 65536];
            let n = self
                .stream
                .read(&mut chunk)
                .expect("reply from redis-server");
            assert!(n > 0, "redis-server closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn command(&mut self, args: &[&[u8]]) -> Vec<u8> {
        let mut request = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            request.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            request.extend_from_slice(a);
            request.extend_from_slice(b"\r\n");
        }
        self.raw(&request)
    }
}

/// Shoal's reply bytes for a connection-local or failing command.
fn shoal_reply(session: &mut Session, args: &[&[u8]]) -> Option<Vec<u8>> {
    let step = session.plan_args(args.iter().map(|a| Bytes::copy_from_slice(a)).collect(), 0);
    let reply = match step.action {
        Action::Reply(r) | Action::Close(r) => r,
        _ => return None,
    };
    let mut out = BytesMut::new();
    encode_reply(&reply, step.protocol, &mut out);
    Some(out.to_vec())
}

fn split(line: &str) -> Vec<&[u8]> {
    line.split(' ').map(str::as_bytes).collect()
}

#[test]
#[ignore = "needs redis-server on PATH"]
fn error_replies_match_redis() {
    let redis = start_redis();
    // Every request here fails in both servers (or is answered locally by Shoal the same
    // way), before touching any key.
    let lines = [
        "foo",
        "foo a b",
        "get",
        "get a b",
        "set k",
        "set k v nx xx",
        "set k v xx nx",
        "set k v keepttl ex 10",
        "set k v ex 10 keepttl",
        "set k v ex 10 px 100",
        "set k v exat 1 pxat 1",
        "set k v ex",
        "set k v foo",
        "set k v ex abc",
        "set k v ex 0",
        "set k v ex -1",
        "set k v px 0",
        "set k v exat 0",
        "set k v ex 9223372036854775807",
        "setex k 0 v",
        "setex k abc v",
        "psetex k 0 v",
        "psetex k -5 v",
        "expire k 10 foo",
        "expire k abc foo",
        "expire k abc",
        "expire k 10 nx xx",
        "expire k 10 nx lt",
        "expire k 10 gt lt",
        "expire k 9223372036854775807",
        "expire k -9223372036854775807",
        "pexpire k 9223372036854775807",
        "expire k",
        "ping a b",
        "echo",
        "select abc",
        "select 99999999999",
        "hello 4",
        "hello 1",
        "hello abc",
        "hello 2 foo",
        "hello 2 auth u",
        "hello 2 setname",
        "hello 2 auth bob pw",
        "client foo",
        "client",
        "client setname",
        "client setname a b",
        "config",
        "config foo",
        "config get",
        "command foo",
        "command count x",
        "dbsize x",
        "ttl",
        "pttl",
        "mget",
        "del",
        "exists",
        "persist",
        "select",
        "ping",
        "ping hello",
        "echo hi",
        "select 0",
        "config get save",
        "config get nosuch",
        "command info nosuch",
        "command docs nosuch",
        "quit",
    ];
    let mut session = Session::new(1);
    for line in lines {
        let args = split(line);
        let ours = shoal_reply(&mut session, &args).unwrap_or_else(|| panic!("{line:?} not local"));
        // A fresh connection each time: QUIT and protocol errors close it.
        let theirs = Conn::new(&redis).command(&args);
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs),
            "reply to {line:?}"
        );
    }
}

#[test]
#[ignore = "needs redis-server on PATH"]
fn protocol_errors_match_redis() {
    let redis = start_redis();
    let cases: [&[u8]; 7] = [
        b"*1\r\n:1\r\n",
        b"*abc\r\n",
        b"*1\r\n$-1\r\n",
        b"*1\r\n$abc\r\n",
        b"GET \"abc\r\n",
        b"*1\r\n*1\r\n$4\r\nPING\r\n",
        b"*0\r\n*-1\r\n\r\n  \nPING\r\n",
    ];
    for input in cases {
        let theirs = Conn::new(&redis).raw(input);
        let mut session = Session::new(1);
        let mut buf = BytesMut::from(input);
        let mut ours = BytesMut::new();
        match session.next(&mut buf, 0) {
            Err(e) => encode_reply(&e.reply(), Protocol::Resp2, &mut ours),
            Ok(Some(step)) => match step.action {
                Action::Reply(r) => encode_reply(&r, step.protocol, &mut ours),
                other => panic!("{other:?}"),
            },
            Ok(None) => panic!("no reply for {input:?}"),
        }
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs),
            "reply to {:?}",
            String::from_utf8_lossy(input)
        );
    }
}

fn array(frame: &BytesFrame) -> &[BytesFrame] {
    match frame {
        BytesFrame::Array(items) => items,
        other => panic!("expected an array, got {other:?}"),
    }
}

fn decode2(bytes: Vec<u8>) -> BytesFrame {
    redis_protocol::resp2::decode::decode_bytes(&Bytes::from(bytes))
        .unwrap()
        .unwrap()
        .0
}

/// Name, arity, flags, key positions and ACL categories of every command Shoal supports
/// (and of their subcommands) equal Redis's, except CLIENT SETINFO (Redis 7.2).
#[test]
#[ignore = "needs redis-server on PATH"]
fn command_table_matches_redis() {
    let redis = start_redis();
    let mut conn = Conn::new(&redis);
    let mut session = Session::new(1);
    let mut names: Vec<&str> = Vec::new();
    for spec in COMMANDS {
        names.push(spec.name);
        names.extend(spec.subcommands.iter().map(|s| s.name));
    }
    for name in names.into_iter().filter(|n| *n != "client|setinfo") {
        let args: [&[u8]; 3] = [b"command", b"info", name.as_bytes()];
        let theirs = decode2(conn.command(&args));
        let ours = decode2(shoal_reply(&mut session, &args).unwrap());
        let (theirs, ours) = (&array(&theirs)[0], &array(&ours)[0]);
        // Fields 0..=6: name, arity, flags, first, last, step, ACL categories. (Redis's
        // subcommand list is longer than Shoal's, and Shoal sends no tips or key specs.)
        for field in 0..=6 {
            assert_eq!(
                array(ours)[field],
                array(theirs)[field],
                "{name} field {field}"
            );
        }
    }
}

/// After `HELLO 3`, connection-local replies and errors are RESP3 in both servers.
#[test]
#[ignore = "needs redis-server on PATH"]
fn resp3_replies_match_redis() {
    let redis = start_redis();
    let mut conn = Conn::new(&redis);
    let mut session = Session::new(1);
    let hello: [&[u8]; 2] = [b"hello", b"3"];
    // HELLO 3's own reply is already RESP3.
    conn.resp3 = true;
    conn.command(&hello);
    shoal_reply(&mut session, &hello).unwrap();
    let lines = [
        "client getname",
        "client setname app",
        "client getname",
        "ping",
        "ping x",
        "echo y",
        "config get save",
        "config get nosuch",
        "command info nosuch",
        "command docs nosuch",
        "select 0",
        "set k v ex 0",
        "foo bar",
        "get",
    ];
    for line in lines {
        let args = split(line);
        let ours = shoal_reply(&mut session, &args).unwrap();
        let theirs = conn.command(&args);
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs),
            "RESP3 reply to {line:?}"
        );
    }
}
