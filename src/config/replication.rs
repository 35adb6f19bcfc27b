//! How a group's leader ships its log to followers: the peer pipeline's settings
//! (`[replication]` in the config file, `--append-pipeline-depth`, `--commit-linger-us`).
//!
//! Invariant: a valid `ReplicationConfig` maps onto a valid `peer::PeerConfig`
//! (`append_pipeline_depth` within `1..=limits::MAX_PIPELINED_APPENDS`, the linger at most
//! [`MAX_COMMIT_LINGER_US`]). Neither setting changes what is durable or when a write is
//! acknowledged; they trade round trips against batching.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::peer::{DEFAULT_APPEND_PIPELINE_DEPTH, DEFAULT_COMMIT_LINGER};

/// Longest `replication.commit_linger_us` accepted (1 s; the peer transport refuses more).
pub const MAX_COMMIT_LINGER_US: u64 = 1_000_000;

/// Settings of the peer replication pipeline of every group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplicationConfig {
    /// Most `AppendEntries` requests a leader has on the wire to one follower at once,
    /// answers still due (`peer::PeerConfig::append_pipeline_depth`).
    pub append_pipeline_depth: usize,
    /// Microseconds an entry-less, commit-only `AppendEntries` is held back so that the
    /// next request carries it (`peer::PeerConfig::commit_linger`); 0 sends each at once.
    pub commit_linger_us: u64,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        ReplicationConfig {
            append_pipeline_depth: DEFAULT_APPEND_PIPELINE_DEPTH,
            commit_linger_us: u64::try_from(DEFAULT_COMMIT_LINGER.as_micros())
                .unwrap_or(MAX_COMMIT_LINGER_US),
        }
    }
}

impl ReplicationConfig {
    /// The commit linger as a duration.
    pub fn commit_linger(&self) -> Duration {
        Duration::from_micros(self.commit_linger_us)
    }
}
