//! Fuzzes snapshot decoding (`SnapshotReader`): never panics, never accepts a state that
//! is inconsistent. Three modes, chosen by the first byte:
//! - raw: the input is the snapshot, fed in chunks of a size the input picks;
//! - structured: build a real snapshot from ops in the input, corrupt bytes the input
//!   picks, *recompute every frame CRC* so the corruption reaches rkyv validation and the
//!   semantic checks, then decode;
//! - plain corruption: same without fixing the CRCs: any change must be rejected.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use shoal::state::{Command, LogId, SnapshotReader, State};

const FILE_HEADER_LEN: usize = 16;
const FRAME_HEADER_LEN: usize = 12;

fn build(ops: &[u8]) -> State {
    let mut s = State::new();
    for (i, op) in ops.chunks(3).enumerate() {
        let key = Bytes::from(vec![op[0] % 32; usize::from(op[0] % 5)]);
        let value = Bytes::from(vec![
            op.get(1).copied().unwrap_or(0);
            usize::from(op.get(1).copied().unwrap_or(0) % 40)
        ]);
        let flag = op.get(2).copied().unwrap_or(0);
        let cmd = match flag % 3 {
            0 => Command::Put { key, value },
            1 => Command::PutWithTtl {
                key,
                value,
                expire_at_ms: u64::from(flag) * 1000,
            },
            _ => Command::Delete { key },
        };
        s.apply(
            LogId {
                term: 1,
                node_id: 1,
                index: i as u64 + 1,
            },
            &cmd,
        )
        .expect("increasing index");
    }
    s
}

/// Recomputes the CRC of every frame whose header still parses.
fn fix_crcs(b: &mut [u8]) {
    let mut at = FILE_HEADER_LEN;
    let mut seq = 1u64;
    while at + FRAME_HEADER_LEN <= b.len() {
        let len = u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize;
        let end = at + FRAME_HEADER_LEN + len;
        if end > b.len() {
            return;
        }
        let mut h = crc32fast::Hasher::new();
        h.update(&seq.to_le_bytes());
        h.update(&b[at..at + 8]);
        h.update(&b[at + FRAME_HEADER_LEN..end]);
        let crc = h.finalize();
        b[at + 8..at + 12].copy_from_slice(&crc.to_le_bytes());
        at = end;
        seq += 1;
    }
}

fn decode_chunked(b: &[u8], chunk: usize) -> Option<State> {
    let mut r = SnapshotReader::new();
    for part in b.chunks(chunk.max(1)) {
        if r.feed(part).is_err() {
            // Poisoned: every later call fails the same way.
            assert!(r.feed(&[]).is_err());
            return None;
        }
    }
    r.finish().ok().map(|r| r.state)
}

fn check_consistent(s: &mut State) {
    let m = s.memory();
    let mut keys = 0;
    let mut key_bytes = 0;
    let mut value_bytes = 0;
    for e in s.entries() {
        keys += 1;
        key_bytes += e.key().len();
        value_bytes += e.value().len();
        assert_eq!(
            s.get(e.key(), 0).is_some(),
            e.expiry().is_none_or(|at| at > 0)
        );
    }
    assert_eq!(
        (m.keys, m.key_bytes, m.value_bytes),
        (keys, key_bytes, value_bytes)
    );
    // What was restored snapshots and restores again to the same entries.
    let again = s.snapshot_to_vec(&[]).expect("no snapshot in progress");
    let r = SnapshotReader::read_all(&again).expect("own snapshot decodes");
    assert_eq!(r.state.len(), s.len());
    for e in s.entries() {
        assert_eq!(r.state.get(e.key(), 0), s.get(e.key(), 0));
    }
    while !s.tick(u64::MAX, 64).complete {}
    assert!(s.entries().all(|e| e.expiry().is_none()));
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            let chunk = rest.first().map_or(1, |&c| usize::from(c) * 7 + 1);
            if let Some(mut s) = decode_chunked(rest, chunk) {
                check_consistent(&mut s);
            }
        }
        m => {
            let (ops, edits) = rest.split_at(rest.len() / 2);
            let mut s = build(ops);
            let mut bytes = s.snapshot_to_vec(b"meta").expect("no snapshot in progress");
            let original = bytes.clone();
            for e in edits.chunks_exact(3) {
                let pos = usize::from(u16::from_le_bytes([e[0], e[1]])) % bytes.len();
                bytes[pos] ^= e[2];
            }
            if edits.len() % 5 == 4 {
                let cut = usize::from(edits[0]) % bytes.len();
                bytes.truncate(cut);
            }
            if m == 1 {
                fix_crcs(&mut bytes);
                if let Some(mut s) = decode_chunked(&bytes, 4096) {
                    check_consistent(&mut s);
                }
            } else {
                let got = decode_chunked(&bytes, 1000);
                if bytes == original {
                    let got = got.expect("an intact snapshot decodes");
                    assert_eq!(got.len(), s.len());
                } else {
                    assert!(got.is_none(), "a corrupted snapshot was accepted");
                }
            }
            check_consistent(&mut s);
        }
    }
});
