//! `get_multi` for `RemoteKvClient`: split the keys by shard, fetch every part in
//! parallel on its group leader, put the answers back in input order.
//!
//! Invariants: the result has exactly one entry per input key, in input order
//! (duplicates are fetched once per position; the node answers each position). A part
//! never exceeds `MAX_BATCH_KEYS` keys nor `MAX_FRAME_LEN` bytes of request; a part whose
//! *answer* would be too large (`TooLarge` kind `Response`) is halved and retried. If the
//! shard count changes under a call, the whole call is re-split (bounded). The request
//! timeout bounds the whole call.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use shoal_proto::limits::{MAX_BATCH_KEYS, MAX_FRAME_LEN};
use shoal_proto::{
    GetMulti, LimitKind, ReadConsistency, Request, Response, encode_request, group_by_shard,
};
use tokio::time::Instant;

use super::{Failure, RemoteKvClient, gen_seen_now, unexpected};
use crate::args::check_key;
use crate::error::KvClientError;

/// Room left in a frame for the GetMulti fields around the keys.
const FRAME_SLACK: usize = 64;
/// Re-splits allowed when the shard count changes during one call.
const MAX_RESPLITS: usize = 3;

/// One request's worth of keys of one shard, with their positions in the input.
#[derive(Debug, Clone)]
struct Part {
    shard: u32,
    positions: Vec<usize>,
    keys: Vec<Bytes>,
}

type PartFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Vec<(usize, Option<Bytes>)>, KvClientError>> + Send + 'a>>;

fn split(keys: &[Bytes], shard_count: u32) -> Vec<Part> {
    let mut parts = Vec::new();
    for (shard, positions) in group_by_shard(keys, shard_count) {
        let mut cur = Part {
            shard,
            positions: Vec::new(),
            keys: Vec::new(),
        };
        let mut bytes = 0usize;
        for i in positions {
            let k = &keys[i];
            let cost = 4 + k.len();
            if !cur.keys.is_empty()
                && (cur.keys.len() == MAX_BATCH_KEYS || bytes + cost > MAX_FRAME_LEN - FRAME_SLACK)
            {
                parts.push(std::mem::replace(
                    &mut cur,
                    Part {
                        shard,
                        positions: Vec::new(),
                        keys: Vec::new(),
                    },
                ));
                bytes = 0;
            }
            bytes += cost;
            cur.positions.push(i);
            cur.keys.push(k.clone());
        }
        if !cur.keys.is_empty() {
            parts.push(cur);
        }
    }
    parts
}

