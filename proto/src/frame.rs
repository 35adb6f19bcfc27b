//! The fixed 16-byte frame header shared by client and peer frames.
//!
//! Layout (all integers little-endian):
//!
//! | offset | size | field        |
//! |--------|------|--------------|
//! | 0      | 1    | `version`    |
//! | 1      | 1    | `opcode`     |
//! | 2      | 1    | `flags`      |
//! | 3      | 1    | `status`     |
//! | 4      | 8    | `request_id` |
//! | 12     | 4    | `body_len`   |
//!
//! Invariants: this layout is frozen for every protocol version, so a node can always read
//! the header of a frame from an incompatible peer and answer it with an
//! `IncompatibleVersion` error. Parsing a header never fails; *validating* it (version,
//! opcode, limits) is the decoder's job, so errors can carry the raw header.

/// Size of the frame header, in bytes.
pub const HEADER_LEN: usize = 16;

/// The protocol version this crate speaks (and the only one it accepts).
pub const PROTOCOL_VERSION: u8 = 1;

/// Oldest protocol version this crate accepts.
pub const MIN_PROTOCOL_VERSION: u8 = 1;

/// Newest protocol version this crate accepts.
pub const MAX_PROTOCOL_VERSION: u8 = 1;

/// Request flag bits 0-1: read consistency (see [`ReadConsistency`](crate::ReadConsistency)).
pub const FLAG_CONSISTENCY_MASK: u8 = 0b0000_0011;

/// A raw frame header, exactly as read from the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Header {
    /// Protocol version of this frame.
    pub version: u8,
    /// Raw opcode byte (see [`Opcode`](crate::Opcode)).
    pub opcode: u8,
    /// Per-opcode flags; unused bits must be zero.
    pub flags: u8,
    /// Response status (see [`Status`](crate::Status)); zero in requests.
    pub status: u8,
    /// Chosen by the requester, echoed by the response; matches them under pipelining.
    pub request_id: u64,
    /// Length of the body that follows the header.
    pub body_len: u32,
}

impl Header {
    /// Reads a header from its 16 bytes.
    pub fn parse(b: &[u8; HEADER_LEN]) -> Header {
        let mut id = [0u8; 8];
        id.copy_from_slice(&b[4..12]);
        let mut len = [0u8; 4];
        len.copy_from_slice(&b[12..16]);
        Header {
            version: b[0],
            opcode: b[1],
            flags: b[2],
            status: b[3],
            request_id: u64::from_le_bytes(id),
            body_len: u32::from_le_bytes(len),
        }
    }

    /// Writes the header's 16 bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0] = self.version;
        b[1] = self.opcode;
        b[2] = self.flags;
        b[3] = self.status;
        b[4..12].copy_from_slice(&self.request_id.to_le_bytes());
        b[12..16].copy_from_slice(&self.body_len.to_le_bytes());
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_little_endian_and_round_trips() {
        let h = Header {
            version: 1,
            opcode: 0x10,
            flags: 2,
            status: 0,
            request_id: 0x0102_0304_0506_0708,
            body_len: 0x0A0B_0C0D,
        };
        let b = h.to_bytes();
        assert_eq!(
            b,
            [
                1, 0x10, 2, 0, 8, 7, 6, 5, 4, 3, 2, 1, 0x0D, 0x0C, 0x0B, 0x0A
            ]
        );
        assert_eq!(Header::parse(&b), h);
    }
}
