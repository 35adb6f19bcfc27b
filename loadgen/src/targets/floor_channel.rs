//! The `floor-channel` target: the plain tokio -> glommio-shard channel round trip, the
//! floor under `shoal-local`.
//!
//! Every operation does what `LocalKvClient` does to reach a shard (copy the key and value
//! into a `shoal_proto::Request`, route with `shard_for_key`, `try_send` an envelope on the
//! shard's bounded `tokio::sync::mpsc`, await a `oneshot`), and the shard, a glommio
//! executor pinned like a node's shard (`Placement::Fixed(shard % cores)`, as in
//! `src/node/shard_thread.rs`), answers at once: no Raft, no WAL, no state. The difference
//! between `shoal-local` and this target is what the node itself costs.
//!
//! Invariants: one executor thread per shard; every envelope is answered exactly once;
//! dropping the target closes the inboxes, and each executor thread then ends (it is
//! detached, never joined from the async context that drops the target).

use bytes::Bytes;
use glommio::{LocalExecutorBuilder, Placement};
use shoal_proto::{Delete, Get, GetMulti, Put, PutWithTtl, ReadConsistency, Request, Response};
use tokio::sync::{mpsc, oneshot};

use super::{ConnectError, ErrorKind, OpError, Target};

/// Envelopes an inbox holds (the node's default `limits.shard_queue_depth`).
pub const INBOX_DEPTH: usize = shoal_proto::limits::DEFAULT_SHARD_QUEUE_DEPTH;

struct Envelope {
    request: Request,
    reply: oneshot::Sender<Response>,
}

/// Shards that answer every request at once.
pub struct ChannelFloor {
    inboxes: Vec<mpsc::Sender<Envelope>>,
}

impl std::fmt::Debug for ChannelFloor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelFloor")
            .field("shards", &self.inboxes.len())
            .finish()
    }
}

impl ChannelFloor {
    /// Starts `shards` executor threads; gets answer a `value_size`-byte value (the size
    /// the run writes, so the answer moves what a hit moves).
    pub fn start(shards: usize, value_size: usize) -> Result<Self, ConnectError> {
        assert!(shards >= 1, "at least one shard");
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let value = Bytes::from(vec![0x5a; value_size]);
        let mut inboxes = Vec::with_capacity(shards);
        for shard in 0..shards {
            let (tx, rx) = mpsc::channel(INBOX_DEPTH);
            let answer = value.clone();
            LocalExecutorBuilder::new(Placement::Fixed(shard % cores))
                .name(&format!("floor-shard-{shard}"))
                .spawn(move || serve(rx, answer))
                .map_err(|e| ConnectError::Failed {
                    target: "floor-channel",
                    endpoint: format!("shard {shard}"),
                    reason: format!("cannot start the executor: {e}"),
                })?;
            inboxes.push(tx);
        }
        Ok(Self { inboxes })
    }

    async fn call(&self, key: &[u8], request: Request) -> Result<Response, OpError> {
        let shard = shoal_proto::shard_for_key(key, self.inboxes.len() as u32);
        let (reply, answer) = oneshot::channel();
        self.inboxes[shard as usize]
            .try_send(Envelope { request, reply })
            .map_err(|e| OpError::new(ErrorKind::Server, format!("shard {shard}: {e}")))?;
        answer
            .await
            .map_err(|_| OpError::new(ErrorKind::Connection, "the shard dropped the request"))
    }
}

/// The shard: answers each envelope as it arrives.
async fn serve(mut inbox: mpsc::Receiver<Envelope>, value: Bytes) {
    while let Some(Envelope { request, reply }) = inbox.recv().await {
        let response = match request {
            Request::Get(_) => Response::Get(Some(value.clone())),
            Request::GetMulti(m) => Response::GetMulti(vec![Some(value.clone()); m.keys.len()]),
            Request::Put(_) => Response::Put,
            Request::PutWithTtl(_) => Response::PutWithTtl,
            Request::Delete(_) => Response::Delete { existed: true },
            _ => Response::Pong,
        };
        // The caller may have given up; nothing to do then.
        let _ = reply.send(response);
    }
}

fn unexpected(r: &Response) -> OpError {
    OpError::new(ErrorKind::Other, format!("unexpected answer {r:?}"))
}

impl Target for ChannelFloor {
    fn describe(&self) -> String {
        format!(
            "floor-channel ({} glommio shard(s) answering at once over tokio mpsc + oneshot: \
             the transport under shoal-local)",
            self.inboxes.len()
        )
    }

    async fn put(&self, key: &[u8], value: &[u8]) -> Result<(), OpError> {
        let request = Request::Put(Put {
            shard: None,
            key: Bytes::copy_from_slice(key),
            value: Bytes::copy_from_slice(value),
        });
        match self.call(key, request).await? {
            Response::Put => Ok(()),
            r => Err(unexpected(&r)),
        }
    }

    async fn put_with_ttl(&self, key: &[u8], value: &[u8], ttl_secs: u64) -> Result<(), OpError> {
        let request = Request::PutWithTtl(PutWithTtl {
            shard: None,
            key: Bytes::copy_from_slice(key),
            value: Bytes::copy_from_slice(value),
            ttl_ms: ttl_secs.saturating_mul(1000),
        });
        match self.call(key, request).await? {
            Response::PutWithTtl => Ok(()),
            r => Err(unexpected(&r)),
        }
    }

    async fn get(&self, key: &[u8]) -> Result<bool, OpError> {
        let request = Request::Get(Get {
            shard: None,
            key: Bytes::copy_from_slice(key),
            consistency: ReadConsistency::Linearizable,
        });
        match self.call(key, request).await? {
            Response::Get(v) => Ok(v.is_some()),
            r => Err(unexpected(&r)),
        }
    }

    async fn get_multi(&self, keys: &[Bytes]) -> Result<usize, OpError> {
        // One request to the first key's shard: the floor of one multi-get part.
        let Some(first) = keys.first() else {
            return Ok(0);
        };
        let request = Request::GetMulti(GetMulti {
            shard: None,
            keys: keys.to_vec(),
            consistency: ReadConsistency::Linearizable,
        });
        match self.call(first, request).await? {
            Response::GetMulti(v) => Ok(v.iter().filter(|v| v.is_some()).count()),
            r => Err(unexpected(&r)),
        }
    }

    async fn delete(&self, key: &[u8]) -> Result<(), OpError> {
        let request = Request::Delete(Delete {
            shard: None,
            key: Bytes::copy_from_slice(key),
        });
        match self.call(key, request).await? {
            Response::Delete { .. } => Ok(()),
            r => Err(unexpected(&r)),
        }
    }
}
