//! Hierarchical timer wheel at millisecond resolution: O(1) insert and cancel, bounded
//! work per `advance`, deterministic and sans-IO (time is an argument).
//!
//! Shape: `LEVELS` levels of 64 slots; a slot of level `k` spans `64^k` ms, so the wheel
//! covers `64^LEVELS` ms = 2^42 ms (~139 years) ahead of its current time `elapsed`.
//! A timer further out waits in an `overflow` list, re-placed once it comes within range.
//! Timers live in a slab (`nodes`) and each slot is an intrusive doubly linked list through
//! the slab, so insert and cancel are O(1); a 64-bit occupancy mask per level finds the
//! next non-empty slot in O(1) per level. Same design as tokio's timer wheel.
//!
//! Invariants:
//! - a timer in level `k`, slot `s` has `when >= deadline(k, s)`, the start of the slot's
//!   span, and that deadline is `> elapsed` unless the slot is the one being drained; a
//!   timer in `pending` has `when <= elapsed` (inserted in the past); a timer in
//!   `overflow` is at least `WHEEL_SPAN` ahead of `elapsed` at placement and has
//!   `when >= overflow_min`.
//! - Nothing placed while a slot is drained can land in it (lower levels take every
//!   `when` of its span; the same slot of the next top-level span is past `WHEEL_SPAN`),
//!   so draining in place, timer by timer, terminates.
//! - `advance(now, max_work)` expires exactly the timers with `when <= now`, in deadline
//!   order, doing at most `max_work` units (one per slot reached, one per timer expired
//!   or moved, plus what the callback reports); what is left carries over to the next
//!   call. `elapsed` never exceeds `now`. Once the wheel is empty, its slab is given back
//!   in bounded slices (part of the same work budget).
//! - The order in which timers expire depends only on the sequence of calls, so replicas
//!   that make the same calls behave the same.

/// Bits of one level: 64 slots.
const SLOT_BITS: u32 = 6;
const SLOTS: usize = 1 << SLOT_BITS;
/// Levels: 7 * 6 = 42 bits of milliseconds ahead, ~139 years.
const LEVELS: usize = 7;
/// Span of the whole wheel, in ms.
const WHEEL_SPAN: u64 = 1 << (SLOT_BITS as usize * LEVELS);

const NIL: u32 = u32::MAX;
/// Slab nodes released per unit of work once the wheel is empty (~1 MiB).
const SHRINK_STEP_NODES: usize = 32 * 1024;
const LOC_PENDING: u16 = u16::MAX;
const LOC_OVERFLOW: u16 = u16::MAX - 1;
const LOC_FREE: u16 = u16::MAX - 2;

/// Handle of a timer; valid until the timer fires or is cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId(pub(crate) u32);

#[derive(Debug)]
struct Node<T> {
    when: u64,
    prev: u32,
    next: u32,
    /// `level * SLOTS + slot`, or one of the `LOC_*` codes.
    loc: u16,
    payload: Option<T>,
}

#[derive(Debug, Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
}

const EMPTY: List = List {
    head: NIL,
    tail: NIL,
};

/// What one `advance` call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Advance {
    /// Timers that fired (their payloads were handed to the callback).
    pub expired: usize,
    /// Work units spent (may pass `max_work` by what the last callback reported).
    pub work: usize,
    /// False when the work bound stopped the call before every due timer fired.
    pub complete: bool,
}

/// The wheel. `T` is the payload handed back when a timer fires.
#[derive(Debug)]
pub struct TimerWheel<T> {
    nodes: Vec<Node<T>>,
    free_head: u32,
    live: usize,
    elapsed: u64,
    slots: Box<[List]>,
    occupied: [u64; LEVELS],
    pending: List,
    overflow: List,
    overflow_len: usize,
    overflow_min: u64,
    /// The slot whose deadline `elapsed` reached, drained timer by timer.
    draining: Option<usize>,
    /// Overflow timers still to re-place in the current overflow drain.
    overflow_drain_left: usize,
}

