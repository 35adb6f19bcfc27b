//! The engine: runs a validated [`RunConfig`] against a [`Target`].
//!
//! Owns the run's shared context ([`Ctx`]), one operation's execution ([`execute`]), how
//! lanes are grouped into tasks, and [`run`], which preloads, starts the progress collector,
//! drives the load model (`closed` or `open`) and gathers the results.
//!
//! Invariants:
//! - `concurrency` lanes each have at most one request in flight; lanes are spread over at
//!   most `4 x threads` group tasks, each with one [`Recorder`] (so memory for histograms
//!   does not grow with the concurrency, and the recorder lock is never contended).
//! - The hot path allocates nothing of loadgen's own: keys are slices of the key table,
//!   the value is one shared buffer, the multi-get key list is a per-lane reused vector.
//! - Every random choice comes from per-lane generators seeded from `seed`.

pub mod closed;
pub mod open;
pub mod preload;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

use crate::config::{KeyDist, LoadModel, RunConfig};
use crate::keys::{KeyChooser, KeyTable, Scatter, Zipfian};
use crate::progress::{self, WindowAgg};
use crate::recorder::{Recorder, Totals, Window};
use crate::targets::{OpError, Target};
use crate::workload::{KINDS, OpKind, OpMix};

pub use preload::{PreloadError, PreloadStats};

/// Everything the lanes share, read-only.
#[derive(Debug)]
pub struct Ctx<T> {
    /// The system under test.
    pub target: Arc<T>,
    /// Every key.
    pub keys: KeyTable,
    /// The value every write sends.
    pub value: Bytes,
    /// Key distribution.
    pub chooser: KeyChooser,
    /// Operation mix.
    pub mix: OpMix,
    /// Which kinds the mix can draw.
    pub enabled: [bool; KINDS],
    /// TTL of `put_ttl`, seconds.
    pub ttl_secs: u64,
    /// Keys per multi-get.
    pub multi_get_keys: usize,
    /// End of warm-up.
    pub measure_start: Instant,
    /// Base seed.
    pub seed: u64,
    /// Set to stop the run early (Ctrl-C): lanes stop issuing, results so far are kept.
    pub interrupt: Arc<AtomicBool>,
}

/// What a successful operation returned, for the miss counters.
#[derive(Debug, Clone, Copy)]
pub enum Done {
    /// A write or delete.
    Plain,
    /// A get: found or not.
    Get(bool),
    /// A multi-get: keys asked, keys found.
    Multi(usize, usize),
}

