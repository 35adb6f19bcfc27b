//! The cross-shard mesh: one bounded inbox per shard, reachable from any thread.
//!
//! A request that lands on a shard which does not own its key, and every request of the
//! embedded `LocalKvClient`, travels to the owning shard as an [`Envelope`] over a bounded
//! `tokio::sync::mpsc` channel, and its answer comes back over a `oneshot`. No
//! serialization and no shared mutable state: the request and the response are moved.
//!
//! Invariants:
//! - Inboxes are bounded (`limits.shard_queue_depth`); a full inbox answers `Busy` at once
//!   instead of queueing without bound ([`Mesh::send`] never waits).
//! - A closed inbox means the shard is stopping: the sender gets `ShuttingDown`.
//! - Every envelope is answered exactly once, or its `reply` is dropped, which the waiting
//!   side reports as `ShuttingDown`.

use std::sync::Arc;
use std::time::Instant;

use shoal_proto::{ErrorDetail, ErrorResponse, Request, Response};
use tokio::sync::{mpsc, oneshot};

/// Milliseconds a client is told to wait before retrying after `Busy`.
pub const BUSY_RETRY_AFTER_MS: u32 = 5;

/// One request on its way to the shard that owns it, with the channel for its answer.
#[derive(Debug)]
pub struct Envelope {
    /// The request; its keys all belong to the destination shard (or it addresses the
    /// destination's group: `Status`, `AddLearner`, `ChangeMembership`).
    pub request: Request,
    /// When the caller stops waiting; the shard answers `Timeout` past it.
    pub deadline: Instant,
    /// Where the answer goes.
    pub reply: oneshot::Sender<Response>,
}

/// Senders to every shard's inbox of this node. Cheap to clone, `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Mesh {
    inboxes: Arc<[mpsc::Sender<Envelope>]>,
}

/// A shard's end of the mesh.
pub type Inbox = mpsc::Receiver<Envelope>;

impl Mesh {
    /// Creates the inboxes of `shard_count` shards, each holding at most `depth` envelopes.
    ///
    /// # Panics
    /// If `shard_count` or `depth` is zero (configuration validation refuses both).
    pub fn new(shard_count: usize, depth: usize) -> (Mesh, Vec<Inbox>) {
        assert!(shard_count > 0, "a node has at least one shard");
        assert!(depth > 0, "a shard inbox holds at least one envelope");
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..shard_count).map(|_| mpsc::channel(depth)).unzip();
        (
            Mesh {
                inboxes: senders.into(),
            },
            receivers,
        )
    }

    /// Number of shards.
    pub fn shard_count(&self) -> u32 {
        self.inboxes.len() as u32
    }

    /// Sends `request` to `shard` and waits for its answer. Never blocks on a full inbox:
    /// that answers `Busy`; a stopped shard answers `ShuttingDown`.
    ///
    /// # Panics
    /// If `shard` is out of range (callers route with the mesh's own shard count).
    pub async fn call(&self, shard: u32, request: Request, deadline: Instant) -> Response {
        let (tx, rx) = oneshot::channel();
        let envelope = Envelope {
            request,
            deadline,
            reply: tx,
        };
        if let Err(e) = self.send(shard, envelope) {
            return Response::Error(e);
        }
        match rx.await {
            Ok(response) => response,
            Err(_) => Response::Error(shutting_down(shard)),
        }
    }

    /// Queues `envelope` on `shard`'s inbox without waiting.
    ///
    /// # Panics
    /// If `shard` is out of range.
    pub fn send(&self, shard: u32, envelope: Envelope) -> Result<(), ErrorResponse> {
        let inbox = &self.inboxes[shard as usize];
        inbox.try_send(envelope).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => ErrorResponse::new(
                ErrorDetail::Busy {
                    retry_after_ms: BUSY_RETRY_AFTER_MS,
                },
                format!("shard {shard} has a full request queue"),
            ),
            mpsc::error::TrySendError::Closed(_) => shutting_down(shard),
        })
    }
}

fn shutting_down(shard: u32) -> ErrorResponse {
    ErrorResponse::new(
        ErrorDetail::ShuttingDown,
        format!("shard {shard} is shutting down"),
    )
}
