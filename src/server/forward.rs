//! Leader forwarding for the Redis front door: a RESP command whose group is led by
//! another node is sent to that leader, so a simple Redis client works against any node.
//!
//! Path: the shard that holds the RESP connection sends the (native protocol) request
//! straight to the leader node's owning-shard client port (the per-shard port rule), over
//! a pipelined [`Link`]. There the native server executes it like any client request:
//! same admission, limits and deadlines, and the same single state-machine command, so
//! conditional and TTL-changing commands keep their atomicity. No new peer message and no
//! mesh hop on either side.
//!
//! Invariants:
//! - A group is first asked locally (through the [`Dispatcher`]); a `NotLeader` answer
//!   with a hint is remembered per group, so later commands go to the leader directly.
//!   Any `NotLeader` (local or remote) updates or clears that memory; a hint naming this
//!   node sends the command back to the local shard.
//! - Retries happen only when the command was certainly not executed: `NotLeader`
//!   (refused before proposing), or a link that could not be opened; reads (which change
//!   nothing) are also retried after `Unavailable` (leadership not confirmed in time) and
//!   after a link failure. A command whose
//!   link failed after it was sent is answered with an error saying the outcome is
//!   unknown, never retried (a retried write could apply twice).
//! - Bounded: at most [`MAX_HOPS`] hint-following hops in a row per command; while a
//!   group has no leader (an election), or its hinted leader cannot be reached, retries
//!   back off from [`MIN_BACKOFF`] to [`MAX_BACKOFF`]; every
//!   wait ends by the command's deadline. Links: at most one per remote shard address,
//!   each capped at the remote's per-connection in-flight limit.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use shoal_proto::{ErrorDetail, NodeInfo, Request, Response};
use tokio::sync::Notify;

use super::dispatch::{Dispatcher, error};
use super::forward_link::{CallError, Link, pause};
use crate::node::mesh::BUSY_RETRY_AFTER_MS;

/// Most `NotLeader` hints followed for one command.
pub(crate) const MAX_HOPS: u32 = 8;
/// First wait before asking again while a group has no known leader.
pub(crate) const MIN_BACKOFF: Duration = Duration::from_millis(10);
/// Longest wait between two such asks.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_millis(200);

/// One shard's forwarding state: the leader it last learned for each group, and its open
/// links to other nodes.
pub(crate) struct Forwarder {
    dispatcher: Rc<Dispatcher>,
    /// Per group: the other node believed to lead it (`None`: ask the local shard).
    leaders: RefCell<Vec<Option<NodeInfo>>>,
    links: RefCell<HashMap<SocketAddr, Rc<Link>>>,
    /// Addresses a link is being opened to, so concurrent callers wait for one handshake.
    opening: RefCell<HashMap<SocketAddr, Rc<Notify>>>,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("shard", &self.dispatcher.shard)
            .field("links", &self.links.borrow().len())
            .finish_non_exhaustive()
    }
}

/// Clears an `opening` entry and wakes its waiters however the opener ends.
struct Opening<'a> {
    fwd: &'a Forwarder,
    addr: SocketAddr,
    done: Rc<Notify>,
}

impl Drop for Opening<'_> {
    fn drop(&mut self) {
        self.fwd.opening.borrow_mut().remove(&self.addr);
        self.done.notify_waiters();
    }
}

impl Forwarder {
    pub(crate) fn new(dispatcher: Rc<Dispatcher>) -> Forwarder {
        let groups = dispatcher.shard_count as usize;
        Forwarder {
            dispatcher,
            leaders: RefCell::new(vec![None; groups]),
            links: RefCell::new(HashMap::new()),
            opening: RefCell::new(HashMap::new()),
        }
    }

    pub(crate) fn dispatcher(&self) -> &Dispatcher {
        &self.dispatcher
    }

