//! The metadata record (sans-IO format plus its file): a small opaque payload (Raft's
//! vote and committed index, as the caller encodes them) updated atomically.
//!
//! Format: the file `meta` holds two 4 KiB slots. A slot is
//! `crc32 (u32) ‖ len (u32) ‖ seq (u64) ‖ payload (len ≤ 1 KiB) ‖ zeros`, the CRC covering
//! the slot number (u64) and bytes 4..16+len. A save writes the slot the current value is
//! not in, with `seq + 1`, in one durable 4 KiB write. A torn save damages only the slot
//! being written, so the previous value survives. On open the valid slot with the higher
//! `seq` wins; an invalid non-zero slot is reported (it is either that torn save or damage
//! that cannot be told from it).
//!
//! Invariants: saves are serialized by the caller; `seq` strictly increases.

use crate::config::{BLOCK, MAX_META_LEN};
use bytes::Bytes;

/// Name of the metadata file.
pub const META_FILE: &str = "meta";
/// Size of the metadata file: two slots.
pub const META_FILE_LEN: u64 = 2 * BLOCK;
const SLOT_HEADER: usize = 16;

/// A decoded slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// Sequence number of the save.
    pub seq: u64,
    /// The payload.
    pub value: Bytes,
}

/// State of one slot on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotState {
    /// Never written.
    Zero,
    /// Valid.
    Valid(Slot),
    /// Non-zero but invalid.
    Invalid(&'static str),
}

fn crc(slot: u64, body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&slot.to_le_bytes());
    h.update(body);
    h.finalize()
}

/// Encodes slot `slot` (0 or 1) as one 4 KiB block.
pub fn encode_slot(slot: u64, seq: u64, value: &[u8]) -> Vec<u8> {
    assert!(value.len() <= MAX_META_LEN && slot < 2);
    let mut b = vec![0u8; BLOCK as usize];
    b[4..8].copy_from_slice(&(value.len() as u32).to_le_bytes());
    b[8..16].copy_from_slice(&seq.to_le_bytes());
    b[SLOT_HEADER..SLOT_HEADER + value.len()].copy_from_slice(value);
    let c = crc(slot, &b[4..SLOT_HEADER + value.len()]);
    b[0..4].copy_from_slice(&c.to_le_bytes());
    b
}

/// Decodes slot `slot` from its 4 KiB block.
pub fn decode_slot(slot: u64, b: &[u8]) -> SlotState {
    if b.iter().all(|x| *x == 0) {
        return SlotState::Zero;
    }
    if b.len() < SLOT_HEADER {
        return SlotState::Invalid("short slot");
    }
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[4..8]);
    let len = u32::from_le_bytes(w) as usize;
    if len > MAX_META_LEN || SLOT_HEADER + len > b.len() {
        return SlotState::Invalid("length above the limit");
    }
    w.copy_from_slice(&b[0..4]);
    if crc(slot, &b[4..SLOT_HEADER + len]) != u32::from_le_bytes(w) {
        return SlotState::Invalid("checksum mismatch");
    }
    if b[SLOT_HEADER + len..].iter().any(|x| *x != 0) {
        return SlotState::Invalid("non-zero bytes after the payload");
    }
    let mut s = [0u8; 8];
    s.copy_from_slice(&b[8..16]);
    let value = Bytes::copy_from_slice(&b[SLOT_HEADER..SLOT_HEADER + len]);
    SlotState::Valid(Slot {
        seq: u64::from_le_bytes(s),
        value,
    })
}

/// Picks the current value from both slots. Returns it (if any), the slot it is in, and
/// a description of an invalid slot, if one is.
pub fn choose(a: SlotState, b: SlotState) -> (Option<Slot>, u64, Option<String>) {
    let mut damaged = None;
    let mut best: Option<(Slot, u64)> = None;
    for (i, s) in [a, b].into_iter().enumerate() {
        match s {
            SlotState::Zero => {}
            SlotState::Invalid(why) => damaged = Some(format!("meta slot {i}: {why}")),
            SlotState::Valid(v) => {
                if best.as_ref().is_none_or(|(bv, _)| v.seq > bv.seq) {
                    best = Some((v, i as u64));
                }
            }
        }
    }
    match best {
        Some((v, i)) => (Some(v), i, damaged),
        // No value yet: the next save goes to slot 0.
        None => (None, 1, damaged),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_valid_slot_wins_and_torn_slot_is_reported() {
        let a = encode_slot(0, 4, b"vote-a");
        let b = encode_slot(1, 5, b"vote-b");
        let (v, i, d) = choose(decode_slot(0, &a), decode_slot(1, &b));
        assert_eq!(
            (v.unwrap().value, i, d),
            (Bytes::from_static(b"vote-b"), 1, None)
        );
        // A torn save of slot 1 leaves slot 0's value, and says so.
        let mut torn = b.clone();
        torn[20] ^= 1;
        let (v, i, d) = choose(decode_slot(0, &a), decode_slot(1, &torn));
        assert_eq!((v.unwrap().seq, i), (4, 0));
        assert!(d.unwrap().contains("slot 1"));
        // A slot copied to the other position is rejected.
        assert!(matches!(decode_slot(1, &a), SlotState::Invalid(_)));
        assert_eq!(choose(SlotState::Zero, SlotState::Zero), (None, 1, None));
    }
}
