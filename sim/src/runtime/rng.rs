//! Seeded randomness of a simulation: independent, named streams derived from one seed.
//!
//! Invariants:
//! - Every random choice of a run (openraft's election timeouts through
//!   `AsyncRuntime::thread_rng`, scheduling, network faults, nemesis, workload) comes from
//!   a stream derived from the run's seed; nothing reads OS entropy.
//! - Streams are independent so that, for example, an extra draw by the workload does not
//!   shift openraft's election timeouts. The generator is `Xoshiro256PlusPlus`, whose
//!   output is the same on every platform (unlike `SmallRng`).

use std::cell::RefCell;
use std::convert::Infallible;

use rand::SeedableRng;
use rand::TryRng;
use rand::rngs::Xoshiro256PlusPlus;

use super::context;

/// The named random streams of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// What openraft draws through `thread_rng()` (election timeouts, tick jitter).
    Raft,
    /// Which ready task runs next (when shuffling is on).
    Scheduler,
    /// Message drops, delays, duplicates.
    Network,
    /// Disk: fsync latency, how much of an unsynced tail survives a crash.
    Disk,
    /// Fault schedule.
    Nemesis,
    /// Client operations.
    Workload,
}

const STREAMS: usize = 6;

fn index(s: Stream) -> usize {
    match s {
        Stream::Raft => 0,
        Stream::Scheduler => 1,
        Stream::Network => 2,
        Stream::Disk => 3,
        Stream::Nemesis => 4,
        Stream::Workload => 5,
    }
}

fn splitmix64(x: u64) -> u64 {
    let z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// All streams of one run.
#[derive(Debug)]
pub struct Rngs {
    streams: [RefCell<Xoshiro256PlusPlus>; STREAMS],
}

impl Rngs {
    /// Streams derived from `seed`.
    pub fn new(seed: u64) -> Self {
        let mk = |i: u64| {
            RefCell::new(Xoshiro256PlusPlus::seed_from_u64(splitmix64(
                seed ^ splitmix64(i.wrapping_add(1)),
            )))
        };
        Rngs {
            streams: [mk(0), mk(1), mk(2), mk(3), mk(4), mk(5)],
        }
    }

    /// Next `u64` of stream `s`.
    pub fn next_u64(&self, s: Stream) -> u64 {
        let mut rng = self.streams[index(s)].borrow_mut();
        match rng.try_next_u64() {
            Ok(v) => v,
            Err(never) => match never {},
        }
    }
}

/// Draw from stream `s` of the running simulation.
pub fn draw(s: Stream) -> u64 {
    context::with(|sim| sim.rngs.next_u64(s))
}

/// Uniform in `[0, n)` from stream `s` (`n` > 0).
pub fn below(s: Stream, n: u64) -> u64 {
    assert!(n > 0, "below(0)");
    // Multiply-shift: unbiased enough for a simulation and identical on every platform.
    let wide = u128::from(draw(s)) * u128::from(n);
    u64::try_from(wide >> 64).unwrap_or(0)
}

/// True with probability `p` (0.0..=1.0) from stream `s`.
pub fn chance(s: Stream, p: f64) -> bool {
    if p <= 0.0 {
        return false;
    }
    // 53 random bits as a float in [0, 1).
    let bits = draw(s) >> 11;
    #[allow(clippy::cast_precision_loss)]
    let x = bits as f64 / (1u64 << 53) as f64;
    x < p
}

/// The RNG openraft gets from `AsyncRuntime::thread_rng()`: a handle on the `Raft` stream
/// of the running simulation (every draw advances that one stream).
#[derive(Debug, Clone, Copy, Default)]
pub struct SimRng;

impl TryRng for SimRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok(u32::try_from(draw(Stream::Raft) >> 32).unwrap_or(0))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(draw(Stream::Raft))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for chunk in dst.chunks_mut(8) {
            let v = draw(Stream::Raft).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        Ok(())
    }
}
