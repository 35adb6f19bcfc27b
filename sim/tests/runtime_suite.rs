//! openraft's runtime conformance suite, and the simulation-specific properties of the
//! runtime: virtual time, seeded RNG, crash of a tagged task group, real-thread detection.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use openraft_rt::AsyncRuntime;
use openraft_rt::Instant;
use openraft_rt::testing::Suite;
use shoal_sim::runtime::SimInstant;
use shoal_sim::runtime::SimRuntime;

#[test]
fn openraft_runtime_suite_passes() {
    Suite::<SimRuntime>::test_all();
}

#[test]
fn time_is_virtual_and_jumps_to_the_next_timer() {
    let mut rt = SimRuntime::with_seed(1, false);
    let (start, end) = rt.block_on(async {
        let start = SimInstant::now();
        // An hour of virtual time passes instantly.
        SimRuntime::sleep(Duration::from_secs(3600)).await;
        (start, SimInstant::now())
    });
    assert_eq!(end - start, Duration::from_secs(3600));
}

#[test]
fn thread_rng_is_seeded() {
    use rand::RngExt;
    let draw = |seed| {
        let mut rt = SimRuntime::with_seed(seed, false);
        rt.block_on(async {
            (0..4)
                .map(|_| SimRuntime::thread_rng().random::<u64>())
                .collect::<Vec<_>>()
        })
    };
    assert_eq!(draw(7), draw(7));
    assert_ne!(draw(7), draw(8));
}

#[test]
fn killing_a_node_drops_its_tasks_and_cancels_their_handles() {
    let mut rt = SimRuntime::with_seed(1, false);
    rt.block_on(async {
        let h = shoal_sim::runtime::spawn_tagged(3, async {
            // A child inherits the tag.
            let child = SimRuntime::spawn(async {
                SimRuntime::sleep(Duration::from_secs(10)).await;
                1
            });
            child.await
        });
        SimRuntime::sleep(Duration::from_millis(1)).await;
        assert_eq!(shoal_sim::runtime::kill_node(3), 2);
        let r = h.await;
        assert!(matches!(
            r,
            Err(shoal_sim::runtime::SimJoinError::Cancelled)
        ));
    });
}

#[test]
fn a_dropped_handle_does_not_cancel_the_task() {
    let mut rt = SimRuntime::with_seed(1, false);
    let done = rt.block_on(async {
        let (tx, rx) = tokio::sync::oneshot::channel();
        drop(SimRuntime::spawn(async move {
            SimRuntime::sleep(Duration::from_millis(5)).await;
            tx.send(42).unwrap();
        }));
        rx.await.unwrap()
    });
    assert_eq!(done, 42);
}

#[test]
#[should_panic(expected = "outside SimRuntime::block_on")]
fn reading_sim_time_outside_a_simulation_panics() {
    let _ = SimInstant::now();
}

#[test]
#[should_panic(expected = "deadlock")]
fn a_deadlock_is_reported() {
    let mut rt = SimRuntime::with_seed(1, false);
    rt.block_on(std::future::pending::<()>());
}

#[test]
#[should_panic(expected = "woken from another thread")]
fn a_wake_from_a_real_thread_is_detected() {
    let mut rt = SimRuntime::with_seed(1, false);
    rt.block_on(async {
        let waker = std::future::poll_fn(|cx| std::task::Poll::Ready(cx.waker().clone())).await;
        #[allow(clippy::disallowed_methods)]
        let r = std::thread::spawn(move || waker.wake()).join();
        if let Err(p) = r {
            std::panic::resume_unwind(p);
        }
    });
}
