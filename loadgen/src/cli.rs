//! Command-line flags (clap) and their resolution into a [`RunConfig`].
//!
//! Owns [`Cli`] and [`Cli::resolve`]. Invariants: every flag has a documented default;
//! `resolve` either returns a configuration that passed [`RunConfig::validate`] or a message
//! naming the flag to fix (main turns it into a clap usage error, exit status 2).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::config::{KeyDist, LoadModel, Preset, RunConfig, limits};
use crate::targets::{floor_fsync, shoal_remote};
use crate::workload::Mix;

/// The systems loadgen can drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TargetKind {
    /// A Redis-protocol server (`--endpoint redis://127.0.0.1:6379`).
    Redis,
    /// An etcd cluster (`--endpoint http://127.0.0.1:2379`, repeatable; feature `etcd`).
    Etcd,
    /// No I/O at all: measures loadgen's own overhead.
    Null,
    /// A Shoal node embedded in this process, through `LocalKvClient`.
    ShoalLocal,
    /// A remote Shoal node or cluster, through `RemoteKvClient`
    /// (`--endpoint 127.0.0.1:7400`, repeatable).
    ShoalRemote,
    /// Floor of shoal-local: the tokio -> glommio shard channel round trip, answered at once.
    FloorChannel,
    /// Floor of shoal-remote: a loopback TCP round trip with Shoal's frame sizes.
    FloorTcp,
    /// Floor of a durable put: 4 KiB O_DIRECT overwrite + fdatasync (writes only).
    FloorFsync,
}

impl TargetKind {
    /// The CLI name.
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::Redis => "redis",
            TargetKind::Etcd => "etcd",
            TargetKind::Null => "null",
            TargetKind::ShoalLocal => "shoal-local",
            TargetKind::ShoalRemote => "shoal-remote",
            TargetKind::FloorChannel => "floor-channel",
            TargetKind::FloorTcp => "floor-tcp",
            TargetKind::FloorFsync => "floor-fsync",
        }
    }
}

/// Key distributions on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DistArg {
    /// Every key equally likely.
    Uniform,
    /// Zipfian over key indexes (key 0 hottest, hot keys adjacent).
    Zipfian,
    /// Zipfian with hot keys scattered over the key space (YCSB's default).
    ScrambledZipfian,
}

const EXAMPLES: &str = "\
Examples:
  loadgen --target redis --workload a --preload --duration 30s
  loadgen --target redis --workload write --concurrency 1 --ops 20000
  loadgen --target etcd --endpoint http://127.0.0.1:2379 --workload b --rate 2000 --duration 60s
  loadgen --target null --workload c --concurrency 64 --duration 5s   # loadgen's own overhead
  loadgen --target shoal-local --workload c --preload --value-size 100 -c 1
  loadgen --target shoal-remote --endpoint 127.0.0.1:7400 --workload write -c 64
  loadgen --target floor-channel --workload c -c 1   # the floor under shoal-local
  loadgen --target redis --read 80 --write 10 --delete 5 --ttl-write 5 --key-dist uniform \\
          --json run.json --hdr run.hlog --plot run.svg";

