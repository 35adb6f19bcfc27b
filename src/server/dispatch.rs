//! Routing and execution of one request on behalf of a connection or the inbox: the owning
//! shard's service (here) or the mesh (another shard), `GetMulti` fan-out, and the requests
//! the server answers itself (`Ping`, `Topology`, `Status` of every group).
//!
//! Invariants:
//! - Every answer is produced by the request's deadline: past it the work is dropped and
//!   the answer is `Timeout` (a write may still apply: the protocol says so).
//! - The service only ever receives requests of its own shard; everything else crosses
//!   the mesh. A stated shard that does not own a key is answered `WrongShard`.
//! - A fanned-out `GetMulti` answers in the request's key order; any sub-batch failure
//!   fails the whole request with that sub-batch's error (the first in shard order).
//! - The configured key and value limits (which may be below the protocol's) are checked
//!   before anything is executed.

use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::{Either, join_all, select};
use glommio::timer::Timer;
use shoal_proto::{
    ErrorDetail, ErrorResponse, GetMulti, GroupLeader, LimitKind, NodeInfo, Request, Response,
    StatusReport, Topology, group_by_shard,
};

use crate::node::{Mesh, ShardService};

/// The routing context of one shard.
pub(crate) struct Dispatcher {
    pub(crate) shard: u32,
    pub(crate) shard_count: u32,
    pub(crate) node_id: u64,
    pub(crate) cluster_id: u64,
    pub(crate) nodes: Vec<NodeInfo>,
    pub(crate) max_key_len: usize,
    pub(crate) max_value_len: usize,
    pub(crate) service: Rc<dyn ShardService>,
    pub(crate) mesh: Mesh,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("shard", &self.shard)
            .field("shard_count", &self.shard_count)
            .finish_non_exhaustive()
    }
}

pub(crate) fn error(detail: ErrorDetail, message: impl Into<String>) -> Response {
    Response::Error(ErrorResponse::new(detail, message))
}

impl Dispatcher {
    /// Answers `request` (anything but `Hello`) by `deadline`. A panic of the service is
    /// answered `Internal` instead of taking the executor down.
    pub(crate) async fn handle(&self, request: Request, deadline: Instant) -> Response {
        let now = Instant::now();
        if deadline <= now {
            return timeout();
        }
        // Pinned on this future's own state, not boxed: no allocation per request.
        let work = std::pin::pin!(AssertUnwindSafe(self.route(request, deadline)).catch_unwind());
        let timer = Timer::new(deadline - now);
        match select(work, timer).await {
            Either::Left((Ok(response), _)) => response,
            Either::Left((Err(_panic), _)) => {
                tracing::error!(shard = self.shard, "request handler panicked");
                error(ErrorDetail::Internal, "the request handler panicked")
            }
            Either::Right(_) => timeout(),
        }
    }

    async fn route(&self, request: Request, deadline: Instant) -> Response {
        if let Err(e) = self.check_sizes(&request) {
            return Response::Error(e);
        }
        let s = self.shard_count;
        match request {
            Request::Hello(_) => error(
                ErrorDetail::InvalidRequest,
                "Hello is only valid as the first frame of a connection",
            ),
            Request::Ping => Response::Pong,
            Request::Topology => self.topology(deadline).await,
            Request::Status { group: None } => self.status_all(deadline).await,
            Request::Status { group: Some(g) } if g < s => {
                self.on_shard(g, Request::Status { group: Some(g) }, deadline)
                    .await
            }
            Request::AddLearner(ref a) if a.group < s => {
                self.on_shard(a.group, request.clone(), deadline).await
            }
            Request::KeyCount { group } if group < s => {
                self.on_shard(group, Request::KeyCount { group }, deadline)
                    .await
            }
            Request::StateDigest { group } if group < s => {
                self.on_shard(group, Request::StateDigest { group }, deadline)
                    .await
            }
            Request::KeyCount { group: g } | Request::StateDigest { group: g } => error(
                ErrorDetail::InvalidRequest,
                format!("group {g} does not exist: the node has {s} groups"),
            ),
            Request::ChangeMembership(ref c) if c.group < s => {
                self.on_shard(c.group, request.clone(), deadline).await
            }
            Request::Status { group: Some(g) }
            | Request::AddLearner(shoal_proto::AddLearner { group: g, .. })
            | Request::ChangeMembership(shoal_proto::ChangeMembership { group: g, .. }) => error(
                ErrorDetail::InvalidRequest,
                format!("group {g} does not exist: the node has {s} groups"),
            ),
            keyed => match keyed.route(s) {
                Err(wrong) => Response::Error(wrong),
                Ok(Some(owner)) => self.on_shard(owner, keyed, deadline).await,
                Ok(None) => match keyed {
                    Request::GetMulti(g) => self.fan_out(g, deadline).await,
                    other => error(
                        ErrorDetail::Internal,
                        format!("no route for {:?}", other.opcode()),
                    ),
                },
            },
        }
    }

    /// Executes `request` on `shard`: the service when it is this one, else the mesh.
    async fn on_shard(&self, shard: u32, request: Request, deadline: Instant) -> Response {
        if shard == self.shard {
            self.service.execute(request, deadline).await
        } else {
            self.mesh.call(shard, request, deadline).await
        }
    }

