//! `SimRuntime`: openraft's `AsyncRuntime` on a deterministic, single-threaded executor
//! with a virtual clock and seeded randomness.
//!
//! Owns the thread-local simulation context ([`context`]) that the executor, the clock,
//! the RNG streams and the trace live in, and the run loop ([`SimRuntime::block_on`]).
//!
//! Invariants:
//! - One simulation per thread at a time; every `AsyncRuntime` function must be called
//!   from inside `block_on` (it panics otherwise): there is no real time, no real thread
//!   and no OS randomness in a simulated run (`spawn_blocking` panics).
//! - The run loop polls ready tasks until none is ready, then jumps virtual time to the
//!   next timer. Same seed, same code ⇒ same sequence of polls and timer firings.
//! - No ready task and no armed timer while `block_on`'s future is unfinished is a
//!   deadlock and panics; a run that polls without time ever moving is a livelock and
//!   panics after [`LIVELOCK_POLLS`] polls.
//! - Channels and the mutex are `shoal::raft::sync`'s `tokio::sync` adapters, which are
//!   runtime-agnostic (driven by whoever polls them).

pub mod clock;
pub mod executor;
pub mod rng;

use std::future::Future;
use std::pin::pin;
use std::rc::Rc;
use std::task::Context;
use std::task::Poll;
use std::time::Duration;

use openraft_rt::AsyncRuntime;
use openraft_rt::OptionalSend;
use shoal::raft::sync::TokioSyncMpsc;
use shoal::raft::sync::TokioSyncMutex;
use shoal::raft::sync::TokioSyncOneshot;
use shoal::raft::sync::TokioSyncWatch;

pub use clock::Elapsed;
pub use clock::SimInstant;
pub use clock::SimSleep;
pub use clock::SimTimeout;
pub use executor::SimJoinError;
pub use executor::SimJoinHandle;
pub use executor::Tag;
pub use rng::SimRng;
pub use rng::Stream;

use crate::trace::Kind;
use crate::trace::Trace;

/// Polls without virtual time moving after which a run is declared livelocked.
pub const LIVELOCK_POLLS: u64 = 5_000_000;

/// Everything a running simulation owns.
pub struct Sim {
    /// Tasks and scheduling.
    pub executor: executor::Executor,
    /// Virtual time.
    pub clock: clock::Clock,
    /// Seeded random streams.
    pub rngs: rng::Rngs,
    /// The run's trace.
    pub trace: Trace,
    /// Pick a random ready task instead of the oldest one.
    pub shuffle: bool,
    /// The seed.
    pub seed: u64,
    /// Called after every poll (the invariant checks of the harness).
    pub step_hook: std::cell::RefCell<Option<Rc<dyn Fn()>>>,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("seed", &self.seed)
            .field("now", &self.clock.now())
            .field("executor", &self.executor)
            .finish()
    }
}

/// Access to the simulation running on this thread.
pub mod context {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::Sim;

    thread_local! {
        static CURRENT: RefCell<Option<Rc<Sim>>> = const { RefCell::new(None) };
    }

    /// Run `f` on the current simulation; panics outside one.
    #[track_caller]
    pub fn with<R>(f: impl FnOnce(&Sim) -> R) -> R {
        match try_with(f) {
            Some(r) => r,
            None => panic!(
                "a simulated runtime function was called outside SimRuntime::block_on \
                 (real time or a foreign executor in a simulated run?)"
            ),
        }
    }

    /// Run `f` on the current simulation, if one runs on this thread.
    pub fn try_with<R>(f: impl FnOnce(&Sim) -> R) -> Option<R> {
        let sim = CURRENT.with(|c| c.borrow().clone())?;
        Some(f(&sim))
    }

    pub(super) fn install(sim: Rc<Sim>) -> Option<Rc<Sim>> {
        CURRENT.with(|c| c.borrow_mut().replace(sim))
    }

    pub(super) fn uninstall(previous: Option<Rc<Sim>>) {
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}

/// Current virtual time of the running simulation.
pub fn now() -> SimInstant {
    context::with(|sim| sim.clock.now())
}

/// Record a text event in the running simulation's trace.
pub fn note(text: String) {
    context::with(|sim| sim.trace.note(sim.clock.now().as_nanos(), text));
}

/// Spawn `future` as a task of simulated node `tag` (0 = harness): every task it spawns
/// inherits the tag, and [`kill_node`] drops them all.
pub fn spawn_tagged<F>(tag: Tag, future: F) -> SimJoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    context::with(|sim| {
        let (id, handle) = sim.executor.spawn_tagged(tag, future);
        sim.trace.record(Kind::Spawn, id, tag);
        handle
    })
}

/// Drop every task of node `tag` without polling it again (a crash). Returns the count.
pub fn kill_node(tag: Tag) -> usize {
    context::with(|sim| sim.executor.kill_tag(tag))
}

/// Run `hook` after every poll of the running simulation (`None` removes it). The hook
/// must not spawn, wake or await: it observes.
pub fn set_step_hook(hook: Option<Rc<dyn Fn()>>) {
    context::with(|sim| *sim.step_hook.borrow_mut() = hook);
}

/// Panics caught in tasks so far.
pub fn task_panics() -> Vec<String> {
    context::with(|sim| sim.executor.panics())
}

/// The deterministic runtime. A value owns one simulation (seed, executor, clock); the
/// `AsyncRuntime` functions act on the simulation running on the calling thread.
#[derive(Debug)]
pub struct SimRuntime {
    sim: Rc<Sim>,
}

