//! The simulated network: `RaftNetworkV2` over in-simulation message delivery, with
//! per-link faults (drop, delay, duplicate, reorder) and partitions, every decision drawn
//! from the seeded `Network` stream.
//!
//! Invariants:
//! - A request and its response each travel as a message with their own delay and fate;
//!   a message on a cut link or chosen to be dropped never arrives, and the caller learns
//!   nothing until its RPC deadline (`option.hard_ttl()`, in virtual time) passes: it gets
//!   `Timeout`, never a guessed response.
//! - A request to a node that is down is refused after one link delay (`Unreachable`, like
//!   a TCP reset).
//! - Deliveries run in network tasks (tag 0): a message in flight survives the crash of
//!   its sender, and is delivered to whatever incarnation of the target is up on arrival.
//! - Reordering comes from independent random delays (with rare long spikes) of messages
//!   in flight at the same time, and from duplicates, which are delivered again later
//!   (their responses are discarded).

use std::cell::Cell;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use openraft::OptionalSend;
use openraft::RPCTypes;
use openraft::RaftNetworkFactory;
use openraft::RaftNetworkV2;
use openraft::errors::RPCError;
use openraft::errors::ReplicationClosed;
use openraft::errors::StreamingError;
use openraft::errors::Timeout;
use openraft::errors::Unreachable;
use openraft::network::RPCOption;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::SnapshotResponse;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use openraft::storage::RaftStateMachine;
use openraft_rt::AsyncRuntime;
use shoal::raft::types::NodeId;
use shoal::raft::types::ShoalNode;

use crate::runtime::SimRuntime;
use crate::runtime::Stream;
use crate::runtime::rng;
use crate::runtime::spawn_tagged;
use crate::types::SimConfig;
use crate::types::SimRaft;
use crate::types::Snapshot;
use crate::types::Vote;

/// Faults of one directed link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkFaults {
    /// Probability that a message is lost.
    pub drop: f64,
    /// Probability that a request is delivered twice.
    pub duplicate: f64,
    /// Minimum one-way delay.
    pub min_delay: Duration,
    /// Maximum one-way delay (uniform between min and max).
    pub max_delay: Duration,
    /// Probability of a delay spike (up to 20x `max_delay`): reorders messages.
    pub spike: f64,
}

impl Default for LinkFaults {
    fn default() -> Self {
        LinkFaults {
            drop: 0.0,
            duplicate: 0.0,
            min_delay: Duration::from_micros(100),
            max_delay: Duration::from_micros(1_000),
            spike: 0.0,
        }
    }
}

/// Counters of what the network did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Messages delivered.
    pub delivered: u64,
    /// Messages dropped by chance.
    pub dropped: u64,
    /// Messages lost on a cut link.
    pub cut: u64,
    /// Requests duplicated.
    pub duplicated: u64,
    /// Requests refused because the target was down.
    pub refused: u64,
}

/// The switchboard: who is up, link faults, partitions. Clones share it.
pub struct SimNet<SM: RaftStateMachine<SimConfig>> {
    nodes: Rc<RefCell<BTreeMap<NodeId, SimRaft<SM>>>>,
    default_faults: Rc<Cell<LinkFaults>>,
    links: Rc<RefCell<BTreeMap<(NodeId, NodeId), LinkFaults>>>,
    cut: Rc<RefCell<BTreeSet<(NodeId, NodeId)>>>,
    stats: Rc<Cell<NetStats>>,
}

impl<SM: RaftStateMachine<SimConfig>> Clone for SimNet<SM> {
    fn clone(&self) -> Self {
        SimNet {
            nodes: self.nodes.clone(),
            default_faults: self.default_faults.clone(),
            links: self.links.clone(),
            cut: self.cut.clone(),
            stats: self.stats.clone(),
        }
    }
}

impl<SM: RaftStateMachine<SimConfig>> std::fmt::Debug for SimNet<SM> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimNet")
            .field("up", &self.nodes.borrow().keys().collect::<Vec<_>>())
            .field("cut", &self.cut.borrow())
            .field("stats", &self.stats.get())
            .finish()
    }
}

impl<SM: RaftStateMachine<SimConfig> + 'static> Default for SimNet<SM> {
    fn default() -> Self {
        SimNet {
            nodes: Rc::new(RefCell::new(BTreeMap::new())),
            default_faults: Rc::new(Cell::new(LinkFaults::default())),
            links: Rc::new(RefCell::new(BTreeMap::new())),
            cut: Rc::new(RefCell::new(BTreeSet::new())),
            stats: Rc::new(Cell::new(NetStats::default())),
        }
    }
}

