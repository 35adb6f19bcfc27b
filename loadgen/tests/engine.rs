//! End-to-end runs of the engine against in-test targets: closed loop, open loop
//! (coordinated-omission correction), warm-up, stop conditions, error counting.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Counts, FlakyTarget, MemTarget, SlowTarget, test_config};
use loadgen::config::{LoadModel, Preset};
use loadgen::driver;
use loadgen::report::Report;
use loadgen::targets::ErrorKind;
use loadgen::workload::Mix;

fn kind<'a>(r: &'a Report, name: &str) -> &'a loadgen::report::KindReport {
    r.kinds.iter().find(|k| k.kind == name).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_preloaded_ycsb_a_against_an_in_memory_store() {
    let mut cfg = test_config();
    cfg.preload = true;
    cfg.ops = Some(5000);
    cfg.validate().unwrap();
    let target = Arc::new(MemTarget::default());
    let outcome = driver::run(&cfg, Arc::clone(&target)).await.unwrap();
    let r = Report::new(&cfg, &outcome);

    assert_eq!(r.all().ok, 5000);
    assert_eq!(r.all().errors, 0);
    assert_eq!(r.get_misses, 0, "every key was preloaded");
    assert_eq!(target.len(), 1000);
    let (gets, puts) = (kind(&r, "get").ok, kind(&r, "put").ok);
    assert_eq!(gets + puts, 5000);
    assert_eq!(Counts::get(&target.counts.get), gets);
    assert_eq!(
        Counts::get(&target.counts.put),
        1000 + puts,
        "preload + measured puts"
    );
    // 50/50 within 6 sd (sd of the get share over 5000 draws ~ 0.007).
    assert!((gets as f64 / 5000.0 - 0.5).abs() < 0.045, "gets {gets}");
    let l = kind(&r, "get").latency.clone().unwrap();
    assert!(l.min_ns <= l.p50_ns && l.p50_ns <= l.p99_ns && l.p99_ns <= l.max_ns);
    assert!(r.measured_secs > 0.0);
    assert!(r.preload.as_ref().unwrap().keys == 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_kind_is_executed_and_counted() {
    let mut cfg = test_config();
    cfg.preset = None;
    cfg.mix = Mix {
        read: 4.0,
        write: 2.0,
        delete: 2.0,
        ttl_write: 1.0,
        multi_get: 1.0,
    };
    cfg.key_dist = loadgen::config::KeyDist::Uniform;
    cfg.ops = Some(4000);
    let target = Arc::new(MemTarget::default());
    let outcome = driver::run(&cfg, Arc::clone(&target)).await.unwrap();
    let r = Report::new(&cfg, &outcome);
    let c = &target.counts;
    assert_eq!(kind(&r, "get").ok, Counts::get(&c.get));
    assert_eq!(kind(&r, "put").ok, Counts::get(&c.put));
    assert_eq!(kind(&r, "delete").ok, Counts::get(&c.delete));
    assert_eq!(kind(&r, "put_ttl").ok, Counts::get(&c.put_ttl));
    assert_eq!(kind(&r, "get_multi").ok, Counts::get(&c.get_multi));
    assert_eq!(r.all().ok, 4000);
    for k in ["get", "put", "delete", "put_ttl", "get_multi"] {
        assert!(kind(&r, k).ok > 100, "{k} too rare");
    }
    // Without preload, the first reads miss: the miss counter sees it.
    assert!(r.get_misses > 0);
    let m = r.multi_get_keys.unwrap();
    let (asked, found) = (m.asked, m.found);
    assert_eq!(asked, 10 * kind(&r, "get_multi").ok);
    assert!(found < asked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timed_run_excludes_warmup_and_windows_add_up_to_totals() {
    let mut cfg = test_config();
    cfg.ops = None;
    cfg.warmup = Duration::from_millis(300);
    cfg.duration = Some(Duration::from_millis(1500));
    let target = Arc::new(MemTarget::default());
    let outcome = driver::run(&cfg, Arc::clone(&target)).await.unwrap();
    let r = Report::new(&cfg, &outcome);
    let executed = Counts::get(&target.counts.get) + Counts::get(&target.counts.put);
    assert!(r.all().ok > 0);
    assert!(
        executed > r.all().ok,
        "warm-up operations ran ({executed}) but are not in the totals ({})",
        r.all().ok
    );
    assert!(
        outcome.windows.iter().any(|w| w.idx < 0),
        "warm-up windows exist"
    );
    let windowed: u64 = r.per_second.iter().map(|s| s.ok).sum();
    assert_eq!(
        windowed,
        r.all().ok,
        "per-second series covers exactly the measured ops"
    );
    assert!(r.per_second.len() >= 2);
    assert!(r.measured_secs >= 1.5, "stopped early: {}", r.measured_secs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_operations_are_counted_by_class_and_count_toward_ops() {
    let mut cfg = test_config();
    cfg.ops = Some(2100);
    let target = Arc::new(FlakyTarget::new(7));
    let outcome = driver::run(&cfg, Arc::clone(&target)).await.unwrap();
    let r = Report::new(&cfg, &outcome);
    assert_eq!(r.all().ok + r.all().errors, 2100);
    assert_eq!(r.all().errors, 300, "every 7th of 2100 operations failed");
    assert_eq!(r.all().errors_by_kind.get(&ErrorKind::Server), Some(&300));
    assert_eq!(r.all().errors_by_kind.len(), 1);
    assert!(
        r.error_samples
            .iter()
            .any(|s| s.contains("injected failure"))
    );
    let text = r.to_text();
    assert!(text.contains("errors: server 300"), "{text}");
}

/// The defining property of the open loop: a request that waits behind slow ones has its
/// wait counted. With one lane, a 10 ms target and a request scheduled every 5 ms, request k
/// cannot finish before (k+1) x 10 ms, though it was due at k x 5 ms: its latency is at least
/// 10 + 5k ms. Timing from the actual send would report about 10 ms for all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_latency_counts_from_the_scheduled_time() {
    let mut cfg = test_config();
    cfg.load = LoadModel::Open { rate: 200.0 };
    cfg.concurrency = 1;
    cfg.ops = Some(20);
    let target = Arc::new(SlowTarget {
        delay: Duration::from_millis(10),
    });
    let outcome = driver::run(&cfg, target).await.unwrap();
    let r = Report::new(&cfg, &outcome);
    assert_eq!(r.all().ok, 20);
    let l = r.all().latency.clone().unwrap();
    assert!(l.min_ns >= 10_000_000, "min {}", l.min_ns);
    // Request 19: at least 10 + 5 x 19 = 105 ms (histogram rounding: 0.1%).
    assert!(
        l.max_ns >= 104_000_000,
        "max {} ns: queueing not counted",
        l.max_ns
    );
    let o = r.open_loop.unwrap();
    assert_eq!(o.unsent, 0);
    // Request 19 was sent at >= 190 ms though due at 95 ms.
    assert!(o.send_lag.unwrap().max_ns >= 94_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_timed_run_reports_requests_it_could_not_send() {
    let mut cfg = test_config();
    cfg.load = LoadModel::Open { rate: 1000.0 };
    cfg.concurrency = 1;
    cfg.ops = None;
    cfg.duration = Some(Duration::from_millis(300));
    let target = Arc::new(SlowTarget {
        delay: Duration::from_millis(10),
    });
    let outcome = driver::run(&cfg, target).await.unwrap();
    let r = Report::new(&cfg, &outcome);
    let o = r.open_loop.clone().unwrap();
    // 300 requests were due; one lane at >= 10 ms each sends at most 31 of them before the
    // end and 100 more in the 1 s grace after it.
    assert_eq!(r.all().ok + o.unsent, 300);
    assert!(r.all().ok <= 131, "sent {}", r.all().ok);
    assert!(o.unsent >= 169);
    assert!(r.to_text().contains("did not sustain the scheduled rate"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_schedules_exactly_rate_times_duration() {
    let mut cfg = test_config();
    cfg.preset = Some(Preset::B);
    cfg.mix = Preset::B.mix();
    cfg.load = LoadModel::Open { rate: 2000.0 };
    cfg.concurrency = 4;
    cfg.ops = None;
    cfg.warmup = Duration::from_millis(200);
    cfg.duration = Some(Duration::from_millis(500));
    let target = Arc::new(MemTarget::default());
    let outcome = driver::run(&cfg, Arc::clone(&target)).await.unwrap();
    let r = Report::new(&cfg, &outcome);
    let o = r.open_loop.clone().unwrap();
    assert_eq!(
        r.all().ok + o.unsent,
        1000,
        "2000/s for 0.5 s, warm-up excluded"
    );
    let executed = Counts::get(&target.counts.get) + Counts::get(&target.counts.put);
    assert_eq!(
        executed,
        400 + r.all().ok,
        "warm-up requests ran but are not measured"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupt_stops_closed_and_open_runs_early_with_results() {
    use std::sync::atomic::{AtomicBool, Ordering};
    for load in [LoadModel::Closed, LoadModel::Open { rate: 5000.0 }] {
        let mut cfg = test_config();
        cfg.load = load;
        cfg.ops = None;
        cfg.duration = Some(Duration::from_secs(600));
        let flag = Arc::new(AtomicBool::new(false));
        let setter = Arc::clone(&flag);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            setter.store(true, Ordering::Relaxed);
        });
        let run = driver::run_interruptible(&cfg, Arc::new(MemTarget::default()), flag);
        let outcome = tokio::time::timeout(Duration::from_secs(60), run)
            .await
            .expect("an interrupted run ends promptly")
            .unwrap();
        let r = Report::new(&cfg, &outcome);
        assert!(r.interrupted, "{load:?}");
        assert!(r.all().ok > 0, "{load:?}");
        assert!(r.to_text().contains("INTERRUPTED"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_reports_a_failing_or_silent_target() {
    use loadgen::targets::preflight;
    let ok = MemTarget::default();
    preflight(&ok, Duration::from_secs(1)).await.unwrap();
    let failing = FlakyTarget::new(1);
    let e = preflight(&failing, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("injected failure"), "{e}");
    let silent = SlowTarget {
        delay: Duration::from_secs(3600),
    };
    let e = preflight(&silent, Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("unanswered within 50 ms"), "{e}");
}