impl<T> Default for TimerWheel<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> TimerWheel<T> {
    /// An empty wheel whose time starts at 0.
    pub fn new() -> Self {
        TimerWheel {
            nodes: Vec::new(),
            free_head: NIL,
            live: 0,
            elapsed: 0,
            slots: vec![EMPTY; LEVELS * SLOTS].into_boxed_slice(),
            occupied: [0; LEVELS],
            pending: EMPTY,
            overflow: EMPTY,
            overflow_len: 0,
            overflow_min: u64::MAX,
            draining: None,
            overflow_drain_left: 0,
        }
    }

    /// Live timers.
    pub fn len(&self) -> usize {
        self.live
    }

    /// True with no live timer.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The wheel's time: every timer with `when <= elapsed` has fired or is queued to.
    pub fn elapsed(&self) -> u64 {
        self.elapsed
    }

    /// Bytes the wheel holds on the heap (slab capacity and slot heads).
    pub fn heap_bytes(&self) -> usize {
        self.nodes.capacity() * size_of::<Node<T>>() + self.slots.len() * size_of::<List>()
    }

    /// Bytes of the timer slab (zero with no live timer).
    pub fn slab_bytes(&self) -> usize {
        self.nodes.capacity() * size_of::<Node<T>>()
    }

    /// The id the next `insert` will return.
    pub fn next_id(&self) -> TimerId {
        if self.free_head != NIL {
            TimerId(self.free_head)
        } else {
            TimerId(self.nodes.len() as u32)
        }
    }

    /// Schedules `payload` to fire at `when` (absolute ms). O(1).
    pub fn insert(&mut self, when: u64, payload: T) -> TimerId {
        let id = if self.free_head != NIL {
            let id = self.free_head;
            let node = &mut self.nodes[id as usize];
            debug_assert_eq!(node.loc, LOC_FREE);
            self.free_head = node.next;
            *node = Node {
                when,
                prev: NIL,
                next: NIL,
                loc: LOC_FREE,
                payload: Some(payload),
            };
            id
        } else {
            let id = u32::try_from(self.nodes.len()).ok().filter(|&i| i != NIL);
            let id = id.unwrap_or_else(|| panic!("timer wheel holds 2^32-1 timers"));
            self.nodes.push(Node {
                when,
                prev: NIL,
                next: NIL,
                loc: LOC_FREE,
                payload: Some(payload),
            });
            id
        };
        self.live += 1;
        self.place(id);
        TimerId(id)
    }

    /// Removes a live timer and returns its payload. O(1). `None` if `id` is not live.
    pub fn cancel(&mut self, id: TimerId) -> Option<T> {
        let node = self.nodes.get(id.0 as usize)?;
        if node.loc == LOC_FREE {
            return None;
        }
        self.unlink(id.0);
        Some(self.release(id.0))
    }

    /// Expiry time of a live timer.
    pub fn when(&self, id: TimerId) -> Option<u64> {
        self.nodes
            .get(id.0 as usize)
            .filter(|n| n.loc != LOC_FREE)
            .map(|n| n.when)
    }

