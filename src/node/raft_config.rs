//! The openraft `Config` and the peer transport's `PeerConfig` of every group of this
//! node, derived from the node's settings.
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
use std::time::Duration;

use openraft::{Config, SnapshotPolicy};
use shoal_proto::LocalPeer;

use crate::config::NodeConfig;
use crate::peer::PeerConfig;

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

/// The peer transport config of group `shard` of node `local`: the protocol defaults,
/// with the node's RPC timeout, replication pipeline settings and peer routes.
pub fn peer_config(config: &NodeConfig, local: LocalPeer, shard: usize) -> PeerConfig {
    PeerConfig {
        append_timeout: Duration::from_millis(config.timeouts.peer_rpc_ms),
        append_pipeline_depth: config.replication.append_pipeline_depth,
        commit_linger: config.replication.commit_linger(),
        routes: config
            .peer_routes
            .iter()
            .map(|r| (r.id, r.peer_addr))
            .collect(),
        ..PeerConfig::new(local, shard as u32)
    }
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

    #[test]
    fn peer_config_carries_the_replication_settings_and_routes() {
        let local = LocalPeer {
            cluster_id: 7,
            node_id: 2,
            shard_count: 2,
        };
        let defaults = peer_config(&NodeConfig::default(), local, 1);
        assert_eq!(
            defaults.append_pipeline_depth,
            crate::peer::DEFAULT_APPEND_PIPELINE_DEPTH
        );
        assert_eq!(defaults.commit_linger, crate::peer::DEFAULT_COMMIT_LINGER);
        assert_eq!(defaults.group, 1);
        defaults.validate().unwrap();

        let mut node = NodeConfig::default();
        node.replication.append_pipeline_depth = 3;
        node.replication.commit_linger_us = 250;
        node.timeouts.peer_rpc_ms = 1500;
        node.peer_routes = vec![crate::config::PeerRoute {
            id: 3,
            peer_addr: "127.0.0.1:9610".parse().unwrap(),
        }];
        let c = peer_config(&node, local, 0);
        assert_eq!(c.append_pipeline_depth, 3);
        assert_eq!(c.commit_linger, Duration::from_micros(250));
        assert_eq!(c.append_timeout, Duration::from_millis(1500));
        assert_eq!(c.routes.get(&3), Some(&"127.0.0.1:9610".parse().unwrap()));
        assert_eq!((c.group, c.local.node_id), (0, 2));
        c.validate().unwrap();
    }
}
