//! Arbitrary and corrupted input never panics, always makes progress, and leaves the
//! decoder either in sync or poisoned; buffers never grow past what was fed.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use bytes::{BufMut, BytesMut};
use common::*;
use proptest::prelude::*;
use shoal_proto::*;

const ROLES: [Role; 3] = [Role::Server, Role::Client, Role::Peer];

/// Decodes until the decoder needs more input or is poisoned; asserts progress on every
/// step and that the buffer's capacity never grows (the decoder must not reserve).
fn drain(role: Role, mut buf: BytesMut) -> usize {
    let mut d = FrameDecoder::new(role);
    let cap = buf.capacity();
    let mut frames = 0;
    loop {
        let before = buf.len();
        match d.decode(&mut buf) {
            Ok(Some(_)) => {
                frames += 1;
                assert!(
                    buf.len() + HEADER_LEN <= before,
                    "a frame consumed less than a header"
                );
            }
            Ok(None) => {
                assert!(
                    buf.len() < d.bytes_needed(&buf),
                    "Ok(None) with a whole frame buffered"
                );
                assert!(buf.capacity() <= cap, "the decoder reserved memory");
                break;
            }
            Err(e) => {
                // Every error must come with a disposition (this must not panic either).
                let _ = e.disposition();
                if e.is_recoverable() {
                    assert!(
                        buf.len() + HEADER_LEN <= before,
                        "a recoverable error consumed nothing"
                    );
                } else {
                    assert_eq!(buf.len(), before, "a fatal error must not consume");
                    assert_eq!(
                        d.decode(&mut buf),
                        Err(e),
                        "poisoned decoder repeats its error"
                    );
                    break;
                }
            }
        }
        assert!(buf.capacity() <= cap);
    }
    frames
}

/// A header with a plausible version and opcode, followed by random bytes.
fn framed_garbage() -> impl Strategy<Value = BytesMut> {
    (
        prop_oneof![Just(1u8), any::<u8>()],
        prop_oneof![
            (0..=255u8).prop_filter("known", |b| Opcode::from_u8(*b).is_some()),
            any::<u8>()
        ],
        prop_oneof![Just(0u8), any::<u8>()],
        prop_oneof![Just(0u8), 0..12u8, any::<u8>()],
        any::<u64>(),
        proptest::collection::vec(any::<u8>(), 0..512),
        prop_oneof![
            Just(None),
            Just(Some(u32::MAX)),
            any::<u32>().prop_map(Some)
        ],
    )
        .prop_map(|(version, opcode, flags, status, request_id, body, len)| {
            let body_len = len.unwrap_or(body.len() as u32);
            let mut b = BytesMut::new();
            b.put_slice(
                &Header {
                    version,
                    opcode,
                    flags,
                    status,
                    request_id,
                    body_len,
                }
                .to_bytes(),
            );
            b.put_slice(&body);
            b
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..1024)) {
        for role in ROLES {
            drain(role, BytesMut::from(&data[..]));
        }
    }

    #[test]
    fn framed_garbage_never_panics(frames in proptest::collection::vec(framed_garbage(), 1..4)) {
        let mut buf = BytesMut::new();
        for f in &frames {
            buf.extend_from_slice(f);
        }
        for role in ROLES {
            drain(role, buf.clone());
        }
    }

    /// Valid frames with a few bytes overwritten: the decoder refuses or accepts, never
    /// panics; rkyv's validation catches corrupt peer bodies.
    #[test]
    fn corrupted_valid_frames_never_panic(
        req in request(),
        resp in response(),
        peer in peer_message(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut streams = [BytesMut::new(), BytesMut::new(), BytesMut::new()];
        encode_request(&mut streams[0], 1, &req).unwrap();
        encode_response(&mut streams[1], 2, &resp).unwrap();
        encode_peer(&mut streams[2], 3, &peer).unwrap();
        for (stream, role) in streams.iter_mut().zip(ROLES) {
            for (i, v) in &flips {
                let at = i.index(stream.len());
                stream[at] = *v;
            }
            drain(role, stream.clone());
            // Also against the other roles.
            for other in ROLES {
                drain(other, stream.clone());
            }
        }
    }

    /// Peer bodies of random bytes go straight to the rkyv validator.
    #[test]
    fn random_peer_bodies_are_rejected_or_valid(body in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(m) = shoal_proto::peer::decode_peer_body(&body) {
            prop_assert!(m.validate().is_ok());
        }
    }
}
