//! Snapshot tests: round trips, snapshots taken while writes continue, chunked restore,
//! and rejection of corrupt, truncated or semantically invalid snapshots.

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;

use shoal_proto::limits;

use super::snapshot_format::{self as fmt, BlockV1, HeaderV1, TrailerV1};
use super::*;

type Dump = BTreeMap<Vec<u8>, (Vec<u8>, Option<u64>)>;

fn dump(state: &State) -> Dump {
    let mut d = Dump::new();
    for e in state.entries() {
        let prev = d.insert(e.key().to_vec(), (e.value().to_vec(), e.expiry()));
        assert!(prev.is_none(), "a key stored twice");
    }
    d
}

fn log(index: u64) -> LogId {
    LogId {
        term: 3,
        node_id: 2,
        index,
    }
}

/// A state with `n` keys, some with TTLs, built by applying commands.
fn build(n: u32, value_len: usize) -> State {
    let mut s = State::new();
    for i in 0..n {
        let key = Bytes::from(format!("key-{i}"));
        let value = Bytes::from(vec![(i % 251) as u8; value_len + (i as usize % 7)]);
        let cmd = if i % 3 == 0 {
            Command::PutWithTtl {
                key,
                value,
                expire_at_ms: 1_000 + u64::from(i),
            }
        } else {
            Command::Put { key, value }
        };
        s.apply(log(u64::from(i) + 1), &cmd).unwrap();
    }
    s
}

fn restore_in_chunks(bytes: &[u8], chunk: usize) -> Result<Restored, SnapshotError> {
    let mut r = SnapshotReader::new();
    for part in bytes.chunks(chunk.max(1)) {
        r.feed(part)?;
    }
    r.finish()
}

#[test]
fn round_trip_keeps_everything() {
    let mut s = build(3000, 50);
    s.apply(
        log(5000),
        &Command::Put {
            key: Bytes::new(),
            value: Bytes::new(),
        },
    )
    .unwrap();
    let bytes = s.snapshot_to_vec(b"membership").unwrap();
    for chunk in [1, 7, 4096, bytes.len()] {
        let r = restore_in_chunks(&bytes, chunk).unwrap();
        assert_eq!(r.meta, Bytes::from_static(b"membership"));
        assert_eq!(r.state.last_applied(), Some(log(5000)));
        assert_eq!(dump(&r.state), dump(&s));
        assert_eq!(r.state.memory(), s.memory());
        // Timers work after restore: every TTL key is reclaimed on time.
        let mut restored = r.state;
        while !restored.tick(1_000 + 3000, 64).complete {}
        assert_eq!(restored.len(), 2000 + 1);
    }
    // An empty, never-applied state round-trips too.
    let mut empty = State::new();
    let r = SnapshotReader::read_all(&empty.snapshot_to_vec(&[]).unwrap()).unwrap();
    assert_eq!(r.state.last_applied(), None);
    assert!(r.state.is_empty());
}

