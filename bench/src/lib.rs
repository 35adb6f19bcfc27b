//! Shoal's micro and comparison benchmarks live under `benches/` and `src/bin/`; this
//! library holds what they share: a counting global allocator and a small PRNG.
//!
//! `CountingAlloc` counts, for every live allocation, the bytes *requested* and the bytes
//! of the glibc malloc chunk that serves the request (`max(32, round_up(n + 8, 16))`
//! below the mmap threshold, page-rounded `n + 16` above it), so benches can report
//! memory both as asked for and as the allocator really spends it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

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

/// A global allocator wrapping `System` that counts live bytes.
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

    /// (live bytes requested, live bytes of malloc chunks, live allocations).
    pub fn live(&self) -> (usize, usize, usize) {
        (
            self.requested.load(Ordering::Relaxed),
            self.chunks.load(Ordering::Relaxed),
            self.allocations.load(Ordering::Relaxed),
        )
    }

    fn add(&self, size: usize) {
        if self.stopped.load(Ordering::Relaxed) {
            return;
        }
        self.requested.fetch_add(size, Ordering::Relaxed);
        self.chunks.fetch_add(glibc_cost(size), Ordering::Relaxed);
        self.allocations.fetch_add(1, Ordering::Relaxed);
    }

    fn sub(&self, size: usize) {
        if self.stopped.load(Ordering::Relaxed) {
            return;
        }
        self.requested.fetch_sub(size, Ordering::Relaxed);
        self.chunks.fetch_sub(glibc_cost(size), Ordering::Relaxed);
        self.allocations.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Default for CountingAlloc {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// GlobalAlloc contract is `System`'s; the counters only observe sizes.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is (caller upholds `alloc`'s contract).
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            self.add(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            self.add(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is (ptr was allocated by us with this layout).
        unsafe { System.dealloc(ptr, layout) };
        self.sub(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            self.sub(layout.size());
            self.add(new_size);
        }
        p
    }
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
