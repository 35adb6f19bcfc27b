//! Tests of `State::digest`: independent of history, order and table layout; sensitive to
//! every key, value byte and expiry; blind to reclamation of expired keys.

use proptest::prelude::*;

use super::*;

fn log(index: u64) -> LogId {
    LogId {
        term: 1,
        node_id: 1,
        index,
    }
}

/// (key, value, expiry) applied as puts, in the given order, from log index 1.
fn state_of(entries: &[(Vec<u8>, Vec<u8>, Option<u64>)]) -> State {
    let mut s = State::new();
    for (i, (key, value, at)) in entries.iter().enumerate() {
        let cmd = match at {
            None => Command::Put {
                key: Bytes::from(key.clone()),
                value: Bytes::from(value.clone()),
            },
            Some(at) => Command::PutWithTtl {
                key: Bytes::from(key.clone()),
                value: Bytes::from(value.clone()),
                expire_at_ms: *at,
            },
        };
        s.apply(log(i as u64 + 1), &cmd).unwrap();
    }
    s
}

fn put(s: &mut State, index: u64, key: &[u8], value: &[u8]) {
    let cmd = Command::Put {
        key: Bytes::copy_from_slice(key),
        value: Bytes::copy_from_slice(value),
    };
    s.apply(log(index), &cmd).unwrap();
}

fn del(s: &mut State, index: u64, key: &[u8]) {
    let cmd = Command::Delete {
        key: Bytes::copy_from_slice(key),
    };
    s.apply(log(index), &cmd).unwrap();
}

fn sample() -> Vec<(Vec<u8>, Vec<u8>, Option<u64>)> {
    (0..500u32)
        .map(|i| {
            let at = (i % 3 == 0).then_some(1_000_000 + u64::from(i));
            (
                format!("key-{i}").into_bytes(),
                vec![i as u8; (i % 40) as usize],
                at,
            )
        })
        .collect()
}

#[test]
fn empty_states_agree_and_carry_their_log_position() {
    let a = State::new().digest(0);
    assert_eq!(a.keys, 0);
    assert_eq!(a.applied, None);
    let mut b = State::new();
    put(&mut b, 1, b"k", b"v");
    del(&mut b, 2, b"k");
    let d = b.digest(0);
    assert_eq!((d.keys, d.hash), (a.keys, a.hash));
    assert_eq!(d.applied, Some(log(2)));
}

#[test]
fn insertion_order_and_table_layout_do_not_matter() {
    let entries = sample();
    let forward = state_of(&entries);
    let mut reversed_entries = entries.clone();
    reversed_entries.reverse();
    let reversed = state_of(&reversed_entries);
    let (a, b) = (forward.digest(5), reversed.digest(5));
    assert_eq!(a.keys, 500);
    assert_eq!((a.keys, a.hash), (b.keys, b.hash));

    // Same contents through a history that grew the tables far larger, overwrote and
    // deleted: the tables differ, the contents and so the digest do not.
    let mut grown = State::new();
    let mut index = 1;
    for i in 0..20_000u32 {
        put(&mut grown, index, format!("tmp-{i}").as_bytes(), b"x");
        index += 1;
    }
    for (key, _, _) in &entries {
        put(&mut grown, index, key, b"an older value");
        index += 1;
    }
    for i in 0..20_000u32 {
        del(&mut grown, index, format!("tmp-{i}").as_bytes());
        index += 1;
    }
    for (key, value, at) in &entries {
        let cmd = match at {
            None => Command::Put {
                key: Bytes::from(key.clone()),
                value: Bytes::from(value.clone()),
            },
            Some(at) => Command::PutWithTtl {
                key: Bytes::from(key.clone()),
                value: Bytes::from(value.clone()),
                expire_at_ms: *at,
            },
        };
        grown.apply(log(index), &cmd).unwrap();
        index += 1;
    }
    let c = grown.digest(5);
    assert_eq!((c.keys, c.hash), (a.keys, a.hash));
    assert_eq!(c.applied, Some(log(index - 1)));
}

#[test]
fn one_changed_byte_key_or_expiry_changes_the_digest() {
    let entries = sample();
    let base = state_of(&entries).digest(5);
    let mut variants = Vec::new();
    // A value byte.
    let mut v = entries.clone();
    v[7].1[0] ^= 1;
    variants.push(("value byte", v));
    // A key byte.
    let mut v = entries.clone();
    v[8].0[0] ^= 0x20;
    variants.push(("key byte", v));
    // An expiry moved by 1 ms.
    let mut v = entries.clone();
    v[9].2 = v[9].2.map(|at| at + 1);
    assert!(v[9].2.is_some(), "entry 9 has a TTL in the sample");
    variants.push(("expiry", v));
    // A TTL added to a persistent key, with the same value.
    let mut v = entries.clone();
    assert!(v[10].2.is_none());
    v[10].2 = Some(9_999_999);
    variants.push(("ttl added", v));
    // A byte moved from the end of the key to the start of the value.
    let mut v = entries.clone();
    let last = v[11].0.pop().unwrap();
    v[11].1.insert(0, last);
    variants.push(("key/value boundary", v));
    // One key fewer.
    let mut v = entries.clone();
    v.remove(12);
    variants.push(("missing key", v));
    for (what, v) in variants {
        let d = state_of(&v).digest(5);
        assert_ne!(d.hash, base.hash, "{what} did not change the digest");
    }
}

#[test]
fn expired_keys_count_out_whether_reclaimed_or_not() {
    let mut entries = sample();
    entries.push((b"short".to_vec(), b"lived".to_vec(), Some(100)));
    let mut s = state_of(&entries);
    let without = state_of(&sample()).digest(100);
    let before_expiry = s.digest(99);
    assert_eq!(before_expiry.keys, 501);
    assert_ne!(before_expiry.hash, without.hash);
    // Expired but not reclaimed yet.
    let expired = s.digest(100);
    assert_eq!((expired.keys, expired.hash), (without.keys, without.hash));
    // Reclaimed.
    while !s.tick(100, 16).complete {}
    assert_eq!(s.len(), 500);
    let reclaimed = s.digest(100);
    assert_eq!(
        (reclaimed.keys, reclaimed.hash),
        (without.keys, without.hash)
    );
}

#[test]
fn a_restored_snapshot_has_the_digest_of_its_source() {
    let mut s = state_of(&sample());
    let before = s.digest(5);
    let bytes = s.snapshot_to_vec(b"meta").unwrap();
    let restored = SnapshotReader::read_all(&bytes).unwrap().state;
    assert_eq!(restored.digest(5), before);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any permutation of any set of puts gives the same digest; changing one value
    /// changes it.
    #[test]
    fn permutations_agree(
        map in prop::collection::btree_map(
            prop::collection::vec(any::<u8>(), 0..24),
            (prop::collection::vec(any::<u8>(), 0..64), prop::option::of(1u64..1_000)),
            1..80,
        ),
        seed in any::<u64>(),
    ) {
        let entries: Vec<_> = map.into_iter().map(|(k, (v, at))| (k, v, at)).collect();
        let mut shuffled = entries.clone();
        // A deterministic shuffle from the seed (Fisher-Yates with a xorshift).
        let mut x = seed | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let a = state_of(&entries).digest(0);
        let b = state_of(&shuffled).digest(0);
        prop_assert_eq!((a.keys, a.hash), (b.keys, b.hash));
        let mut changed = entries.clone();
        changed[0].1.push(0);
        let c = state_of(&changed).digest(0);
        prop_assert_ne!(c.hash, a.hash);
    }
}
