//! Records a history while a test runs: clients call `invoke` before sending a request
//! and `complete` with its outcome after the answer.
//!
//! Owns `Recorder` and `Ticket`. The recorder reads the clock (`Instant`, relative to its
//! creation); the checker never does, it takes the recorded times as data.
//!
//! Invariants: `invoke` reads the clock before returning, so a caller that sends the
//! request after `invoke` returns gets an invocation time no later than the real one;
//! `complete` reads it on entry, after the answer arrived. A `Ticket` is completed at
//! most once (it is consumed); an operation never completed is recorded as `Unknown`.
//! The lock is held only to push or fill one slot (no clock read or allocation of the
//! operation inside it besides the push).

use std::sync::Mutex;
use std::time::Instant;

use crate::history::{ClientId, History, Op, Operation, Outcome, Time};

/// A pending operation's handle, returned by `Recorder::invoke`.
#[derive(Debug)]
#[must_use = "complete the ticket, or the operation is recorded as Unknown"]
pub struct Ticket(usize);

#[derive(Debug)]
struct Slot {
    client: ClientId,
    invoke_ns: Time,
    op: Op,
    done: Option<(Time, Outcome)>,
}

/// A thread-safe history recorder. Share it by reference or `Arc`.
#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    slots: Mutex<Vec<Slot>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    /// A recorder whose clock starts now.
    pub fn new() -> Recorder {
        Recorder {
            start: Instant::now(),
            slots: Mutex::new(Vec::new()),
        }
    }

    /// Nanoseconds since the recorder was created.
    pub fn now_ns(&self) -> Time {
        Time::try_from(self.start.elapsed().as_nanos()).unwrap_or(Time::MAX - 1)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Slot>> {
        // A panicking client thread must not hide the history of the others.
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that `client` is about to issue `op`. Call it before sending the request.
    pub fn invoke(&self, client: ClientId, op: Op) -> Ticket {
        let invoke_ns = self.now_ns();
        let mut slots = self.lock();
        slots.push(Slot {
            client,
            invoke_ns,
            op,
            done: None,
        });
        Ticket(slots.len() - 1)
    }

    /// Records how the operation of `ticket` ended. Call it right after the answer (or
    /// the error) arrived. The outcome must fit the op (see `history.rs`); a mismatch is
    /// reported when the history is validated.
    pub fn complete(&self, ticket: Ticket, outcome: Outcome) {
        let complete_ns = self.now_ns();
        let mut slots = self.lock();
        let slot = &mut slots[ticket.0];
        assert!(slot.done.is_none(), "ticket completed twice");
        slot.done = Some((complete_ns, outcome));
    }

    /// The history so far; operations still pending appear as `Unknown`.
    pub fn snapshot(&self) -> History {
        let now = self.now_ns();
        let slots = self.lock();
        History {
            ops: slots
                .iter()
                .map(|s| {
                    let (complete_ns, outcome) = s
                        .done
                        .clone()
                        .unwrap_or((now.max(s.invoke_ns), Outcome::Unknown));
                    Operation::new(s.client, s.invoke_ns, complete_ns, s.op.clone(), outcome)
                })
                .collect(),
        }
    }

    /// The finished history; operations never completed appear as `Unknown`.
    pub fn into_history(self) -> History {
        self.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_times_in_order_and_pending_ops_as_unknown() {
        let rec = Recorder::new();
        let t1 = rec.invoke(1, Op::put("k", "v"));
        let t2 = rec.invoke(2, Op::get("k"));
        rec.complete(t1, Outcome::Ok);
        let _pending = t2;
        let h = rec.into_history();
        assert_eq!(h.ops.len(), 2);
        assert!(h.ops[0].invoke_ns <= h.ops[1].invoke_ns);
        assert!(h.ops[0].invoke_ns <= h.ops[0].complete_ns);
        assert_eq!(h.ops[0].outcome, Outcome::Ok);
        assert_eq!(h.ops[1].outcome, Outcome::Unknown);
        h.validate().unwrap();
    }

    #[test]
    fn threads_record_concurrently() {
        let rec = Recorder::new();
        std::thread::scope(|s| {
            for c in 0..4u64 {
                let rec = &rec;
                s.spawn(move || {
                    for i in 0..100 {
                        let t = rec.invoke(c, Op::put("k", format!("{c}-{i}")));
                        rec.complete(t, Outcome::Ok);
                    }
                });
            }
        });
        let h = rec.into_history();
        assert_eq!(h.ops.len(), 400);
        assert!(
            h.ops
                .iter()
                .all(|o| o.outcome == Outcome::Ok && o.invoke_ns <= o.complete_ns)
        );
        // Each client's ops are sequential in its own program order.
        for c in 0..4 {
            let mine: Vec<_> = h.ops.iter().filter(|o| o.client == c).collect();
            assert!(mine.windows(2).all(|w| w[0].complete_ns <= w[1].invoke_ns));
        }
    }
}
