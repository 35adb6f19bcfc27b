//! Property tests: every message round-trips through encode → decode; frames split at
//! every byte boundary decode identically; several frames per buffer decode in order;
//! decoded keys and values are zero-copy slices of the read buffer.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use bytes::{Bytes, BytesMut};
use common::*;
use proptest::prelude::*;
use shoal_proto::*;

fn decode_all(role: Role, mut buf: BytesMut) -> Vec<Frame> {
    let mut d = FrameDecoder::new(role);
    let mut out = Vec::new();
    while let Some(f) = d.decode(&mut buf).expect("valid frames decode") {
        out.push(f);
    }
    assert!(buf.is_empty(), "{} bytes left undecoded", buf.len());
    out
}

/// Feeds `wire` to a decoder in the given chunk sizes (cycled), as a socket would.
fn decode_chunked(role: Role, wire: &[u8], chunks: &[usize]) -> Vec<Frame> {
    let mut d = FrameDecoder::new(role);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < wire.len() {
        let n = chunks[i % chunks.len()].max(1).min(wire.len() - pos);
        i += 1;
        buf.extend_from_slice(&wire[pos..pos + n]);
        pos += n;
        while let Some(f) = d.decode(&mut buf).expect("valid frames decode") {
            out.push(f);
        }
    }
    assert!(buf.is_empty());
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn request_round_trip(id in any::<u64>(), req in request()) {
        let mut buf = BytesMut::new();
        encode_request(&mut buf, id, &req).unwrap();
        let frames = decode_all(Role::Server, buf);
        prop_assert_eq!(frames, vec![Frame::Request(RequestFrame { request_id: id, request: req })]);
    }

    #[test]
    fn response_round_trip(id in any::<u64>(), resp in response()) {
        let mut buf = BytesMut::new();
        encode_response(&mut buf, id, &resp).unwrap();
        let frames = decode_all(Role::Client, buf);
        prop_assert_eq!(frames, vec![Frame::Response(ResponseFrame { request_id: id, response: resp })]);
    }

    #[test]
    fn peer_round_trip(id in any::<u64>(), msg in peer_message()) {
        let mut buf = BytesMut::new();
        encode_peer(&mut buf, id, &msg).unwrap();
        let frames = decode_all(Role::Peer, buf);
        prop_assert_eq!(frames, vec![Frame::Peer(PeerFrame { request_id: id, message: msg })]);
    }

    #[test]
    fn encoder_appends_after_existing_bytes(prefix in bytes(40), id in any::<u64>(), req in request()) {
        let mut buf = BytesMut::from(&prefix[..]);
        encode_request(&mut buf, id, &req).unwrap();
        prop_assert_eq!(&buf[..prefix.len()], &prefix[..]);
        let mut alone = BytesMut::new();
        encode_request(&mut alone, id, &req).unwrap();
        prop_assert_eq!(&buf[prefix.len()..], &alone[..]);
    }

    #[test]
    fn many_requests_per_buffer_and_any_chunking(
        reqs in proptest::collection::vec((any::<u64>(), request()), 1..8),
        chunks in proptest::collection::vec(1usize..64, 1..8),
    ) {
        let mut wire = BytesMut::new();
        for (id, r) in &reqs {
            encode_request(&mut wire, *id, r).unwrap();
        }
        let expected: Vec<Frame> = reqs.iter().cloned().map(|(id, r)| expected_frame(&AnyMsg::Req(id, r))).collect();
        prop_assert_eq!(&decode_all(Role::Server, wire.clone()), &expected);
        prop_assert_eq!(&decode_chunked(Role::Server, &wire, &chunks), &expected);
    }

    #[test]
    fn many_responses_per_buffer_and_any_chunking(
        resps in proptest::collection::vec((any::<u64>(), response()), 1..8),
        chunks in proptest::collection::vec(1usize..64, 1..8),
    ) {
        let mut wire = BytesMut::new();
        for (id, r) in &resps {
            encode_response(&mut wire, *id, r).unwrap();
        }
        let expected: Vec<Frame> = resps.iter().cloned().map(|(id, r)| expected_frame(&AnyMsg::Resp(id, r))).collect();
        prop_assert_eq!(&decode_chunked(Role::Client, &wire, &chunks), &expected);
    }

    #[test]
    fn many_peer_messages_and_any_chunking(
        msgs in proptest::collection::vec((any::<u64>(), peer_message()), 1..6),
        chunks in proptest::collection::vec(1usize..64, 1..8),
    ) {
        let mut wire = BytesMut::new();
        for (id, m) in &msgs {
            encode_peer(&mut wire, *id, m).unwrap();
        }
        let expected: Vec<Frame> = msgs.iter().cloned().map(|(id, m)| expected_frame(&AnyMsg::Peer(id, m))).collect();
        prop_assert_eq!(&decode_chunked(Role::Peer, &wire, &chunks), &expected);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Every split point of a two-frame stream: the first part is fed, decoded as far as
    /// possible, then the rest; the result equals decoding the whole.
    #[test]
    fn split_at_every_byte_boundary(
        a in (any::<u64>(), request()),
        b in (any::<u64>(), request()),
        resp in (any::<u64>(), response()),
        peer in (any::<u64>(), peer_message()),
    ) {
        let cases = [
            (Role::Server, vec![AnyMsg::Req(a.0, a.1.clone()), AnyMsg::Req(b.0, b.1.clone())]),
            (Role::Client, vec![AnyMsg::Resp(resp.0, resp.1.clone()), AnyMsg::Resp(resp.0 ^ 1, Response::Pong)]),
            (Role::Peer, vec![AnyMsg::Peer(peer.0, peer.1.clone()), AnyMsg::Peer(1, PeerMessage::TransferLeaderAck)]),
        ];
        for (role, msgs) in cases {
            let mut wire = BytesMut::new();
            for m in &msgs {
                encode_any(&mut wire, m);
            }
            let expected: Vec<Frame> = msgs.iter().map(expected_frame).collect();
            for split in 0..=wire.len() {
                let mut d = FrameDecoder::new(role);
                let mut buf = BytesMut::from(&wire[..split]);
                let mut got = Vec::new();
                while let Some(f) = d.decode(&mut buf).unwrap() {
                    got.push(f);
                }
                buf.extend_from_slice(&wire[split..]);
                while let Some(f) = d.decode(&mut buf).unwrap() {
                    got.push(f);
                }
                prop_assert!(buf.is_empty());
                prop_assert_eq!(&got, &expected, "split at {}", split);
            }
        }
    }
}

#[test]
fn decoded_values_are_slices_of_the_read_buffer() {
    let value = Bytes::from(vec![7u8; 4096]);
    let req = Request::Put(Put {
        shard: Some(3),
        key: Bytes::from_static(b"k"),
        value: value.clone(),
    });
    let mut buf = BytesMut::with_capacity(8192);
    encode_request(&mut buf, 9, &req).unwrap();
    let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
    let Some(Frame::Request(RequestFrame {
        request: Request::Put(p),
        ..
    })) = FrameDecoder::new(Role::Server).decode(&mut buf).unwrap()
    else {
        panic!("expected a put");
    };
    assert_eq!(p.value, value);
    assert!(
        range.contains(&(p.value.as_ptr() as usize)),
        "value was copied out of the read buffer"
    );
    assert!(
        range.contains(&(p.key.as_ptr() as usize)),
        "key was copied out of the read buffer"
    );

    let resp = Response::GetMulti(vec![Some(value.clone()), None]);
    let mut buf = BytesMut::new();
    encode_response(&mut buf, 1, &resp).unwrap();
    let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
    let Some(Frame::Response(ResponseFrame {
        response: Response::GetMulti(vs),
        ..
    })) = FrameDecoder::new(Role::Client).decode(&mut buf).unwrap()
    else {
        panic!("expected get_multi");
    };
    let v = vs[0].as_ref().unwrap();
    assert!(range.contains(&(v.as_ptr() as usize)));
}

#[test]
fn largest_legal_put_round_trips() {
    use shoal_proto::limits::{MAX_KEY_LEN, MAX_VALUE_LEN};
    let req = Request::Put(Put {
        shard: None,
        key: Bytes::from(vec![1u8; MAX_KEY_LEN]),
        value: Bytes::from(vec![2u8; MAX_VALUE_LEN]),
    });
    let mut buf = BytesMut::new();
    encode_request(&mut buf, 1, &req).unwrap();
    assert_eq!(
        decode_all(Role::Server, buf),
        vec![Frame::Request(RequestFrame {
            request_id: 1,
            request: req
        })]
    );
}

proptest! {
    /// The borrowed encoders produce exactly the frames of their `Request` twins.
    #[test]
    fn borrowed_encoders_match_request_encoding(
        id in any::<u64>(),
        shard in shard(),
        key in bytes(64),
        value in bytes(128),
        ttl in proptest::option::of(1..=shoal_proto::limits::MAX_TTL_MS),
        consistency in consistency(),
    ) {
        let (mut a, mut b) = (BytesMut::new(), BytesMut::new());
        encode_get(&mut a, id, shard, &key, consistency).unwrap();
        encode_request(&mut b, id, &Request::Get(Get { shard, key: key.clone(), consistency })).unwrap();
        prop_assert_eq!(&a, &b);

        let (mut a, mut b) = (BytesMut::new(), BytesMut::new());
        encode_put(&mut a, id, shard, &key, &value, ttl).unwrap();
        let req = match ttl {
            None => Request::Put(Put { shard, key: key.clone(), value: value.clone() }),
            Some(ttl_ms) => Request::PutWithTtl(PutWithTtl { shard, key: key.clone(), value: value.clone(), ttl_ms }),
        };
        encode_request(&mut b, id, &req).unwrap();
        prop_assert_eq!(&a, &b);

        let (mut a, mut b) = (BytesMut::new(), BytesMut::new());
        encode_delete(&mut a, id, shard, &key).unwrap();
        encode_request(&mut b, id, &Request::Delete(Delete { shard, key })).unwrap();
        prop_assert_eq!(&a, &b);
    }
}