#[test]
fn snapshot_while_writing_equals_state_at_its_log_index() {
    let mut s = build(20_000, 20);
    let expected = dump(&s);
    let info = s.begin_snapshot(b"m").unwrap();
    assert_eq!(info.last_applied, Some(log(20_000)));
    assert_eq!(info.keys, 20_000);
    assert_eq!(s.begin_snapshot(b"m"), Err(SnapshotError::InProgress));
    let mut out = Vec::new();
    let mut index = 20_000u64;
    let mut steps = 0u32;
    let mut model = expected.clone();
    loop {
        // Writes between steps: overwrite, delete, add, change TTLs, reclaim.
        for j in 0..25u32 {
            index += 1;
            let k = (index * 7919 + u64::from(j)) % 30_000;
            let key = Bytes::from(format!("key-{k}"));
            let cmd = match index % 4 {
                0 => Command::Delete { key: key.clone() },
                1 => Command::PutWithTtl {
                    key: key.clone(),
                    value: Bytes::from_static(b"ttl"),
                    expire_at_ms: 900 + index % 300,
                },
                _ => Command::Put {
                    key: key.clone(),
                    value: Bytes::from(format!("v{index}")),
                },
            };
            s.apply(log(index), &cmd).unwrap();
            match &cmd {
                Command::Delete { .. } => {
                    model.remove(&key[..]);
                }
                Command::Put { value, .. } => {
                    model.insert(key.to_vec(), (value.to_vec(), None));
                }
                Command::PutWithTtl {
                    value,
                    expire_at_ms,
                    ..
                } => {
                    model.insert(key.to_vec(), (value.to_vec(), Some(*expire_at_ms)));
                }
                other => unreachable!("this test generates no {other:?}"),
            }
        }
        s.tick(1_000 + u64::from(steps), 50);
        steps += 1;
        if s.snapshot_step(&mut out).unwrap() == SnapshotProgress::Done {
            break;
        }
        assert!(s.memory().snapshot_bytes > 0 || s.snapshot_in_progress().is_some());
    }
    assert!(
        steps > 10,
        "the snapshot was built in bounded steps ({steps})"
    );
    assert_eq!(s.snapshot_in_progress(), None);
    assert_eq!(
        s.memory().snapshot_bytes,
        0,
        "copy-on-write copies released"
    );
    let r = restore_in_chunks(&out, 100_003).unwrap();
    assert_eq!(r.state.last_applied(), Some(log(20_000)));
    assert_eq!(
        dump(&r.state),
        expected,
        "snapshot shows the state at its log index"
    );
    // The live state kept every write: what it shows at `now` is what the model shows.
    let now = 1_000 + u64::from(steps);
    for k in 0..30_000u64 {
        let key = format!("key-{k}").into_bytes();
        let want = model
            .get(&key)
            .filter(|(_, at)| at.is_none_or(|at| now < at))
            .map(|(v, _)| v.clone());
        assert_eq!(s.get(&key, now).map(|b| b.to_vec()), want, "live key {k}");
    }
}

#[test]
fn abort_releases_and_allows_a_new_snapshot() {
    let mut s = build(5000, 10);
    s.begin_snapshot(&[]).unwrap();
    let mut out = Vec::new();
    s.snapshot_step(&mut out).unwrap();
    s.apply(
        log(6000),
        &Command::Delete {
            key: Bytes::from_static(b"key-1"),
        },
    )
    .unwrap();
    assert!(s.memory().snapshot_bytes > 0);
    s.abort_snapshot();
    // The copies are released by ticks, a bounded slice at a time.
    assert!(s.memory().snapshot_bytes > 0);
    let mut ticks = 0;
    while !s.tick(0, 1).complete {
        ticks += 1;
        assert!(ticks < 100_000);
    }
    assert_eq!(s.memory().snapshot_bytes, 0);
    assert_eq!(s.snapshot_step(&mut out), Err(SnapshotError::NotStarted));
    let r = SnapshotReader::read_all(&s.snapshot_to_vec(&[]).unwrap()).unwrap();
    assert_eq!(dump(&r.state), dump(&s));
    assert_eq!(
        s.begin_snapshot(&vec![0; MAX_META_LEN + 1]),
        Err(SnapshotError::MetaTooLarge {
            len: MAX_META_LEN + 1,
            max: MAX_META_LEN
        })
    );
}

#[test]
fn every_truncation_and_byte_flip_is_rejected() {
    let mut s = build(40, 3);
    let bytes = s.snapshot_to_vec(b"xy").unwrap();
    for cut in 0..bytes.len() {
        assert!(
            SnapshotReader::read_all(&bytes[..cut]).is_err(),
            "truncation at {cut} accepted"
        );
    }
    for i in 0..bytes.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut b = bytes.clone();
            b[i] ^= flip;
            assert!(
                SnapshotReader::read_all(&b).is_err(),
                "flip {flip:#x} at {i} accepted"
            );
        }
    }
    let mut b = bytes.clone();
    b.push(0);
    assert_eq!(
        SnapshotReader::read_all(&b).unwrap_err(),
        SnapshotError::TrailingBytes { extra: 1 }
    );
    assert_eq!(
        SnapshotReader::read_all(b"NOTASNAP").unwrap_err(),
        SnapshotError::BadMagic
    );
}

