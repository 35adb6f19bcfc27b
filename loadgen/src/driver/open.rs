//! Open loop: requests scheduled at a fixed rate, latency counted from the scheduled time
//! (coordinated omission corrected).
//!
//! A pacer thread releases one permit per scheduled request as its time comes (ticket `k`
//! is due at `start + k / rate`); `concurrency` lanes take permits and send. When every
//! lane is busy, permits pile up and the requests they stand for are sent late: their
//! latency still counts from the scheduled time, so the queueing delay a slow target causes
//! is in the figures, not hidden by a waiting load generator.
//!
//! Invariants:
//! - A request is measured iff its scheduled time is at or after the end of warm-up.
//! - With `--ops N`, exactly N measured requests are scheduled (all are sent).
//! - With `--duration`, requests scheduled before the end are sent if a lane frees up
//!   before the end or within a 1 s grace after it (their latency still counts from their
//!   scheduled time); those never sent are reported as `unsent`, never silently dropped.
//! - The pacer sleeps on the OS clock with minimal timer slack, not on tokio's millisecond
//!   timer; the send lag histogram shows how late requests left.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Semaphore;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

use super::{Ctx, execute, group_recorder, lane_rng, plan_groups, record};
use crate::config::RunConfig;
use crate::recorder::{Recorder, Totals, Window};
use crate::targets::Target;

/// The schedule: when each ticket is due, and how many there are.
#[derive(Debug)]
pub struct Schedule {
    start: Instant,
    rate: f64,
    /// Tickets in total (`--ops`), or `None` to stop at `end`.
    total: Option<u64>,
    /// No ticket is due at or after this instant (`--duration`).
    end: Option<Instant>,
}

impl Schedule {
    /// A schedule of `rate` tickets per second from `start`.
    pub fn new(start: Instant, rate: f64, total: Option<u64>, end: Option<Instant>) -> Self {
        assert!(rate > 0.0 && rate.is_finite());
        assert!(total.is_some() || end.is_some(), "a schedule must end");
        Self {
            start,
            rate,
            total,
            end,
        }
    }

    /// When ticket `k` is due.
    #[inline]
    pub fn due(&self, k: u64) -> Instant {
        self.start + Duration::from_secs_f64(k as f64 / self.rate)
    }

    /// Number of tickets due strictly before `t`.
    pub fn due_before(&self, t: Instant) -> u64 {
        let elapsed = t.saturating_duration_since(self.start).as_secs_f64();
        let mut n = (elapsed * self.rate).ceil() as u64;
        // Float rounding: make `due(n-1) < t <= due(n)` hold exactly.
        while n > 0 && self.due(n - 1) >= t {
            n -= 1;
        }
        while self.due(n) < t {
            n += 1;
        }
        n
    }

    /// Tickets the schedule ever releases, as of `now`: due by now, capped by the limits.
    fn released_by(&self, now: Instant) -> u64 {
        let mut n = self.due_before(now + Duration::from_nanos(1));
        if let Some(total) = self.total {
            n = n.min(total);
        }
        if let Some(end) = self.end {
            n = n.min(self.due_before(end));
        }
        n
    }

    /// Total tickets, if bounded by a count or an end.
    fn final_count(&self) -> u64 {
        match (self.total, self.end) {
            (Some(t), Some(e)) => t.min(self.due_before(e)),
            (Some(t), None) => t,
            (None, Some(e)) => self.due_before(e),
            (None, None) => unreachable!("checked in new"),
        }
    }
}

/// State shared by the pacer and the lanes.
#[derive(Debug)]
struct Pacer {
    schedule: Schedule,
    permits: Semaphore,
    taken: AtomicU64,
    released: AtomicU64,
    /// Set by the run when its lanes are done (or failed).
    stop: AtomicBool,
    /// Set by the user (Ctrl-C).
    interrupt: Arc<AtomicBool>,
}

impl Pacer {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.interrupt.load(Ordering::Relaxed)
    }
}

/// How long a timed run waits, after its end, for lanes to send requests already due.
const END_GRACE: Duration = Duration::from_secs(1);

/// Longest single sleep of the pacer, so it notices a stop promptly.
const MAX_SLEEP: Duration = Duration::from_millis(50);

