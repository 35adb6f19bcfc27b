//! The task that drains this shard's mesh inbox: requests forwarded by other shards and
//! requests of the embedded local client.
//!
//! Invariants: every envelope received is answered exactly once through its `reply`
//! (dropping the reply, which the caller reports as `ShuttingDown`, only happens if the
//! caller already gave up). Past its deadline an envelope is answered `Timeout` without
//! executing; over the shard's in-flight cap, `Busy`. Envelopes are routed like a
//! connection's requests (the dispatcher), so the local client may send any request. On
//! drain the inbox is closed (new senders get `ShuttingDown` at once) and the envelopes
//! already queued are still executed.

use std::rc::Rc;
use std::time::Instant;

use futures::{FutureExt, pin_mut, select_biased};
use tokio::sync::watch;

use super::admission::InFlight;
use super::connection::Phase;
use super::dispatch::{Dispatcher, error};
use crate::node::mesh::BUSY_RETRY_AFTER_MS;
use crate::node::{Envelope, Inbox};
use shoal_proto::ErrorDetail;

/// Most envelopes started per wake-up before the task waits again (and lets the
/// executor run what it started).
const MAX_DRAIN: usize = 256;

/// Serves `inbox` until it is closed and empty (closed by the drain, or every sender
/// dropped).
///
/// Each wake-up drains everything queued (`try_recv`) before it waits again, so a burst
/// of envelopes costs one wake-up of this task and is started in one executor tick: the
/// reads among them then share one ReadIndex round (`ShardCore`'s read batcher).
pub(crate) async fn serve_inbox(
    mut inbox: Inbox,
    dispatcher: Rc<Dispatcher>,
    in_flight: Rc<InFlight>,
    mut phase: watch::Receiver<Phase>,
) {
    let mut closed = false;
    loop {
        let envelope = if closed {
            // Closed: `recv` yields what was already queued, then `None` for good.
            inbox.recv().await
        } else {
            let recv = inbox.recv().fuse();
            let stop = phase.wait_for(|p| *p != Phase::Running).fuse();
            pin_mut!(recv, stop);
            select_biased! {
                e = recv => e,
                _ = stop => {
                    closed = true;
                    None
                }
            }
        };
        if closed && !inbox.is_closed() {
            inbox.close();
            if envelope.is_none() {
                continue;
            }
        }
        let Some(first) = envelope else {
            return;
        };
        start(first, &dispatcher, &in_flight);
        // Whatever else is queued now, without another wait.
        let mut started = 1;
        while started < MAX_DRAIN {
            match inbox.try_recv() {
                Ok(e) => start(e, &dispatcher, &in_flight),
                Err(_) => break,
            }
            started += 1;
        }
        if started == MAX_DRAIN {
            // Senders keep the inbox full: let the started requests run before more.
            glommio::executor().yield_now().await;
        }
    }
}

fn start(envelope: Envelope, dispatcher: &Rc<Dispatcher>, in_flight: &Rc<InFlight>) {
    let Envelope {
        request,
        deadline,
        reply,
    } = envelope;
    if deadline <= Instant::now() {
        let _ = reply.send(error(
            ErrorDetail::Timeout,
            "the request's deadline passed before the owning shard took it",
        ));
        return;
    }
    let Some(permit) = in_flight.try_acquire() else {
        let _ = reply.send(error(
            ErrorDetail::Busy {
                retry_after_ms: BUSY_RETRY_AFTER_MS,
            },
            format!(
                "shard {} has its limit of requests in flight; not executed",
                dispatcher.shard
            ),
        ));
        return;
    };
    let dispatcher = Rc::clone(dispatcher);
    glommio::spawn_local(async move {
        let response = dispatcher.handle(request, deadline).await;
        // The caller may have stopped waiting (its own timeout): nothing to do then.
        let _ = reply.send(response);
        drop(permit);
    })
    .detach();
}
