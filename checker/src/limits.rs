//! Every limit and default of the checker, named in one place.
//!
//! Invariant: the search never runs unbounded. Each key's search stops at
//! `DEFAULT_MAX_STEPS_PER_KEY` steps or `DEFAULT_MAX_MEMO_BYTES_PER_KEY` bytes of memo (both
//! overridable in `CheckOptions`), and the whole check at its time budget; stopping early
//! yields "could not decide", never a verdict.

/// Largest history accepted (operation indices fit in `u32` inside the search).
pub const MAX_HISTORY_OPS: usize = 50_000_000;

/// Default clock uncertainty `eps` (ns) for TTL expiry: 10 ms. See README "Clock
/// uncertainty": it covers the leader's proposal-to-apply delay, millisecond rounding
/// of the expiry and the leader-versus-harness clock offset on one machine.
pub const DEFAULT_CLOCK_UNCERTAINTY_NS: u64 = 10_000_000;

/// Default search steps per key (one step = one candidate tried or one backtrack).
pub const DEFAULT_MAX_STEPS_PER_KEY: u64 = 100_000_000;

/// Default memo size per key, in bytes (bitsets + states + table overhead).
pub const DEFAULT_MAX_MEMO_BYTES_PER_KEY: usize = 1 << 30;

/// Default wall-clock budget of a whole check, in seconds.
pub const DEFAULT_TIME_BUDGET_SECS: u64 = 300;

/// How many search steps run between two probes of the time budget / stop flag.
pub const PROBE_EVERY_STEPS: u64 = 4096;

/// How many ops of the longest linearizable prefix an explanation shows (the tail).
pub const EXPLAIN_PREFIX_TAIL: usize = 12;
