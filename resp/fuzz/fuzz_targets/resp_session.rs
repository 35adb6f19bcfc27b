//! Arbitrary client bytes, cut into arbitrary reads, through the whole sans-IO path:
//! framing, parsing, planning, fake store outcomes, reply encoding. Checks that nothing
//! panics, that every request has a command name, and that every encoded reply is one
//! well-formed RESP2/RESP3 frame.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use shoal_resp::{
    Action, Protocol, ReadOp, ReadOutcome, Reply, Session, TtlLookup, WriteOutcome, WriteOp,
    encode_reply,
};

fn check_frame(out: &BytesMut, protocol: Protocol) {
    let bytes = Bytes::copy_from_slice(out);
    let used = match protocol {
        Protocol::Resp2 => redis_protocol::resp2::decode::decode_bytes(&bytes)
            .expect("encoded reply must decode")
            .expect("encoded reply must be complete")
            .1,
        Protocol::Resp3 => redis_protocol::resp3::decode::complete::decode_bytes(&bytes)
            .expect("encoded reply must decode")
            .expect("encoded reply must be complete")
            .1,
    };
    assert_eq!(used, bytes.len(), "one reply must be exactly one frame");
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the read sizes; the rest is the byte stream.
    let Some((&seed, stream)) = data.split_first() else { return };
    let chunk = usize::from(seed % 17) + 1;
    let mut session = Session::new(7);
    let mut buf = BytesMut::new();
    let now = 1_700_000_000_000u64;
    for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            let step = match session.next(&mut buf, now) {
                Ok(Some(step)) => step,
                Ok(None) => break,
                Err(e) => {
                    let mut out = BytesMut::new();
                    encode_reply(&e.reply(), Protocol::Resp2, &mut out);
                    check_frame(&out, Protocol::Resp2);
                    return;
                }
            };
            let reply = match step.action {
                Action::Reply(r) | Action::Close(r) => r,
                Action::Read(read) => {
                    let outcome = match &read.op {
                        ReadOp::Get { key } => ReadOutcome::Value(Some(key.clone())),
                        ReadOp::MGet { keys } => {
                            ReadOutcome::Values(keys.iter().map(|k| Some(k.clone())).collect())
                        }
                        ReadOp::Exists { keys } => ReadOutcome::Count(keys.len() as u64),
                        ReadOp::Ttl { .. } => ReadOutcome::Ttl(TtlLookup::ExpiresAt(now + 1500)),
                    };
                    read.reply(outcome)
                }
                Action::Write(write) => {
                    let outcome = match &write.op {
                        WriteOp::Put { .. } | WriteOp::PutWithExpiry { .. } => WriteOutcome::Done,
                        WriteOp::ConditionalSet { value, .. } => {
                            WriteOutcome::Set { applied: true, old: Some(value.clone()) }
                        }
                        WriteOp::Delete { keys } => WriteOutcome::Deleted(keys.len() as u64),
                        WriteOp::SetExpiry { .. } | WriteOp::Persist { .. } => {
                            WriteOutcome::Changed(true)
                        }
                    };
                    write.op.reply_shape().reply(outcome)
                }
                Action::DbSize => Reply::Integer(0),
                Action::Info(_) => Reply::Verbatim(Bytes::from_static(b"# Server\r\n")),
            };
            let mut out = BytesMut::new();
            encode_reply(&reply, step.protocol, &mut out);
            check_frame(&out, step.protocol);
        }
    }
});