/// Releases permits on schedule until the last ticket, then lets the lanes go. Runs on its
/// own OS thread so its sleeps are as precise as the kernel's, not tokio's 1 ms wheel.
fn pace(p: &Pacer, lanes: usize) {
    // The default 50 us timer slack would make every wake-up late by up to that much,
    // and that lateness would be counted as the target's latency. Best effort: on failure
    // the send lag histogram shows the cost.
    let _ = nix::sys::prctl::set_timerslack(1);
    let last = p.schedule.final_count();
    let mut released = 0u64;
    while released < last && !p.stopped() {
        let now = Instant::now();
        let due = p.schedule.released_by(now);
        if due > released {
            p.permits.add_permits((due - released) as usize);
            released = due;
            p.released.store(released, Ordering::Release);
        }
        if released >= last {
            break;
        }
        let next = p.schedule.due(released);
        let now = Instant::now();
        if next > now {
            std::thread::sleep((next - now).min(MAX_SLEEP));
        }
    }
    let count_bound = p.schedule.total.is_some_and(|t| t == last);
    if count_bound && !p.stopped() {
        // Counted run: every scheduled request is sent; lanes find no ticket left and stop.
        p.permits.add_permits(lanes);
    } else {
        // Timed run: at the end, wait no longer for busy lanes to pick up the backlog.
        if let Some(end) = p.schedule.end {
            loop {
                let now = Instant::now();
                if end <= now || p.stopped() {
                    break;
                }
                std::thread::sleep((end - now).min(MAX_SLEEP));
            }
            // Requests due just before the end are still being picked up by lanes (a
            // wake-up is tens of microseconds): give the backlog a bounded grace to drain,
            // so `unsent` means "the target fell behind", not "the run ended".
            let grace_end = Instant::now() + END_GRACE;
            while p.taken.load(Ordering::Relaxed) < released
                && Instant::now() < grace_end
                && !p.stopped()
            {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        p.permits.close();
    }
}

async fn lane<T: Target>(ctx: &Ctx<T>, rec: &Mutex<Recorder>, p: &Pacer, lane: u64, last: u64) {
    let mut rng = lane_rng(ctx.seed, lane);
    let mut scratch: Vec<Bytes> = Vec::with_capacity(ctx.multi_get_keys);
    loop {
        match p.permits.acquire().await {
            Ok(permit) => permit.forget(),
            Err(_) => break,
        }
        let k = p.taken.fetch_add(1, Ordering::Relaxed);
        if k >= last {
            break;
        }
        let intended = p.schedule.due(k);
        let sent = Instant::now();
        let measured = intended >= ctx.measure_start;
        let kind = ctx.mix.pick(&mut rng);
        let result = execute(ctx, kind, &mut rng, &mut scratch).await;
        let done = Instant::now();
        record(
            rec,
            kind,
            &result,
            done.saturating_duration_since(intended),
            done,
            measured,
        );
        if measured {
            let lag = sent.saturating_duration_since(intended).as_nanos() as u64;
            super::lock(rec).record_send_lag(lag);
        }
        // See closed.rs: never hog the thread when the target answers at once.
        tokio::task::consume_budget().await;
    }
}

/// Runs the open loop; one result per group task, and the count of unsent requests.
pub async fn run<T: Target>(
    cfg: &RunConfig,
    ctx: &Arc<Ctx<T>>,
    rate: f64,
    run_start: Instant,
    max_groups: usize,
    tx: &UnboundedSender<Window>,
) -> (Vec<Result<Totals, tokio::task::JoinError>>, u64) {
    let end = cfg.duration.map(|d| ctx.measure_start + d);
    let warm = Schedule::new(run_start, rate, None, Some(ctx.measure_start));
    // With --ops, the warm-up tickets come first, then exactly `ops` measured ones.
    let total = cfg.ops.map(|n| warm.final_count() + n);
    let pacer = Arc::new(Pacer {
        schedule: Schedule::new(run_start, rate, total, end),
        permits: Semaphore::new(0),
        taken: AtomicU64::new(0),
        released: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        interrupt: Arc::clone(&ctx.interrupt),
    });
    let last = pacer.schedule.final_count();
    let pacer_thread = {
        let p = Arc::clone(&pacer);
        let lanes = cfg.concurrency;
        std::thread::Builder::new()
            .name("loadgen-pacer".into())
            .spawn(move || pace(&p, lanes))
            .expect("spawning the pacer thread")
    };
    let handles: Vec<JoinHandle<Totals>> = plan_groups(cfg.concurrency, max_groups)
        .into_iter()
        .map(|ids| {
            let ctx = Arc::clone(ctx);
            let p = Arc::clone(&pacer);
            let rec = group_recorder(&ctx, true, tx);
            tokio::spawn(async move {
                let rec = Mutex::new(rec);
                let lanes = ids.map(|id| lane(&ctx, &rec, &p, id, last));
                futures::future::join_all(lanes).await;
                rec.into_inner().unwrap_or_else(|e| e.into_inner()).finish()
            })
        })
        .collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        let r = h.await;
        if r.is_err() {
            // A lane panicked: stop scheduling so the pacer thread ends.
            pacer.stop.store(true, Ordering::Relaxed);
            pacer.permits.close();
        }
        out.push(r);
    }
    pacer.stop.store(true, Ordering::Relaxed);
    // The pacer only sleeps until its next ticket or the end, both normally already past.
    let _ = tokio::task::spawn_blocking(move || pacer_thread.join()).await;
    let released = pacer.released.load(Ordering::Acquire);
    let taken = pacer.taken.load(Ordering::Relaxed).min(released);
    (out, released - taken)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_are_due_at_start_plus_k_over_rate() {
        let start = Instant::now();
        let s = Schedule::new(start, 1000.0, None, Some(start + Duration::from_secs(1)));
        assert_eq!(s.due(0), start);
        assert_eq!(s.due(1000), start + Duration::from_secs(1));
        assert_eq!(s.due_before(start), 0);
        assert_eq!(s.due_before(start + Duration::from_nanos(1)), 1);
        assert_eq!(s.due_before(start + Duration::from_millis(1)), 1);
        assert_eq!(s.due_before(start + Duration::from_micros(1001)), 2);
        // Tickets 0..1000 are due before the end: exactly `rate x duration`.
        assert_eq!(s.final_count(), 1000);
        let counted = Schedule::new(start, 3.0, Some(5), None);
        assert_eq!(counted.final_count(), 5);
        assert_eq!(counted.released_by(start + Duration::from_secs(100)), 5);
        assert_eq!(counted.released_by(start + Duration::from_millis(400)), 2);
    }
}