    /// Answers `request` by `deadline`, at the leader of its group wherever it is.
    /// Requests without a single owning group (e.g. `KeyCount`) are served locally.
    pub(crate) async fn handle(&self, request: Request, deadline: Instant) -> Response {
        let d = &*self.dispatcher;
        let group = match request.route(d.shard_count) {
            Ok(Some(g)) => g as usize,
            _ => return d.handle(request, deadline).await,
        };
        let mut hops = 0;
        let mut backoff = MIN_BACKOFF;
        loop {
            let target = self.leaders.borrow()[group].clone();
            let answer = match target {
                None => d.handle(request.clone(), deadline).await,
                Some(leader) => match self.call(&leader, group, &request, deadline).await {
                    Ok(answer) => answer,
                    Err(CallError::NotSent(why)) => {
                        // The leader we knew is unreachable: ask the local shard again
                        // (its view moves on with the election), after a pause.
                        self.forget(group);
                        // Hints naming the unreachable leader keep coming until the
                        // group elects another: bounded by the backoff and the deadline,
                        // not by the hop count.
                        hops = 0;
                        if !wait(&mut backoff, deadline).await {
                            return error(
                                ErrorDetail::Unavailable,
                                format!(
                                    "cannot reach node {}, the leader of group {group}: {why}",
                                    leader.node_id
                                ),
                            );
                        }
                        continue;
                    }
                    Err(CallError::Full(why)) => {
                        return error(
                            ErrorDetail::Busy {
                                retry_after_ms: BUSY_RETRY_AFTER_MS,
                            },
                            why,
                        );
                    }
                    Err(CallError::Lost(why)) => {
                        self.forget(group);
                        // A read may be asked again; a write's outcome is unknown.
                        if !is_read(&request) || !wait(&mut backoff, deadline).await {
                            return error(ErrorDetail::Unavailable, why);
                        }
                        hops = 0;
                        continue;
                    }
                    Err(CallError::Timeout) => return timeout(),
                },
            };
            let Response::Error(e) = &answer else {
                return answer;
            };
            match &e.detail {
                ErrorDetail::NotLeader { leader: Some(l) } if hops < MAX_HOPS => {
                    hops += 1;
                    self.learn(group, l);
                }
                ErrorDetail::NotLeader { leader: None } => {
                    self.forget(group);
                    if !wait(&mut backoff, deadline).await {
                        return answer;
                    }
                }
                // A read that could not confirm leadership (a quorum did not answer in
                // time, leadership changing) changed nothing: ask again.
                ErrorDetail::Unavailable if is_read(&request) => {
                    if !wait(&mut backoff, deadline).await {
                        return answer;
                    }
                }
                _ => return answer,
            }
        }
    }

    /// Remembers that `leader` leads `group` (or forgets, when it is this node).
    fn learn(&self, group: usize, leader: &NodeInfo) {
        let mut leaders = self.leaders.borrow_mut();
        leaders[group] = (leader.node_id != self.dispatcher.node_id).then(|| leader.clone());
    }

    fn forget(&self, group: usize) {
        self.leaders.borrow_mut()[group] = None;
    }

    /// Sends `request` to `leader`'s shard `group`.
    async fn call(
        &self,
        leader: &NodeInfo,
        group: usize,
        request: &Request,
        deadline: Instant,
    ) -> Result<Response, CallError> {
        let addr_text = leader.shard_addrs.get(group).unwrap_or(&leader.addr);
        let addr: SocketAddr = addr_text.parse().map_err(|e| {
            CallError::NotSent(format!(
                "node {}'s address {addr_text} is not ip:port: {e}",
                leader.node_id
            ))
        })?;
        let link = self.link(addr, leader.node_id, deadline).await?;
        link.call(request, deadline).await
    }

    /// The open link to `addr`, opening it (once, however many callers ask) if needed.
    async fn link(
        &self,
        addr: SocketAddr,
        node_id: u64,
        deadline: Instant,
    ) -> Result<Rc<Link>, CallError> {
        loop {
            {
                let mut links = self.links.borrow_mut();
                match links.get(&addr) {
                    Some(l) if l.is_alive() => return Ok(Rc::clone(l)),
                    Some(_) => {
                        links.remove(&addr);
                    }
                    None => {}
                }
            }
            let in_progress = self.opening.borrow().get(&addr).cloned();
            if let Some(done) = in_progress {
                let notified = done.notified();
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(CallError::Timeout);
                }
                futures::future::select(Box::pin(notified), glommio::timer::Timer::new(left)).await;
                continue;
            }
            let done = Rc::new(Notify::new());
            self.opening.borrow_mut().insert(addr, Rc::clone(&done));
            let _opening = Opening {
                fwd: self,
                addr,
                done,
            };
            let cluster_id = self.dispatcher.cluster_id;
            let link = Link::open(addr, cluster_id, node_id, deadline).await?;
            self.links.borrow_mut().insert(addr, Rc::clone(&link));
            return Ok(link);
        }
    }
}

/// Requests without effects, which may be sent again after any failure.
fn is_read(request: &Request) -> bool {
    matches!(
        request,
        Request::Get(_) | Request::GetMulti(_) | Request::Ttl(_)
    )
}

/// Waits `backoff` (doubled for next time, up to [`MAX_BACKOFF`]) unless that would pass
/// `deadline`; false when there is no time left for another attempt.
async fn wait(backoff: &mut Duration, deadline: Instant) -> bool {
    if Instant::now() + *backoff >= deadline {
        return false;
    }
    pause(*backoff, deadline).await;
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
    true
}

fn timeout() -> Response {
    error(
        ErrorDetail::Timeout,
        "the request did not complete before its deadline",
    )
}
