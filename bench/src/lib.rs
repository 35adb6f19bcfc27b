//! Shoal's micro and comparison benchmarks live under `benches/` and `src/bin/`; this
//! library holds what they share: a counting global allocator and a small PRNG.
//!
//! `CountingAlloc` wraps the node's allocator (glibc malloc; mimalloc with the `mimalloc`
//! feature, an experiment recorded in docs/STATE.md) and counts, for every live
//! allocation, the bytes *requested* and the bytes the allocator really spends on it:
//! with mimalloc the block's size class (`mi_usable_size`, exact); with glibc the malloc
//! chunk (`max(32, round_up(n + 8, 16))` below the mmap threshold, page-rounded `n + 16`
//! above it), so benches can report memory both as asked for and as really spent.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

#[cfg(not(feature = "mimalloc"))]
const INNER: std::alloc::System = std::alloc::System;
#[cfg(feature = "mimalloc")]
const INNER: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Name of the allocator benches run on.
pub const ALLOCATOR: &str = if cfg!(feature = "mimalloc") {
    "mimalloc"
} else {
    "glibc malloc"
};

/// glibc's default mmap threshold.
const MMAP_THRESHOLD: usize = 128 * 1024;

/// Bytes glibc malloc spends to serve a request of `n` bytes.
pub fn glibc_cost(n: usize) -> usize {
    if n >= MMAP_THRESHOLD {
        (n + 16).next_multiple_of(4096)
    } else {
        (n + 8).next_multiple_of(16).max(32)
    }
}

/// Bytes the allocator spends on the live block `p` of `size` requested bytes.
#[allow(unsafe_code)]
fn block_cost(p: *const u8, size: usize) -> usize {
    #[cfg(not(feature = "mimalloc"))]
    {
        let _ = p;
        glibc_cost(size)
    }
    #[cfg(feature = "mimalloc")]
    {
        let _ = size;
        // SAFETY: `p` is a live block mimalloc returned (callers pass only those).
        unsafe { INNER.usable_size(p) }
    }
}

/// A global allocator wrapping the node's allocator that counts live bytes.
#[derive(Debug)]
pub struct CountingAlloc {
    requested: AtomicUsize,
    chunks: AtomicUsize,
    allocations: AtomicUsize,
    stopped: AtomicBool,
}

impl CountingAlloc {
    /// A counter at zero.
    pub const fn new() -> Self {
        CountingAlloc {
            requested: AtomicUsize::new(0),
            chunks: AtomicUsize::new(0),
            allocations: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
        }
    }

    /// Stops counting for good (the shared atomic counters would slow down, and so
    /// distort, the paths that allocate most in throughput measurements). Figures read
    /// after this are meaningless.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }

    /// (live bytes requested, live bytes the allocator spends, live allocations).
    pub fn live(&self) -> (usize, usize, usize) {
        (
            self.requested.load(Ordering::Relaxed),
            self.chunks.load(Ordering::Relaxed),
            self.allocations.load(Ordering::Relaxed),
        )
    }

    fn add(&self, p: *const u8, size: usize) {
        if self.stopped.load(Ordering::Relaxed) {
            return;
        }
        self.requested.fetch_add(size, Ordering::Relaxed);
        self.chunks
            .fetch_add(block_cost(p, size), Ordering::Relaxed);
        self.allocations.fetch_add(1, Ordering::Relaxed);
    }

    fn sub(&self, p: *const u8, size: usize) {
        if self.stopped.load(Ordering::Relaxed) {
            return;
        }
        self.requested.fetch_sub(size, Ordering::Relaxed);
        self.chunks
            .fetch_sub(block_cost(p, size), Ordering::Relaxed);
        self.allocations.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Default for CountingAlloc {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: every method forwards to the inner allocator with the caller's arguments
// unchanged, so the GlobalAlloc contract is the inner allocator's; the counters only
// observe sizes (of blocks still live when observed).
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is (caller upholds `alloc`'s contract).
        let p = unsafe { INNER.alloc(layout) };
        if !p.is_null() {
            self.add(p, layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { INNER.alloc_zeroed(layout) };
        if !p.is_null() {
            self.add(p, layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // Measured while the block is still live.
        self.sub(ptr, layout.size());
        // SAFETY: forwarded as is (ptr was allocated by us with this layout).
        unsafe { INNER.dealloc(ptr, layout) };
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old_cost = if self.stopped.load(Ordering::Relaxed) {
            0
        } else {
            block_cost(ptr, layout.size())
        };
        // SAFETY: forwarded as is.
        let p = unsafe { INNER.realloc(ptr, layout, new_size) };
        if !p.is_null() && !self.stopped.load(Ordering::Relaxed) {
            self.requested.fetch_sub(layout.size(), Ordering::Relaxed);
            self.chunks.fetch_sub(old_cost, Ordering::Relaxed);
            self.allocations.fetch_sub(1, Ordering::Relaxed);
            self.add(p, new_size);
        }
        p
    }
}

/// Resident set size of this process in bytes (`/proc/self/statm`), 0 if unreadable.
pub fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// xorshift64*: a tiny deterministic PRNG so runs are repeatable.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a nonzero seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (n > 0), slightly biased, fine for benches.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// CPU time consumed by the calling thread (excludes time the thread was preempted), so
/// pauses caused by the code can be told apart from pauses caused by a noisy machine.
#[allow(unsafe_code)]
pub fn thread_cpu_time() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID is always
    // supported on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