/// Shoal's benchmark: closed- and open-loop load with YCSB-style workloads.
#[derive(Debug, Clone, Parser)]
#[command(name = "loadgen", version, about, after_help = EXAMPLES, allow_negative_numbers = true)]
pub struct Cli {
    /// System to drive.
    #[arg(long, value_enum)]
    pub target: TargetKind,
    /// Target address; repeat (or comma-separate) for several etcd members or Shoal nodes.
    /// Defaults: redis://127.0.0.1:6379, http://127.0.0.1:2379, 127.0.0.1:7400 (shoal-remote).
    #[arg(long, value_delimiter = ',')]
    pub endpoint: Vec<String>,
    /// Redis: multiplexed connections (each pipelines every request sent on it).
    /// shoal-remote: connections per (node, shard) address (1..=64).
    #[arg(long, default_value_t = 1)]
    pub connections: usize,
    /// shoal-local, floor-channel, floor-tcp: shards (0: one per available core, as a node).
    #[arg(long, default_value_t = 0)]
    pub shards: usize,
    /// shoal-local, floor-channel (and floor-tcp's shard executors): microseconds a shard's
    /// executor spins for work before it sleeps (the node's `executor.spin_before_park_us`;
    /// default: the node's default; 0: never spin).
    #[arg(long, value_name = "US")]
    pub spin_before_park_us: Option<u64>,
    /// shoal-local, floor-channel: microseconds a lone call busy-polls its reply before it
    /// sleeps (`LocalKvClient::with_reply_spin`; default: the client's default; 0: never).
    #[arg(long, value_name = "US")]
    pub reply_spin_us: Option<u64>,
    /// shoal-local, floor-channel: the core of shard 0; shard s runs on core
    /// `(first_core + s) % cores` (the node's `executor.first_core`; default: the node's
    /// default, 0). `scripts/irq-core DIR` prints the core that takes the interrupts of
    /// DIR's disk: a shard there is woken without a cross-core interrupt when its
    /// fdatasync completes.
    #[arg(long, value_name = "CORE")]
    pub first_core: Option<usize>,
    /// shoal-local: how the embedded node's WAL makes a put durable (the node's
    /// `wal.sync_mode`: uring, inline, thread; default: the node's default). Every mode
    /// fdatasyncs before the put is acknowledged.
    #[arg(long, value_enum, value_name = "MODE")]
    pub wal_sync_mode: Option<shoal::config::WalSyncMode>,
    /// shoal-local: the embedded node's data directory (used as is, never removed).
    /// floor-fsync: where its scratch directory is created. Default: a fresh directory
    /// under the system temp dir (TMPDIR), removed at exit.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Keep the temporary data directory at exit (its path is printed).
    #[arg(long)]
    pub keep_data: bool,
    /// Free text stating the target's settings, copied into the report (e.g.
    /// "appendfsync always").
    #[arg(long)]
    pub label: Option<String>,

    /// Workload preset: a (50% get, 50% put), b (95/5), c (gets only), write (puts only).
    /// Default a, unless ratio flags are given.
    #[arg(long, value_enum)]
    pub workload: Option<Preset>,
    /// Weight of gets (ratio flags replace the preset; unset ones are 0).
    #[arg(long)]
    pub read: Option<f64>,
    /// Weight of puts.
    #[arg(long)]
    pub write: Option<f64>,
    /// Weight of deletes.
    #[arg(long)]
    pub delete: Option<f64>,
    /// Weight of puts with TTL (see --ttl).
    #[arg(long)]
    pub ttl_write: Option<f64>,
    /// Weight of multi-key gets (see --multi-get-keys).
    #[arg(long)]
    pub multi_get: Option<f64>,
    /// TTL of TTL writes, seconds.
    #[arg(long, default_value_t = 60)]
    pub ttl: u64,
    /// Keys per multi-get.
    #[arg(long, default_value_t = 10)]
    pub multi_get_keys: usize,

    /// Size of the key space.
    #[arg(long, default_value_t = 100_000)]
    pub keys: u64,
    /// Key distribution.
    #[arg(long, value_enum, default_value = "scrambled-zipfian")]
    pub key_dist: DistArg,
    /// Zipfian skew, in (0, 10] (YCSB uses 0.99).
    #[arg(long, default_value_t = 0.99)]
    pub theta: f64,
    /// Bytes per key (at least 1 + the digits of the largest key index).
    #[arg(long, default_value_t = 16)]
    pub key_size: usize,
    /// Bytes per value.
    #[arg(long, default_value_t = 128)]
    pub value_size: usize,
    /// Write every key once before the run.
    #[arg(long)]
    pub preload: bool,
    /// Puts in flight while preloading (default: --concurrency, at least 16).
    #[arg(long)]
    pub preload_concurrency: Option<usize>,

    /// Requests in flight (closed loop); most requests in flight (open loop).
    #[arg(long, short = 'c', default_value_t = 16)]
    pub concurrency: usize,
    /// Open loop: schedule this many operations per second, latency counted from the
    /// scheduled time. Without it: closed loop.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Measured duration after warm-up (e.g. 30s, 2m). Default 10s unless --ops is given.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Stop after this many measured operations (whichever of --duration/--ops comes first).
    #[arg(long)]
    pub ops: Option<u64>,
    /// Warm-up before measuring, excluded from every figure.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    pub warmup: Duration,
    /// Tokio worker threads (default: available cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Bound on connecting to the target.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "3s")]
    pub connect_timeout: Duration,
    /// Bound on each operation.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    pub op_timeout: Duration,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// No live progress lines.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Write the full report as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write per-second histograms per kind as an HdrHistogram interval log to FILE.
    #[arg(long, value_name = "FILE")]
    pub hdr: Option<PathBuf>,
    /// Draw latency-by-percentile curves to FILE (SVG).
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
}