impl<SM: RaftStateMachine<SimConfig> + 'static> SimNet<SM> {
    /// Node `id` is up, reachable through `raft`.
    pub fn up(&self, id: NodeId, raft: SimRaft<SM>) {
        self.nodes.borrow_mut().insert(id, raft);
    }

    /// Node `id` is down.
    pub fn down(&self, id: NodeId) -> Option<SimRaft<SM>> {
        self.nodes.borrow_mut().remove(&id)
    }

    /// The handle of `id` if up.
    pub fn get(&self, id: NodeId) -> Option<SimRaft<SM>> {
        self.nodes.borrow().get(&id).cloned()
    }

    /// Faults of every link without an override.
    pub fn set_default_faults(&self, f: LinkFaults) {
        self.default_faults.set(f);
    }

    /// Override the faults of link `from → to`.
    pub fn set_link_faults(&self, from: NodeId, to: NodeId, f: LinkFaults) {
        self.links.borrow_mut().insert((from, to), f);
    }

    /// Remove every per-link override.
    pub fn clear_link_faults(&self) {
        self.links.borrow_mut().clear();
    }

    /// Cut both directions between every node of `a` and every node of `b`.
    pub fn partition(&self, a: &[NodeId], b: &[NodeId]) {
        let mut cut = self.cut.borrow_mut();
        for &x in a {
            for &y in b {
                if x != y {
                    cut.insert((x, y));
                    cut.insert((y, x));
                }
            }
        }
    }

    /// Restore every link.
    pub fn heal(&self) {
        self.cut.borrow_mut().clear();
    }

    /// Whether `from → to` is cut.
    pub fn is_cut(&self, from: NodeId, to: NodeId) -> bool {
        self.cut.borrow().contains(&(from, to))
    }

    /// Counters so far.
    pub fn stats(&self) -> NetStats {
        self.stats.get()
    }

    fn bump(&self, f: impl FnOnce(&mut NetStats)) {
        let mut s = self.stats.get();
        f(&mut s);
        self.stats.set(s);
    }

    fn faults(&self, from: NodeId, to: NodeId) -> LinkFaults {
        self.links
            .borrow()
            .get(&(from, to))
            .copied()
            .unwrap_or_else(|| self.default_faults.get())
    }

    /// Decide one message's fate on `from → to`: `Some(delay)` or lost.
    fn fate(&self, from: NodeId, to: NodeId) -> Option<Duration> {
        let fate = self.decide(from, to);
        let code = fate.map_or(u64::MAX, |d| {
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
        });
        crate::runtime::context::with(|sim| {
            sim.trace
                .record(crate::trace::Kind::Net, (from << 32) | to, code);
        });
        fate
    }

    fn decide(&self, from: NodeId, to: NodeId) -> Option<Duration> {
        let f = self.faults(from, to);
        if self.is_cut(from, to) {
            self.bump(|s| s.cut += 1);
            return None;
        }
        if rng::chance(Stream::Network, f.drop) {
            self.bump(|s| s.dropped += 1);
            return None;
        }
        let span = f.max_delay.saturating_sub(f.min_delay);
        let span_ns = u64::try_from(span.as_nanos()).unwrap_or(u64::MAX).max(1);
        let mut d = f.min_delay + Duration::from_nanos(rng::below(Stream::Network, span_ns));
        if rng::chance(Stream::Network, f.spike) {
            d += f.max_delay * u32::try_from(1 + rng::below(Stream::Network, 20)).unwrap_or(1);
        }
        Some(d)
    }
}

enum Outcome<T> {
    Reply(T),
    Refused,
    Lost,
}

/// The connection from `from` to `target`.
pub struct SimNetwork<SM: RaftStateMachine<SimConfig>> {
    from: NodeId,
    target: NodeId,
    net: SimNet<SM>,
}

impl<SM: RaftStateMachine<SimConfig>> std::fmt::Debug for SimNetwork<SM> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SimNetwork({} -> {})", self.from, self.target)
    }
}

/// The factory openraft asks for connections; one per node.
pub struct SimNetworkFactory<SM: RaftStateMachine<SimConfig>> {
    /// The node this factory belongs to.
    pub from: NodeId,
    /// The shared network.
    pub net: SimNet<SM>,
}

impl<SM: RaftStateMachine<SimConfig>> std::fmt::Debug for SimNetworkFactory<SM> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SimNetworkFactory({})", self.from)
    }
}

impl<SM: RaftStateMachine<SimConfig> + 'static> RaftNetworkFactory<SimConfig>
    for SimNetworkFactory<SM>
{
    type Network = SimNetwork<SM>;

    async fn new_client(&mut self, target: NodeId, _node: &ShoalNode) -> SimNetwork<SM> {
        SimNetwork {
            from: self.from,
            target,
            net: self.net.clone(),
        }
    }
}

