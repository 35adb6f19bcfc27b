//! The `floor-channel` target: the plain embedded-client -> glommio-shard channel round
//! trip, the floor under `shoal-local`.
//!
//! The floor is `shoal-local` with the node taken out: the very `LocalKvClient` (argument
//! checks, key copies, routing, the lone-call reply spin) over the very `shoal::node::Mesh`
//! (bounded `tokio::sync::mpsc` inboxes, `oneshot` replies), wrapped in the same
//! `ShoalTarget` with the same guard, to shard executors pinned like a node's shards
//! (`Placement::Fixed(shard % cores)`, as in `src/node/shard_thread.rs`) with the same
//! `spin_before_park`, that drain their inbox per wake-up like the node's inbox task and
//! answer every envelope at once: no Raft, no WAL, no state. The difference between
//! `shoal-local` and this target is what the node itself costs.
//!
//! Invariants: one executor thread per shard; every envelope is answered exactly once;
//! dropping the target drops the mesh, which closes the inboxes, and each executor thread
//! then ends (it is detached, never joined from the async context that drops the target).

use std::time::Duration;

use bytes::Bytes;
use glommio::{LocalExecutorBuilder, Placement};
use shoal::local_client::LocalKvClient;
use shoal::node::{Envelope, Inbox, Mesh};
use shoal_proto::{Request, Response};

use super::shoal::ShoalTarget;
use super::shoal_local::{GUARD_MARGIN, SpinSettings};
use super::{ConnectError, OpError, Target};

/// Envelopes an inbox holds (the node's default `limits.shard_queue_depth`).
pub const INBOX_DEPTH: usize = shoal_proto::limits::DEFAULT_SHARD_QUEUE_DEPTH;

/// Per-call deadline of the floor's client (its shards answer at once; a call that takes
/// this long means a shard died).
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Shards that answer every request at once, reached through a `LocalKvClient`.
pub struct ChannelFloor {
    shards: usize,
    spin: SpinSettings,
    target: ShoalTarget<LocalKvClient>,
}

impl std::fmt::Debug for ChannelFloor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelFloor")
            .field("shards", &self.shards)
            .field("spin", &self.spin)
            .finish()
    }
}

impl ChannelFloor {
    /// Starts `shards` executor threads; gets answer a `value_size`-byte value (the size
    /// the run writes, so the answer moves what a hit moves).
    pub fn start(
        shards: usize,
        value_size: usize,
        spin: &SpinSettings,
    ) -> Result<Self, ConnectError> {
        assert!(shards >= 1, "at least one shard");
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let value = Bytes::from(vec![0x5a; value_size]);
        let (mesh, inboxes) = Mesh::new(shards, INBOX_DEPTH);
        for (shard, inbox) in inboxes.into_iter().enumerate() {
            let answer = value.clone();
            // Placed as a node places its shards, so the floor crosses the same cores.
            let executor = spin.executor();
            let mut builder =
                LocalExecutorBuilder::new(Placement::Fixed(executor.core_of(shard, cores)))
                    .name(&format!("floor-shard-{shard}"));
            if let Some(window) = executor.spin_before_park() {
                builder = builder.spin_before_park(window);
            }
            builder
                .spawn(move || serve(inbox, answer))
                .map_err(|e| ConnectError::Failed {
                    target: "floor-channel",
                    endpoint: format!("shard {shard}"),
                    reason: format!("cannot start the executor: {e}"),
                })?;
        }
        let client = LocalKvClient::new(mesh)
            .with_timeout(CALL_TIMEOUT)
            .with_reply_spin(spin.reply_spin);
        let target =
            ShoalTarget::new(client, String::new()).with_guard(CALL_TIMEOUT + GUARD_MARGIN);
        Ok(Self {
            shards,
            spin: spin.clone(),
            target,
        })
    }
}

/// The shard: drains its inbox per wake-up and answers each envelope at once.
async fn serve(mut inbox: Inbox, value: Bytes) {
    while let Some(first) = inbox.recv().await {
        answer(first, &value);
        while let Ok(next) = inbox.try_recv() {
            answer(next, &value);
        }
    }
}

fn answer(envelope: Envelope, value: &Bytes) {
    let Envelope { request, reply, .. } = envelope;
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

impl Target for ChannelFloor {
    fn describe(&self) -> String {
        format!(
            "floor-channel ({} glommio shard(s) answering at once, reached by LocalKvClient \
             over the node's mesh (tokio mpsc + oneshot): the transport under shoal-local; \
             shard 0 on core {}; shards spin {} us before parking, a lone call spins {} us on \
             its reply)",
            self.shards,
            self.spin.first_core,
            self.spin.spin_before_park_us,
            self.spin.reply_spin.as_micros()
        )
    }

    async fn put(&self, key: &[u8], value: &[u8]) -> Result<(), OpError> {
        self.target.put(key, value).await
    }

    async fn put_with_ttl(&self, key: &[u8], value: &[u8], ttl_secs: u64) -> Result<(), OpError> {
        self.target.put_with_ttl(key, value, ttl_secs).await
    }

    async fn get(&self, key: &[u8]) -> Result<bool, OpError> {
        self.target.get(key).await
    }

    async fn get_multi(&self, keys: &[Bytes]) -> Result<usize, OpError> {
        self.target.get_multi(keys).await
    }

    async fn delete(&self, key: &[u8]) -> Result<(), OpError> {
        self.target.delete(key).await
    }
}
