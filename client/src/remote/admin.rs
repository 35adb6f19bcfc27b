//! Operator calls of `RemoteKvClient`: the Raft status of one node (every group as that
//! node sees it), the state digest of one group on one node, and membership changes of
//! one group (add a learner, change the voters).
//!
//! Invariants:
//! - A status or digest is asked of exactly the node named (never re-routed to another node): the
//!   point is to see each node's own view, lagging or partitioned ones included.
//! - A membership change is sent to the group's leader on the group's shard port, and
//!   follows `NotLeader` hints like any write, within the request timeout and retry
//!   budget. Both changes are idempotent (re-adding a learner replaces its addresses; the
//!   same voter set again changes nothing), so an uncertain one is resent like a put.

use shoal_proto::{
    AddLearner, ChangeMembership, GroupDigest, Request, Response, StatusReport, encode_request,
};

use super::{Failure, RemoteKvClient, gen_seen_now, unexpected};
use crate::error::KvClientError;

impl RemoteKvClient {
    /// The status of every group on the node whose client address is `addr`, as that
    /// node sees it (role, term, leader, log, commit and applied indexes, members).
    ///
    /// # Errors
    /// `Timeout` when the node does not answer within the request timeout; the node's
    /// error otherwise.
    pub async fn node_status(&self, addr: &str) -> Result<StatusReport, KvClientError> {
        let request = Request::Status { group: None };
        self.ask_node(addr, "Status", request, |r| match r {
            Response::Status(report) => Ok(report),
            other => Err(other),
        })
        .await
    }

    /// The digest of `group`'s state machine on the node whose client address is `addr`,
    /// with the applied log position it was computed at. Replicas that applied the same
    /// log prefix report the same digest: compare digests at equal `applied_index`.
    ///
    /// # Errors
    /// `Timeout` when the node does not answer within the request timeout; the node's
    /// error otherwise (`InvalidRequest` from a node that predates the opcode).
    pub async fn state_digest(&self, addr: &str, group: u32) -> Result<GroupDigest, KvClientError> {
        self.ask_node(
            addr,
            "StateDigest",
            Request::StateDigest { group },
            |r| match r {
                Response::StateDigest(d) if d.group == group => Ok(d),
                other => Err(other),
            },
        )
        .await
    }

    /// Sends `request` to exactly the node at `addr` (no routing, no retry) and maps its
    /// answer with `accept`, within the request timeout.
    async fn ask_node<T>(
        &self,
        addr: &str,
        what: &str,
        request: Request,
        accept: impl Fn(Response) -> Result<T, Response>,
    ) -> Result<T, KvClientError> {
        let timeout = self.inner.opts.request_timeout;
        let ask = async {
            let conn = self.inner.pool.get(addr, self.cluster_id()).await?;
            match conn.call(|b, id| encode_request(b, id, &request)).await? {
                Response::Error(e) => Err(KvClientError::from_error_response(e)),
                other => accept(other).map_err(|other| unexpected(&conn, what, &other)),
            }
        };
        match tokio::time::timeout(timeout, ask).await {
            Ok(r) => r,
            Err(_) => Err(KvClientError::Timeout {
                detail: format!("{what} of {addr}: no answer within {timeout:?}"),
                last_error: None,
            }),
        }
    }

    /// Adds node `node_id` (peer address `peer_addr`, client address `client_addr`, both
    /// of its shard 0) as a learner of `group`; answers the membership entry's log index
    /// once the learner caught up with the leader. Give the request timeout room for the
    /// catch-up (a snapshot plus the log since).
    ///
    /// # Errors
    /// `InvalidArgument` for a bad address; `Timeout` when the learner did not catch up in
    /// time (it stays a learner and keeps catching up); the node's error otherwise.
    pub async fn add_learner(
        &self,
        group: u32,
        node_id: u64,
        peer_addr: &str,
        client_addr: &str,
    ) -> Result<u64, KvClientError> {
        let request = Request::AddLearner(AddLearner {
            group,
            node_id,
            addr: peer_addr.to_string(),
            client_addr: client_addr.to_string(),
        });
        match self.on_group_leader(group, request).await? {
            Response::AddLearner { log_index } => Ok(log_index),
            other => Err(KvClientError::Protocol {
                addr: String::new(),
                reason: format!("expected an AddLearner answer, got {other:?}"),
            }),
        }
    }

    /// Makes `voters` the voter set of `group` (each already a member; learners are
    /// promoted); removed voters stay as learners when `retain`, else leave the group.
    /// Answers the final membership entry's log index.
    pub async fn change_membership(
        &self,
        group: u32,
        voters: &[u64],
        retain: bool,
    ) -> Result<u64, KvClientError> {
        let request = Request::ChangeMembership(ChangeMembership {
            group,
            voters: voters.to_vec(),
            retain,
        });
        match self.on_group_leader(group, request).await? {
            Response::ChangeMembership { log_index } => Ok(log_index),
            other => Err(KvClientError::Protocol {
                addr: String::new(),
                reason: format!("expected a ChangeMembership answer, got {other:?}"),
            }),
        }
    }

    /// Sends `request` to the leader of `group`, following hints, with the write retries.
    async fn on_group_leader(
        &self,
        group: u32,
        request: Request,
    ) -> Result<Response, KvClientError> {
        let deadline = self.deadline();
        let request = &request;
        self.with_retries(deadline, true, || async {
            let (routing, gen_seen) = self
                .routing()
                .await
                .map_err(|e| Failure::before_send(e, gen_seen_now(self)))?;
            if group >= routing.shard_count {
                return Err(Failure::before_send(
                    KvClientError::InvalidArgument {
                        reason: format!(
                            "group {group} does not exist: the cluster has {} groups",
                            routing.shard_count
                        ),
                    },
                    gen_seen,
                ));
            }
            let (conn, node, _) = self.connect_shard(&routing, group, gen_seen).await?;
            let fail = |err, sent| Failure {
                err,
                shard: Some(group),
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
                Ok(Response::Error(e)) => Err(fail(KvClientError::from_error_response(e), true)),
                Ok(r) => Ok(r),
                Err(f) => Err(fail(f.err, f.sent)),
            }
        })
        .await
    }
}