impl<SM: RaftStateMachine<SimConfig> + 'static> SimNetwork<SM> {
    /// Send `req` to the target, deliver it with `deliver`, bring the reply back; every leg
    /// subject to the link's faults. `dup` is a copy to deliver a second time, if any.
    async fn call<Req, Resp, Fut>(
        &self,
        action: RPCTypes,
        req: Req,
        dup: Option<Req>,
        ttl: Duration,
        deliver: impl Fn(SimRaft<SM>, Req) -> Fut + Clone + 'static,
    ) -> Result<Resp, Result<Timeout<SimConfig>, Unreachable<SimConfig>>>
    where
        Req: 'static,
        Resp: 'static,
        Fut: Future<Output = Option<Resp>> + 'static,
    {
        let deadline = crate::runtime::now() + ttl;
        let (tx, rx) = tokio::sync::oneshot::channel::<Outcome<Resp>>();
        let (from, to, net) = (self.from, self.target, self.net.clone());
        if let Some(copy) = dup {
            if let Some(delay) = net.fate(from, to) {
                net.bump(|s| s.duplicated += 1);
                let (net2, deliver2) = (net.clone(), deliver.clone());
                drop(spawn_tagged(0, async move {
                    SimRuntime::sleep(delay).await;
                    if let Some(raft) = net2.get(to) {
                        net2.bump(|s| s.delivered += 1);
                        let _discarded = deliver2(raft, copy).await;
                    }
                }));
            }
        }
        match net.fate(from, to) {
            None => drop(tx),
            Some(delay) => {
                drop(spawn_tagged(0, async move {
                    SimRuntime::sleep(delay).await;
                    let Some(raft) = net.get(to) else {
                        net.bump(|s| s.refused += 1);
                        let _ = tx.send(Outcome::Refused);
                        return;
                    };
                    net.bump(|s| s.delivered += 1);
                    let outcome = match deliver(raft, req).await {
                        // The target stopped while handling it: like a reset connection.
                        None => Outcome::Refused,
                        Some(resp) => match net.fate(to, from) {
                            None => Outcome::Lost,
                            Some(back) => {
                                SimRuntime::sleep(back).await;
                                net.bump(|s| s.delivered += 1);
                                Outcome::Reply(resp)
                            }
                        },
                    };
                    let _ = tx.send(outcome);
                }));
            }
        }
        let timeout = Timeout {
            action,
            id: from,
            target: to,
            timeout: ttl,
        };
        match SimRuntime::timeout_at(deadline, rx).await {
            Ok(Ok(Outcome::Reply(r))) => Ok(r),
            Ok(Ok(Outcome::Refused)) => {
                Err(Err(Unreachable::from_string(format!("node {to} is down"))))
            }
            Ok(Ok(Outcome::Lost)) | Ok(Err(_)) => {
                // Lost on the way: the caller only finds out at its deadline.
                SimRuntime::sleep_until(deadline).await;
                Err(Ok(timeout))
            }
            Err(_elapsed) => Err(Ok(timeout)),
        }
    }

    fn dup<T: Clone>(&self, req: &T) -> Option<T> {
        let f = self.net.faults(self.from, self.target);
        rng::chance(Stream::Network, f.duplicate).then(|| req.clone())
    }
}

fn rpc_err(e: Result<Timeout<SimConfig>, Unreachable<SimConfig>>) -> RPCError<SimConfig> {
    match e {
        Ok(t) => RPCError::Timeout(t),
        Err(u) => RPCError::Unreachable(u),
    }
}

impl<SM: RaftStateMachine<SimConfig> + 'static> RaftNetworkV2<SimConfig> for SimNetwork<SM> {
    type SnapshotData = SM::SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<SimConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<SimConfig>, RPCError<SimConfig>> {
        let dup = self.dup(&rpc);
        self.call(
            RPCTypes::AppendEntries,
            rpc,
            dup,
            option.hard_ttl(),
            |raft, rpc| async move { raft.append_entries(rpc).await.ok() },
        )
        .await
        .map_err(rpc_err)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<SimConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<SimConfig>, RPCError<SimConfig>> {
        let dup = self.dup(&rpc);
        self.call(
            RPCTypes::Vote,
            rpc,
            dup,
            option.hard_ttl(),
            |raft, rpc| async move { raft.vote(rpc).await.ok() },
        )
        .await
        .map_err(rpc_err)
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot<SM::SnapshotData>,
        _cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<SimConfig>, StreamingError<SimConfig>> {
        // One message carries the whole snapshot (no duplicate: snapshot data need not be
        // Clone). Cancellation is openraft dropping this future; the delivery task then
        // finishes on its own, as a send already on the wire would.
        let payload = Rc::new(RefCell::new(Some(snapshot)));
        self.call(
            RPCTypes::InstallSnapshot,
            (vote, payload),
            None,
            option.hard_ttl(),
            |raft, (vote, payload): (Vote, Rc<RefCell<Option<_>>>)| async move {
                let snapshot = payload.borrow_mut().take()?;
                raft.install_full_snapshot(vote, snapshot).await.ok()
            },
        )
        .await
        .map_err(|e| match e {
            Ok(t) => StreamingError::Timeout(t),
            Err(u) => StreamingError::Unreachable(u),
        })
    }
}
