//! In-flight accounting: a counter with a cap, and permits that give their slot back on
//! drop.
//!
//! Invariants: `current() <= max` at all times; a [`Permit`] holds exactly one slot and
//! returns it when dropped, however its task ends (answer, timeout, panic, cancellation);
//! every release notifies `progress`, which the drain waits on.

use std::cell::Cell;
use std::rc::Rc;

use tokio::sync::Notify;

/// A capped count of requests in flight (one shard's, across its connections and inbox).
#[derive(Debug)]
pub(crate) struct InFlight {
    current: Cell<usize>,
    max: usize,
    progress: Rc<Notify>,
}

/// One slot of an [`InFlight`], returned on drop.
#[derive(Debug)]
pub(crate) struct Permit {
    owner: Rc<InFlight>,
}

impl InFlight {
    /// A counter allowing `max` at once; releases notify `progress`.
    pub(crate) fn new(max: usize, progress: Rc<Notify>) -> Rc<InFlight> {
        assert!(max > 0, "an in-flight cap of zero would refuse everything");
        Rc::new(InFlight {
            current: Cell::new(0),
            max,
            progress,
        })
    }

    /// A slot, or `None` when all `max` are taken.
    pub(crate) fn try_acquire(self: &Rc<Self>) -> Option<Permit> {
        let c = self.current.get();
        if c >= self.max {
            return None;
        }
        self.current.set(c + 1);
        Some(Permit {
            owner: Rc::clone(self),
        })
    }

    /// Slots taken now.
    pub(crate) fn current(&self) -> usize {
        self.current.get()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let c = self.owner.current.get();
        assert!(c > 0, "permit released from an empty in-flight counter");
        self.owner.current.set(c - 1);
        self.owner.progress.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_and_releases() {
        let f = InFlight::new(2, Rc::new(Notify::new()));
        let a = f.try_acquire().unwrap();
        let b = f.try_acquire().unwrap();
        assert!(f.try_acquire().is_none());
        assert_eq!(f.current(), 2);
        drop(a);
        let c = f.try_acquire().unwrap();
        drop((b, c));
        assert_eq!(f.current(), 0);
    }
}
