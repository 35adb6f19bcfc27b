//! `WriteBatcher`: every write proposed on the shard in one executor tick reaches Raft as
//! one `client_write_many` message, instead of one `client_write` message each.
//!
//! A write calls [`WriteBatcher::propose`] and waits; one driver task (spawned when the
//! first write finds no driver running; it yields once before each batch, so it runs
//! after every task already queued in this tick) takes *every* waiting write, hands them to openraft in one message, and
//! leaves one forwarding task per batch to deliver each entry's outcome to its writer.
//! openraft then appends the whole batch to the log in one storage call (one WAL append,
//! one fdatasync covering all of it) and applies it in one apply call, instead of running
//! its engine, the log append and the apply once per write.
//!
//! Why nothing changes for the writers. The writes of a batch were all waiting at once,
//! so none of them was acknowledged before another was proposed: they are concurrent, and
//! any order among them is a valid linearization; openraft keeps them in submission
//! order, which is the order `propose` was called in, as with one `client_write` each.
//! Each writer still gets its own entry's outcome, and only after openraft applied that
//! entry, which it does only once the entry is fdatasync'd on a quorum: durability and the
//! reply are exactly those of `client_write`. Batches are submitted one after the other
//! by one driver, so a write proposed after another was submitted lands after it in the
//! log.
//!
//! Invariants: at most one driver per shard; a batch holds at most [`MAX_BATCH`] writes;
//! every waiting write is submitted in exactly one batch, and its writer gets that entry's outcome, or `Fatal::Stopped` if the group
//! stopped first; nothing is retried here.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::task::Poll;

use futures::StreamExt;
use futures::channel::oneshot;
use openraft::errors::{ClientWriteError, Fatal, RaftError};

use crate::raft::state_machine::ShardStateMachine;
use crate::raft::types::{Raft, Request as RaftRequest, TypeConfig};

/// The application reply of an applied entry, or why it was not applied.
pub(crate) type WriteOutcome = Result<
    <TypeConfig as openraft::RaftTypeConfig>::R,
    RaftError<TypeConfig, ClientWriteError<TypeConfig>>,
>;

/// Most writes in one batch (bounds one message and one log append; the rest wait for
/// the next batch, submitted right after).
const MAX_BATCH: usize = shoal_proto::limits::MAX_BATCH_KEYS;

type Waiter = (RaftRequest, oneshot::Sender<WriteOutcome>);

#[derive(Default)]
struct Pending {
    /// Whether a driver task runs (it takes `waiting` until it finds it empty).
    driving: bool,
    /// Writes waiting for the next batch, in `propose` order.
    waiting: Vec<Waiter>,
}

/// Batches the writes of one shard (see the module documentation).
pub(crate) struct WriteBatcher {
    raft: Raft<ShardStateMachine>,
    pending: RefCell<Pending>,
    /// Batches submitted so far (writes per batch shows what batching saves).
    batches: Cell<u64>,
}

impl std::fmt::Debug for WriteBatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = self.pending.borrow();
        f.debug_struct("WriteBatcher")
            .field("driving", &p.driving)
            .field("waiting", &p.waiting.len())
            .finish()
    }
}

impl WriteBatcher {
    /// A batcher of writes on `raft`'s group.
    pub(crate) fn new(raft: Raft<ShardStateMachine>) -> Rc<WriteBatcher> {
        Rc::new(WriteBatcher {
            raft,
            pending: RefCell::new(Pending::default()),
            batches: Cell::new(0),
        })
    }

    /// Batches submitted since the batcher was made.
    pub(crate) fn batches(&self) -> u64 {
        self.batches.get()
    }

    /// Proposes `request` and waits until openraft applied it (or refused it). Must run on
    /// the shard's executor (the driver is a local task).
    pub(crate) async fn propose(self: &Rc<Self>, request: RaftRequest) -> WriteOutcome {
        let (tx, rx) = oneshot::channel();
        let start_driver = {
            let mut p = self.pending.borrow_mut();
            p.waiting.push((request, tx));
            !std::mem::replace(&mut p.driving, true)
        };
        if start_driver {
            glommio::spawn_local(Rc::clone(self).drive()).detach();
        }
        // A dropped sender means the group stopped (the stream ended early) or the
        // executor is tearing its tasks down.
        rx.await.unwrap_or(Err(RaftError::Fatal(Fatal::Stopped)))
    }

    /// Submits batches until no write waits.
    async fn drive(self: Rc<Self>) {
        loop {
            // glommio polls a spawned task at once, inside `spawn_local`: without this the
            // driver would take only the write that spawned it.
            yield_once().await;
            let batch = {
                let mut p = self.pending.borrow_mut();
                if p.waiting.is_empty() {
                    p.driving = false;
                    return;
                }
                if p.waiting.len() <= MAX_BATCH {
                    std::mem::take(&mut p.waiting)
                } else {
                    p.waiting.drain(..MAX_BATCH).collect()
                }
            };
            self.batches.set(self.batches.get() + 1);
            let (requests, writers): (Vec<RaftRequest>, Vec<oneshot::Sender<WriteOutcome>>) =
                batch.into_iter().unzip();
            match self.raft.client_write_many(requests).await {
                Ok(mut outcomes) => {
                    // Deliver in the background: the next batch must not wait for this
                    // one's fdatasync.
                    glommio::spawn_local(async move {
                        for writer in writers {
                            let outcome = match outcomes.next().await {
                                Some(Ok(Ok(written))) => Ok(written.response),
                                Some(Ok(Err(e))) => Err(RaftError::APIError(e)),
                                Some(Err(fatal)) => Err(RaftError::Fatal(fatal)),
                                // The stream ended after a fatal error: the rest were not
                                // applied either (dropping the writer says Stopped).
                                None => break,
                            };
                            // A writer that gave up (its deadline) dropped its receiver.
                            let _ = writer.send(outcome);
                        }
                    })
                    .detach();
                }
                Err(fatal) => {
                    for writer in writers {
                        let _ = writer.send(Err(RaftError::Fatal(fatal.clone())));
                    }
                }
            }
        }
    }
}

/// Returns after every task already queued on this executor ran (the task goes to the
/// back of the queue once), so the writes those tasks propose join the next batch.
async fn yield_once() {
    let mut yielded = false;
    futures::future::poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}
