//! `openraft_rt::AsyncRuntime` for glommio: how openraft spawns tasks, sleeps and times out
//! on a shard's `LocalExecutor`.
//!
//! Invariants:
//! - Every task openraft spawns is `.detach()`ed: glommio cancels a task when its `Task`
//!   handle drops, while openraft (like tokio) expects a dropped `JoinHandle` to leave the
//!   task running.
//! - A panic inside a spawned task is caught at the task boundary and reported through its
//!   `JoinHandle` as [`GlommioJoinError::Panicked`]; it never unwinds into the executor,
//!   which would take the whole shard down.
//! - Time is `std::time::Instant`; sleeps and timeouts are glommio `Timer`s, so every
//!   function here must be called on a thread that runs a glommio executor.
//! - Channels and the mutex are the runtime-agnostic `tokio::sync` ones (see [`super::sync`]).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::Context;
use std::task::Poll;
use std::time::Duration;
use std::time::Instant;

use futures::FutureExt;
use glommio::timer::Timer;
use openraft_rt::AsyncRuntime;
use openraft_rt::OptionalSend;

use super::sync::TokioSyncMpsc;
use super::sync::TokioSyncMutex;
use super::sync::TokioSyncOneshot;
use super::sync::TokioSyncWatch;

/// The glommio runtime as openraft sees it.
///
/// Openraft only uses the associated functions (spawn, sleep, ...), which run on the
/// executor of the calling thread. A value of this type owns a private `LocalExecutor`
/// and exists only for [`AsyncRuntime::new`]/[`AsyncRuntime::block_on`], which openraft
/// reserves for tests; a shard creates its executor itself.
pub struct GlommioRuntime {
    executor: glommio::LocalExecutor,
}

impl std::fmt::Debug for GlommioRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlommioRuntime")
            .field("executor_id", &self.executor.id())
            .finish()
    }
}

/// Why awaiting a spawned task produced no value.
#[derive(Debug, thiserror::Error)]
pub enum GlommioJoinError {
    /// The task panicked; the message is the panic payload when it was a string.
    #[error("task panicked: {0}")]
    Panicked(String),
    /// The executor cancelled the task before it completed (for example it shut down).
    #[error("task was cancelled before it completed")]
    Cancelled,
}

/// Handle to a detached task; resolves to its output or to why there is none.
/// Dropping it leaves the task running.
#[derive(Debug)]
pub struct GlommioJoinHandle<T> {
    inner: glommio::task::JoinHandle<std::thread::Result<T>>,
}

impl<T> Future for GlommioJoinHandle<T> {
    type Output = Result<T, GlommioJoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match Pin::new(&mut self.inner).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => Poll::Ready(Err(GlommioJoinError::Cancelled)),
            Poll::Ready(Some(Ok(value))) => Poll::Ready(Ok(value)),
            Poll::Ready(Some(Err(payload))) => {
                Poll::Ready(Err(GlommioJoinError::Panicked(panic_message(&*payload))))
            }
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

/// The error of a [`GlommioTimeout`] whose deadline passed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("deadline elapsed")]
pub struct Elapsed;

pin_project_lite::pin_project! {
    /// Runs `future` until it completes or `timer` fires, whichever comes first; the future
    /// is polled first, so a future that is ready at the deadline still wins.
    #[derive(Debug)]
    pub struct GlommioTimeout<F> {
        #[pin]
        future: F,
        timer: Timer,
    }
}

impl<F: Future> Future for GlommioTimeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(value) = this.future.poll(cx) {
            return Poll::Ready(Ok(value));
        }
        match Pin::new(this.timer).poll(cx) {
            Poll::Ready(_) => Poll::Ready(Err(Elapsed)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A glommio `Timer` that resolves to `()`, as openraft's `Sleep` must.
#[derive(Debug)]
pub struct GlommioSleep(Timer);

impl Future for GlommioSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(|_fired_at| ())
    }
}

/// Longest timer armed: glommio computes `Instant::now() + duration` and would panic on
/// overflow, while openraft passes caller-chosen durations through (for example
/// `LinearizerOption::with_wait_timeout`), which may be `Duration::MAX` for "forever".
/// Thirty years is forever for a shard.
const MAX_TIMER: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

fn timer_for(duration: Duration) -> Timer {
    Timer::new(duration.min(MAX_TIMER))
}

fn timer_until(deadline: Instant) -> Timer {
    timer_for(deadline.saturating_duration_since(Instant::now()))
}

impl AsyncRuntime for GlommioRuntime {
    type JoinError = GlommioJoinError;
    type JoinHandle<T: OptionalSend + 'static> = GlommioJoinHandle<T>;
    type Sleep = GlommioSleep;
    type Instant = Instant;
    type TimeoutError = Elapsed;
    type Timeout<R, T: Future<Output = R> + OptionalSend> = GlommioTimeout<T>;
    type ThreadLocalRng = rand::rngs::ThreadRng;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        // AssertUnwindSafe: after a panic the task's state is dropped, never observed again;
        // the panic payload is the only thing that leaves the task.
        let task = glommio::spawn_local(AssertUnwindSafe(future).catch_unwind());
        GlommioJoinHandle {
            inner: task.detach(),
        }
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        GlommioSleep(timer_for(duration))
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        GlommioSleep(timer_until(deadline))
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(
        duration: Duration,
        future: F,
    ) -> Self::Timeout<R, F> {
        GlommioTimeout {
            future,
            timer: timer_for(duration),
        }
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(
        deadline: Self::Instant,
        future: F,
    ) -> Self::Timeout<R, F> {
        GlommioTimeout {
            future,
            timer: timer_until(deadline),
        }
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        matches!(join_error, GlommioJoinError::Panicked(_))
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        rand::rng()
    }

    type Mpsc = TokioSyncMpsc;
    type Watch = TokioSyncWatch;
    type Oneshot = TokioSyncOneshot;
    type Mutex<T: OptionalSend + 'static> = TokioSyncMutex<T>;

    /// Test-only entry point (openraft never calls it): an unbound executor on this thread.
    /// `threads` is ignored: glommio runs one executor per thread.
    fn new(_threads: usize) -> Self {
        // The trait offers no way to report an error; failing to create an io_uring
        // executor in a test is fatal to that test anyway.
        let executor = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .make()
            .expect("cannot create a glommio LocalExecutor");
        GlommioRuntime { executor }
    }

    fn block_on<F, T>(&mut self, future: F) -> T
    where
        F: Future<Output = T>,
    {
        self.executor.run(future)
    }
}