/// Frames with valid CRCs but invalid content.
fn craft(header: &HeaderV1, blocks: &[BlockV1], trailer: &TrailerV1) -> Vec<u8> {
    let mut out = fmt::file_header().to_vec();
    let mut seq = 1;
    fmt::write_frame(&mut out, seq, fmt::KIND_HEADER, &fmt::to_payload(header));
    for b in blocks {
        seq += 1;
        fmt::write_frame(&mut out, seq, fmt::KIND_BLOCK, &fmt::to_payload(b));
    }
    seq += 1;
    fmt::write_frame(&mut out, seq, fmt::KIND_TRAILER, &fmt::to_payload(trailer));
    out
}

fn block(entries: &[(&[u8], &[u8], Option<u64>)]) -> BlockV1 {
    let mut b = BlockV1::default();
    for (k, v, at) in entries {
        b.key_lens.push(k.len() as u32);
        b.value_lens.push(v.len() as u32);
        b.expiries.push(at.unwrap_or(0));
        b.flags.push(u8::from(at.is_some()));
        b.data.extend_from_slice(k);
        b.data.extend_from_slice(v);
    }
    b
}

#[test]
fn semantically_invalid_snapshots_are_rejected() {
    let header = HeaderV1 {
        term: 1,
        node_id: 1,
        index: 9,
        flags: 1,
        meta: vec![],
    };
    let good = block(&[(b"a", b"1", None), (b"b", b"2", Some(5))]);
    let trailer = TrailerV1 {
        entries: 2,
        blocks: 1,
        key_bytes: 2,
        value_bytes: 2,
    };
    let r =
        SnapshotReader::read_all(&craft(&header, std::slice::from_ref(&good), &trailer)).unwrap();
    assert_eq!(r.state.get(b"b", 4).as_deref(), Some(&b"2"[..]));
    assert_eq!(
        r.state.last_applied(),
        Some(LogId {
            term: 1,
            node_id: 1,
            index: 9
        })
    );

    let err = |blocks: &[BlockV1], trailer: &TrailerV1| {
        SnapshotReader::read_all(&craft(&header, blocks, trailer)).unwrap_err()
    };
    let dup = block(&[(b"a", b"1", None), (b"a", b"2", None)]);
    assert!(matches!(
        err(&[dup], &trailer),
        SnapshotError::DuplicateKey { .. }
    ));
    let mut b = good.clone();
    b.flags[0] = 2;
    assert!(matches!(
        err(&[b], &trailer),
        SnapshotError::InvalidEntry { .. }
    ));
    let mut b = good.clone();
    b.key_lens[0] = 5;
    assert!(matches!(
        err(&[b], &trailer),
        SnapshotError::InvalidEntry { .. }
    ));
    let mut b = good.clone();
    b.key_lens[0] = (limits::MAX_KEY_LEN + 1) as u32;
    assert!(matches!(
        err(&[b], &trailer),
        SnapshotError::InvalidEntry { .. }
    ));
    let mut b = good.clone();
    b.flags.pop();
    assert!(matches!(
        err(&[b], &trailer),
        SnapshotError::InvalidEntry { .. }
    ));
    let wrong = TrailerV1 {
        entries: 3,
        ..trailer.clone()
    };
    assert!(matches!(
        err(std::slice::from_ref(&good), &wrong),
        SnapshotError::TrailerMismatch { .. }
    ));
    let wrong = TrailerV1 {
        blocks: 2,
        ..trailer.clone()
    };
    assert!(matches!(
        err(std::slice::from_ref(&good), &wrong),
        SnapshotError::TrailerMismatch { .. }
    ));
    // A frame of the wrong kind, and a payload that is not an archive of its kind.
    let mut out = fmt::file_header().to_vec();
    fmt::write_frame(&mut out, 1, fmt::KIND_BLOCK, &fmt::to_payload(&good));
    assert!(matches!(
        SnapshotReader::read_all(&out).unwrap_err(),
        SnapshotError::UnexpectedFrame { .. }
    ));
    let mut out = fmt::file_header().to_vec();
    fmt::write_frame(&mut out, 1, fmt::KIND_HEADER, &[1, 2, 3]);
    assert!(matches!(
        SnapshotReader::read_all(&out).unwrap_err(),
        SnapshotError::InvalidPayload { .. }
    ));
    // A frame header announcing more than the limit is refused before buffering it.
    let mut out = fmt::file_header().to_vec();
    out.extend_from_slice(&((fmt::MAX_FRAME_PAYLOAD + 1) as u32).to_le_bytes());
    out.extend_from_slice(&[fmt::KIND_HEADER, 0, 0, 0, 0, 0, 0, 0]);
    assert!(matches!(
        SnapshotReader::read_all(&out).unwrap_err(),
        SnapshotError::FrameTooLarge { .. }
    ));
    // Swapping two valid frames breaks the position-bound CRC.
    let mut two = State::new();
    for i in 0..3000u32 {
        two.apply(
            log(u64::from(i) + 1),
            &Command::Put {
                key: Bytes::from(i.to_le_bytes().to_vec()),
                value: Bytes::from(vec![0u8; 200]),
            },
        )
        .unwrap();
    }
    let bytes = two.snapshot_to_vec(&[]).unwrap();
    let frames = split_frames(&bytes);
    assert!(frames.len() >= 4, "several blocks");
    let mut swapped = bytes[..fmt::FILE_HEADER_LEN].to_vec();
    let order = [0, 2, 1];
    for &f in order.iter().chain(&(3..frames.len()).collect::<Vec<_>>()) {
        swapped.extend_from_slice(frames[f]);
    }
    assert!(matches!(
        SnapshotReader::read_all(&swapped).unwrap_err(),
        SnapshotError::Checksum { .. }
    ));
}