    /// Fires every timer with `when <= now`, handing each payload to `on_expire`, doing
    /// at most `max_work` units of work (at least one). `on_expire` returns the units it
    /// spent itself beyond the one the wheel charges per timer (e.g. a table shrink), so
    /// the bound covers the caller's reclaim work too. Call again (same or later `now`)
    /// while `complete` is false. A `now` behind the wheel's time does nothing.
    pub fn advance(
        &mut self,
        now: u64,
        max_work: usize,
        mut on_expire: impl FnMut(T) -> usize,
    ) -> Advance {
        let max_work = max_work.max(1);
        let mut out = Advance::default();
        if now < self.elapsed {
            out.complete = true;
            return out;
        }
        loop {
            if out.work >= max_work {
                return out;
            }
            if self.live == 0 && self.nodes.capacity() > 0 {
                // Give the slab back once it is empty, so memory returns to zero, a
                // bounded slice per unit of work: freeing a slab of millions of nodes at
                // once is a munmap of tens of MiB, a multi-millisecond stall.
                self.nodes.clear();
                self.free_head = NIL;
                let keep = self.nodes.capacity().saturating_sub(SHRINK_STEP_NODES);
                self.nodes.shrink_to(keep);
                // Charged like the timers it held would be (one unit per 256 nodes), so
                // a default budget releases about one slice per call.
                out.work += SHRINK_STEP_NODES / 256;
                continue;
            }
            if let Some(id) = self.next_due() {
                self.unlink(id);
                out.work += 1;
                if self.nodes[id as usize].when <= now {
                    out.expired += 1;
                    out.work += on_expire(self.release(id));
                } else {
                    self.place(id);
                }
                continue;
            }
            match self.next_deadline() {
                Some((deadline, source)) if deadline <= now => {
                    debug_assert!(deadline >= self.elapsed);
                    self.elapsed = deadline;
                    match source {
                        // The slot is drained in place: nothing placed from now on can
                        // land in it (lower levels take every `when` of its span, and
                        // the next span of the top level is past WHEEL_SPAN: overflow).
                        Source::Slot(i) => self.draining = Some(i),
                        // Drain exactly the timers there now; those that go back to
                        // the overflow are appended behind them.
                        Source::Overflow => {
                            self.overflow_drain_left = self.overflow_len;
                            self.overflow_min = u64::MAX;
                        }
                    }
                    out.work += 1;
                }
                _ => {
                    self.elapsed = now;
                    out.complete = true;
                    return out;
                }
            }
        }
    }

    /// The next timer whose list is due: pending first, then the slot being drained,
    /// then the overflow being drained.
    fn next_due(&mut self) -> Option<u32> {
        if self.pending.head != NIL {
            return Some(self.pending.head);
        }
        if let Some(i) = self.draining {
            if self.slots[i].head != NIL {
                return Some(self.slots[i].head);
            }
            self.draining = None;
        }
        if self.overflow_drain_left > 0 {
            if self.overflow.head != NIL {
                self.overflow_drain_left -= 1;
                return Some(self.overflow.head);
            }
            self.overflow_drain_left = 0;
        }
        None
    }

    /// Earliest time at which `advance` has work to do, if any timer is live. May be
    /// earlier than the earliest `when` (a higher-level slot is due at its start).
    pub fn next_wakeup(&self) -> Option<u64> {
        let draining = self.draining.is_some_and(|i| self.slots[i].head != NIL);
        if self.pending.head != NIL || draining || self.overflow_drain_left > 0 {
            return Some(self.elapsed);
        }
        self.next_deadline().map(|(d, _)| d)
    }

    /// Where the next due list is, and when it is due.
    fn next_deadline(&self) -> Option<(u64, Source)> {
        let mut best: Option<(u64, Source)> = None;
        for level in 0..LEVELS {
            let occ = self.occupied[level];
            if occ == 0 {
                continue;
            }
            let shift = SLOT_BITS * level as u32;
            let now_slot = ((self.elapsed >> shift) as usize) & (SLOTS - 1);
            // Bit 0 of `rotated` is the slot `elapsed` is in. Below the top level it is
            // never occupied; at the top level it can only hold timers of the *next*
            // span (wrapped), which are due after every other slot: look at it last.
            let rotated = occ.rotate_right(now_slot as u32);
            debug_assert!(
                level == LEVELS - 1 || rotated & 1 == 0,
                "current slot occupied"
            );
            let ahead = rotated & !1;
            let offset = if ahead != 0 {
                ahead.trailing_zeros() as usize
            } else {
                0
            };
            let slot = (now_slot + offset) % SLOTS;
            let level_span = 1u64 << (shift + SLOT_BITS);
            let level_start = self.elapsed & !(level_span - 1);
            let mut deadline = level_start.saturating_add((slot as u64) << shift);
            if deadline <= self.elapsed {
                // Only the top level wraps: a timer in the next span of the top level.
                debug_assert_eq!(level, LEVELS - 1, "lower levels never wrap");
                deadline = deadline.saturating_add(level_span);
            }
            if best.is_none_or(|(d, _)| deadline < d) {
                best = Some((deadline, Source::Slot(level * SLOTS + slot)));
            }
        }
        if self.overflow.head != NIL {
            let deadline = self
                .overflow_min
                .saturating_sub(WHEEL_SPAN - 1)
                .max(self.elapsed);
            if best.is_none_or(|(d, _)| deadline < d) {
                best = Some((deadline, Source::Overflow));
            }
        }
        best
    }

