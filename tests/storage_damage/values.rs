//! The data the storage-fault suites write: large values (so a few hundred puts fill
//! several 8 MiB segments) derived from their key, so every read can be compared byte for
//! byte with what was acknowledged, without keeping the values around.

use std::collections::BTreeMap;

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use shoal_client::{KvClient, RemoteKvClient};

/// Large values fill several 8 MiB segments per shard with a few hundred puts.
pub const VALUE_LEN: usize = 96 * 1024;

pub fn value_of(key: &str) -> Bytes {
    let seed = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let mut v = vec![0u8; VALUE_LEN];
    SmallRng::seed_from_u64(seed).fill_bytes(&mut v);
    Bytes::from(v)
}

/// Puts keys `k{i}` for `i` in `range` (16 at a time) and records each acknowledged one.
pub async fn fill(client: &RemoteKvClient, range: std::ops::Range<usize>, acked: &mut Acked) {
    let keys: Vec<String> = range.map(|i| format!("k{i:05}")).collect();
    for chunk in keys.chunks(16) {
        let puts = chunk.iter().map(|k| async move {
            let v = value_of(k);
            client.put(k, &v).await.map(|()| (k.clone(), v))
        });
        for r in futures::future::join_all(puts).await {
            let (k, v) = r.expect("put on a healthy node");
            acked.insert(k, v);
        }
    }
}

pub type Acked = BTreeMap<String, Bytes>;

/// Reads every acknowledged key back; returns the keys missing or wrong.
pub async fn wrong_keys(client: &RemoteKvClient, acked: &Acked) -> Vec<String> {
    let all: Vec<(&String, &Bytes)> = acked.iter().collect();
    let mut wrong = Vec::new();
    for chunk in all.chunks(8) {
        let keys: Vec<Bytes> = chunk
            .iter()
            .map(|(k, _)| Bytes::from((*k).clone()))
            .collect();
        let got = client.get_multi(&keys).await.expect("get_multi");
        for ((k, v), g) in chunk.iter().zip(got) {
            if g.as_ref() != Some(*v) {
                wrong.push((*k).clone());
            }
        }
    }
    wrong
}
