//! The `shoal-local` target: a Shoal node embedded in the loadgen process, driven through
//! `LocalKvClient` (a bounded channel to the owning shard, a oneshot back; no TCP).
//!
//! Owns starting the embedded node ([`EmbeddedNode::start`]: data directory, ports, shard
//! count, waiting until every shard serves) and stopping it ([`EmbeddedNode::stop`]:
//! graceful, then the temporary data directory is removed).
//!
//! Invariants:
//! - The node is a real single node: writes are acknowledged after fdatasync and apply,
//!   gets are linearizable (the client's defaults); nothing is weakened for the benchmark.
//! - Without `--data-dir` the node gets a fresh directory under the system temp dir
//!   (`TMPDIR`; it must be on the disk under test), removed after the node stopped unless
//!   `--keep-data`. A `--data-dir` is the node's own directory, used as is and never
//!   removed (an existing node there recovers).
//! - The node also listens for clients and peers (it is a full node): on a block of free
//!   loopback ports, so runs never collide with a node on the default ports.

use std::path::{Path, PathBuf};
use std::time::Duration;

use shoal::config::{ExecutorConfig, NodeConfig, WalConfig, WalSyncMode};
use shoal::local_client::LocalKvClient;
use shoal::node::Node;

use super::ConnectError;
use super::shoal::ShoalTarget;

/// Bound on the node becoming ready (recovery of an existing data dir included).
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Most shards of an embedded node: its client and peer ports come from one block of free
/// loopback ports, and blocks hold at most 256 ports.
pub const MAX_LOCAL_SHARDS: usize = 128;
/// Bound on a graceful stop (in-flight requests finish, groups stop, WALs close).
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How far past the client's deadline loadgen's own bound on a call lies.
pub const GUARD_MARGIN: Duration = Duration::from_secs(2);
/// Attempts with a fresh port block when another process took a port in between.
const PORT_ATTEMPTS: usize = 3;

/// `shoal-local` settings.
#[derive(Debug, Clone)]
pub struct LocalSettings {
    /// The node's data directory; `None`: a fresh temporary one.
    pub data_dir: Option<PathBuf>,
    /// Keep the temporary data directory at the end.
    pub keep_data: bool,
    /// Shards; 0: one per available core (the node's default).
    pub shards: usize,
    /// Per-call deadline of the local client.
    pub request_timeout: Duration,
    /// Executor and reply spinning.
    pub spin: SpinSettings,
    /// How the node's WAL makes writes durable (`wal.sync_mode`; every mode fdatasyncs
    /// before a put is acknowledged).
    pub wal_sync_mode: WalSyncMode,
}

/// How the in-process targets (`shoal-local` and its floor, `floor-channel`) place their
/// shards and avoid wake-ups: the same settings for both, so the floor measures the same
/// transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpinSettings {
    /// Each shard executor's `spin_before_park` in microseconds (0: off).
    pub spin_before_park_us: u64,
    /// How long a lone call busy-polls its reply (zero: off).
    pub reply_spin: Duration,
    /// Core of shard 0 (the node's `executor.first_core`): shard s runs on core
    /// `(first_core + s) % cores`.
    pub first_core: usize,
}

impl SpinSettings {
    /// The node's executor settings these stand for (placement and spinning).
    pub fn executor(&self) -> ExecutorConfig {
        ExecutorConfig {
            spin_before_park_us: self.spin_before_park_us,
            first_core: self.first_core,
        }
    }
}

impl Default for SpinSettings {
    /// The node's and `LocalKvClient`'s defaults.
    fn default() -> Self {
        SpinSettings {
            spin_before_park_us: shoal::config::DEFAULT_SPIN_BEFORE_PARK_US,
            reply_spin: shoal::local_client::DEFAULT_REPLY_SPIN,
            first_core: ExecutorConfig::default().first_core,
        }
    }
}

/// The embedded node, its data directory and what the report says about it.
#[derive(Debug)]
pub struct EmbeddedNode {
    node: Node,
    data_dir: PathBuf,
    temp: Option<tempfile::TempDir>,
    keep: bool,
}

fn failed(endpoint: &Path, reason: impl ToString) -> ConnectError {
    ConnectError::Failed {
        target: "shoal-local",
        endpoint: endpoint.display().to_string(),
        reason: reason.to_string(),
    }
}

