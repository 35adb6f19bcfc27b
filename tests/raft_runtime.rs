//! Conformance of the glommio `AsyncRuntime` (`shoal::raft::GlommioRuntime`): openraft's own
//! runtime suite, plus the guarantees openraft relies on that the suite does not check
//! (a task panic is reported, not fatal; a dropped handle does not cancel its task).

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use openraft_rt::AsyncRuntime;
use openraft_rt::testing::Suite;
use shoal::raft::GlommioRuntime;
use shoal::raft::runtime::GlommioJoinError;

#[test]
fn openraft_runtime_suite_passes_on_glommio() {
    Suite::<GlommioRuntime>::test_all();
}

#[test]
fn task_panic_is_reported_and_executor_keeps_running() {
    let mut rt = GlommioRuntime::new(1);
    rt.block_on(async {
        let handle = GlommioRuntime::spawn(async {
            if Rc::new(1).as_ref() == &1 {
                panic!("boom in a raft task");
            }
            7_u32
        });
        let err = handle.await.expect_err("the task panicked");
        assert!(GlommioRuntime::is_panic(&err), "{err}");
        match err {
            GlommioJoinError::Panicked(msg) => {
                assert!(msg.contains("boom in a raft task"), "{msg}")
            }
            GlommioJoinError::Cancelled => panic!("a panic must not be reported as a cancellation"),
        }
        // The executor survived: more tasks still run and complete.
        let ok = GlommioRuntime::spawn(async { 42_u32 }).await.unwrap();
        assert_eq!(ok, 42);
    });
}

#[test]
fn dropping_a_join_handle_does_not_cancel_the_task() {
    let mut rt = GlommioRuntime::new(1);
    let done = Rc::new(Cell::new(false));
    let seen = done.clone();
    rt.block_on(async move {
        let flag = done.clone();
        drop(GlommioRuntime::spawn(async move {
            GlommioRuntime::sleep(Duration::from_millis(5)).await;
            flag.set(true);
        }));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !done.get() && std::time::Instant::now() < deadline {
            GlommioRuntime::sleep(Duration::from_millis(1)).await;
        }
    });
    assert!(seen.get(), "the detached task must run to completion");
}

#[test]
fn unbounded_durations_do_not_overflow_the_timer() {
    let mut rt = GlommioRuntime::new(1);
    rt.block_on(async {
        // A ready future wins even with an "infinite" timeout.
        let v = GlommioRuntime::timeout(Duration::MAX, async { 5_u8 })
            .await
            .unwrap();
        assert_eq!(v, 5);
        // An "infinite" sleep is armed and stays pending.
        let short = GlommioRuntime::timeout(
            Duration::from_millis(10),
            GlommioRuntime::sleep(Duration::MAX),
        )
        .await;
        assert!(short.is_err(), "a Duration::MAX sleep must not complete");
    });
}
