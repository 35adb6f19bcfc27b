//! Fuzzes the rkyv peer-body path directly (bytecheck validation, then protocol limits),
//! skipping the frame header so the fuzzer spends its time inside rkyv archives. A body
//! that validates must re-encode and decode to the same message.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use shoal_proto::peer::decode_peer_body;
use shoal_proto::{Frame, FrameDecoder, Role, encode_peer};

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = decode_peer_body(data) {
        let mut buf = BytesMut::new();
        encode_peer(&mut buf, 7, &msg).expect("validated message re-encodes");
        match FrameDecoder::new(Role::Peer).decode(&mut buf) {
            Ok(Some(Frame::Peer(p))) => assert_eq!(p.message, msg),
            other => panic!("re-encoded peer message did not decode: {other:?}"),
        }
    }
});