#[test]
fn offset_names_the_start_of_the_frame_that_failed() {
    // Few large values: several block frames without many entries to decode.
    let mut s = build(5, 120_000);
    let bytes = s.snapshot_to_vec(b"m").unwrap();
    let mut starts = Vec::new();
    let mut at = fmt::FILE_HEADER_LEN;
    for f in split_frames(&bytes) {
        starts.push(at);
        at += f.len();
    }
    assert!(starts.len() >= 4, "header, several blocks, trailer");
    let ends: Vec<usize> = starts[1..].iter().copied().chain([bytes.len()]).collect();
    for (&start, &end) in starts.iter().zip(&ends) {
        // Damage in the middle of the frame, fed in pieces that do not follow frames.
        let mut b = bytes.clone();
        b[(start + end) / 2] ^= 0x40;
        let mut r = SnapshotReader::new();
        let failed = b.chunks(7000).any(|part| r.feed(part).is_err());
        assert!(failed, "damage in the frame at {start} accepted");
        assert_eq!(r.offset(), start as u64, "flip in the frame at {start}");
        // The stream cut inside the frame: `finish` reports it, `offset` says where.
        let mut r = SnapshotReader::new();
        for part in bytes[..(start + end) / 2].chunks(7000) {
            r.feed(part).unwrap();
        }
        assert_eq!(r.offset(), start as u64, "cut in the frame at {start}");
        assert!(matches!(r.finish(), Err(SnapshotError::Truncated { .. })));
    }
}

