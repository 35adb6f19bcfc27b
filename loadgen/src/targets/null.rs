//! The `null` target: answers every operation at once without doing anything.
//!
//! It measures loadgen's own per-operation cost (op choice, key choice, timing, recording),
//! the floor under every other target's figures. It stores nothing: gets report "found"
//! so the miss counters stay quiet; it is never a stand-in for a real system.

use bytes::Bytes;

use super::{OpError, Target};

/// A target whose every operation succeeds immediately.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullTarget;

impl Target for NullTarget {
    fn describe(&self) -> String {
        "null (no I/O: measures loadgen's own overhead)".to_string()
    }

    async fn put(&self, _key: &[u8], _value: &[u8]) -> Result<(), OpError> {
        Ok(())
    }

    async fn put_with_ttl(&self, _key: &[u8], _value: &[u8], _ttl: u64) -> Result<(), OpError> {
        Ok(())
    }

    async fn get(&self, _key: &[u8]) -> Result<bool, OpError> {
        Ok(true)
    }

    async fn get_multi(&self, keys: &[Bytes]) -> Result<usize, OpError> {
        Ok(keys.len())
    }

    async fn delete(&self, _key: &[u8]) -> Result<(), OpError> {
        Ok(())
    }
}
