//! Every refusal is a typed error with the right disposition: answer and go on, answer
//! and close, or close; limits are enforced by both the encoder and the decoder.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

use bytes::{BufMut, Bytes, BytesMut};
use shoal_proto::limits::*;
use shoal_proto::peer::*;
use shoal_proto::*;

fn header(opcode: u8, flags: u8, status: u8, id: u64, body_len: u32) -> Header {
    Header {
        version: PROTOCOL_VERSION,
        opcode,
        flags,
        status,
        request_id: id,
        body_len,
    }
}

fn raw_frame(h: Header, body: &[u8]) -> BytesMut {
    let mut b = BytesMut::new();
    b.put_slice(&h.to_bytes());
    b.put_slice(body);
    b
}

fn put_body(key_len: u32, key: &[u8], value_len: u32, value: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&ANY.to_le_bytes());
    b.extend_from_slice(&key_len.to_le_bytes());
    b.extend_from_slice(key);
    b.extend_from_slice(&value_len.to_le_bytes());
    b.extend_from_slice(value);
    b
}

fn answer(e: &DecodeError) -> (u64, ErrorResponse, bool) {
    match e.disposition() {
        Disposition::Answer {
            request_id,
            error,
            close,
        } => (request_id, error, close),
        Disposition::Close => panic!("expected an answer for {e}"),
    }
}

#[test]
fn unknown_opcode_is_answered_and_the_stream_goes_on() {
    let mut buf = raw_frame(header(0x7E, 0, 0, 42, 3), b"abc");
    encode_request(&mut buf, 43, &Request::Ping).unwrap();
    let mut d = FrameDecoder::new(Role::Server);
    let e = d.decode(&mut buf).unwrap_err();
    assert!(matches!(e, DecodeError::UnknownOpcode { .. }), "{e:?}");
    let (id, err, close) = answer(&e);
    assert_eq!(
        (id, err.status(), close),
        (42, Status::InvalidRequest, false)
    );
    assert_eq!(
        d.decode(&mut buf).unwrap(),
        Some(Frame::Request(RequestFrame {
            request_id: 43,
            request: Request::Ping
        }))
    );
}

#[test]
fn unsupported_version_is_answered_then_closed_and_nothing_more_is_decoded() {
    let mut h = header(Opcode::Ping.as_u8(), 0, 0, 7, 0);
    h.version = 2;
    let mut buf = raw_frame(h, b"");
    encode_request(&mut buf, 8, &Request::Ping).unwrap();
    let mut d = FrameDecoder::new(Role::Server);
    let e = d.decode(&mut buf).unwrap_err();
    let (id, err, close) = answer(&e);
    assert_eq!(id, 7);
    assert!(close);
    assert_eq!(
        err.detail,
        ErrorDetail::IncompatibleVersion {
            min_version: MIN_PROTOCOL_VERSION,
            max_version: MAX_PROTOCOL_VERSION
        }
    );
    // Poisoned: the same error again, no bytes consumed.
    let len = buf.len();
    assert_eq!(d.decode(&mut buf).unwrap_err(), e);
    assert_eq!(buf.len(), len);
    // The answer itself is a valid v1 error frame a client decodes.
    let mut out = BytesMut::new();
    encode_error(&mut out, id, &err).unwrap();
    let f = FrameDecoder::new(Role::Client)
        .decode(&mut out)
        .unwrap()
        .unwrap();
    assert_eq!(
        f,
        Frame::Response(ResponseFrame {
            request_id: 7,
            response: Response::Error(err)
        })
    );
}

#[test]
fn oversized_frame_is_refused_from_the_header_alone() {
    let mut buf = raw_frame(
        header(Opcode::Put.as_u8(), 0, 0, 5, (MAX_FRAME_LEN + 1) as u32),
        b"",
    );
    let cap = buf.capacity();
    let mut d = FrameDecoder::new(Role::Server);
    let e = d.decode(&mut buf).unwrap_err();
    assert!(matches!(
        e,
        DecodeError::FrameTooLarge {
            max: MAX_FRAME_LEN,
            ..
        }
    ));
    let (id, err, close) = answer(&e);
    assert_eq!((id, close), (5, true));
    assert!(matches!(
        err.detail,
        ErrorDetail::TooLarge {
            limit: LimitKind::Frame,
            ..
        }
    ));
    assert_eq!(
        buf.capacity(),
        cap,
        "decoder must not reserve for a refused frame"
    );
    // A configured lower limit applies too.
    let mut buf = raw_frame(header(Opcode::Ping.as_u8(), 0, 0, 5, 1000), &[0; 1000]);
    let e = FrameDecoder::with_max_body(Role::Server, 999)
        .decode(&mut buf)
        .unwrap_err();
    assert!(matches!(e, DecodeError::FrameTooLarge { max: 999, .. }));
}

