//! The trace of a run: a running hash of every scheduling decision and every harness event
//! (task polls, virtual-time jumps, message deliveries and drops, disk flushes, crashes,
//! restarts, client operations and their results), plus the last events as text for a
//! failure report.
//!
//! Invariant: two runs of one seed produce the same hash if and only if (up to hash
//! collisions) they made the same decisions in the same order: this is what the
//! determinism test compares.

use std::cell::Cell;
use std::cell::RefCell;
use std::collections::VecDeque;

/// How many recent text events a trace keeps for a failure report.
pub const RECENT_EVENTS: usize = 64;

/// Event kinds mixed into the hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Kind {
    /// A task (or main) was polled.
    Poll = 1,
    /// Virtual time jumped.
    Time = 2,
    /// A task was spawned.
    Spawn = 3,
    /// A harness event described by text.
    Note = 4,
    /// A message's fate on a link (delay, or lost).
    Net = 5,
    /// A disk sync or crash.
    Disk = 6,
}

fn mix(h: u64, x: u64) -> u64 {
    // SplitMix64 finaliser over (h rotated ^ x): cheap and order-sensitive.
    let z = (h.rotate_left(5) ^ x).wrapping_add(0x9e37_79b9_7f4a_7c15);
    let z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A run's trace.
#[derive(Debug, Default)]
pub struct Trace {
    hash: Cell<u64>,
    events: Cell<u64>,
    recent: RefCell<VecDeque<String>>,
    echo: Cell<bool>,
}

impl Trace {
    /// Mix one event into the hash.
    pub fn record(&self, kind: Kind, a: u64, b: u64) {
        let h = mix(mix(mix(self.hash.get(), kind as u64), a), b);
        self.hash.set(h);
        self.events.set(self.events.get() + 1);
    }

    /// Mix a text event into the hash and keep it among the recent events.
    pub fn note(&self, now_nanos: u64, text: String) {
        let mut h = mix(self.hash.get(), Kind::Note as u64);
        h = mix(h, now_nanos);
        for chunk in text.as_bytes().chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            h = mix(h, u64::from_le_bytes(b));
        }
        self.hash.set(h);
        self.events.set(self.events.get() + 1);
        let line = format!("[{:>10.3} ms] {text}", now_nanos as f64 / 1e6);
        if self.echo.get() {
            eprintln!("{line}");
        }
        let mut recent = self.recent.borrow_mut();
        if recent.len() == RECENT_EVENTS {
            recent.pop_front();
        }
        recent.push_back(line);
    }

    /// Print every text event to stderr as it happens (for replaying a seed).
    pub fn set_echo(&self, on: bool) {
        self.echo.set(on);
    }

    /// The hash so far.
    pub fn hash(&self) -> u64 {
        self.hash.get()
    }

    /// Number of events so far.
    pub fn events(&self) -> u64 {
        self.events.get()
    }

    /// The last text events, oldest first.
    pub fn recent(&self) -> Vec<String> {
        self.recent.borrow().iter().cloned().collect()
    }
}