impl EmbeddedNode {
    /// Starts the node, waits until every shard serves (bounded by [`START_TIMEOUT`]),
    /// and returns it with a `LocalKvClient` target over its mesh.
    pub async fn start(
        settings: &LocalSettings,
    ) -> Result<(EmbeddedNode, ShoalTarget<LocalKvClient>), ConnectError> {
        let (data_dir, temp) = match &settings.data_dir {
            Some(d) => (d.clone(), None),
            None => {
                let t = tempfile::Builder::new()
                    .prefix("loadgen-shoal-")
                    .tempdir()
                    .map_err(|e| {
                        failed(&std::env::temp_dir(), format!("creating a data dir: {e}"))
                    })?;
                (t.path().join("node"), Some(t))
            }
        };
        let shards = if settings.shards == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            settings.shards
        };
        if shards > MAX_LOCAL_SHARDS {
            return Err(failed(
                &data_dir,
                format!("--shards {shards}: an embedded node takes at most {MAX_LOCAL_SHARDS}"),
            ));
        }
        let mut last = None;
        for _ in 0..PORT_ATTEMPTS {
            let base = shoal_testkit::ports::free_port_block(2 * shards as u16)
                .map_err(|e| failed(&data_dir, format!("no free loopback ports: {e}")))?;
            let config = NodeConfig {
                node_id: 1,
                data_dir: data_dir.clone(),
                client_addr: shoal_testkit::ports::localhost(base),
                peer_addr: shoal_testkit::ports::localhost(base + shards as u16),
                shards,
                executor: settings.spin.executor(),
                wal: WalConfig {
                    sync_mode: settings.wal_sync_mode,
                    ..WalConfig::default()
                },
                ..NodeConfig::default()
            };
            config
                .validate()
                .map_err(|e| failed(&data_dir, format!("node configuration: {e}")))?;
            let mut node = Node::start(config).map_err(|e| failed(&data_dir, e))?;
            let outcome = tokio::time::timeout(START_TIMEOUT, node.ready())
                .await
                .map(|ready| ready.map(drop));
            match outcome {
                Ok(Ok(())) => {
                    let core_of_shard_0 = settings.spin.executor().core_of(
                        0,
                        std::thread::available_parallelism().map_or(1, |n| n.get()),
                    );
                    let client = LocalKvClient::new(node.mesh().clone())
                        .with_timeout(settings.request_timeout)
                        .with_reply_spin(settings.spin.reply_spin);
                    let where_ = if temp.is_some() {
                        if settings.keep_data {
                            format!("{} (temporary, kept)", data_dir.display())
                        } else {
                            format!("{} (temporary, removed at exit)", data_dir.display())
                        }
                    } else {
                        data_dir.display().to_string()
                    };
                    let description = format!(
                        "shoal-local (embedded single node, {shards} shard(s), data in {where_}; \
                         LocalKvClient, request timeout {} ms, linearizable gets, puts \
                         fdatasync'd before ack (WAL sync mode {:?}); shard 0 on core {}; \
                         shards spin {} us before parking, a lone call spins {} us on its reply)",
                        settings.request_timeout.as_millis(),
                        settings.wal_sync_mode,
                        core_of_shard_0,
                        settings.spin.spin_before_park_us,
                        settings.spin.reply_spin.as_micros()
                    );
                    let embedded = EmbeddedNode {
                        node,
                        data_dir,
                        temp,
                        keep: settings.keep_data,
                    };
                    // The shard enforces the client's deadline; bound calls here too, so
                    // a shard that died with requests in hand cannot hang the run.
                    let guard = settings.request_timeout + GUARD_MARGIN;
                    let target = ShoalTarget::new(client, description).with_guard(guard);
                    return Ok((embedded, target));
                }
                Ok(Err(e)) => {
                    let reason = e.to_string();
                    // The node's own error is the reason, whatever the stop reports.
                    let _ = node.stop().await;
                    let in_use = reason.contains("in use");
                    last = Some(failed(&data_dir, reason));
                    if !in_use {
                        break;
                    }
                }
                Err(_) => {
                    let _ = node.stop().await;
                    return Err(ConnectError::Timeout {
                        target: "shoal-local",
                        endpoint: data_dir.display().to_string(),
                        timeout_ms: START_TIMEOUT.as_millis(),
                    });
                }
            }
        }
        Err(last.unwrap_or_else(|| failed(&data_dir, "the node did not start")))
    }

    /// The node's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Stops the node gracefully, then removes the temporary data directory (unless kept).
    pub async fn stop(self) -> Result<(), String> {
        let EmbeddedNode {
            node,
            data_dir,
            temp,
            keep,
        } = self;
        let stopped = match tokio::time::timeout(STOP_TIMEOUT, node.stop()).await {
            Ok(r) => r.map_err(|e| format!("stopping the embedded node: {e}")),
            Err(_) => Err(format!(
                "the embedded node did not stop within {} s",
                STOP_TIMEOUT.as_secs()
            )),
        };
        if let Some(t) = temp {
            if keep {
                let kept = t.keep();
                eprintln!("loadgen: node data kept in {}", kept.join("node").display());
            } else {
                t.close().map_err(|e| {
                    format!("removing the node's data dir {}: {e}", data_dir.display())
                })?;
            }
        }
        stopped
    }
}