#[test]
fn oversized_key_value_batch_and_ttl_are_answered_too_large() {
    let key = vec![0u8; MAX_KEY_LEN + 1];
    let cases: Vec<(u8, Vec<u8>, LimitKind)> = vec![
        (
            Opcode::Put.as_u8(),
            put_body(key.len() as u32, &key, 0, b""),
            LimitKind::Key,
        ),
        // A value length above the limit, with no value bytes: refused from the length.
        (
            Opcode::Put.as_u8(),
            put_body(1, b"k", (MAX_VALUE_LEN + 1) as u32, b""),
            LimitKind::Value,
        ),
        (
            Opcode::GetMulti.as_u8(),
            {
                let mut b = ANY.to_le_bytes().to_vec();
                b.extend_from_slice(&((MAX_BATCH_KEYS + 1) as u32).to_le_bytes());
                b
            },
            LimitKind::Batch,
        ),
        (
            Opcode::PutWithTtl.as_u8(),
            {
                let mut b = ANY.to_le_bytes().to_vec();
                b.extend_from_slice(&(MAX_TTL_MS + 1).to_le_bytes());
                b.extend_from_slice(&[0; 8]);
                b
            },
            LimitKind::Ttl,
        ),
    ];
    for (op, body, limit) in cases {
        let mut buf = raw_frame(header(op, 0, 0, 11, body.len() as u32), &body);
        let mut d = FrameDecoder::new(Role::Server);
        let e = d.decode(&mut buf).unwrap_err();
        let (id, err, close) = answer(&e);
        assert_eq!((id, close), (11, false), "{e}");
        match err.detail {
            ErrorDetail::TooLarge { limit: l, .. } => assert_eq!(l, limit, "{e}"),
            other => panic!("expected TooLarge, got {other:?}"),
        }
        assert!(buf.is_empty(), "the bad frame is consumed whole");
    }
}

#[test]
fn malformed_bodies_are_invalid_requests() {
    let cases: Vec<(u8, u8, Vec<u8>)> = vec![
        (Opcode::Put.as_u8(), 0, put_body(10, b"short", 0, b"")), // truncated key
        (Opcode::Put.as_u8(), 0, {
            let mut b = put_body(1, b"k", 1, b"v");
            b.push(0);
            b
        }), // trailing
        (
            Opcode::Get.as_u8(),
            3,
            put_body(1, b"k", 0, b"")[..9].to_vec(),
        ), // consistency 3
        (
            Opcode::Get.as_u8(),
            4,
            put_body(1, b"k", 0, b"")[..9].to_vec(),
        ), // reserved flag
        (Opcode::Put.as_u8(), 1, put_body(1, b"k", 1, b"v")),     // flags on a put
        (Opcode::Get.as_u8(), 0, {
            let mut b = put_body(1, b"k", 0, b"")[..9].to_vec();
            b[0..4].copy_from_slice(&(MAX_SHARDS as u32).to_le_bytes());
            b
        }),
        (Opcode::PutWithTtl.as_u8(), 0, {
            let mut b = ANY.to_le_bytes().to_vec();
            b.extend_from_slice(&0u64.to_le_bytes());
            b.extend_from_slice(&[0; 8]);
            b
        }),
        (Opcode::Hello.as_u8(), 0, b"HTTP\x01\x01".to_vec()), // bad magic
        (
            Opcode::ChangeMembership.as_u8(),
            0,
            vec![0, 0, 0, 0, 0, 0, 0],
        ), // empty voters
    ];
    for (op, flags, body) in cases {
        let mut buf = raw_frame(header(op, flags, 0, 3, body.len() as u32), &body);
        let e = FrameDecoder::new(Role::Server)
            .decode(&mut buf)
            .unwrap_err();
        let (id, err, close) = answer(&e);
        assert_eq!(
            (id, err.status(), close),
            (3, Status::InvalidRequest, false),
            "{e}"
        );
    }
    // A nonzero status in a request.
    let mut buf = raw_frame(header(Opcode::Ping.as_u8(), 0, 1, 3, 0), b"");
    let e = FrameDecoder::new(Role::Server)
        .decode(&mut buf)
        .unwrap_err();
    assert!(matches!(e, DecodeError::InvalidHeader { .. }));
}