impl Cli {
    /// The run configuration these flags describe, validated.
    pub fn resolve(&self) -> Result<RunConfig, String> {
        let ratios = [
            self.read,
            self.write,
            self.delete,
            self.ttl_write,
            self.multi_get,
        ];
        let explicit = ratios.iter().any(Option::is_some);
        let (preset, mix) = match (self.workload, explicit) {
            (Some(_), true) => {
                return Err("give either --workload or ratio flags (--read, --write, \
                            --delete, --ttl-write, --multi-get), not both"
                    .to_string());
            }
            (Some(p), false) => (Some(p), p.mix()),
            (None, false) => (Some(Preset::A), Preset::A.mix()),
            (None, true) => (
                None,
                Mix {
                    read: self.read.unwrap_or(0.0),
                    write: self.write.unwrap_or(0.0),
                    delete: self.delete.unwrap_or(0.0),
                    ttl_write: self.ttl_write.unwrap_or(0.0),
                    multi_get: self.multi_get.unwrap_or(0.0),
                },
            ),
        };
        let key_dist = match self.key_dist {
            DistArg::Uniform => KeyDist::Uniform,
            DistArg::Zipfian => KeyDist::Zipfian { theta: self.theta },
            DistArg::ScrambledZipfian => KeyDist::ScrambledZipfian { theta: self.theta },
        };
        let duration = match (self.duration, self.ops) {
            (None, None) => Some(Duration::from_secs(10)),
            (d, _) => d,
        };
        if self.connections == 0 || self.connections > limits::MAX_CONNECTIONS {
            return Err(format!(
                "--connections must be in 1..={}, got {}",
                limits::MAX_CONNECTIONS,
                self.connections
            ));
        }
        let mut endpoints = self.endpoint.clone();
        match self.target {
            TargetKind::Redis => {
                if endpoints.len() > 1 {
                    return Err("--target redis takes exactly one --endpoint".to_string());
                }
                let ep = endpoints
                    .pop()
                    .unwrap_or_else(|| "127.0.0.1:6379".to_string());
                endpoints = vec![if ep.contains("://") {
                    ep
                } else {
                    format!("redis://{ep}")
                }];
            }
            TargetKind::Etcd if endpoints.is_empty() => {
                endpoints = vec!["http://127.0.0.1:2379".to_string()];
            }
            TargetKind::ShoalRemote => {
                if endpoints.is_empty() {
                    endpoints = vec![shoal_remote::DEFAULT_ENDPOINT.to_string()];
                }
                if self.connections > shoal_remote::MAX_CONNECTIONS_PER_SHARD {
                    return Err(format!(
                        "--connections for shoal-remote is per (node, shard) and must be in \
                         1..={}, got {}",
                        shoal_remote::MAX_CONNECTIONS_PER_SHARD,
                        self.connections
                    ));
                }
            }
            TargetKind::FloorFsync => floor_fsync::check_mix(&mix)?,
            _ => {}
        }
        if self.shards > shoal_proto::limits::MAX_SHARDS {
            return Err(format!(
                "--shards must be at most {}, got {}",
                shoal_proto::limits::MAX_SHARDS,
                self.shards
            ));
        }
        let uses_endpoint = matches!(
            self.target,
            TargetKind::Redis | TargetKind::Etcd | TargetKind::ShoalRemote
        );
        if !uses_endpoint && !endpoints.is_empty() {
            return Err(format!(
                "--target {} takes no --endpoint",
                self.target.name()
            ));
        }
        let threads = self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });
        let cfg = RunConfig {
            target: self.target.name().to_string(),
            endpoints,
            connections: self.connections,
            label: self.label.clone(),
            preset,
            mix,
            ttl_secs: self.ttl,
            multi_get_keys: self.multi_get_keys,
            keys: self.keys,
            key_dist,
            key_size: self.key_size,
            value_size: self.value_size,
            preload: self.preload,
            preload_concurrency: self.preload_concurrency.unwrap_or(self.concurrency.max(16)),
            load: match self.rate {
                Some(rate) => LoadModel::Open { rate },
                None => LoadModel::Closed,
            },
            concurrency: self.concurrency,
            warmup: self.warmup,
            duration,
            ops: self.ops,
            threads,
            connect_timeout: self.connect_timeout,
            op_timeout: self.op_timeout,
            seed: self.seed,
            quiet: self.quiet,
            keep_window_histograms: self.hdr.is_some(),
        };
        cfg.validate()?;
        Ok(cfg)
    }
}