impl RemoteKvClient {
    pub(super) async fn multi_get(
        &self,
        keys: &[Bytes],
        consistency: ReadConsistency,
    ) -> Result<Vec<Option<Bytes>>, KvClientError> {
        for k in keys {
            check_key(k)?;
        }
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let deadline = self.deadline();
        let mut resplits = 0;
        loop {
            let (routing, _) = self.routing().await?;
            let parts = split(keys, routing.shard_count);
            let futs = parts
                .into_iter()
                .map(|p| self.fetch_part(p, routing.shard_count, consistency, deadline));
            match futures::future::try_join_all(futs).await {
                Ok(answers) => {
                    let mut out = vec![None; keys.len()];
                    let mut filled = 0usize;
                    for (i, v) in answers.into_iter().flatten() {
                        out[i] = v;
                        filled += 1;
                    }
                    assert_eq!(filled, keys.len(), "every position answered once");
                    return Ok(out);
                }
                Err(KvClientError::WrongShard { .. })
                    if resplits < MAX_RESPLITS && Instant::now() < deadline =>
                {
                    resplits += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Fetches one part, halving it while the node says its answer is too large.
    fn fetch_part(
        &self,
        part: Part,
        shard_count: u32,
        consistency: ReadConsistency,
        deadline: Instant,
    ) -> PartFuture<'_> {
        Box::pin(async move {
            match self
                .fetch_part_once(&part, shard_count, consistency, deadline)
                .await
            {
                Err(KvClientError::TooLarge {
                    limit: LimitKind::Response,
                    ..
                }) if part.keys.len() > 1 => {
                    let mid = part.keys.len() / 2;
                    let (a, b) = halves(part, mid);
                    let (ra, rb) = futures::future::try_join(
                        self.fetch_part(a, shard_count, consistency, deadline),
                        self.fetch_part(b, shard_count, consistency, deadline),
                    )
                    .await?;
                    Ok(ra.into_iter().chain(rb).collect())
                }
                other => other,
            }
        })
    }

    async fn fetch_part_once(
        &self,
        part: &Part,
        shard_count: u32,
        consistency: ReadConsistency,
        deadline: Instant,
    ) -> Result<Vec<(usize, Option<Bytes>)>, KvClientError> {
        let shard = part.shard;
        let request = Request::GetMulti(GetMulti {
            shard: Some(shard),
            keys: part.keys.clone(),
            consistency,
        });
        let request = &request;
        let values = self
            .with_retries(deadline, false, || async move {
                let (routing, gen_seen) = self
                    .routing()
                    .await
                    .map_err(|e| Failure::before_send(e, gen_seen_now(self)))?;
                if routing.shard_count != shard_count {
                    // The split is stale: let the caller re-split every key.
                    return Err(Failure {
                        resplit: true,
                        ..Failure::before_send(
                            KvClientError::WrongShard {
                                owner_shard: routing.shard_of(&part.keys[0]),
                                shard_count: routing.shard_count,
                            },
                            gen_seen,
                        )
                    });
                }
                let (conn, node, is_leader) = self.connect_shard(&routing, shard, gen_seen).await?;
                let fail = |err, sent| Failure {
                    err,
                    shard: Some(shard),
                    node: Some(node),
                    conn: Some(conn.clone()),
                    sent,
                    gen_seen,
                    resplit: false,
                };
                match conn
                    .call_tracked(|b, id| encode_request(b, id, request))
                    .await
                {
                    Ok(Response::GetMulti(vs)) if vs.len() == part.keys.len() => {
                        if !is_leader && consistency != ReadConsistency::Stale {
                            self.learned_leader(shard, node);
                        }
                        Ok(vs)
                    }
                    Ok(Response::Error(e)) => {
                        Err(fail(KvClientError::from_error_response(e), true))
                    }
                    Ok(other) => Err(fail(unexpected(&conn, "GetMulti", &other), true)),
                    Err(f) => Err(fail(f.err, f.sent)),
                }
            })
            .await?;
        Ok(part.positions.iter().copied().zip(values).collect())
    }
}

fn halves(part: Part, mid: usize) -> (Part, Part) {
    let Part {
        shard,
        mut positions,
        mut keys,
    } = part;
    let positions_b = positions.split_off(mid);
    let keys_b = keys.split_off(mid);
    (
        Part {
            shard,
            positions,
            keys,
        },
        Part {
            shard,
            positions: positions_b,
            keys: keys_b,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::shard_for_key;

    #[test]
    fn split_keeps_every_position_once_and_respects_limits() {
        let keys: Vec<Bytes> = (0..3000)
            .map(|i| Bytes::from(format!("k{}", i % 2500)))
            .collect();
        let parts = split(&keys, 4);
        let mut seen = vec![0u8; keys.len()];
        for p in &parts {
            assert!(p.keys.len() <= MAX_BATCH_KEYS && !p.keys.is_empty());
            for (i, k) in p.positions.iter().zip(&p.keys) {
                assert_eq!(&keys[*i], k);
                assert_eq!(shard_for_key(k, 4), p.shard);
                seen[*i] += 1;
            }
        }
        assert!(seen.iter().all(|&n| n == 1));
    }

    #[test]
    fn split_bounds_request_bytes() {
        let big = Bytes::from(vec![b'x'; shoal_proto::limits::MAX_KEY_LEN]);
        let keys = vec![big; 1000];
        let parts = split(&keys, 1);
        assert!(parts.len() > 1);
        for p in &parts {
            let bytes: usize = p.keys.iter().map(|k| 4 + k.len()).sum();
            assert!(bytes <= MAX_FRAME_LEN - FRAME_SLACK);
        }
    }
}
