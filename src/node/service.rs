//! The seam between the server (connections, routing, forwarding) and a shard's consensus
//! and state: [`ShardService`] executes one request on the shard that owns it.
//!
//! Invariants:
//! - `execute` runs on the owning shard's executor thread (the trait is `?Send`: the
//!   implementation holds the shard's `Raft` and state through `Rc`).
//! - It is only given requests that belong to its shard: single-key requests whose key it
//!   owns, `GetMulti` batches whose keys it all owns, and `Status`, `AddLearner`,
//!   `ChangeMembership` for its own group. Routing, fan-out, `Hello`, `Ping` and `Topology`
//!   are the server's business.
//! - It always answers: failures are `Response::Error` with a precise status
//!   (`NotLeader` with a leader hint, `Timeout` past the deadline, `Unavailable`,
//!   `ShuttingDown`...), never a panic.

use std::time::Instant;

use async_trait::async_trait;
use shoal_proto::{NodeInfo, Request, Response};

/// Executes requests on the shard that owns them.
#[async_trait(?Send)]
pub trait ShardService: 'static {
    /// The shard (= Raft group) this service runs.
    fn shard(&self) -> u32;

    /// Executes `request`; writes answer once committed and applied, reads at the
    /// requested consistency. A request whose `deadline` already passed answers `Timeout`
    /// at once; bounding a running request by `deadline` is the caller's job
    /// (`Dispatcher::handle` races it against a timer), so the service needs no timer of
    /// its own.
    async fn execute(&self, request: Request, deadline: Instant) -> Response;

    /// The members of this shard's group as it knows them now (voters and learners, with
    /// their client addresses), so the topology names nodes added at runtime. Empty when
    /// the service has no such knowledge.
    fn members(&self) -> Vec<NodeInfo> {
        Vec::new()
    }
}
