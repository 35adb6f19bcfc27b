//! The resolved run configuration: what the engine runs, as the report prints it.
//!
//! Owns [`RunConfig`] (validated, serializable), the workload presets, loadgen's limits and
//! [`RunConfig::validate`], which names the offending setting in its message.
//!
//! Invariants: a `RunConfig` that passed `validate` can be run: the key table fits its
//! limit, the key size holds every key, the distribution parameters are in range, there is
//! a stop condition, and rates, counts and timeouts are positive.

use std::time::Duration;

use serde::Serialize;

use crate::keys::min_key_size;
use crate::workload::Mix;

/// loadgen's own limits, each checked by [`RunConfig::validate`] with a clear message.
pub mod limits {
    /// Largest key count (the key table is built up front).
    pub const MAX_KEYS: u64 = 1_000_000_000;
    /// Largest key table (`keys * key_size`), in bytes.
    pub const MAX_KEY_TABLE_BYTES: u64 = 4 << 30;
    /// Largest key size in bytes.
    pub const MAX_KEY_SIZE: usize = 64 * 1024;
    /// Largest value size in bytes.
    pub const MAX_VALUE_SIZE: usize = 64 << 20;
    /// Most operations in flight (lanes).
    pub const MAX_CONCURRENCY: usize = 100_000;
    /// Most keys in one multi-get.
    pub const MAX_MULTI_GET_KEYS: usize = 10_000;
    /// Highest open-loop rate, operations per second.
    pub const MAX_RATE: f64 = 100_000_000.0;
    /// Most connections to a Redis target.
    pub const MAX_CONNECTIONS: usize = 1024;
}

/// Named workload presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// YCSB A: 50% reads, 50% updates.
    A,
    /// YCSB B: 95% reads, 5% updates.
    B,
    /// YCSB C: reads only.
    C,
    /// Durable puts only.
    Write,
}

impl Preset {
    /// The preset's mix.
    pub fn mix(self) -> Mix {
        let (read, write) = match self {
            Preset::A => (50.0, 50.0),
            Preset::B => (95.0, 5.0),
            Preset::C => (100.0, 0.0),
            Preset::Write => (0.0, 100.0),
        };
        Mix {
            read,
            write,
            delete: 0.0,
            ttl_write: 0.0,
            multi_get: 0.0,
        }
    }
}

/// How keys are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum KeyDist {
    /// Every key equally likely.
    Uniform,
    /// Zipfian over key indexes (hot keys are neighbours).
    Zipfian {
        /// Skew, in (0, 10].
        theta: f64,
    },
    /// Zipfian with the hot keys scattered over the key space (YCSB's default).
    ScrambledZipfian {
        /// Skew, in (0, 10].
        theta: f64,
    },
}

/// How requests are issued.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum LoadModel {
    /// Each of `concurrency` lanes issues its next request when the previous one answers.
    Closed,
    /// Requests are scheduled at `rate` per second; latency counts from the scheduled time.
    Open {
        /// Operations per second.
        rate: f64,
    },
}

/// The resolved configuration of one run.
#[derive(Debug, Clone, Serialize)]
pub struct RunConfig {
    /// Target name (`redis`, `etcd`, `null`, ...).
    pub target: String,
    /// Addresses dialled (defaults resolved; empty for targets without one).
    pub endpoints: Vec<String>,
    /// Connections to open, for targets that take the setting (redis).
    pub connections: usize,
    /// Free text describing the target's settings (e.g. "appendfsync always").
    pub label: Option<String>,
    /// Preset the mix came from, or `None` for explicit ratios.
    pub preset: Option<Preset>,
    /// Operation weights.
    pub mix: Mix,
    /// TTL of `put_ttl` operations, seconds.
    pub ttl_secs: u64,
    /// Keys per multi-get.
    pub multi_get_keys: usize,
    /// Size of the key space.
    pub keys: u64,
    /// Key distribution.
    pub key_dist: KeyDist,
    /// Bytes per key.
    pub key_size: usize,
    /// Bytes per value.
    pub value_size: usize,
    /// Write every key once before the run.
    pub preload: bool,
    /// Requests in flight while preloading.
    pub preload_concurrency: usize,
    /// Closed or open loop.
    pub load: LoadModel,
    /// Lanes: requests in flight (closed), most requests in flight (open).
    pub concurrency: usize,
    /// Warm-up, excluded from the results.
    #[serde(with = "duration_secs")]
    pub warmup: Duration,
    /// Measured duration (after warm-up), if the run stops on time.
    #[serde(with = "opt_duration_secs")]
    pub duration: Option<Duration>,
    /// Measured operations (after warm-up), if the run stops on a count.
    pub ops: Option<u64>,
    /// Tokio worker threads.
    pub threads: usize,
    /// Bound on connecting to the target.
    #[serde(with = "duration_secs")]
    pub connect_timeout: Duration,
    /// Bound on each operation (enforced by the target's client).
    #[serde(with = "duration_secs")]
    pub op_timeout: Duration,
    /// Seed of every random choice (workers derive theirs from it).
    pub seed: u64,
    /// No live progress lines.
    pub quiet: bool,
    /// Keep every second's histograms until the end (for `--hdr`); otherwise only the
    /// per-second summary is kept.
    #[serde(skip)]
    pub keep_window_histograms: bool,
}