#[test]
fn frames_of_the_wrong_channel_or_direction() {
    // A response sent to a server: never answered (it came from a server), close.
    let mut buf = BytesMut::new();
    encode_response(&mut buf, 1, &Response::Pong).unwrap();
    let e = FrameDecoder::new(Role::Server)
        .decode(&mut buf)
        .unwrap_err();
    assert!(matches!(e, DecodeError::UnexpectedOpcode { .. }));
    assert_eq!(e.disposition(), Disposition::Close);
    // A peer frame on a client port: close.
    let mut buf = BytesMut::new();
    encode_peer(&mut buf, 1, &PeerMessage::TransferLeaderAck).unwrap();
    let e = FrameDecoder::new(Role::Server)
        .decode(&mut buf)
        .unwrap_err();
    assert_eq!(e.disposition(), Disposition::Close);
    // A client request on a peer port is refused.
    let mut buf = BytesMut::new();
    encode_request(&mut buf, 1, &Request::Ping).unwrap();
    assert!(matches!(
        FrameDecoder::new(Role::Peer).decode(&mut buf),
        Err(DecodeError::UnexpectedOpcode { .. })
    ));
    // A request sent to a client.
    let mut buf = BytesMut::new();
    encode_request(&mut buf, 1, &Request::Ping).unwrap();
    assert!(FrameDecoder::new(Role::Client).decode(&mut buf).is_err());
}

#[test]
fn a_peer_of_another_version_gets_a_clear_refusal() {
    let mut h = header(Opcode::PeerHello.as_u8(), 0, 0, 1, 0);
    h.version = 9;
    let mut buf = raw_frame(h, b"");
    let e = FrameDecoder::new(Role::Peer).decode(&mut buf).unwrap_err();
    let (_, err, close) = answer(&e);
    assert!(close);
    // The refusal is a version-independent client Error frame, readable by a peer decoder.
    let mut out = BytesMut::new();
    encode_error(&mut out, 1, &err).unwrap();
    let f = FrameDecoder::new(Role::Peer)
        .decode(&mut out)
        .unwrap()
        .unwrap();
    assert!(matches!(
        f,
        Frame::Response(ResponseFrame {
            response: Response::Error(ErrorResponse {
                detail: ErrorDetail::IncompatibleVersion { .. },
                ..
            }),
            ..
        })
    ));
}

