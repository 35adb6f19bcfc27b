#![allow(clippy::unwrap_used)]
//! Planning: what each command asks of the store (`ReadOp`/`WriteOp` shapes, relative
//! TTLs made absolute with `now_ms`), how store outcomes become replies, and the
//! per-connection state driven through a `Session`.

use bytes::{Bytes, BytesMut};
use shoal_resp::set_options::MAX_TTL_MS;
use shoal_resp::{
    Action, ExpireCondition, Protocol, Read, ReadOp, ReadOutcome, Reply, Session, SetCondition,
    TimeUnit, TtlLookup, TtlUpdate, Write, WriteOp, WriteOutcome, encode_reply, ttl_reply,
};

const NOW: u64 = 1_700_000_000_000;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn step(session: &mut Session, line: &str) -> (Action, Protocol) {
    let args = line.split(' ').map(b).collect();
    let s = session.plan_args(args, NOW);
    (s.action, s.protocol)
}

fn action(line: &str) -> Action {
    step(&mut Session::new(1), line).0
}

fn write_op(line: &str) -> WriteOp {
    match action(line) {
        Action::Write(Write { now_ms, op }) => {
            assert_eq!(now_ms, NOW);
            op
        }
        other => panic!("{line:?} planned as {other:?}"),
    }
}

fn error_text(line: &str) -> String {
    match action(line) {
        Action::Reply(Reply::Error(e)) => e.text().to_owned(),
        other => panic!("{line:?} planned as {other:?}"),
    }
}

#[test]
fn plain_and_expiring_sets_are_puts() {
    assert_eq!(
        write_op("set k v"),
        WriteOp::Put {
            key: b("k"),
            value: b("v")
        }
    );
    let with = |expire_at_ms| WriteOp::PutWithExpiry {
        key: b("k"),
        value: b("v"),
        expire_at_ms,
    };
    assert_eq!(write_op("set k v ex 10"), with(NOW + 10_000));
    assert_eq!(write_op("set k v px 10"), with(NOW + 10));
    assert_eq!(write_op("set k v exat 1700000005"), with(1_700_000_005_000));
    assert_eq!(
        write_op("set k v pxat 1700000000001"),
        with(1_700_000_000_001)
    );
    // An absolute time in the past is stored as is: the key is invisible at once.
    assert_eq!(write_op("set k v pxat 5"), with(5));
    assert_eq!(write_op("setex k 3 v"), with(NOW + 3_000));
    assert_eq!(write_op("psetex k 3 v"), with(NOW + 3));
}

#[test]
fn conditional_sets_are_single_state_machine_ops() {
    let cond = |condition, ttl, return_old| WriteOp::ConditionalSet {
        key: b("k"),
        value: b("v"),
        condition,
        ttl,
        return_old,
    };
    assert_eq!(
        write_op("set k v nx"),
        cond(SetCondition::IfAbsent, TtlUpdate::Clear, false)
    );
    assert_eq!(
        write_op("set k v xx px 7"),
        cond(SetCondition::IfPresent, TtlUpdate::ExpireAt(NOW + 7), false)
    );
    assert_eq!(
        write_op("set k v keepttl"),
        cond(SetCondition::Always, TtlUpdate::Keep, false)
    );
    assert_eq!(
        write_op("set k v get"),
        cond(SetCondition::Always, TtlUpdate::Clear, true)
    );
    assert_eq!(
        write_op("set k v nx get keepttl"),
        cond(SetCondition::IfAbsent, TtlUpdate::Keep, true)
    );
}

#[test]
fn absolute_expiry_beyond_shoal_ttl_limit_is_refused() {
    let too_far = NOW + MAX_TTL_MS as u64 + 1;
    assert_eq!(
        error_text(&format!("set k v pxat {too_far}")),
        "ERR invalid expire time in 'set' command"
    );
    let at_limit = NOW + MAX_TTL_MS as u64;
    assert!(matches!(
        action(&format!("set k v pxat {at_limit}")),
        Action::Write(_)
    ));
}

#[test]
fn expiry_changes_are_absolute() {
    let op = |expire_at_ms, condition| WriteOp::SetExpiry {
        key: b("k"),
        expire_at_ms,
        condition,
    };
    assert_eq!(
        write_op("expire k 10"),
        op(NOW + 10_000, ExpireCondition::default())
    );
    assert_eq!(
        write_op("pexpire k 10 xx lt"),
        op(
            NOW + 10,
            ExpireCondition {
                xx: true,
                lt: true,
                ..Default::default()
            }
        )
    );
    assert_eq!(
        write_op("expire k -10"),
        op(NOW - 10_000, ExpireCondition::default())
    );
    // Far in the past clamps to 0 ("some time in the past").
    assert_eq!(
        write_op("pexpire k -9223372036854775808"),
        op(0, ExpireCondition::default())
    );
    assert_eq!(write_op("persist k"), WriteOp::Persist { key: b("k") });
    assert_eq!(
        write_op("del a b a"),
        WriteOp::Delete {
            keys: vec![b("a"), b("b"), b("a")]
        }
    );
}

