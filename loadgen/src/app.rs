//! The binary's flow: connect the chosen target, run, print and write the outputs.
//!
//! Owns target selection (starting and stopping the embedded node for shoal-local), output
//! files and exit statuses: 0 success, 1 run or output failure, 2 bad flags (clap),
//! 3 target unreachable or not available in this build.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::cli::{Cli, TargetKind};
use crate::config::RunConfig;
use crate::driver::{self, RunOutcome};
use crate::report::Report;
use crate::targets::floor_channel::ChannelFloor;
use crate::targets::floor_fsync::FsyncFloor;
use crate::targets::floor_tcp::TcpFloor;
use crate::targets::null::NullTarget;
use crate::targets::redis::{RedisSettings, RedisTarget};
use crate::targets::shoal_local::{EmbeddedNode, LocalSettings, SpinSettings};
use crate::targets::shoal_remote::{self, RemoteSettings};
use crate::targets::{self, ConnectError, Target};
use crate::workload::OpKind;
use crate::{hdr_out, plot};

/// Exit status: the target could not be used.
pub const EXIT_TARGET: u8 = 3;
/// Exit status: the run or writing its outputs failed.
pub const EXIT_RUN: u8 = 1;

/// The shard count the floors and the embedded node use: `--shards`, or one per core.
fn shards(cli: &Cli) -> usize {
    if cli.shards == 0 {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    } else {
        cli.shards
    }
}

/// Connects the target the flags name and runs; the process's exit status.
pub async fn main(cli: &Cli, cfg: RunConfig) -> ExitCode {
    let result = match cli.target {
        TargetKind::Null => Ok(execute(cli, &cfg, Arc::new(NullTarget)).await),
        TargetKind::Redis => {
            let settings = RedisSettings {
                url: cfg.endpoints[0].clone(),
                connections: cfg.connections,
                connect_timeout: cfg.connect_timeout,
                op_timeout: cfg.op_timeout,
            };
            match RedisTarget::connect(&settings).await {
                Ok(t) => Ok(execute(cli, &cfg, Arc::new(t)).await),
                Err(e) => Err(e),
            }
        }
        TargetKind::Etcd => connect_etcd(cli, &cfg).await,
        TargetKind::ShoalRemote => {
            let settings = RemoteSettings {
                endpoints: cfg.endpoints.clone(),
                connections_per_shard: cfg.connections,
                connect_timeout: cfg.connect_timeout,
                request_timeout: cfg.op_timeout,
            };
            match shoal_remote::connect(&settings).await {
                Ok(t) => Ok(execute(cli, &cfg, Arc::new(t)).await),
                Err(e) => Err(e),
            }
        }
        TargetKind::ShoalLocal => run_local(cli, &cfg).await,
        TargetKind::FloorChannel => {
            match ChannelFloor::start(shards(cli), cfg.value_size, &spin_settings(cli)) {
                Ok(t) => Ok(execute(cli, &cfg, Arc::new(t)).await),
                Err(e) => Err(e),
            }
        }
        TargetKind::FloorTcp => {
            let spin = spin_settings(cli).spin_before_park_us;
            match TcpFloor::start(shards(cli), cfg.key_size, cfg.value_size, spin).await {
                Ok(t) => Ok(execute(cli, &cfg, Arc::new(t)).await),
                Err(e) => Err(e),
            }
        }
        TargetKind::FloorFsync => {
            match FsyncFloor::create(cli.data_dir.as_deref(), cli.keep_data) {
                Ok(t) => Ok(execute(cli, &cfg, Arc::new(t)).await),
                Err(e) => Err(e),
            }
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("loadgen: cannot use the target: {e}");
            ExitCode::from(EXIT_TARGET)
        }
    }
}

/// The spin settings of the in-process targets: the node's and the client's defaults
/// unless the flags say otherwise.
fn spin_settings(cli: &Cli) -> SpinSettings {
    let defaults = SpinSettings::default();
    SpinSettings {
        spin_before_park_us: cli
            .spin_before_park_us
            .unwrap_or(defaults.spin_before_park_us),
        reply_spin: cli
            .reply_spin_us
            .map_or(defaults.reply_spin, std::time::Duration::from_micros),
        first_core: cli.first_core.unwrap_or(defaults.first_core),
    }
}

