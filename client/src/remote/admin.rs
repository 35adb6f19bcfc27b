//! Operator calls of `RemoteKvClient`: the Raft status of one node (every group as that
//! node sees it), for `shoal cluster status` and for tests that look for a group's leader.
//!
//! Invariant: a status is asked of exactly the node named (never re-routed to another
//! node): the point is to see each node's own view, lagging or partitioned ones included.
//! Each call is bounded by the request timeout.

use shoal_proto::{Request, Response, StatusReport, encode_request};

use super::RemoteKvClient;
use super::unexpected;
use crate::error::KvClientError;

impl RemoteKvClient {
    /// The status of every group on the node whose client address is `addr`, as that
    /// node sees it (role, term, leader, log, commit and applied indexes, members).
    ///
    /// # Errors
    /// `Timeout` when the node does not answer within the request timeout; the node's
    /// error otherwise.
    pub async fn node_status(&self, addr: &str) -> Result<StatusReport, KvClientError> {
        let timeout = self.inner.opts.request_timeout;
        let ask = async {
            let conn = self.inner.pool.get(addr, self.cluster_id()).await?;
            match conn
                .call(|b, id| encode_request(b, id, &Request::Status { group: None }))
                .await?
            {
                Response::Status(report) => Ok(report),
                Response::Error(e) => Err(KvClientError::from_error_response(e)),
                other => Err(unexpected(&conn, "Status", &other)),
            }
        };
        match tokio::time::timeout(timeout, ask).await {
            Ok(r) => r,
            Err(_) => Err(KvClientError::Timeout {
                detail: format!("status of {addr}: no answer within {timeout:?}"),
                last_error: None,
            }),
        }
    }
}