#[test]
fn reads() {
    let read = |line| match action(line) {
        Action::Read(Read { now_ms, op }) => {
            assert_eq!(now_ms, NOW);
            op
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(read("get k"), ReadOp::Get { key: b("k") });
    assert_eq!(
        read("mget a b"),
        ReadOp::MGet {
            keys: vec![b("a"), b("b")]
        }
    );
    assert_eq!(
        read("exists a a"),
        ReadOp::Exists {
            keys: vec![b("a"), b("a")]
        }
    );
    assert_eq!(
        read("pttl k"),
        ReadOp::Ttl {
            key: b("k"),
            unit: TimeUnit::Millis
        }
    );
    assert_eq!(action("dbsize"), Action::DbSize);
    assert!(matches!(action("info keyspace"), Action::Info(s) if s.keyspace && !s.server));
}

#[test]
fn read_outcomes_become_redis_replies() {
    let get = Read {
        now_ms: NOW,
        op: ReadOp::Get { key: b("k") },
    };
    assert_eq!(
        get.reply(ReadOutcome::Value(Some(b("v")))),
        Reply::Bulk(b("v"))
    );
    assert_eq!(get.reply(ReadOutcome::Value(None)), Reply::Null);
    let mget = Read {
        now_ms: NOW,
        op: ReadOp::MGet {
            keys: vec![b("a"), b("b")],
        },
    };
    assert_eq!(
        mget.reply(ReadOutcome::Values(vec![None, Some(b("x"))])),
        Reply::Array(vec![Reply::Null, Reply::Bulk(b("x"))])
    );
    let exists = Read {
        now_ms: NOW,
        op: ReadOp::Exists {
            keys: vec![b("a"), b("a")],
        },
    };
    assert_eq!(exists.reply(ReadOutcome::Count(2)), Reply::Integer(2));
}

#[test]
fn ttl_replies_round_like_redis() {
    let secs = |lookup| ttl_reply(lookup, NOW, TimeUnit::Seconds);
    let ms = |lookup| ttl_reply(lookup, NOW, TimeUnit::Millis);
    assert_eq!(secs(TtlLookup::Missing), Reply::Integer(-2));
    assert_eq!(secs(TtlLookup::NoExpiry), Reply::Integer(-1));
    assert_eq!(ms(TtlLookup::Missing), Reply::Integer(-2));
    assert_eq!(secs(TtlLookup::ExpiresAt(NOW + 1_500)), Reply::Integer(2));
    assert_eq!(secs(TtlLookup::ExpiresAt(NOW + 1_499)), Reply::Integer(1));
    assert_eq!(secs(TtlLookup::ExpiresAt(NOW + 499)), Reply::Integer(0));
    assert_eq!(ms(TtlLookup::ExpiresAt(NOW + 1_499)), Reply::Integer(1_499));
    assert_eq!(ms(TtlLookup::ExpiresAt(NOW - 5)), Reply::Integer(0));
}

#[test]
fn write_outcomes_become_redis_replies() {
    let shape = |line| write_op(line).reply_shape();
    assert_eq!(shape("set k v").reply(WriteOutcome::Done), Reply::Ok);
    assert_eq!(shape("set k v ex 1").reply(WriteOutcome::Done), Reply::Ok);
    let not_applied = WriteOutcome::Set {
        applied: false,
        old: Some(b("old")),
    };
    let applied_new = WriteOutcome::Set {
        applied: true,
        old: None,
    };
    assert_eq!(shape("set k v nx").reply(not_applied.clone()), Reply::Null);
    assert_eq!(shape("set k v nx").reply(applied_new.clone()), Reply::Ok);
    // With GET the old value is the reply whether or not the write happened.
    assert_eq!(
        shape("set k v nx get").reply(not_applied),
        Reply::Bulk(b("old"))
    );
    assert_eq!(shape("set k v get").reply(applied_new), Reply::Null);
    assert_eq!(
        shape("del a b").reply(WriteOutcome::Deleted(1)),
        Reply::Integer(1)
    );
    assert_eq!(
        shape("expire k 1").reply(WriteOutcome::Changed(true)),
        Reply::Integer(1)
    );
    assert_eq!(
        shape("persist k").reply(WriteOutcome::Changed(false)),
        Reply::Integer(0)
    );
}

#[test]
fn write_ops_name_their_keys_for_routing() {
    assert_eq!(write_op("set k v nx").keys(), &[b("k")]);
    assert_eq!(write_op("del a b").keys(), &[b("a"), b("b")]);
}

#[test]
fn connection_commands_update_state() {
    let mut s = Session::new(42);
    assert_eq!(
        step(&mut s, "client id").0,
        Action::Reply(Reply::Integer(42))
    );
    assert_eq!(step(&mut s, "client getname").0, Action::Reply(Reply::Null));
    assert_eq!(
        step(&mut s, "client setname app").0,
        Action::Reply(Reply::Ok)
    );
    assert_eq!(
        step(&mut s, "client getname").0,
        Action::Reply(Reply::Bulk(b("app")))
    );
    assert_eq!(
        step(&mut s, "client setinfo lib-name redis-rs").0,
        Action::Reply(Reply::Ok)
    );
    assert_eq!(
        step(&mut s, "client setinfo LIB-VER 1.0").0,
        Action::Reply(Reply::Ok)
    );
    assert_eq!(s.state().lib_name, Some(b("redis-rs")));
    assert_eq!(s.state().lib_ver, Some(b("1.0")));
    // An empty name clears it (as in Redis).
    let clear = s.plan_args(vec![b("client"), b("setname"), Bytes::new()], NOW);
    assert_eq!(clear.action, Action::Reply(Reply::Ok));
    assert_eq!(s.state().name, None);
    assert_eq!(step(&mut s, "select 0").0, Action::Reply(Reply::Ok));
    match step(&mut s, "select 1").0 {
        Action::Reply(Reply::Error(e)) => assert_eq!(e.text(), "ERR DB index is out of range"),
        other => panic!("{other:?}"),
    }
    assert_eq!(step(&mut s, "ping").0, Action::Reply(Reply::Simple("PONG")));
    assert_eq!(
        step(&mut s, "echo hi").0,
        Action::Reply(Reply::Bulk(b("hi")))
    );
    assert_eq!(
        step(&mut s, "auth default secret").0,
        Action::Reply(Reply::Ok)
    );
    match step(&mut s, "auth secret").0 {
        Action::Reply(Reply::Error(e)) => assert!(e.text().starts_with("ERR AUTH <password>")),
        other => panic!("{other:?}"),
    }
    assert_eq!(step(&mut s, "quit").0, Action::Close(Reply::Ok));
    assert!(s.state().closing);
}

#[test]
fn hello_switches_protocol_and_its_reply_uses_the_new_one() {
    let mut s = Session::new(1);
    let (get, p) = step(&mut s, "get k");
    assert!(matches!(get, Action::Read(_)));
    assert_eq!(p, Protocol::Resp2);
    let (hello, p) = step(&mut s, "hello 3 setname me");
    assert_eq!(p, Protocol::Resp3);
    assert!(matches!(hello, Action::Reply(Reply::Map(_))));
    assert_eq!(s.state().protocol, Protocol::Resp3);
    assert_eq!(s.state().name, Some(b("me")));
    assert_eq!(step(&mut s, "get k").1, Protocol::Resp3);
    // Failing HELLOs leave the protocol alone.
    let (bad, p) = step(&mut s, "hello 2 auth bob pw");
    assert_eq!(p, Protocol::Resp3);
    match bad {
        Action::Reply(Reply::Error(e)) => {
            assert_eq!(
                e.text(),
                "WRONGPASS invalid username-password pair or user is disabled."
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        step(&mut s, "hello 2 auth default anything").1,
        Protocol::Resp2
    );
    assert_eq!(s.state().protocol, Protocol::Resp2);
}

#[test]
fn session_from_bytes_to_reply_bytes() {
    let mut s = Session::new(1);
    let mut input =
        BytesMut::from(&b"*1\r\n$4\r\nPING\r\nECHO hi\r\nHELLO 3\r\nPING x\r\nGET k\r\n"[..]);
    let mut out = BytesMut::new();
    let mut reads = Vec::new();
    while let Some(step) = s.next(&mut input, NOW).unwrap() {
        match step.action {
            Action::Reply(r) => encode_reply(&r, step.protocol, &mut out),
            Action::Read(read) => {
                let reply = read.reply(ReadOutcome::Value(None));
                encode_reply(&reply, step.protocol, &mut out);
                reads.push(read);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(reads.len(), 1);
    let text = String::from_utf8(out.to_vec()).unwrap();
    assert!(text.starts_with("+PONG\r\n$2\r\nhi\r\n%7\r\n"), "{text}");
    assert!(text.ends_with("$1\r\nx\r\n_\r\n"), "{text}");

    let mut bad = BytesMut::from(&b"*1\r\n:1\r\n"[..]);
    let e = s.next(&mut bad, NOW).unwrap_err();
    let mut out = BytesMut::new();
    encode_reply(&e.reply(), Protocol::Resp2, &mut out);
    assert_eq!(&out[..], b"-ERR Protocol error: expected '$', got ':'\r\n");
}