/// The generator of lane `lane`: distinct, reproducible streams per lane.
pub fn lane_rng(seed: u64, lane: u64) -> SmallRng {
    SmallRng::seed_from_u64(seed ^ lane.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// Performs one operation of `kind` on a key drawn from the distribution.
#[inline]
pub async fn execute<T: Target>(
    ctx: &Ctx<T>,
    kind: OpKind,
    rng: &mut SmallRng,
    scratch: &mut Vec<Bytes>,
) -> Result<Done, OpError> {
    match kind {
        OpKind::Get => {
            let k = ctx.chooser.next(rng);
            ctx.target.get(ctx.keys.key(k)).await.map(Done::Get)
        }
        OpKind::Put => {
            let k = ctx.chooser.next(rng);
            ctx.target.put(ctx.keys.key(k), &ctx.value).await?;
            Ok(Done::Plain)
        }
        OpKind::PutTtl => {
            let k = ctx.chooser.next(rng);
            let target = &ctx.target;
            target
                .put_with_ttl(ctx.keys.key(k), &ctx.value, ctx.ttl_secs)
                .await?;
            Ok(Done::Plain)
        }
        OpKind::Delete => {
            let k = ctx.chooser.next(rng);
            ctx.target.delete(ctx.keys.key(k)).await?;
            Ok(Done::Plain)
        }
        OpKind::GetMulti => {
            scratch.clear();
            for _ in 0..ctx.multi_get_keys {
                scratch.push(ctx.keys.key_bytes(ctx.chooser.next(rng)));
            }
            let found = ctx.target.get_multi(scratch).await?;
            Ok(Done::Multi(scratch.len(), found))
        }
    }
}

/// Records one finished operation.
#[inline]
pub fn record(
    rec: &Mutex<Recorder>,
    kind: OpKind,
    result: &Result<Done, OpError>,
    latency: Duration,
    done: Instant,
    measured: bool,
) {
    let mut r = lock(rec);
    match result {
        Ok(d) => {
            r.record_ok(kind, latency.as_nanos() as u64, done, measured);
            if measured {
                match *d {
                    Done::Get(false) => r.note_get_miss(),
                    Done::Multi(asked, found) => r.note_multi(asked, found),
                    Done::Get(true) | Done::Plain => {}
                }
            }
        }
        Err(e) => r.record_err(kind, e, done, measured),
    }
}

/// Locks a group's recorder. Lanes never panic while holding it, but a poisoned lock would
/// still hold consistent counters, so poisoning is ignored.
#[inline]
pub fn lock(rec: &Mutex<Recorder>) -> MutexGuard<'_, Recorder> {
    rec.lock().unwrap_or_else(|e| e.into_inner())
}

/// Splits `lanes` lanes into at most `max_groups` groups: the lane ids of each group.
pub fn plan_groups(lanes: usize, max_groups: usize) -> Vec<std::ops::Range<u64>> {
    let groups = lanes.min(max_groups).max(1);
    let (base, extra) = (lanes / groups, lanes % groups);
    let mut out = Vec::with_capacity(groups);
    let mut start = 0u64;
    for g in 0..groups {
        let n = (base + usize::from(g < extra)) as u64;
        out.push(start..start + n);
        start += n;
    }
    debug_assert_eq!(start as usize, lanes);
    out
}

/// A fresh recorder for a group.
pub fn group_recorder<T>(ctx: &Ctx<T>, open: bool, tx: &UnboundedSender<Window>) -> Recorder {
    Recorder::new(ctx.enabled, ctx.measure_start, open, tx.clone())
}

/// What a run produced.
#[derive(Debug)]
pub struct RunOutcome {
    /// Merged results of the measured phase.
    pub totals: Totals,
    /// Per-second windows (warm-up ones have negative indexes).
    pub windows: Vec<WindowAgg>,
    /// From the end of warm-up to the end of the measured phase (see `run_interruptible`).
    pub measured: Duration,
    /// Open loop: requests scheduled before the end but never sent (the target fell behind).
    pub unsent: u64,
    /// Preload figures, if the run preloaded.
    pub preload: Option<PreloadStats>,
    /// The target's own description.
    pub target: String,
    /// Wall-clock time of the end of warm-up.
    pub measured_from: SystemTime,
    /// The run was stopped early by an interrupt.
    pub interrupted: bool,
}

/// Errors that end a run early.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Preloading failed.
    #[error(transparent)]
    Preload(#[from] PreloadError),
    /// A lane task panicked (a bug in a target or in loadgen).
    #[error("a load task failed: {0}")]
    Task(String),
}

/// Builds the shared context for `cfg`.
pub fn build_ctx<T: Target>(
    cfg: &RunConfig,
    target: Arc<T>,
    measure_start: Instant,
    interrupt: Arc<AtomicBool>,
) -> Ctx<T> {
    let chooser = match cfg.key_dist {
        KeyDist::Uniform => KeyChooser::Uniform { n: cfg.keys },
        KeyDist::Zipfian { theta } => KeyChooser::Zipfian(Zipfian::new(cfg.keys, theta)),
        KeyDist::ScrambledZipfian { theta } => KeyChooser::Scrambled(
            Zipfian::new(cfg.keys, theta),
            Scatter::new(cfg.keys, cfg.seed),
        ),
    };
    let mut value = vec![0u8; cfg.value_size];
    // Incompressible, reproducible content: a server that compresses gains nothing.
    lane_rng(cfg.seed, u64::MAX).fill_bytes(&mut value);
    let weights = cfg.mix.weights();
    Ctx {
        target,
        keys: KeyTable::new(cfg.keys, cfg.key_size),
        value: Bytes::from(value),
        chooser,
        mix: OpMix::new(&cfg.mix),
        enabled: std::array::from_fn(|i| weights[i] > 0.0),
        ttl_secs: cfg.ttl_secs,
        multi_get_keys: cfg.multi_get_keys,
        measure_start,
        seed: cfg.seed,
        interrupt,
    }
}

/// Runs `cfg` against `target`. `cfg` must have passed [`RunConfig::validate`].
pub async fn run<T: Target>(cfg: &RunConfig, target: Arc<T>) -> Result<RunOutcome, RunError> {
    run_interruptible(cfg, target, Arc::new(AtomicBool::new(false))).await
}

/// [`run`], stopping early (and reporting what was measured) once `interrupt` is set.
pub async fn run_interruptible<T: Target>(
    cfg: &RunConfig,
    target: Arc<T>,
    interrupt: Arc<AtomicBool>,
) -> Result<RunOutcome, RunError> {
    assert!(
        cfg.validate().is_ok(),
        "the caller validates the configuration"
    );
    let description = target.describe();
    let mut ctx = build_ctx(cfg, target, Instant::now(), interrupt);
    let preload = if cfg.preload {
        Some(preload::preload(&ctx, cfg.preload_concurrency, cfg.quiet).await?)
    } else {
        None
    };
    let run_start = Instant::now();
    let measured_from = SystemTime::now() + cfg.warmup;
    ctx.measure_start = run_start + cfg.warmup;
    let ctx = Arc::new(ctx);
    let (tx, rx) = unbounded_channel();
    let collector = tokio::spawn(progress::collect(
        rx,
        ctx.measure_start,
        cfg.quiet,
        cfg.keep_window_histograms,
    ));
    let max_groups = cfg.threads.saturating_mul(4);
    let (results, unsent) = match cfg.load {
        LoadModel::Closed => (closed::run(cfg, &ctx, max_groups, &tx).await, 0),
        LoadModel::Open { rate } => open::run(cfg, &ctx, rate, run_start, max_groups, &tx).await,
    };
    let finished = Instant::now();
    drop(tx);
    let windows = collector.await.map_err(|e| RunError::Task(e.to_string()))?;
    let mut totals = Totals::new(&ctx.enabled, matches!(cfg.load, LoadModel::Open { .. }));
    for r in results {
        totals.merge(r.map_err(|e| RunError::Task(e.to_string()))?);
    }
    // Measured time: to the end of the duration (even if the last answer came a little
    // before it), or to the last answer if later (slow tail) or if the run stopped earlier
    // (--ops reached, interrupt).
    let stopped = cfg
        .duration
        .map_or(finished, |d| finished.min(ctx.measure_start + d));
    let measured = totals
        .last_done
        .map_or(stopped, |t| t.max(stopped))
        .saturating_duration_since(ctx.measure_start);
    Ok(RunOutcome {
        totals,
        windows,
        measured,
        unsent,
        preload,
        target: description,
        measured_from,
        interrupted: ctx.interrupt.load(Ordering::Relaxed),
    })
}