mod duration_secs {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

mod opt_duration_secs {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }
}

fn check_theta(theta: f64) -> Result<(), String> {
    if theta > 0.0 && theta <= 10.0 {
        Ok(())
    } else {
        Err(format!("--theta must be in (0, 10], got {theta}"))
    }
}

impl RunConfig {
    /// Checks every setting; the message names the flag to fix.
    pub fn validate(&self) -> Result<(), String> {
        use limits::*;
        self.mix.validate()?;
        if self.keys == 0 || self.keys > MAX_KEYS {
            return Err(format!(
                "--keys must be in 1..={MAX_KEYS}, got {}",
                self.keys
            ));
        }
        let min = min_key_size(self.keys);
        if self.key_size < min || self.key_size > MAX_KEY_SIZE {
            return Err(format!(
                "--key-size must be in {min}..={MAX_KEY_SIZE} for {} keys, got {}",
                self.keys, self.key_size
            ));
        }
        let table = self.keys.saturating_mul(self.key_size as u64);
        if table > MAX_KEY_TABLE_BYTES {
            return Err(format!(
                "--keys x --key-size = {table} bytes exceeds the key table limit of \
                 {MAX_KEY_TABLE_BYTES} bytes"
            ));
        }
        if self.value_size > MAX_VALUE_SIZE {
            return Err(format!(
                "--value-size must be <= {MAX_VALUE_SIZE}, got {}",
                self.value_size
            ));
        }
        match self.key_dist {
            KeyDist::Uniform => {}
            KeyDist::Zipfian { theta } | KeyDist::ScrambledZipfian { theta } => check_theta(theta)?,
        }
        if self.concurrency == 0 || self.concurrency > MAX_CONCURRENCY {
            return Err(format!(
                "--concurrency must be in 1..={MAX_CONCURRENCY}, got {}",
                self.concurrency
            ));
        }
        if self.preload_concurrency == 0 || self.preload_concurrency > MAX_CONCURRENCY {
            return Err(format!(
                "--preload-concurrency must be in 1..={MAX_CONCURRENCY}, got {}",
                self.preload_concurrency
            ));
        }
        if self.mix.multi_get > 0.0
            && (self.multi_get_keys == 0 || self.multi_get_keys > MAX_MULTI_GET_KEYS)
        {
            return Err(format!(
                "--multi-get-keys must be in 1..={MAX_MULTI_GET_KEYS}, got {}",
                self.multi_get_keys
            ));
        }
        if self.mix.ttl_write > 0.0 && self.ttl_secs == 0 {
            return Err("--ttl must be at least 1 second".to_string());
        }
        if let LoadModel::Open { rate } = self.load {
            if !(rate.is_finite() && rate > 0.0 && rate <= MAX_RATE) {
                return Err(format!("--rate must be in (0, {MAX_RATE}], got {rate}"));
            }
        }
        match (self.duration, self.ops) {
            (None, None) => return Err("give --duration or --ops".to_string()),
            (Some(d), _) if d.is_zero() => return Err("--duration must be > 0".to_string()),
            (_, Some(0)) => return Err("--ops must be > 0".to_string()),
            _ => {}
        }
        if self.threads == 0 {
            return Err("--threads must be >= 1".to_string());
        }
        if self.connect_timeout.is_zero() || self.op_timeout.is_zero() {
            return Err("--connect-timeout and --op-timeout must be > 0".to_string());
        }
        Ok(())
    }
}
