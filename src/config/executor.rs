//! The shards' glommio executor settings: spinning before parking and core placement.
//!
//! Invariant: `core_of` maps shards onto cores round-robin from `first_core`, so the
//! shards of one node never share a core while there are as many cores as shards.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Longest `executor.spin_before_park_us` accepted (10 ms: past that a shard burns a core
/// for nothing a human would notice).
pub const MAX_SPIN_BEFORE_PARK_US: u64 = 10_000;

/// Settings of the shards' glommio executors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExecutorConfig {
    /// Microseconds a shard's executor keeps polling for work after it ran out of it,
    /// before it parks in the kernel (glommio's `spin_before_park`). A request that arrives
    /// within this window is picked up at once instead of after an eventfd wake-up of a
    /// sleeping thread (tens of microseconds on a VM): this is what keeps an embedded
    /// client's get in single-digit microseconds. The cost: a shard that was busy burns
    /// its core for up to this long after its last work, every time it goes idle (idle
    /// shards that stay idle sleep). 0 turns spinning off (park at once).
    pub spin_before_park_us: u64,
    /// Core of shard 0: shard s is pinned to core `(first_core + s) % cores`. Several
    /// nodes sharing one machine (a local cluster, tests, benchmarks) should each get
    /// their own value, or every node's shard 0 competes for core 0 while other cores
    /// idle.
    pub first_core: usize,
}

/// Default `executor.spin_before_park_us`: off. Measured on a 2-core VM with one shard
/// per core and the embedding application on the same cores, spinning shards took the
/// cores the client needed (local get p50 rose from ~50 to ~75 us, throughput at 64 in
/// flight fell); with a spare core (1 shard on 2 cores) 200 us of spinning brought the
/// p50 down to ~15 us. Turn it on (e.g. 200) where shards have cores of their own.
pub const DEFAULT_SPIN_BEFORE_PARK_US: u64 = 0;

impl Default for ExecutorConfig {
    fn default() -> Self {
        ExecutorConfig {
            spin_before_park_us: DEFAULT_SPIN_BEFORE_PARK_US,
            first_core: 0,
        }
    }
}

impl ExecutorConfig {
    /// The spin window, `None` when spinning is off.
    pub fn spin_before_park(&self) -> Option<Duration> {
        (self.spin_before_park_us > 0).then(|| Duration::from_micros(self.spin_before_park_us))
    }

    /// The core shard `shard` is pinned to on a machine with `cores` cores.
    pub fn core_of(&self, shard: usize, cores: usize) -> usize {
        assert!(cores > 0, "a machine has at least one core");
        (self.first_core % cores + shard) % cores
    }
}