impl SimRuntime {
    /// A simulation seeded with `seed`; `shuffle` randomizes the choice among ready tasks.
    pub fn with_seed(seed: u64, shuffle: bool) -> Self {
        SimRuntime {
            sim: Rc::new(Sim {
                executor: executor::Executor::new(),
                clock: clock::Clock::default(),
                rngs: rng::Rngs::new(seed),
                trace: Trace::default(),
                shuffle,
                seed,
                step_hook: std::cell::RefCell::new(None),
            }),
        }
    }

    /// The simulation this runtime drives (trace, clock, executor).
    pub fn sim(&self) -> &Sim {
        &self.sim
    }

    fn run<F: Future>(&self, future: F) -> F::Output {
        let sim = &self.sim;
        let mut future = pin!(future);
        sim.executor.enqueue_main();
        let mut polls_at_this_time = 0u64;
        loop {
            sim.executor.drain_woken();
            let choice = if sim.shuffle && sim.executor.ready_len() > 1 {
                Some(sim.rngs.next_u64(Stream::Scheduler))
            } else {
                None
            };
            if let Some(id) = sim.executor.pop_ready(choice) {
                sim.trace.record(Kind::Poll, id, 0);
                polls_at_this_time += 1;
                assert!(
                    polls_at_this_time < LIVELOCK_POLLS,
                    "simulation livelock: {LIVELOCK_POLLS} polls without virtual time moving"
                );
                if id == executor::MAIN {
                    sim.executor.count_main_poll();
                    let waker = sim.executor.main_waker().clone();
                    let mut cx = Context::from_waker(&waker);
                    if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
                        return v;
                    }
                } else {
                    sim.executor.poll_task(id);
                }
                let hook = sim.step_hook.borrow().clone();
                if let Some(hook) = hook {
                    hook();
                }
                continue;
            }
            match sim.clock.advance() {
                Some(t) => {
                    sim.trace.record(Kind::Time, t.as_nanos(), 0);
                    polls_at_this_time = 0;
                }
                None => panic!(
                    "simulation deadlock: no task is ready and no timer is armed \
                     ({} tasks alive) while block_on's future is unfinished",
                    sim.executor.task_count()
                ),
            }
        }
    }
}

struct Installed(Option<Rc<Sim>>);

impl Drop for Installed {
    fn drop(&mut self) {
        context::uninstall(self.0.take());
    }
}

impl Drop for SimRuntime {
    fn drop(&mut self) {
        self.sim.step_hook.borrow_mut().take();
        // Drop the remaining tasks while the context is installed: their destructors may
        // disarm timers or wake other tasks.
        let _installed = Installed(context::install(self.sim.clone()));
        self.sim.executor.kill_all();
    }
}

impl AsyncRuntime for SimRuntime {
    type JoinError = SimJoinError;
    type JoinHandle<T: OptionalSend + 'static> = SimJoinHandle<T>;
    type Sleep = SimSleep;
    type Instant = SimInstant;
    type TimeoutError = Elapsed;
    type Timeout<R, T: Future<Output = R> + OptionalSend> = SimTimeout<T>;
    type ThreadLocalRng = SimRng;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        context::with(|sim| {
            let (id, handle) = sim.executor.spawn(future);
            sim.trace
                .record(Kind::Spawn, id, sim.executor.current_tag());
            handle
        })
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        SimSleep::after(duration)
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        SimSleep::until(deadline)
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(
        duration: Duration,
        future: F,
    ) -> Self::Timeout<R, F> {
        SimTimeout::new(future, SimSleep::after(duration))
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(
        deadline: Self::Instant,
        future: F,
    ) -> Self::Timeout<R, F> {
        SimTimeout::new(future, SimSleep::until(deadline))
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        matches!(join_error, SimJoinError::Panicked(_))
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        // Fail here, not at the first draw, when called outside a simulation.
        context::with(|_| SimRng)
    }

    type Mpsc = TokioSyncMpsc;
    type Watch = TokioSyncWatch;
    type Oneshot = TokioSyncOneshot;
    type Mutex<T: OptionalSend + 'static> = TokioSyncMutex<T>;

    /// A simulation with seed 0 and FIFO scheduling (`threads` is ignored: one thread).
    fn new(_threads: usize) -> Self {
        Self::with_seed(0, false)
    }

    fn block_on<F, T>(&mut self, future: F) -> T
    where
        F: Future<Output = T>,
    {
        let previous = context::install(self.sim.clone());
        assert!(
            previous.is_none(),
            "nested SimRuntime::block_on: one simulation per thread at a time"
        );
        let _installed = Installed(previous);
        self.run(future)
    }

    fn spawn_blocking<F, T>(_f: F) -> impl Future<Output = Result<T, std::io::Error>> + Send
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        // The default starts an OS thread; a simulated run has none.
        panic!("spawn_blocking in a simulated run: real threads break determinism");
        #[allow(unreachable_code)]
        std::future::ready(Err(std::io::Error::other("unreachable")))
    }
}

/// Shoal's state-machine seam on the simulated runtime: the production state machine,
/// snapshot builder and snapshot store yield through it.
impl shoal::raft::SmRuntime for SimRuntime {
    fn yield_now() -> impl Future<Output = ()> {
        YieldNow { yielded: false }
    }

    /// No threads in a simulated run: the value is dropped here, at once.
    fn drop_elsewhere<T: Send + 'static>(value: T) {
        drop(value);
    }
}

/// Pending once (after waking itself, so the task goes to the back of the ready queue),
/// then ready: the other ready tasks run in between.
#[derive(Debug)]
struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