#[test]
fn corrupt_peer_body_and_mismatched_opcode_are_refused() {
    let mut buf = BytesMut::new();
    encode_peer(
        &mut buf,
        1,
        &PeerMessage::Vote(VoteRequest {
            vote: Vote {
                term: 3,
                node_id: Some(1),
                committed: false,
            },
            last_log_id: None,
            leadership_transfer: false,
        }),
    )
    .unwrap();
    // Flip the opcode to PeerHello: the body is a vote, not a hello.
    let mut wrong = buf.clone();
    wrong[1] = Opcode::PeerHello.as_u8();
    let e = FrameDecoder::new(Role::Peer)
        .decode(&mut wrong)
        .unwrap_err();
    assert!(matches!(e, DecodeError::InvalidHeader { .. }), "{e:?}");
    assert_eq!(e.disposition(), Disposition::Close);
    // Garbage body of plausible length.
    let mut garbage = raw_frame(header(Opcode::PeerRpc.as_u8(), 0, 0, 1, 64), &[0xAB; 64]);
    let e = FrameDecoder::new(Role::Peer)
        .decode(&mut garbage)
        .unwrap_err();
    assert!(
        matches!(
            e,
            DecodeError::Body {
                source: BodyError::Peer(_),
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn peer_limits_are_checked_after_validation() {
    let too_big = PeerMessage::InstallSnapshot(InstallSnapshotRequest {
        vote: Vote {
            term: 1,
            node_id: Some(1),
            committed: true,
        },
        meta: SnapshotMeta {
            last_log_id: None,
            last_membership: StoredMembership {
                log_id: None,
                membership: Membership {
                    configs: vec![vec![1]],
                    nodes: vec![],
                },
            },
            snapshot_id: "s".into(),
        },
        offset: 0,
        data: vec![0; SNAPSHOT_CHUNK_LEN + 1],
        done: true,
    });
    let mut buf = BytesMut::from(&b"xyz"[..]);
    assert!(matches!(
        encode_peer(&mut buf, 1, &too_big),
        Err(EncodeError::TooLarge { .. })
    ));
    assert_eq!(
        &buf[..],
        b"xyz",
        "a failed encode leaves the buffer untouched"
    );
    let hello = PeerMessage::Hello(PeerHello {
        min_version: 1,
        max_version: 1,
        cluster_id: 1,
        from_node: 1,
        to_node: 2,
        group: 4,
        shard_count: 4,
    });
    assert!(
        encode_peer(&mut buf, 1, &hello).is_err(),
        "group must be below shard count"
    );
}

#[test]
fn encoder_refuses_what_the_decoder_would_refuse_and_leaves_the_buffer_alone() {
    let mut buf = BytesMut::from(&b"prefix"[..]);
    let big_key = Bytes::from(vec![0u8; MAX_KEY_LEN + 1]);
    let big_value = Bytes::from(vec![0u8; MAX_VALUE_LEN + 1]);
    let bad = [
        Request::Get(Get {
            shard: None,
            key: big_key.clone(),
            consistency: ReadConsistency::Lease,
        }),
        Request::Put(Put {
            shard: None,
            key: Bytes::new(),
            value: big_value,
        }),
        Request::Put(Put {
            shard: Some(MAX_SHARDS as u32),
            key: Bytes::new(),
            value: Bytes::new(),
        }),
        Request::PutWithTtl(PutWithTtl {
            shard: None,
            key: Bytes::new(),
            value: Bytes::new(),
            ttl_ms: 0,
        }),
        Request::GetMulti(GetMulti {
            shard: None,
            keys: vec![Bytes::new(); MAX_BATCH_KEYS + 1],
            consistency: ReadConsistency::Linearizable,
        }),
        Request::AddLearner(AddLearner {
            group: 0,
            node_id: 1,
            addr: "x".repeat(MAX_ADDR_LEN + 1),
            client_addr: "h:1".into(),
        }),
        Request::AddLearner(AddLearner {
            group: 0,
            node_id: 1,
            addr: "h:1".into(),
            client_addr: "x".repeat(MAX_ADDR_LEN + 1),
        }),
        Request::ChangeMembership(ChangeMembership {
            group: 0,
            voters: vec![],
            retain: false,
        }),
    ];
    for r in &bad {
        assert!(
            encode_request(&mut buf, 1, r).is_err(),
            "{r:?} should not encode"
        );
        assert_eq!(&buf[..], b"prefix");
    }
}

#[test]
fn a_response_over_the_frame_limit_becomes_a_too_large_answer() {
    let v = Bytes::from(vec![0u8; MAX_VALUE_LEN]);
    let resp = Response::GetMulti(vec![Some(v); 9]); // 9 MiB > 8 MiB
    let mut buf = BytesMut::new();
    let e = encode_response(&mut buf, 1, &resp).unwrap_err();
    assert!(buf.is_empty());
    let answer = e.to_error_response();
    assert!(matches!(
        answer.detail,
        ErrorDetail::TooLarge {
            limit: LimitKind::Response,
            ..
        }
    ));
    encode_error(&mut buf, 1, &answer).unwrap();
    assert!(
        FrameDecoder::new(Role::Client)
            .decode(&mut buf)
            .unwrap()
            .is_some()
    );
}

#[test]
fn long_error_messages_are_truncated_at_a_char_boundary() {
    let e = ErrorResponse::new(ErrorDetail::Internal, "é".repeat(MAX_ERROR_MESSAGE_LEN));
    assert!(e.message.len() <= MAX_ERROR_MESSAGE_LEN);
    assert!(e.message.len() >= MAX_ERROR_MESSAGE_LEN - 1);
    let mut buf = BytesMut::new();
    encode_error(&mut buf, 1, &e).unwrap();
}

#[test]
fn bytes_needed_reports_header_then_whole_frame() {
    let mut buf = BytesMut::new();
    encode_request(
        &mut buf,
        1,
        &Request::Delete(Delete {
            shard: None,
            key: Bytes::from_static(b"abc"),
        }),
    )
    .unwrap();
    let d = FrameDecoder::new(Role::Server);
    assert_eq!(d.bytes_needed(&buf[..3]), HEADER_LEN);
    assert_eq!(d.bytes_needed(&buf[..HEADER_LEN]), buf.len());
    assert_eq!(d.bytes_needed(&buf), buf.len());
}

#[test]
fn route_detects_a_stale_shard_and_computes_any() {
    let key = Bytes::from_static(b"user:1001"); // shard 0 of 16, shard 4 of 7 (PROTOCOL.md)
    let get = |shard| {
        Request::Get(Get {
            shard,
            key: key.clone(),
            consistency: ReadConsistency::Linearizable,
        })
    };
    assert_eq!(get(Some(0)).route(16), Ok(Some(0)));
    assert_eq!(get(None).route(7), Ok(Some(4)));
    // The client believes S = 16 but the node has 7 shards.
    let err = get(Some(0)).route(7).unwrap_err();
    assert_eq!(
        err.detail,
        ErrorDetail::WrongShard {
            owner_shard: 4,
            shard_count: 7
        }
    );
    let del = Request::Delete(Delete {
        shard: Some(3),
        key: key.clone(),
    });
    assert!(del.route(7).is_err());
    // A batch stating a shard must be owned entirely by it; ANY fans out.
    let other = (0..100u32)
        .map(|i| Bytes::from(format!("k{i}")))
        .find(|k| shard_for_key(k, 7) != 4)
        .unwrap();
    let multi = |shard, keys| {
        Request::GetMulti(GetMulti {
            shard,
            keys,
            consistency: ReadConsistency::Stale,
        })
    };
    assert_eq!(
        multi(Some(4), vec![key.clone(), key.clone()]).route(7),
        Ok(Some(4))
    );
    assert!(matches!(
        multi(Some(4), vec![key.clone(), other.clone()]).route(7),
        Err(ErrorResponse {
            detail: ErrorDetail::WrongShard { .. },
            ..
        })
    ));
    assert_eq!(multi(None, vec![key, other]).route(7), Ok(None));
    assert_eq!(Request::Ping.route(7), Ok(None));
}

#[test]
fn decoder_disposition_depends_on_the_role() {
    // Unknown client-range opcode: a server answers, a peer or a client closes.
    let frame = raw_frame(header(0x05, 0, 0, 1, 0), b"");
    for (role, answered) in [
        (Role::Server, true),
        (Role::Peer, false),
        (Role::Client, false),
    ] {
        let mut d = FrameDecoder::new(role);
        let e = d.decode(&mut frame.clone()).unwrap_err();
        let disposition = d.disposition(&e);
        assert_eq!(
            matches!(disposition, Disposition::Answer { .. }),
            answered,
            "{role:?}"
        );
    }
    // A version mismatch: a peer answers it too, then closes.
    let mut h = header(Opcode::PeerRpc.as_u8(), 0, 0, 1, 0);
    h.version = 7;
    let mut d = FrameDecoder::new(Role::Peer);
    let e = d.decode(&mut raw_frame(h, b"")).unwrap_err();
    assert!(matches!(
        d.disposition(&e),
        Disposition::Answer { close: true, .. }
    ));
    // A client never answers, even a version mismatch.
    let mut h = header(Opcode::Pong.as_u8(), 0, 0, 1, 0);
    h.version = 7;
    let mut d = FrameDecoder::new(Role::Client);
    let e = d.decode(&mut raw_frame(h, b"")).unwrap_err();
    assert_eq!(d.disposition(&e), Disposition::Close);
}
