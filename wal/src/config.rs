//! The WAL's configuration and every limit it enforces, named in one place.
//!
//! Invariants (checked by [`WalConfig::validate`]): sizes are multiples of the 4 KiB block;
//! the largest record fits in one write with a block to spare; one write fits in a segment
//! together with the segment's start record. Recovery relies on `max_write`: no single
//! write ever carries more new bytes than that, which bounds where a torn write can leave
//! bytes (see `docs/WAL.md`).

use crate::error::{Result, WalError};
use crate::record::{HEADER_LEN, record_len};

/// Block size of every write and every file offset written: O_DIRECT needs it.
pub const BLOCK: u64 = 4096;

/// Largest metadata payload (`save_meta`), in bytes.
pub const MAX_META_LEN: usize = 1024;

/// Tunables of one WAL.
#[derive(Debug, Clone)]
pub struct WalConfig {
    /// Size of every new segment file, in bytes (default 64 MiB).
    pub segment_size: u64,
    /// Most bytes of new records carried by one write (default 4 MiB). A group commit
    /// that has more pending is split into several writes, each synced before the next.
    pub max_write: u64,
    /// Largest record payload, in bytes (default 2 MiB).
    pub max_payload: usize,
    /// Budget of the in-memory tail cache, in payload bytes (default 16 MiB).
    pub cache_bytes: usize,
    /// Most bytes read from disk by one read call while serving `read_range` (default 4 MiB).
    pub max_read: u64,
}

impl Default for WalConfig {
    fn default() -> Self {
        WalConfig {
            segment_size: 64 << 20,
            max_write: 4 << 20,
            max_payload: 2 << 20,
            cache_bytes: 16 << 20,
            max_read: 4 << 20,
        }
    }
}

impl WalConfig {
    /// Checks the rules stated in the module documentation.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(WalError::Config(m.to_string()));
        if self.segment_size % BLOCK != 0 || self.max_write % BLOCK != 0 {
            return bad("segment_size and max_write must be multiples of 4096");
        }
        if self.segment_size > u32::MAX as u64 {
            return bad("segment_size must be below 4 GiB (offsets are 32-bit)");
        }
        if record_len(self.max_payload) as u64 + BLOCK > self.max_write {
            return bad("max_payload plus a record header and a block must fit in max_write");
        }
        if self.max_write + record_len(crate::record::START_PAYLOAD_LEN) as u64 > self.segment_size
        {
            return bad("max_write plus a segment start record must fit in segment_size");
        }
        if self.max_read < record_len(self.max_payload) as u64 {
            return bad("max_read must hold the largest record");
        }
        if HEADER_LEN as u64 >= BLOCK {
            return bad("record header larger than a block");
        }
        Ok(())
    }

    /// A small configuration for tests: 64 KiB segments, 16 KiB writes, 4 KiB payloads.
    pub fn small_for_tests() -> Self {
        WalConfig {
            segment_size: 64 << 10,
            max_write: 16 << 10,
            max_payload: 4 << 10,
            cache_bytes: 8 << 10,
            max_read: 16 << 10,
        }
    }
}
