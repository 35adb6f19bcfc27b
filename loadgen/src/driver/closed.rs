//! Closed loop: `concurrency` lanes, each sending its next request when the previous one
//! answers. Latency is the request's own service time.
//!
//! Invariants: a lane stops issuing at the end of the measured duration, or once it has
//! issued its share of `--ops` measured operations (shares differ by at most one, so the
//! total is exact); operations started during warm-up are never counted. Failed operations
//! count toward `--ops`.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

use super::{Ctx, execute, group_recorder, lane_rng, plan_groups, record};
use crate::config::RunConfig;
use crate::recorder::{Recorder, Totals, Window};
use crate::targets::Target;

/// The measured-operation budget of lane `lane` out of `lanes`.
pub fn lane_budget(ops: u64, lanes: u64, lane: u64) -> u64 {
    ops / lanes + u64::from(lane < ops % lanes)
}

async fn lane<T: Target>(
    ctx: &Ctx<T>,
    rec: &Mutex<Recorder>,
    lane: u64,
    budget: Option<u64>,
    end: Option<Instant>,
) {
    let mut rng = lane_rng(ctx.seed, lane);
    let mut scratch: Vec<Bytes> = Vec::with_capacity(ctx.multi_get_keys);
    let mut measured_done = 0u64;
    loop {
        let start = Instant::now();
        if end.is_some_and(|e| start >= e) || ctx.interrupt.load(Ordering::Relaxed) {
            break;
        }
        let measured = start >= ctx.measure_start;
        if measured && budget.is_some_and(|b| measured_done >= b) {
            break;
        }
        let kind = ctx.mix.pick(&mut rng);
        let result = execute(ctx, kind, &mut rng, &mut scratch).await;
        let done = Instant::now();
        measured_done += u64::from(measured);
        record(rec, kind, &result, done - start, done, measured);
        // A target that answers without ever waiting (the null target, an in-process
        // store) would otherwise keep this task on its thread forever.
        tokio::task::consume_budget().await;
    }
}

/// Runs the closed loop; one result per group task.
pub async fn run<T: Target>(
    cfg: &RunConfig,
    ctx: &Arc<Ctx<T>>,
    max_groups: usize,
    tx: &UnboundedSender<Window>,
) -> Vec<Result<Totals, tokio::task::JoinError>> {
    let lanes = cfg.concurrency as u64;
    let end = cfg.duration.map(|d| ctx.measure_start + d);
    let handles: Vec<JoinHandle<Totals>> = plan_groups(cfg.concurrency, max_groups)
        .into_iter()
        .map(|ids| {
            let ctx = Arc::clone(ctx);
            let rec = group_recorder(&ctx, false, tx);
            let ops = cfg.ops;
            tokio::spawn(async move {
                let rec = Mutex::new(rec);
                let lanes = ids.map(|id| {
                    let budget = ops.map(|n| lane_budget(n, lanes, id));
                    lane(&ctx, &rec, id, budget, end)
                });
                futures::future::join_all(lanes).await;
                rec.into_inner().unwrap_or_else(|e| e.into_inner()).finish()
            })
        })
        .collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await);
    }
    out
}
