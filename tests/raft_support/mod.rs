//! TEST-ONLY support for the `raft_*` integration tests: an in-memory log store and state
//! machine, an in-process network, and helpers to build a glommio executor and a config.
//! Each test binary uses a different subset, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod bytes_sm;
pub mod mem_network;
pub mod mem_store;

use std::sync::Arc;
use std::time::Duration;

use shoal::raft::types::NodeId;
use shoal::raft::types::ShoalNode;

/// Bound on every wait in these tests, so a broken cluster fails instead of hanging.
pub const WAIT: Duration = Duration::from_secs(10);

/// A glommio executor on the test's thread (where every Raft of the test lives).
pub fn executor() -> glommio::LocalExecutor {
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .make()
        .unwrap()
}

/// Fast timers so elections settle in well under a second.
pub fn config() -> Arc<openraft::Config> {
    let config = openraft::Config {
        cluster_name: "shoal-test".to_string(),
        heartbeat_interval: 50,
        election_timeout_min: 150,
        election_timeout_max: 300,
        ..Default::default()
    };
    Arc::new(config.validate().expect("valid raft config"))
}

/// The address record of test node `id` (nothing listens there; the network is in-process).
pub fn node(id: NodeId) -> ShoalNode {
    ShoalNode {
        client_addr: format!("127.0.0.1:{}", 7000 + id),
        peer_addr: format!("127.0.0.1:{}", 8000 + id),
    }
}
