//! The openraft `Config` of every group of this node, derived from the node's settings.
//!
//! Invariant: `enable_leader_restore` is always off. With it on, a leader that crashed
//! after replicating entries it had not fdatasync'd itself comes back as leader of the same
//! term and reuses those log ids for other entries (docs/RAFT.md pitfall 14, found by the
//! deterministic simulation).
//!
//! `allow_log_reversion` is on: a follower's WAL recovery may cut entries it had
//! acknowledged (damage confined to the last write after a crash, or a truncated tail,
//! looks exactly like a torn write: docs/WAL.md, "Recovery rule"). Without it the leader
//! meets a follower log shorter than the progress it recorded, and openraft's
//! `debug_assert` "follower log reversion is not allowed" panics the leader's group (debug
//! builds; release builds skip the check and keep the stale progress). With it the leader
//! restarts replication to that follower from scratch; the commit index never goes back
//! (docs/RAFT.md pitfall 15, `tests/faults_storage_cluster.rs`).

use std::sync::Arc;

use openraft::{Config, SnapshotPolicy};

use crate::config::NodeConfig;

/// The group config of shard `shard`.
pub fn raft_config(
    config: &NodeConfig,
    shard: usize,
) -> Result<Arc<Config>, openraft::ConfigError> {
    let c = Config {
        cluster_name: format!("shoal-group-{shard}"),
        heartbeat_interval: config.timeouts.heartbeat_ms,
        election_timeout_min: config.timeouts.election_min_ms,
        election_timeout_max: config.timeouts.election_max_ms,
        // Applied per snapshot chunk, and the last chunk waits for the receiver to verify
        // and durably write the whole snapshot: far longer than one ordinary RPC.
        install_snapshot_timeout: config.timeouts.peer_rpc_ms.saturating_mul(10),
        snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot.every_entries),
        max_in_snapshot_log_to_keep: config.snapshot.keep_entries,
        enable_leader_restore: Some(false),
        allow_log_reversion: Some(true),
        ..Config::default()
    };
    Ok(Arc::new(c.validate()?))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn defaults_validate_and_leader_restore_is_off() {
        let c = raft_config(&NodeConfig::default(), 3).unwrap();
        assert_eq!(c.enable_leader_restore, Some(false));
        assert_eq!(c.allow_log_reversion, Some(true));
        assert_eq!(c.cluster_name, "shoal-group-3");
    }
}