/// Starts the embedded node, runs, then stops the node and removes its temporary data
/// (also when the run failed).
async fn run_local(cli: &Cli, cfg: &RunConfig) -> Result<ExitCode, ConnectError> {
    let settings = LocalSettings {
        data_dir: cli.data_dir.clone(),
        keep_data: cli.keep_data,
        shards: shards(cli),
        request_timeout: cfg.op_timeout,
        spin: spin_settings(cli),
        wal_sync_mode: cli.wal_sync_mode.unwrap_or_default(),
    };
    let (node, target) = EmbeddedNode::start(&settings).await?;
    let code = execute(cli, cfg, Arc::new(target)).await;
    match node.stop().await {
        Ok(()) => Ok(code),
        Err(e) => {
            eprintln!("loadgen: {e}");
            Ok(ExitCode::from(EXIT_RUN))
        }
    }
}

#[cfg(feature = "etcd")]
async fn connect_etcd(cli: &Cli, cfg: &RunConfig) -> Result<ExitCode, ConnectError> {
    use crate::targets::etcd::{EtcdSettings, EtcdTarget};
    let settings = EtcdSettings {
        endpoints: cfg.endpoints.clone(),
        connect_timeout: cfg.connect_timeout,
        op_timeout: cfg.op_timeout,
    };
    let t = EtcdTarget::connect(&settings).await?;
    Ok(execute(cli, cfg, Arc::new(t)).await)
}

#[cfg(not(feature = "etcd"))]
async fn connect_etcd(_cli: &Cli, _cfg: &RunConfig) -> Result<ExitCode, ConnectError> {
    Err(ConnectError::NotBuilt(
        "--target etcd: this loadgen was built without the `etcd` feature; rebuild with \
         `cargo build --release -p loadgen --features etcd` (needs `protoc`: \
         apt-get install protobuf-compiler)"
            .to_string(),
    ))
}

async fn execute<T: Target>(cli: &Cli, cfg: &RunConfig, target: Arc<T>) -> ExitCode {
    if let Err(e) = targets::preflight(&*target, cfg.connect_timeout).await {
        eprintln!("loadgen: cannot use the target: {e}");
        return ExitCode::from(EXIT_TARGET);
    }
    let interrupt = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&interrupt);
    let watcher = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!(
                "loadgen: interrupted: stopping, reporting what was measured (Ctrl-C again quits)"
            );
            flag.store(true, Ordering::Relaxed);
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    let result = driver::run_interruptible(cfg, target, interrupt).await;
    watcher.abort();
    let outcome = match result {
        Ok(o) => o,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(EXIT_RUN);
        }
    };
    let report = Report::new(cfg, &outcome);
    print!("{}", report.to_text());
    match write_outputs(cli, &report, &outcome) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::from(EXIT_RUN)
        }
    }
}

/// Writes the `--json`, `--hdr` and `--plot` files that were asked for.
pub fn write_outputs(cli: &Cli, report: &Report, outcome: &RunOutcome) -> Result<(), String> {
    let io_err = |p: &Path, e: std::io::Error| format!("writing {}: {e}", p.display());
    if let Some(p) = &cli.json {
        std::fs::write(p, report.to_json() + "\n").map_err(|e| io_err(p, e))?;
    }
    if let Some(p) = &cli.hdr {
        let mut f = std::io::BufWriter::new(std::fs::File::create(p).map_err(|e| io_err(p, e))?);
        let comment = format!(
            "loadgen {} target {} config {}",
            report.loadgen_version,
            report.target,
            serde_json::to_string(&report.config).unwrap_or_default()
        );
        hdr_out::write_interval_log(&mut f, &outcome.windows, outcome.measured_from, &comment)
            .map_err(|e| io_err(p, e))?;
        std::io::Write::flush(&mut f).map_err(|e| io_err(p, e))?;
    }
    if let Some(p) = &cli.plot {
        let series: Vec<(&str, &crate::recorder::Hist)> = OpKind::ALL
            .iter()
            .filter_map(|k| {
                outcome.totals.hists[k.index()]
                    .as_ref()
                    .map(|h| (k.name(), h))
            })
            .collect();
        let title = format!(
            "{} - {}",
            report.target,
            report
                .config
                .label
                .as_deref()
                .unwrap_or("latency by percentile")
        );
        plot::write_svg(p, &title, &series)?;
    }
    Ok(())
}
