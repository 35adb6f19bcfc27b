//! Memory figures of the state machine: what it holds, in bytes, by kind.
//!
//! How bytes are counted: every figure is bytes *requested from the allocator* for the
//! structure named (capacity, not length, for vectors and tables). The allocator's own
//! per-chunk overhead (glibc: 8 bytes of header, rounding to 16) is not visible from here;
//! `allocator_estimate` adds a documented estimate of it. The bench measures the real
//! process figure with a counting global allocator to check these.
//!
//! Not counted here: the fixed part every state holds whatever its contents
//! (`State::fixed_bytes`: 8192 sub-table headers and copy-on-write slots allocated at the
//! first insert, and the wheel's slot heads: ~450 KiB).
//!
//! Invariant: with no key stored, no timer armed and no snapshot in progress, `keys`,
//! `key_bytes`, `value_bytes`, `entry_overhead_bytes`, `timer_bytes` and `snapshot_bytes`
//! are all zero, and `index_bytes` is zero too (empty sub-tables release their buckets).

/// Memory held by a `State`, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryStats {
    /// Keys stored (visible or expired but not yet reclaimed).
    pub keys: usize,
    /// Sum of key lengths.
    pub key_bytes: usize,
    /// Sum of value lengths.
    pub value_bytes: usize,
    /// Bytes of entry allocations beyond key and value: reference count, length, tag,
    /// expiry and timer id, alignment padding.
    pub entry_overhead_bytes: usize,
    /// Bucket arrays of the hash sub-tables (handles + control bytes).
    pub index_bytes: usize,
    /// Timer wheel slab and slot heads, beyond its fixed part.
    pub timer_bytes: usize,
    /// Entry handles copied for a snapshot being built (copy-on-write of sub-tables).
    pub snapshot_bytes: usize,
}

impl MemoryStats {
    /// Everything beyond the key and value bytes themselves.
    pub fn overhead_bytes(&self) -> usize {
        self.entry_overhead_bytes + self.index_bytes + self.timer_bytes + self.snapshot_bytes
    }

    /// All bytes requested from the allocator.
    pub fn total_bytes(&self) -> usize {
        self.key_bytes + self.value_bytes + self.overhead_bytes()
    }

    /// `overhead_bytes / keys` (0 with no key).
    pub fn overhead_per_key(&self) -> f64 {
        if self.keys == 0 {
            0.0
        } else {
            self.overhead_bytes() as f64 / self.keys as f64
        }
    }

    /// Estimated glibc malloc overhead on top of requested bytes: each entry is its own
    /// chunk of `round_up(request + 8, 16)` bytes. The estimate assumes the mean request
    /// size; the bench's counting allocator applies the same rule chunk by chunk.
    pub fn allocator_estimate(&self) -> usize {
        if self.keys == 0 {
            return 0;
        }
        let entry_request =
            (self.key_bytes + self.value_bytes + self.entry_overhead_bytes) / self.keys;
        (glibc_chunk(entry_request) - entry_request) * self.keys
    }
}

/// Size of the glibc malloc chunk serving a request of `n` bytes (below the mmap
/// threshold): `max(32, round_up(n + 8, 16))`.
pub fn glibc_chunk(n: usize) -> usize {
    (n + 8).next_multiple_of(16).max(32)
}
