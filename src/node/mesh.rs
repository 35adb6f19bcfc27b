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
//! - [`Mesh::call_spinning`] busy-polls the reply for a bounded time before it registers a
//!   waker: a reply that comes back within the window costs the caller's thread no sleep
//!   and the shard no cross-thread wake-up. Only callers that would otherwise park (an
//!   embedded client with nothing else in flight) use it; shards never spin on the mesh.

use std::sync::Arc;
use std::time::{Duration, Instant};

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
        self.call_spinning(shard, request, deadline, Duration::ZERO)
            .await
    }

    /// [`Mesh::call`], but the calling thread first busy-polls the reply for up to `spin`
    /// (never past `deadline`) before it awaits it like `call`. The thread does nothing
    /// else meanwhile (the spin does not yield), so use it only where the thread would
    /// otherwise sleep: a reply within the window then costs neither a park/unpark of the
    /// caller nor a wake-up sent from the shard's thread.
    ///
    /// # Panics
    /// If `shard` is out of range.
    pub async fn call_spinning(
        &self,
        shard: u32,
        request: Request,
        deadline: Instant,
        spin: Duration,
    ) -> Response {
        let (tx, mut rx) = oneshot::channel();
        let envelope = Envelope {
            request,
            deadline,
            reply: tx,
        };
        if let Err(e) = self.send(shard, envelope) {
            return Response::Error(e);
        }
        if !spin.is_zero() {
            let until = (Instant::now() + spin).min(deadline);
            loop {
                match rx.try_recv() {
                    Ok(response) => return response,
                    Err(oneshot::error::TryRecvError::Closed) => {
                        return Response::Error(shutting_down(shard));
                    }
                    Err(oneshot::error::TryRecvError::Empty) => {
                        if Instant::now() >= until {
                            break;
                        }
                        std::hint::spin_loop();
                    }
                }
            }
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::time::Duration;

    use shoal_proto::{ErrorDetail, Request, Response};

    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    /// A "shard" on a plain thread: answers each envelope after `delay`, `count` times,
    /// then drops its inbox.
    fn shard(mut inbox: Inbox, delay: Duration, count: usize) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            for _ in 0..count {
                let Some(e) = inbox.blocking_recv() else {
                    return;
                };
                std::thread::sleep(delay);
                let _ = e.reply.send(Response::Pong);
            }
        })
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    #[test]
    fn a_reply_is_received_whether_it_comes_within_the_spin_or_after_it() {
        let (mesh, mut inboxes) = Mesh::new(1, 4);
        let t = shard(inboxes.remove(0), Duration::from_millis(20), 3);
        rt().block_on(async {
            // Within a long spin, after a short one, and with no spin at all.
            for spin in [
                Duration::from_secs(1),
                Duration::from_micros(10),
                Duration::ZERO,
            ] {
                let r = mesh.call_spinning(0, Request::Ping, far(), spin).await;
                assert!(matches!(r, Response::Pong), "spin {spin:?}: {r:?}");
            }
        });
        t.join().unwrap();
    }

    #[test]
    fn a_dropped_reply_or_a_closed_inbox_answers_shutting_down_while_spinning() {
        let (mesh, mut inboxes) = Mesh::new(1, 4);
        let mut inbox = inboxes.remove(0);
        let t = std::thread::spawn(move || {
            // Drop the first envelope's reply unanswered, then close the inbox.
            drop(inbox.blocking_recv().unwrap());
            inbox.close();
        });
        rt().block_on(async {
            let spin = Duration::from_secs(5);
            let r = mesh.call_spinning(0, Request::Ping, far(), spin).await;
            assert!(
                matches!(&r, Response::Error(e) if e.detail == ErrorDetail::ShuttingDown),
                "{r:?}"
            );
            t.join().unwrap();
            let r = mesh.call_spinning(0, Request::Ping, far(), spin).await;
            assert!(
                matches!(&r, Response::Error(e) if e.detail == ErrorDetail::ShuttingDown),
                "{r:?}"
            );
        });
    }

    #[test]
    fn the_spin_never_outlasts_the_deadline() {
        // Nobody answers: the spin must stop at the deadline and fall back to waiting
        // (here: until the inbox is dropped, which drops the reply).
        let (mesh, mut inboxes) = Mesh::new(1, 4);
        let mut inbox = inboxes.remove(0);
        rt().block_on(async {
            let deadline = Instant::now() + Duration::from_millis(50);
            let call = mesh.call_spinning(0, Request::Ping, deadline, Duration::from_secs(60));
            let dropper = async {
                // Runs only once the call yields, i.e. once its spin ended.
                let e = inbox.recv().await.unwrap();
                let waited = Instant::now();
                drop(e);
                waited
            };
            let (r, yielded_at) = tokio::join!(call, dropper);
            assert!(matches!(r, Response::Error(_)), "{r:?}");
            assert!(yielded_at < deadline + Duration::from_secs(30));
        });
    }
}
