//! `shoal-check history.jsonl`: checks a saved history and prints the verdict.
//!
//! Exit status: 0 linearizable, 1 not linearizable, 2 could not decide, 3 unreadable or
//! malformed history.

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use shoal_checker::{CheckOptions, History, Verdict, check, limits};

/// Checks that a Shoal history (JSON lines, one operation per line) is linearizable.
#[derive(Debug, Parser)]
#[command(name = "shoal-check", version)]
struct Args {
    /// The history file (JSON lines).
    history: PathBuf,
    /// Clock uncertainty around TTL expiry, in milliseconds (see the checker README).
    #[arg(long, default_value_t = limits::DEFAULT_CLOCK_UNCERTAINTY_NS as f64 / 1e6)]
    clock_uncertainty_ms: f64,
    /// Wall-clock budget of the whole check, in seconds (0: unlimited).
    #[arg(long, default_value_t = limits::DEFAULT_TIME_BUDGET_SECS)]
    time_budget_secs: u64,
    /// Search steps per key before the key is undecided.
    #[arg(long, default_value_t = limits::DEFAULT_MAX_STEPS_PER_KEY)]
    max_steps_per_key: u64,
    /// Memo bytes per key before the key is undecided.
    #[arg(long, default_value_t = limits::DEFAULT_MAX_MEMO_BYTES_PER_KEY)]
    max_memo_bytes_per_key: usize,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let read_started = Instant::now();
    let history = match File::open(&args.history)
        .map_err(shoal_checker::CheckerError::from)
        .and_then(|f| History::read_jsonl(BufReader::new(f)))
    {
        Ok(h) => h,
        Err(e) => {
            eprintln!("shoal-check: {}: {e}", args.history.display());
            return ExitCode::from(3);
        }
    };
    let read_time = read_started.elapsed();
    if !(args.clock_uncertainty_ms.is_finite() && args.clock_uncertainty_ms >= 0.0) {
        eprintln!("shoal-check: --clock-uncertainty-ms must be a non-negative number");
        return ExitCode::from(3);
    }
    let options = CheckOptions {
        clock_uncertainty_ns: (args.clock_uncertainty_ms * 1e6).round() as u64,
        time_budget: (args.time_budget_secs > 0)
            .then(|| Duration::from_secs(args.time_budget_secs)),
        max_steps_per_key: args.max_steps_per_key,
        max_memo_bytes_per_key: args.max_memo_bytes_per_key,
        threads: args.threads,
    };
    let report = match check(&history, &options) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("shoal-check: {}: {e}", args.history.display());
            return ExitCode::from(3);
        }
    };
    let s = &report.stats;
    print!("{}", report.verdict);
    println!(
        "{} ops ({} per-key ops over {} keys, largest key {} ops; dropped {} failed, {} \
         unknown reads; {} unknown writes, {} of them dropped as unread; {} puts bounded by \
         their reads); read in {:.3?}, checked in {:.3?} \
         ({} search steps, {} memo entries)",
        s.operations,
        s.key_ops,
        s.keys,
        s.max_key_ops,
        s.dropped_failed,
        s.dropped_unknown_reads,
        s.unknown_writes,
        s.dropped_unread_unknown_puts,
        s.bounded_puts,
        read_time,
        s.elapsed,
        s.steps,
        s.memo_entries
    );
    ExitCode::from(match report.verdict {
        Verdict::Linearizable => 0,
        Verdict::NotLinearizable { .. } => 1,
        Verdict::CouldNotDecide { .. } => 2,
    })
}
