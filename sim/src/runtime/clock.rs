//! Virtual time: the simulated [`SimInstant`], the timer queue, and the `Sleep`/`Timeout`
//! futures openraft arms on it.
//!
//! Invariants:
//! - Time never moves while a task is ready; when none is, it jumps to the earliest armed
//!   deadline and wakes every timer due at it (in arming order). Nothing here reads the
//!   real clock.
//! - `SimInstant::now()` outside a running simulation panics: an accidental real-time
//!   code path fails loudly instead of silently mixing clocks.
//! - A dropped `Sleep` disarms its timer, so dead timers never advance the clock.

use std::cell::Cell;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::ops::Add;
use std::ops::AddAssign;
use std::ops::Sub;
use std::ops::SubAssign;
use std::pin::Pin;
use std::task::Context;
use std::task::Poll;
use std::task::Waker;
use std::time::Duration;

use super::context;

/// A point of virtual time: nanoseconds since the simulation started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SimInstant(u64);

impl SimInstant {
    /// The instant `nanos` nanoseconds after the start.
    pub fn from_nanos(nanos: u64) -> Self {
        SimInstant(nanos)
    }

    /// Nanoseconds since the start.
    pub fn as_nanos(self) -> u64 {
        self.0
    }

    /// Time since the start.
    pub fn since_start(self) -> Duration {
        Duration::from_nanos(self.0)
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Add<Duration> for SimInstant {
    type Output = SimInstant;
    fn add(self, rhs: Duration) -> SimInstant {
        SimInstant(self.0.saturating_add(nanos(rhs)))
    }
}

impl AddAssign<Duration> for SimInstant {
    fn add_assign(&mut self, rhs: Duration) {
        *self = *self + rhs;
    }
}

impl Sub<Duration> for SimInstant {
    type Output = SimInstant;
    fn sub(self, rhs: Duration) -> SimInstant {
        SimInstant(self.0.saturating_sub(nanos(rhs)))
    }
}

impl SubAssign<Duration> for SimInstant {
    fn sub_assign(&mut self, rhs: Duration) {
        *self = *self - rhs;
    }
}

impl Sub<SimInstant> for SimInstant {
    type Output = Duration;
    fn sub(self, rhs: SimInstant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(rhs.0))
    }
}

impl openraft_rt::Instant for SimInstant {
    fn now() -> Self {
        context::with(|sim| sim.clock.now())
    }
}

type TimerKey = (u64, u64);

/// The virtual clock and its armed timers.
#[derive(Debug, Default)]
pub struct Clock {
    now: Cell<u64>,
    next_seq: Cell<u64>,
    timers: RefCell<BTreeMap<TimerKey, Waker>>,
}

impl Clock {
    /// Current virtual time.
    pub fn now(&self) -> SimInstant {
        SimInstant(self.now.get())
    }

    /// Number of armed timers.
    pub fn armed(&self) -> usize {
        self.timers.borrow().len()
    }

    fn arm(&self, deadline: u64, waker: &Waker) -> TimerKey {
        let seq = self.next_seq.get();
        self.next_seq.set(seq + 1);
        let key = (deadline, seq);
        self.timers.borrow_mut().insert(key, waker.clone());
        key
    }

    fn rearm(&self, key: TimerKey, waker: &Waker) {
        if let Some(w) = self.timers.borrow_mut().get_mut(&key) {
            if !w.will_wake(waker) {
                *w = waker.clone();
            }
        }
    }

    fn disarm(&self, key: TimerKey) {
        self.timers.borrow_mut().remove(&key);
    }

    /// Jump to the earliest deadline and wake every timer due then. Returns the new time,
    /// or `None` when no timer is armed (nothing can ever happen again).
    pub fn advance(&self) -> Option<SimInstant> {
        let first = self.timers.borrow().keys().next().copied()?;
        let now = self.now.get().max(first.0);
        self.now.set(now);
        let due: Vec<Waker> = {
            let mut timers = self.timers.borrow_mut();
            let later = match now.checked_add(1) {
                Some(next) => timers.split_off(&(next, 0)),
                None => BTreeMap::new(),
            };
            std::mem::replace(&mut *timers, later)
                .into_values()
                .collect()
        };
        for w in due {
            w.wake();
        }
        Some(SimInstant(now))
    }
}

/// Resolves once virtual time reaches its deadline.
#[derive(Debug)]
pub struct SimSleep {
    deadline: u64,
    key: Option<TimerKey>,
}

impl SimSleep {
    /// A sleep until `deadline`.
    pub fn until(deadline: SimInstant) -> Self {
        SimSleep {
            deadline: deadline.0,
            key: None,
        }
    }

    /// A sleep for `d` from now.
    pub fn after(d: Duration) -> Self {
        Self::until(context::with(|sim| sim.clock.now()) + d)
    }
}

impl Future for SimSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        context::with(|sim| {
            if sim.clock.now.get() >= self.deadline {
                if let Some(key) = self.key.take() {
                    sim.clock.disarm(key);
                }
                return Poll::Ready(());
            }
            match self.key {
                Some(key) => sim.clock.rearm(key, cx.waker()),
                None => self.key = Some(sim.clock.arm(self.deadline, cx.waker())),
            }
            Poll::Pending
        })
    }
}

impl Drop for SimSleep {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            context::try_with(|sim| sim.clock.disarm(key));
        }
    }
}

/// The error of a [`SimTimeout`] whose deadline passed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("deadline elapsed (virtual time)")]
pub struct Elapsed;

pin_project_lite::pin_project! {
    /// Runs `future` until it completes or virtual time reaches the deadline; the future is
    /// polled first, so a future ready at the deadline still wins.
    #[derive(Debug)]
    pub struct SimTimeout<F> {
        #[pin]
        future: F,
        sleep: SimSleep,
    }
}

impl<F> SimTimeout<F> {
    /// `future` bounded by `sleep`.
    pub fn new(future: F, sleep: SimSleep) -> Self {
        SimTimeout { future, sleep }
    }
}

impl<F: Future> Future for SimTimeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(v) = this.future.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        match Pin::new(this.sleep).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed)),
            Poll::Pending => Poll::Pending,
        }
    }
}