    /// Puts a node (unlinked, `loc` ignored) into the list its `when` calls for.
    fn place(&mut self, id: u32) {
        let when = self.nodes[id as usize].when;
        let loc = if when <= self.elapsed {
            LOC_PENDING
        } else if when - self.elapsed >= WHEEL_SPAN {
            self.overflow_min = self.overflow_min.min(when);
            LOC_OVERFLOW
        } else {
            let masked = (self.elapsed ^ when) | (SLOTS as u64 - 1);
            let masked = masked.min(WHEEL_SPAN - 1);
            let level = ((63 - masked.leading_zeros()) / SLOT_BITS) as usize;
            let slot = ((when >> (SLOT_BITS as usize * level)) as usize) & (SLOTS - 1);
            self.occupied[level] |= 1u64 << slot;
            (level * SLOTS + slot) as u16
        };
        if loc == LOC_OVERFLOW {
            self.overflow_len += 1;
            self.link_back(id, loc);
        } else {
            self.link_front(id, loc);
        }
    }

    fn list_mut(&mut self, loc: u16) -> &mut List {
        match loc {
            LOC_PENDING => &mut self.pending,
            LOC_OVERFLOW => &mut self.overflow,
            i => &mut self.slots[i as usize],
        }
    }

    fn link_front(&mut self, id: u32, loc: u16) {
        let old_head = self.list_mut(loc).head;
        {
            let node = &mut self.nodes[id as usize];
            node.loc = loc;
            node.prev = NIL;
            node.next = old_head;
        }
        if old_head != NIL {
            self.nodes[old_head as usize].prev = id;
        } else {
            self.list_mut(loc).tail = id;
        }
        self.list_mut(loc).head = id;
    }

    fn link_back(&mut self, id: u32, loc: u16) {
        let old_tail = self.list_mut(loc).tail;
        {
            let node = &mut self.nodes[id as usize];
            node.loc = loc;
            node.prev = old_tail;
            node.next = NIL;
        }
        if old_tail != NIL {
            self.nodes[old_tail as usize].next = id;
        } else {
            self.list_mut(loc).head = id;
        }
        self.list_mut(loc).tail = id;
    }

    fn unlink(&mut self, id: u32) {
        let (prev, next, loc) = {
            let n = &self.nodes[id as usize];
            (n.prev, n.next, n.loc)
        };
        debug_assert_ne!(loc, LOC_FREE);
        if prev != NIL {
            self.nodes[prev as usize].next = next;
        } else {
            self.list_mut(loc).head = next;
            if next == NIL {
                if (loc as usize) < LEVELS * SLOTS {
                    let i = loc as usize;
                    self.occupied[i / SLOTS] &= !(1u64 << (i % SLOTS));
                } else if loc == LOC_OVERFLOW {
                    self.overflow_min = u64::MAX;
                }
            }
        }
        if next != NIL {
            self.nodes[next as usize].prev = prev;
        } else {
            self.list_mut(loc).tail = prev;
        }
        if loc == LOC_OVERFLOW {
            self.overflow_len -= 1;
        }
        let n = &mut self.nodes[id as usize];
        n.prev = NIL;
        n.next = NIL;
    }

    /// Frees an unlinked node and returns its payload.
    fn release(&mut self, id: u32) -> T {
        let node = &mut self.nodes[id as usize];
        let payload = node.payload.take();
        node.loc = LOC_FREE;
        node.next = self.free_head;
        self.free_head = id;
        self.live -= 1;
        if self.live == 0 && self.nodes.capacity() <= SHRINK_STEP_NODES {
            // Small enough to give back at once; a bigger slab shrinks in `advance`.
            self.nodes = Vec::new();
            self.free_head = NIL;
        }
        match payload {
            Some(p) => p,
            None => unreachable!("a linked timer always holds its payload"),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Source {
    Slot(usize),
    Overflow,
}

#[cfg(test)]
#[path = "ttl_wheel_tests.rs"]
mod tests;
