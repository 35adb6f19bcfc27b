//! The shard's TTL ticker: reclaims expired keys from the state's timer wheel, a bounded
//! slice of work at a time, so reclaiming a million keys never stalls the shard.
//!
//! Invariants:
//! - Reclaiming changes nothing a client can observe (an expired key is already invisible
//!   from its expiry on); it only returns memory. So it runs locally on every replica, off
//!   the Raft log.
//! - One `tick` does at most `DEFAULT_TICK_WORK` units; when work is left the ticker yields
//!   to the executor and continues, otherwise it sleeps until the wheel's next deadline,
//!   at most `MAX_IDLE`, so a key inserted with an earlier expiry meanwhile is reclaimed at
//!   most that late.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use super::clock::now_ms;
use crate::raft::runtime::GlommioRuntime;
use crate::raft::sm_runtime::SmRuntime;
use crate::raft::state_machine::SharedState;
use crate::state::DEFAULT_TICK_WORK;

/// Expired keys reclaimed by every shard of this process since start (a statistic).
pub static EXPIRED_KEYS: AtomicU64 = AtomicU64::new(0);

/// Longest sleep between two ticks.
pub const MAX_IDLE: Duration = Duration::from_millis(50);

/// Ticks `state` until `stop` turns true (or its sender is dropped), on the shard's
/// glommio executor and wall clock.
pub async fn run_ttl_ticker(state: SharedState, stop: watch::Receiver<bool>) {
    run_ttl_ticker_on::<GlommioRuntime>(state, stop, now_ms).await;
}

/// Ticks `state` until `stop` turns true (or its sender is dropped), reading the wall
/// clock (milliseconds since the UNIX epoch) with `clock` and sleeping on `R`.
pub async fn run_ttl_ticker_on<R: SmRuntime>(
    state: SharedState,
    mut stop: watch::Receiver<bool>,
    clock: impl Fn() -> u64,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        let now = clock();
        let report = state.borrow_mut().tick(now, DEFAULT_TICK_WORK);
        if report.reclaimed > 0 {
            EXPIRED_KEYS.fetch_add(report.reclaimed as u64, Ordering::Relaxed);
        }
        let pause = if report.complete {
            match state.borrow().next_tick_at() {
                Some(at) => Duration::from_millis(at.saturating_sub(now)).min(MAX_IDLE),
                None => MAX_IDLE,
            }
        } else {
            Duration::ZERO
        };
        if pause.is_zero() {
            // Work left: let requests run, then continue at once.
            R::yield_now().await;
            continue;
        }
        let changed = stop.changed();
        let slept = R::sleep(pause);
        futures::pin_mut!(changed, slept);
        futures::future::select(changed, slept).await;
    }
}
