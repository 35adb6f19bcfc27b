//! Property tests of the Raft entry and metadata encodings stored in the WAL: every entry
//! round-trips; any byte string (random, or a valid encoding with bytes flipped, cut or
//! extended) decodes to an error or to a value that re-encodes to exactly those bytes
//! (the encoding is canonical), and never panics.
// Test binary: a failed unwrap is how a helper fails the test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use bytes::Bytes;
use openraft::Membership;
use proptest::prelude::*;
use shoal::raft::log_codec::{
    LogMeta, decode_entry, decode_meta, encode_entry, encode_meta, log_id,
};
use shoal::raft::types::{Entry, EntryPayload, LogId, Request, ShoalNode, Vote};

fn arb_log_id() -> impl Strategy<Value = LogId> {
    (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(t, n, i)| log_id(t, n, i))
}

fn arb_node() -> impl Strategy<Value = ShoalNode> {
    ("\\PC{0,24}", "[a-z0-9.:]{0,24}").prop_map(|(client_addr, peer_addr)| ShoalNode {
        client_addr,
        peer_addr,
    })
}

fn arb_membership() -> impl Strategy<Value = Membership<u64, ShoalNode>> {
    (
        prop::collection::vec(prop::collection::btree_set(0u64..8, 1..5), 1..=2),
        prop::collection::btree_map(0u64..12, arb_node(), 0..4),
        arb_node(),
    )
        .prop_map(|(configs, mut nodes, default)| {
            for id in configs.iter().flatten() {
                nodes.entry(*id).or_insert_with(|| default.clone());
            }
            Membership::new(configs, nodes).unwrap()
        })
}

fn arb_entry() -> impl Strategy<Value = Entry> {
    let payload = prop_oneof![
        Just(EntryPayload::Blank),
        prop::collection::vec(any::<u8>(), 0..300).prop_map(|b| EntryPayload::Normal(Request {
            command: Bytes::from(b)
        })),
        arb_membership().prop_map(EntryPayload::Membership),
        Just(EntryPayload::Membership(Membership::default())),
    ];
    (arb_log_id(), payload).prop_map(|(log_id, payload)| Entry { log_id, payload })
}

fn arb_meta() -> impl Strategy<Value = LogMeta> {
    (
        prop::option::of((any::<u64>(), any::<u64>(), any::<bool>())),
        prop::option::of(arb_log_id()),
        prop::option::of(arb_log_id()),
    )
        .prop_map(|(v, committed, last_purged)| LogMeta {
            vote: v.map(|(t, n, c)| {
                let mut v = Vote::new(t, n);
                v.committed = c;
                v
            }),
            committed,
            last_purged,
        })
}

fn encode(e: &Entry) -> Vec<u8> {
    let mut b = Vec::new();
    encode_entry(e, &mut b).unwrap();
    b
}

/// Decoding must not panic; what decodes re-encodes to the same bytes.
fn check_entry_bytes(b: &[u8]) {
    if let Ok(e) = decode_entry(&Bytes::copy_from_slice(b)) {
        assert_eq!(encode(&e), b);
    }
}

fn check_meta_bytes(b: &[u8]) {
    if let Ok(m) = decode_meta(b) {
        assert_eq!(&encode_meta(&m)[..], b);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn entries_round_trip(e in arb_entry()) {
        let b = encode(&e);
        prop_assert_eq!(decode_entry(&Bytes::from(b)).unwrap(), e);
    }

    #[test]
    fn random_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..200)) {
        check_entry_bytes(&b);
        check_meta_bytes(&b);
        // Random bodies behind a valid version and kind reach the deeper checks.
        for kind in 0u8..3 {
            let mut v = vec![1u8, kind];
            v.extend_from_slice(&b);
            check_entry_bytes(&v);
        }
    }

    #[test]
    fn damaged_encodings_never_panic(
        e in arb_entry(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
        extra in prop::collection::vec(any::<u8>(), 0..8),
    ) {
        let b = encode(&e);
        let mut d = b.clone();
        for (at, x) in &flips {
            let i = at.index(d.len());
            d[i] ^= x | 1;
        }
        check_entry_bytes(&d);
        check_entry_bytes(&b[..cut.index(b.len())]);
        let mut longer = b.clone();
        longer.extend_from_slice(&extra);
        check_entry_bytes(&longer);
    }

    #[test]
    fn meta_round_trips_and_damage_never_panics(
        m in arb_meta(),
        at in any::<prop::sample::Index>(),
        x in 1u8..,
    ) {
        let b = encode_meta(&m);
        prop_assert!(b.len() <= shoal_wal::MAX_META_LEN);
        prop_assert_eq!(decode_meta(&b).unwrap(), m);
        let mut d = b.to_vec();
        let i = at.index(d.len());
        d[i] ^= x;
        check_meta_bytes(&d);
        check_meta_bytes(&b[..i]);
    }
}

#[test]
fn node_order_and_learners_are_kept() {
    let nodes: BTreeMap<u64, ShoalNode> = (0..5)
        .map(|i| {
            (
                i,
                ShoalNode {
                    client_addr: format!("c{i}"),
                    peer_addr: format!("p{i}"),
                },
            )
        })
        .collect();
    let m = Membership::new(vec![BTreeSet::from([1, 3])], nodes).unwrap();
    let e = Entry {
        log_id: log_id(1, 2, 3),
        payload: EntryPayload::Membership(m),
    };
    let back = decode_entry(&Bytes::from(encode(&e))).unwrap();
    assert_eq!(back, e);
}
