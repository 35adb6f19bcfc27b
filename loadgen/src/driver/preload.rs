//! Preloading: writes every key of the key space once, before the run, so reads find
//! values.
//!
//! Invariants: at most `concurrency` puts in flight; keys are claimed from one shared
//! counter so each key is written exactly once; the first failure stops the preload and
//! is returned with the key that failed (a benchmark on a half-loaded key space would
//! mislead); progress is printed once a second unless quiet.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::Ctx;
use crate::targets::{ErrorKind, OpError, Target};

/// How the preload went.
#[derive(Debug, Clone, Serialize)]
pub struct PreloadStats {
    /// Keys written.
    pub keys: u64,
    /// Wall time, seconds.
    pub secs: f64,
}

/// A failed preload.
#[derive(Debug, thiserror::Error)]
#[error("preload failed at key #{key} after {written} keys: {error}")]
pub struct PreloadError {
    /// Index of the key whose put failed.
    pub key: u64,
    /// Keys written before the failure was noticed.
    pub written: u64,
    /// The target's error.
    pub error: OpError,
}

/// Writes keys `0..n` with at most `concurrency` in flight.
pub async fn preload<T: Target>(
    ctx: &Ctx<T>,
    concurrency: usize,
    quiet: bool,
) -> Result<PreloadStats, PreloadError> {
    let n = ctx.keys.len();
    let next = Arc::new(AtomicU64::new(0));
    let written = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let progress = (!quiet).then(|| {
        let written = Arc::clone(&written);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            let mut last = 0;
            loop {
                tick.tick().await;
                let w = written.load(Ordering::Relaxed);
                eprintln!(
                    "preload: {w}/{n} keys ({:.0}%), {} keys/s",
                    w as f64 * 100.0 / n as f64,
                    w - last
                );
                last = w;
            }
        })
    });
    let lane = |_: usize| {
        let (next, written, failed) = (&next, &written, &failed);
        async move {
            while !failed.load(Ordering::Relaxed) {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                if ctx.interrupt.load(Ordering::Relaxed) {
                    failed.store(true, Ordering::Relaxed);
                    return Err((i, OpError::new(ErrorKind::Other, "interrupted")));
                }
                if let Err(error) = ctx.target.put(ctx.keys.key(i), &ctx.value).await {
                    failed.store(true, Ordering::Relaxed);
                    return Err((i, error));
                }
                written.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        }
    };
    let lanes = concurrency
        .min(usize::try_from(n).unwrap_or(usize::MAX))
        .max(1);
    let results = futures::future::join_all((0..lanes).map(lane)).await;
    if let Some(p) = progress {
        p.abort();
    }
    let keys = written.load(Ordering::Relaxed);
    if let Some(Err((key, error))) = results.into_iter().find(|r| r.is_err()) {
        return Err(PreloadError {
            key,
            written: keys,
            error,
        });
    }
    assert_eq!(keys, n, "every key written once");
    let secs = start.elapsed().as_secs_f64();
    if !quiet {
        eprintln!(
            "preload: {n} keys in {secs:.1} s ({:.0} keys/s)",
            n as f64 / secs.max(1e-9)
        );
    }
    Ok(PreloadStats { keys, secs })
}