    fn check_sizes(&self, request: &Request) -> Result<(), ErrorResponse> {
        let too_large = |limit: LimitKind, max: usize, actual: usize| {
            ErrorResponse::new(
                ErrorDetail::TooLarge {
                    limit,
                    max: max as u64,
                    actual: actual as u64,
                },
                format!("{limit} of {actual} bytes exceeds this node's limit of {max}"),
            )
        };
        let key = |k: &Bytes| {
            if k.len() > self.max_key_len {
                Err(too_large(LimitKind::Key, self.max_key_len, k.len()))
            } else {
                Ok(())
            }
        };
        match request {
            Request::Get(g) => key(&g.key),
            Request::Delete(d) => key(&d.key),
            Request::Put(shoal_proto::Put { key: k, value, .. })
            | Request::PutWithTtl(shoal_proto::PutWithTtl { key: k, value, .. }) => {
                key(k)?;
                if value.len() > self.max_value_len {
                    return Err(too_large(LimitKind::Value, self.max_value_len, value.len()));
                }
                Ok(())
            }
            Request::GetMulti(g) => g.keys.iter().try_for_each(key),
            Request::SetIf(shoal_proto::SetIf { key: k, value, .. }) => {
                key(k)?;
                if value.len() > self.max_value_len {
                    return Err(too_large(LimitKind::Value, self.max_value_len, value.len()));
                }
                Ok(())
            }
            Request::Expire(e) => key(&e.key),
            Request::Persist(p) => key(&p.key),
            Request::Ttl(t) => key(&t.key),
            Request::DeleteMulti(d) => d.keys.iter().try_for_each(key),
            _ => Ok(()),
        }
    }

    /// A `GetMulti` the client let the node route: one sub-batch per owning shard, run
    /// concurrently, merged back into request order.
    async fn fan_out(&self, g: GetMulti, deadline: Instant) -> Response {
        let groups = group_by_shard(&g.keys, self.shard_count);
        let batches = groups.iter().map(|(shard, positions)| {
            let sub = GetMulti {
                shard: Some(*shard),
                keys: positions.iter().map(|&i| g.keys[i].clone()).collect(),
                consistency: g.consistency,
            };
            async move {
                let answer = self
                    .on_shard(*shard, Request::GetMulti(sub), deadline)
                    .await;
                (*shard, positions, answer)
            }
        });
        let answers = join_all(batches).await;
        let mut values: Vec<Option<Bytes>> = vec![None; g.keys.len()];
        for (shard, positions, answer) in answers {
            match answer {
                Response::GetMulti(vs) if vs.len() == positions.len() => {
                    for (&i, v) in positions.iter().zip(vs) {
                        values[i] = v;
                    }
                }
                Response::Error(e) => return Response::Error(e),
                other => {
                    return error(
                        ErrorDetail::Internal,
                        format!(
                            "shard {shard} answered a get_multi with {:?}",
                            other.opcode()
                        ),
                    );
                }
            }
        }
        Response::GetMulti(values)
    }

    /// Asks every shard for its group's status, concurrently.
    async fn statuses(&self, deadline: Instant) -> Vec<Result<StatusReport, ErrorResponse>> {
        let asks = (0..self.shard_count).map(|g| async move {
            match self
                .on_shard(g, Request::Status { group: Some(g) }, deadline)
                .await
            {
                Response::Status(r) => Ok(r),
                Response::Error(e) => Err(e),
                other => Err(ErrorResponse::new(
                    ErrorDetail::Internal,
                    format!("shard {g} answered a status with {:?}", other.opcode()),
                )),
            }
        });
        join_all(asks).await
    }

    async fn status_all(&self, deadline: Instant) -> Response {
        let mut groups = Vec::with_capacity(self.shard_count as usize);
        for r in self.statuses(deadline).await {
            match r {
                Ok(report) => groups.extend(report.groups),
                Err(e) => return Response::Error(e),
            }
        }
        Response::Status(StatusReport {
            node_id: self.node_id,
            groups,
        })
    }

    /// The topology: the nodes that are members (voters or learners) of at least one group
    /// as this node sees them, and, per group, the leader and term this node knows (absent
    /// when the group's shard cannot say, e.g. during an election). A configured node that
    /// was removed from every group is not listed. When some group cannot say who its
    /// members are (its shard did not answer) or no group has any (a node waiting to be
    /// added), the configured nodes are listed too: listing a node too many is harmless, a
    /// member left out would hide part of the cluster.
    async fn topology(&self, deadline: Instant) -> Response {
        let reports = self.statuses(deadline).await;
        let mut members = std::collections::BTreeSet::new();
        let mut all_known = true;
        let leaders = reports
            .into_iter()
            .enumerate()
            .map(|(g, r)| {
                let known = match r {
                    Ok(rep) => rep.groups.into_iter().find(|s| s.group == g as u32),
                    Err(_) => None,
                };
                match known {
                    Some(s) => {
                        members.extend(s.voters.iter().chain(&s.learners).copied());
                        GroupLeader {
                            leader: s.leader,
                            term: s.term,
                        }
                    }
                    None => {
                        all_known = false;
                        GroupLeader {
                            leader: None,
                            term: 0,
                        }
                    }
                }
            })
            .collect();
        let listed = |id: u64| !all_known || members.is_empty() || members.contains(&id);
        // The configured nodes first, then those this shard's group added at runtime.
        let mut nodes: Vec<NodeInfo> = Vec::new();
        for node in self.nodes.iter().cloned().chain(self.service.members()) {
            if nodes.len() < shoal_proto::limits::MAX_NODES
                && listed(node.node_id)
                && !nodes.iter().any(|n| n.node_id == node.node_id)
            {
                nodes.push(node);
            }
        }
        Response::Topology(Topology {
            cluster_id: self.cluster_id,
            shard_count: self.shard_count,
            nodes,
            leaders,
        })
    }
}

fn timeout() -> Response {
    error(
        ErrorDetail::Timeout,
        "the request did not complete before its deadline",
    )
}