fn split_frames(bytes: &[u8]) -> Vec<&[u8]> {
    let mut at = fmt::FILE_HEADER_LEN;
    let mut frames = Vec::new();
    while at < bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        frames.push(&bytes[at..at + fmt::FRAME_HEADER_LEN + len]);
        at += fmt::FRAME_HEADER_LEN + len;
    }
    frames
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_states_round_trip(
        ops in proptest::collection::vec((0u16..500, proptest::collection::vec(any::<u8>(), 0..300), 0u8..4, any::<u32>()), 0..400),
        chunk in 1usize..5000,
    ) {
        let mut s = State::new();
        for (i, (k, v, kind, at)) in ops.into_iter().enumerate() {
            let key = Bytes::from(k.to_le_bytes().to_vec());
            let value = Bytes::from(v);
            let cmd = match kind {
                0 => Command::Delete { key },
                1 => Command::PutWithTtl { key, value, expire_at_ms: u64::from(at) },
                _ => Command::Put { key, value },
            };
            s.apply(log(i as u64 + 1), &cmd).unwrap();
            if i % 50 == 0 {
                s.tick(u64::from(at) / 2, 10);
            }
        }
        let bytes = s.snapshot_to_vec(b"meta").unwrap();
        let r = restore_in_chunks(&bytes, chunk).unwrap();
        prop_assert_eq!(dump(&r.state), dump(&s));
        prop_assert_eq!(r.state.last_applied(), s.last_applied());
        for now in [0u64, 1 << 20, 1 << 31, u64::MAX] {
            for k in 0u16..500 {
                let key = k.to_le_bytes();
                prop_assert_eq!(r.state.get(&key, now), s.get(&key, now));
                prop_assert_eq!(r.state.expiry(&key, now), s.expiry(&key, now));
            }
        }
    }
}

/// Pins the byte layout documented in docs/SNAPSHOT.md: if rkyv or the structs change
/// it, this fails and the document (and FORMAT_VERSION) must change with it.
#[test]
fn payload_layout_matches_the_document() {
    let h = HeaderV1 {
        term: 0x11,
        node_id: 0x22,
        index: 0x33,
        flags: 1,
        meta: b"MM".to_vec(),
    };
    let mut want = vec![0x4d, 0x4d, 0, 0, 0, 0, 0, 0];
    for v in [0x11u64, 0x22, 0x33, 1] {
        want.extend_from_slice(&v.to_le_bytes());
    }
    want.extend_from_slice(&(-40i32).to_le_bytes());
    want.extend_from_slice(&2u32.to_le_bytes());
    assert_eq!(&fmt::to_payload(&h)[..], &want[..]);

    let b = block(&[(b"ab", b"xyz", None), (b"c", b"", Some(0x44))]);
    let mut want = Vec::new();
    for v in [0u64, 0x44] {
        want.extend_from_slice(&v.to_le_bytes());
    }
    for v in [2u32, 1, 3, 0] {
        want.extend_from_slice(&v.to_le_bytes());
    }
    want.extend_from_slice(&[0, 1]);
    want.extend_from_slice(b"abxyzc");
    for (rel, len) in [(-40i32, 2u32), (-32, 2), (-32, 2), (-32, 2), (-38, 6)] {
        want.extend_from_slice(&rel.to_le_bytes());
        want.extend_from_slice(&len.to_le_bytes());
    }
    assert_eq!(&fmt::to_payload(&b)[..], &want[..]);

    let t = TrailerV1 {
        entries: 2,
        blocks: 1,
        key_bytes: 3,
        value_bytes: 3,
    };
    let want: Vec<u8> = [2u64, 1, 3, 3]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    assert_eq!(&fmt::to_payload(&t)[..], &want[..]);

    let mut frame = Vec::new();
    fmt::write_frame(&mut frame, 7, fmt::KIND_TRAILER, &fmt::to_payload(&t));
    assert_eq!(&frame[..8], &[32, 0, 0, 0, fmt::KIND_TRAILER, 0, 0, 0]);
    let mut crc = crc32fast::Hasher::new();
    crc.update(&7u64.to_le_bytes());
    crc.update(&frame[..8]);
    crc.update(&frame[12..]);
    assert_eq!(&frame[8..12], &crc.finalize().to_le_bytes());
    let fh = fmt::file_header();
    assert_eq!(&fh[..12], b"SHOALSNP\x01\x00\x00\x00");
    assert_eq!(&fh[12..], &crc32fast::hash(&fh[..12]).to_le_bytes());
}
