//! The on-disk record format (sans-IO): encoding and validating one record.
//!
//! Layout (all integers little-endian; `docs/WAL.md` has the byte-by-byte table):
//!
//! ```text
//! 0..4    crc32      CRC-32 (crc32fast) of: segment id (u64) ‖ record offset (u64) ‖
//!                    bytes 4..end of the record including its zero padding
//! 4..8    len        payload length (u32)
//! 8..16   index      caller's index (entry), truncation point, purge floor (u64)
//! 16..20  durable    segment offset below which this segment was durable when the
//!                    record was encoded (u32); recovery uses it to tell a torn tail
//!                    from damage to durable data
//! 20      kind       1 entry, 2 truncate, 3 purge, 4 segment start
//! 21..24  reserved   zero
//! 24..    payload    `len` bytes, then zeros up to a multiple of 8
//! ```
//!
//! Invariants: every record starts at a multiple of 8 inside its segment; an all-zero
//! header is never a valid record (kind 0 does not exist); the CRC binds a record to its
//! segment and offset, so a valid record copied elsewhere fails validation.

/// Bytes of a record header.
pub const HEADER_LEN: usize = 24;
/// Records start at multiples of this.
pub const ALIGN: usize = 8;
/// Payload length of a segment start record: the end of the previous segment (u64).
pub const START_PAYLOAD_LEN: usize = 8;

/// What a record means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A log entry carrying the caller's payload.
    Entry = 1,
    /// Everything at or above `index` is dropped.
    Truncate = 2,
    /// Everything below `index` is dropped (the purge floor rises to `index`).
    Purge = 3,
    /// First record of every segment; `index` is the purge floor when it was written,
    /// the payload the byte length used in the previous segment.
    SegmentStart = 4,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        match b {
            1 => Some(Kind::Entry),
            2 => Some(Kind::Truncate),
            3 => Some(Kind::Purge),
            4 => Some(Kind::SegmentStart),
            _ => None,
        }
    }
}

/// Total bytes taken by a record with a payload of `payload_len` bytes, padding included.
pub const fn record_len(payload_len: usize) -> usize {
    (HEADER_LEN + payload_len).div_ceil(ALIGN) * ALIGN
}

/// Appends one encoded record to `out`. `offset` is where the record will sit in segment
/// `segment`; it must be a multiple of [`ALIGN`].
pub fn encode(
    out: &mut Vec<u8>,
    segment: u64,
    offset: u64,
    kind: Kind,
    index: u64,
    durable: u32,
    payload: &[u8],
) {
    assert!(
        offset % ALIGN as u64 == 0,
        "record offset {offset} not aligned"
    );
    let len = u32::try_from(payload.len()).expect("payload length checked by the caller");
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(&durable.to_le_bytes());
    out.extend_from_slice(&[kind as u8, 0, 0, 0]);
    out.extend_from_slice(payload);
    out.resize(start + record_len(payload.len()), 0);
    let crc = checksum(segment, offset, &out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

fn checksum(segment: u64, offset: u64, body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&segment.to_le_bytes());
    h.update(&offset.to_le_bytes());
    h.update(body);
    h.finalize()
}

/// A record that passed validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// What it means.
    pub kind: Kind,
    /// Its index field.
    pub index: u64,
    /// Its durable-before field.
    pub durable: u32,
    /// Offset of the record in its segment.
    pub offset: u64,
    /// Payload length.
    pub len: u32,
}

impl Record {
    /// Byte range of the payload inside the segment.
    pub fn payload_range(&self) -> std::ops::Range<usize> {
        let s = self.offset as usize + HEADER_LEN;
        s..s + self.len as usize
    }
    /// Offset just past this record (and its padding).
    pub fn end(&self) -> u64 {
        self.offset + record_len(self.len as usize) as u64
    }
}

/// Outcome of looking for a record at one offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A valid record.
    Valid(Record),
    /// The header is all zero: nothing was ever written here.
    Zero,
    /// Something is here but it is not a valid record.
    Invalid(&'static str),
}

/// Validates the record at segment offset `offset` of segment `segment`; `data` holds the
/// segment's bytes from segment offset `base` on. `max_payload` bounds the length field
/// before anything is trusted.
pub fn decode(segment: u64, data: &[u8], base: u64, offset: u64, max_payload: usize) -> Decoded {
    let Some(off) = offset.checked_sub(base).map(|o| o as usize) else {
        return Decoded::Invalid("record before the buffer");
    };
    let Some(h) = data.get(off..off + HEADER_LEN) else {
        return Decoded::Invalid("header past the end of the segment");
    };
    if h.iter().all(|b| *b == 0) {
        return Decoded::Zero;
    }
    let word = |r: std::ops::Range<usize>| -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(&h[r]);
        u32::from_le_bytes(b)
    };
    let crc = word(0..4);
    let len = word(4..8);
    let mut ib = [0u8; 8];
    ib.copy_from_slice(&h[8..16]);
    let index = u64::from_le_bytes(ib);
    let durable = word(16..20);
    let Some(kind) = Kind::from_u8(h[20]) else {
        return Decoded::Invalid("unknown record kind");
    };
    if h[21..24] != [0, 0, 0] {
        return Decoded::Invalid("reserved header bytes not zero");
    }
    if len as usize > max_payload {
        return Decoded::Invalid("length above the payload limit");
    }
    let end = off + record_len(len as usize);
    let Some(body) = data.get(off + 4..end) else {
        return Decoded::Invalid("record past the end of the segment");
    };
    if checksum(segment, offset, body) != crc {
        return Decoded::Invalid("checksum mismatch");
    }
    if u64::from(durable) > offset {
        return Decoded::Invalid("durable point after the record itself");
    }
    Decoded::Valid(Record {
        kind,
        index,
        durable,
        offset,
        len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_binding_to_position() {
        let mut buf = vec![0u8; 16];
        encode(&mut buf, 7, 16, Kind::Entry, 42, 8, b"hello");
        buf.resize(256, 0);
        let Decoded::Valid(r) = decode(7, &buf, 0, 16, 1024) else {
            panic!("not valid")
        };
        assert_eq!((r.kind, r.index, r.durable, r.len), (Kind::Entry, 42, 8, 5));
        assert_eq!(&buf[r.payload_range()], b"hello");
        assert_eq!(r.end(), 16 + 32);
        // Same bytes, other segment: rejected.
        assert_eq!(
            decode(8, &buf, 0, 16, 1024),
            Decoded::Invalid("checksum mismatch")
        );
        // Moved to another offset: rejected.
        let mut moved = vec![0u8; 24];
        moved.extend_from_slice(&buf[16..48]);
        moved.resize(256, 0);
        assert_eq!(
            decode(7, &moved, 0, 24, 1024),
            Decoded::Invalid("checksum mismatch")
        );
        assert_eq!(decode(7, &buf, 0, 64, 1024), Decoded::Zero);
        // Length above the limit is refused before the CRC is computed.
        assert!(matches!(decode(7, &buf, 0, 16, 4), Decoded::Invalid(_)));
    }

    #[test]
    fn every_bit_of_a_record_is_covered() {
        let mut buf = Vec::new();
        encode(&mut buf, 1, 0, Kind::Entry, 9, 0, b"abc");
        for byte in 0..buf.len() {
            for bit in 0..8 {
                let mut b = buf.clone();
                b[byte] ^= 1 << bit;
                assert!(
                    !matches!(decode(1, &b, 0, 0, 64), Decoded::Valid(_)),
                    "{byte}:{bit}"
                );
            }
        }
    }
}
